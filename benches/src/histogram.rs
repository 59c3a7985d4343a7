//! A small log-linear latency histogram: fixed memory, about 1.6 % resolution.
//!
//! Criterion reports time per iteration, not the spread of single operations, so the
//! driver records every operation's latency here. Values are nanoseconds. Below 128 ns
//! every value has its own bucket; above, each power of two is cut into 64 equal
//! buckets, so a bucket is at most 1/64 of its lower bound wide. Recording is an
//! index computation and an increment, cheap enough to do on every operation.

/// Values below this have a bucket each.
const LINEAR: u64 = 128;
/// Buckets per power of two above [`LINEAR`] (2^6).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// The largest power of two tracked: 2^40 ns is about 18 minutes; longer values are
/// clamped into the last bucket (no benchmark operation comes near it).
const MAX_EXP: u32 = 40;
/// 128 linear buckets, then 64 for each power of two from 2^7 to 2^(MAX_EXP - 1).
const BUCKETS: usize = LINEAR as usize + ((MAX_EXP - SUB_BITS - 1) as usize) * SUB as usize;

/// Counts of latencies in nanoseconds.
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max)
            .finish()
    }
}

fn index(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let exp = (63 - value.leading_zeros()).min(MAX_EXP - 1);
    let value = value.min((1 << MAX_EXP) - 1);
    // exp >= 7 here, so the shift keeps the 6 bits just below the leading one.
    let sub = (value >> (exp - SUB_BITS)) & (SUB - 1);
    LINEAR as usize + ((exp - (SUB_BITS + 1)) as usize) * SUB as usize + sub as usize
}

/// The smallest and largest value that land in bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    if i < LINEAR as usize {
        return (i as u64, i as u64);
    }
    let rest = i - LINEAR as usize;
    let exp = (rest / SUB as usize) as u32 + SUB_BITS + 1;
    let sub = (rest % SUB as usize) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    let low = (1u64 << exp) + sub * width;
    (low, low + width - 1)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    /// Records one latency, in nanoseconds.
    pub fn record(&mut self, nanos: u64) {
        self.counts[index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The largest value recorded, exactly.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0.5 is the median) in nanoseconds: the middle of the
    /// bucket that holds the `ceil(q * n)`-th smallest value, so within 1/128 of the
    /// true value. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = bounds(i);
                // The top bucket also holds clamped values: the exact maximum is the
                // better answer there, and never above it anywhere.
                let mid = (low as f64 + high as f64) / 2.0;
                return Some(mid.min(self.max as f64));
            }
        }
        Some(self.max as f64)
    }

    /// The non-empty buckets as `(low, high, count)`, for dumping the distribution.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| {
                let (low, high) = bounds(i);
                (low, high, c)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range_without_gaps() {
        let mut expected_low = 0;
        for i in 0..BUCKETS {
            let (low, high) = bounds(i);
            assert_eq!(low, expected_low, "bucket {i}");
            assert!(high >= low);
            assert_eq!(index(low), i);
            assert_eq!(index(high), i);
            // Resolution: a bucket is never wider than 1/64 of its lower bound.
            assert!((high - low + 1) * 64 <= low.max(64), "bucket {i} too wide");
            expected_low = high + 1;
        }
        assert_eq!(expected_low, 1 << MAX_EXP);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::new();
        // 1..=1000 microseconds, one each.
        for us in 1..=1000u64 {
            h.record(us * 1000);
        }
        let p50 = h.quantile(0.5).expect("values");
        let p99 = h.quantile(0.99).expect("values");
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.01, "p50 {p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.01, "p99 {p99}");
        let top = h.quantile(1.0).expect("values");
        assert!(top <= 1_000_000.0 && top > 990_000.0, "p100 {top}");
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(h.len(), 1000);
    }

    #[test]
    fn a_tail_moves_p99_but_not_p50() {
        let mut h = Histogram::new();
        for _ in 0..980 {
            h.record(10_000);
        }
        for _ in 0..20 {
            h.record(5_000_000);
        }
        let p50 = h.quantile(0.5).expect("values");
        let p99 = h.quantile(0.99).expect("values");
        assert!((p50 - 10_000.0).abs() < 200.0, "p50 {p50}");
        assert!((p99 - 5_000_000.0).abs() / 5_000_000.0 < 0.01, "p99 {p99}");
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(100);
        b.record(300);
        b.record(7);
        a.merge(&b);
        assert_eq!(a.len(), 3);
        assert_eq!(a.max(), 300);
        assert_eq!(a.buckets().map(|(_, _, c)| c).sum::<u64>(), 3);
        assert_eq!(Histogram::new().quantile(0.5), None);
    }
}
