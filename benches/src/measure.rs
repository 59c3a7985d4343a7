//! Criterion glue: one benchmark per (workload, backend, concurrency), timed with
//! `iter_custom` over the concurrent [driver](crate::driver), and the row it adds to
//! the results.
//!
//! Benchmarks are named `in_flight_<N>/<workload>/<backend>` (the group is the
//! concurrency, the id `BenchmarkId::new(workload, backend)`), with
//! `Throughput::Elements(1)` so that criterion reports operations per second.
//!
//! Where the numbers come from:
//! - ops/s is `1 / median time per operation` from criterion's own analysis (the
//!   `median` estimate in its `estimates.json`);
//! - p50 and p99 come from the latencies the driver recorded during the samples
//!   criterion measured. Criterion times whole batches only; the driver keeps every
//!   operation's latency in a histogram per call of the routine, and the histograms of
//!   the last `sample_size` calls (criterion's measurement phase, after its warm-up,
//!   in flat sampling mode) are merged.

use std::path::Path;
use std::sync::{Arc, Mutex};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use tokio::runtime::Runtime;

use crate::config::{Settings, Timing};
use crate::driver::{run_once, BenchError, Sample, Workload};
use crate::histogram::Histogram;

/// One line of the results: a backend, a workload, a concurrency.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The backend or baseline.
    pub backend: String,
    /// The workload.
    pub workload: String,
    /// Operations in flight.
    pub concurrency: usize,
    /// Operations per second (criterion's median).
    pub ops_per_sec: f64,
    /// Median latency of one operation, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Share of the measured operations the store denied (should be 0).
    pub denied_share: f64,
    /// Operations measured (criterion's measurement phase).
    pub ops_measured: u64,
}

/// Runs benchmarks and collects their rows.
pub struct Runner<'a> {
    criterion: &'a mut Criterion,
    rt: &'a Runtime,
    settings: &'a Settings,
    /// The rows so far.
    pub rows: Vec<Row>,
}

impl<'a> Runner<'a> {
    /// A runner on `criterion`, driving tasks on `rt`.
    pub fn new(criterion: &'a mut Criterion, rt: &'a Runtime, settings: &'a Settings) -> Self {
        Runner {
            criterion,
            rt,
            settings,
            rows: Vec::new(),
        }
    }

