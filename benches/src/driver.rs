//! The concurrent driver: runs `iters` operations of a workload as `concurrency`
//! tokio tasks and times them, for criterion's `iter_custom`.
//!
//! Each task runs its share of the operations back to back, so `concurrency` is the
//! number of operations in flight at any moment. Latencies go into the task's own
//! [`Histogram`]; nothing is shared between tasks while the clock runs.
//!
//! Reading the clock costs about as much as a governor check (a profile of the
//! governor benchmark showed a third of its time in `clock_gettime` when every
//! operation was timed), so the driver times every operation only while operations
//! are slow (a round trip to a server) and one in [`FAST_STRIDE`] once they take
//! under [`FAST_OP`] (in-process stores). The sampled operations are spread evenly
//! over the run, so their percentiles stand for all of them.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::histogram::Histogram;

/// Operations faster than this are timed one in [`FAST_STRIDE`].
pub const FAST_OP: Duration = Duration::from_micros(20);
/// One operation in this many is timed while operations are fast.
pub const FAST_STRIDE: u64 = 16;

/// An error that stops a benchmark: a backend failed, or the setup did.
pub type BenchError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What one operation ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The operation did what the workload wanted (a verify was allowed, say).
    Done,
    /// The store denied it. Counted and reported: a workload that mostly measures
    /// denials would measure the wrong path.
    Denied,
}

/// One workload on one backend: per-task state made before the clock starts, and the
/// operation the clock measures.
pub trait Workload: Send + Sync + 'static {
    /// What each task carries from one operation to the next.
    type Task: Send + 'static;

    /// Makes the state of each task (untimed). `ops[i]` is how many operations task
    /// `i` will run; a workload that consumes something per operation (revoke needs a
    /// fresh key each time) prepares exactly that much here.
    fn prepare(
        &self,
        ops: &[u64],
    ) -> impl Future<Output = Result<Vec<Self::Task>, BenchError>> + Send;

    /// One operation: the thing being measured.
    fn op(&self, task: &mut Self::Task)
        -> impl Future<Output = Result<Outcome, BenchError>> + Send;
}

/// What one timed run produced.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Operations run.
    pub iters: u64,
    /// Wall-clock time from the first task's start to the last task's end.
    pub elapsed: Duration,
    /// Latencies of the timed operations (all of them, or one in [`FAST_STRIDE`] of
    /// fast ones), in nanoseconds.
    pub latencies: Histogram,
    /// Operations the store denied.
    pub denied: u64,
}

/// How `iters` operations are split over `concurrency` tasks: as evenly as possible,
/// the first tasks taking one more when it does not divide.
pub fn split(iters: u64, concurrency: usize) -> Vec<u64> {
    let concurrency = concurrency.max(1) as u64;
    let tasks = concurrency.min(iters.max(1));
    (0..tasks)
        .map(|i| iters / tasks + u64::from(i < iters % tasks))
        .collect()
}