    /// The runtime the benchmarks drive their tasks on.
    pub fn runtime(&self) -> &'a Runtime {
        self.rt
    }

    /// Benchmarks `workload` on `backend` at every configured concurrency.
    pub fn bench<W: Workload>(
        &mut self,
        workload_name: &str,
        backend: &str,
        workload: W,
    ) -> Result<(), BenchError> {
        let workload = Arc::new(workload);
        let timing = if workload_name == "revoke" {
            self.settings.revoke_timing
        } else {
            self.settings.timing
        };
        for &concurrency in &self.settings.concurrency {
            let samples = self.bench_one(workload_name, backend, &workload, concurrency, timing);
            if !self.settings.measuring || samples.is_empty() {
                // A smoke run (cargo test --benches), or a benchmark criterion's
                // command-line filter left out: nothing was measured.
                continue;
            }
            let row = self.summarise(workload_name, backend, concurrency, timing, &samples)?;
            if row.denied_share > 0.01 {
                eprintln!(
                    "keylatch-benches: WARNING: {backend} {workload_name} at {concurrency} in \
                     flight: {:.1} % of operations were denied",
                    row.denied_share * 100.0
                );
            }
            self.rows.push(row);
        }
        Ok(())
    }

    fn bench_one<W: Workload>(
        &mut self,
        workload_name: &str,
        backend: &str,
        workload: &Arc<W>,
        concurrency: usize,
        timing: Timing,
    ) -> Vec<Sample> {
        let samples: Mutex<Vec<Sample>> = Mutex::new(Vec::new());
        let rt = self.rt;
        let mut group = self
            .criterion
            .benchmark_group(format!("in_flight_{concurrency}"));
        group
            .throughput(Throughput::Elements(1))
            // Flat sampling: every sample runs the same number of operations, enough
            // to keep all tasks busy; linear sampling's first samples would be too
            // short to have `concurrency` operations in flight.
            .sampling_mode(SamplingMode::Flat)
            .sample_size(timing.samples)
            .warm_up_time(timing.warm_up)
            .measurement_time(timing.measurement);
        group.bench_function(BenchmarkId::new(workload_name, backend), |b| {
            b.iter_custom(|iters| {
                match rt.block_on(run_once(workload, iters, concurrency)) {
                    Ok(sample) => {
                        let elapsed = sample.elapsed;
                        samples
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .push(sample);
                        elapsed
                    }
                    // Criterion's routine cannot return an error, and a number from
                    // a failing backend would be a lie: stop the whole run, loudly.
                    Err(e) => {
                        panic!("{backend} {workload_name} at {concurrency} in flight failed: {e}")
                    }
                }
            })
        });
        group.finish();
        samples
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn summarise(
        &self,
        workload: &str,
        backend: &str,
        concurrency: usize,
        timing: Timing,
        samples: &[Sample],
    ) -> Result<Row, BenchError> {
        // The measurement phase is the last `samples` calls; warm-up came before.
        let measured = &samples[samples.len().saturating_sub(timing.samples)..];
        let mut latencies = Histogram::new();
        let mut denied = 0;
        let mut ops = 0;
        for s in measured {
            latencies.merge(&s.latencies);
            denied += s.denied;
            ops += s.iters;
        }
        let group = format!("in_flight_{concurrency}");
        let median_ns =
            criterion_median_ns(&self.settings.criterion_home, &group, workload, backend)?;
        let dump = self
            .settings
            .out_dir
            .join("latency")
            .join(&group)
            .join(workload)
            .join(format!("{backend}.tsv"));
        write_histogram(&dump, &latencies)?;
        Ok(Row {
            backend: backend.to_owned(),
            workload: workload.to_owned(),
            concurrency,
            ops_per_sec: 1e9 / median_ns,
            p50_us: latencies.quantile(0.5).unwrap_or(f64::NAN) / 1e3,
            p99_us: latencies.quantile(0.99).unwrap_or(f64::NAN) / 1e3,
            denied_share: if ops == 0 {
                0.0
            } else {
                denied as f64 / ops as f64
            },
            ops_measured: ops,
        })
    }
}

/// Criterion's median time per iteration, in nanoseconds, for one benchmark.
pub fn criterion_median_ns(
    home: &Path,
    group: &str,
    function: &str,
    value: &str,
) -> Result<f64, BenchError> {
    let path = home
        .join(group)
        .join(function)
        .join(value)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("criterion's estimates {}: {e}", path.display()))?;
    median_from_estimates(&text).ok_or_else(|| {
        format!(
            "criterion's estimates {} have no median point estimate",
            path.display()
        )
        .into()
    })
}

/// The `median.point_estimate` of criterion's `estimates.json`.
pub fn median_from_estimates(json: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("median")?
        .get("point_estimate")?
        .as_f64()
        .filter(|ns| *ns > 0.0)
}

fn write_histogram(path: &Path, h: &Histogram) -> Result<(), BenchError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = String::from("# low_ns\thigh_ns\tcount\n");
    for (low, high, count) in h.buckets() {
        text.push_str(&format!("{low}\t{high}\t{count}\n"));
    }
    std::fs::write(path, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_read_from_criterion_estimates() {
        let json = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":3.0},"point_estimate":2.0,"standard_error":0.1},
                       "median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0},"point_estimate":1500.5,"standard_error":0.1}}"#;
        assert_eq!(median_from_estimates(json), Some(1500.5));
        assert_eq!(
            median_from_estimates(r#"{"mean":{"point_estimate":2.0}}"#),
            None
        );
        assert_eq!(median_from_estimates("not json"), None);
    }
}