/// Runs `iters` operations with `concurrency` in flight and times them. Must be called
/// from inside a multi-threaded tokio runtime.
pub async fn run_once<W: Workload>(
    workload: &Arc<W>,
    iters: u64,
    concurrency: usize,
) -> Result<Sample, BenchError> {
    let shares = split(iters, concurrency);
    let tasks = workload.prepare(&shares).await?;
    if tasks.len() != shares.len() {
        return Err(format!(
            "workload prepared {} tasks for {} shares",
            tasks.len(),
            shares.len()
        )
        .into());
    }
    let started = Instant::now();
    let handles: Vec<_> = tasks
        .into_iter()
        .zip(shares)
        .map(|(mut task, n)| {
            let workload = Arc::clone(workload);
            tokio::spawn(async move {
                let mut latencies = Histogram::new();
                let mut denied = 0u64;
                let mut stride = 1;
                for i in 0..n {
                    let outcome = if i % stride == 0 {
                        let start = Instant::now();
                        let outcome = workload.op(&mut task).await?;
                        let took = start.elapsed();
                        latencies.record(took.as_nanos() as u64);
                        stride = if took < FAST_OP { FAST_STRIDE } else { 1 };
                        outcome
                    } else {
                        workload.op(&mut task).await?
                    };
                    if outcome == Outcome::Denied {
                        denied += 1;
                    }
                }
                Ok::<_, BenchError>((latencies, denied))
            })
        })
        .collect();
    let mut latencies = Histogram::new();
    let mut denied = 0;
    let mut first_error = None;
    // Every task is awaited, also after an error, so that none is left running into
    // the next measurement.
    for handle in handles {
        match handle.await {
            Ok(Ok((h, d))) => {
                latencies.merge(&h);
                denied += d;
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(join) => {
                first_error.get_or_insert_with(|| format!("bench task failed: {join}").into());
            }
        }
    }
    let elapsed = started.elapsed();
    match first_error {
        Some(e) => Err(e),
        None => Ok(Sample {
            iters,
            elapsed,
            latencies,
            denied,
        }),
    }
}

/// A small, fast pseudo-random generator (xorshift64*) for picking keys: one per
/// task, seeded from the task's index, so the choice costs no shared state and no
/// system call. Statistical quality is ample for a uniform pick among 10 000 keys.
#[derive(Debug, Clone)]
pub struct FastRng(u64);

impl FastRng {
    /// A generator seeded from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        // SplitMix64 of the seed, so that neighbouring seeds start far apart.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        FastRng(if z == 0 { 1 } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n > 0`), by multiply-shift (bias below 2^-40 for n <= 2^24).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    #[test]
    fn split_is_even_and_complete() {
        assert_eq!(split(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(split(3, 64), vec![1, 1, 1]);
        assert_eq!(split(0, 16), vec![0]);
        assert_eq!(split(128, 64).iter().sum::<u64>(), 128);
        assert!(split(128, 64).iter().all(|&n| n == 2));
    }

    #[test]
    fn rng_is_roughly_uniform() {
        let mut rng = FastRng::new(7);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[rng.below(10)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    /// Counts how many operations run at once, to show that `concurrency` really is
    /// the number in flight.
    struct Probe {
        in_flight: AtomicUsize,
        peak: AtomicUsize,
        ops: AtomicU64,
        gate: tokio::sync::Barrier,
        fail_at: Option<u64>,
    }

    impl Workload for Probe {
        type Task = ();

        async fn prepare(&self, ops: &[u64]) -> Result<Vec<()>, BenchError> {
            Ok(vec![(); ops.len()])
        }

        async fn op(&self, _: &mut ()) -> Result<Outcome, BenchError> {
            let n = self.ops.fetch_add(1, Ordering::SeqCst);
            if Some(n) == self.fail_at {
                return Err("injected failure".into());
            }
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            // The first round of operations waits until all of them are in flight:
            // a signal, not a sleep, proves they overlap.
            if n < 8 {
                self.gate.wait().await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(if n.is_multiple_of(2) {
                Outcome::Done
            } else {
                Outcome::Denied
            })
        }
    }

    fn probe(fail_at: Option<u64>) -> Arc<Probe> {
        Arc::new(Probe {
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            ops: AtomicU64::new(0),
            gate: tokio::sync::Barrier::new(8),
            fail_at,
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_every_operation_with_the_requested_concurrency() {
        let p = probe(None);
        let sample = run_once(&p, 100, 8).await.expect("runs");
        assert_eq!(sample.iters, 100);
        assert_eq!(p.ops.load(Ordering::SeqCst), 100);
        // Every task times its first operation; once operations are fast, only one
        // in FAST_STRIDE is timed.
        let timed = sample.latencies.len();
        assert!((8..100).contains(&timed), "{timed} operations timed");
        assert_eq!(sample.denied, 50);
        assert_eq!(p.peak.load(Ordering::SeqCst), 8);
    }

    /// Operations that take a millisecond: slow enough to be timed every time.
    struct Slow;

    impl Workload for Slow {
        type Task = ();

        async fn prepare(&self, ops: &[u64]) -> Result<Vec<()>, BenchError> {
            Ok(vec![(); ops.len()])
        }

        async fn op(&self, _: &mut ()) -> Result<Outcome, BenchError> {
            // Not synchronisation: the operation simply has to take longer than
            // FAST_OP, as a round trip to a server does.
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(Outcome::Done)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_operations_are_all_timed() {
        let sample = run_once(&Arc::new(Slow), 40, 4).await.expect("runs");
        assert_eq!(sample.latencies.len(), 40);
        assert!(sample.latencies.quantile(0.5).expect("timed") >= 1e6);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_operation_error_fails_the_run() {
        let p = probe(Some(50));
        assert!(run_once(&p, 100, 8).await.is_err());
    }
}
