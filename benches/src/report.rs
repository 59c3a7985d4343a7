//! The results file the bench leaves for `cargo xtask bench`, and the over-limit table
//! it prints.
//!
//! `<out>/bench-results.tsv` holds one record per line, tab-separated, the record type
//! first, so that the xtask can read it without a JSON parser:
//!
//! ```text
//! meta       servers  native|container|mixed|none
//! meta       quick    true|false
//! meta       load_start / load_end   <the 1, 5 and 15 minute load averages>
//! origin     postgres <where the server came from>
//! result     <backend> <workload> <concurrency> <ops/s> <p50 µs> <p99 µs> <denied share> <ops measured>
//! over_limit <backend> <limit> <rounds> <attempts> <allowed> <over> <worst round>
//! not_run    <backend> <reason>
//! ```

use std::fmt::Write as _;
use std::path::Path;

use crate::measure::Row;
use crate::over_limit::OverLimit;

/// Everything a run found out.
#[derive(Debug, Default)]
pub struct Report {
    /// `native`, `container`, `mixed` or `none`.
    pub servers: String,
    /// Whether this was the quick run.
    pub quick: bool,
    /// The machine's load averages (`/proc/loadavg`) when the run started and ended:
    /// the machine is shared, and a busy one gives slower, noisier numbers.
    pub load: (String, String),
    /// (server kind, where it came from).
    pub origins: Vec<(String, String)>,
    /// The measurements.
    pub rows: Vec<Row>,
    /// The over-limit counts.
    pub over_limit: Vec<OverLimit>,
    /// Backends that did not run, and why.
    pub not_run: Vec<(String, String)>,
}

/// The 1, 5 and 15 minute load averages, or `unknown` off Linux.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Tabs and newlines would break the record structure; free text loses them.
fn clean(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

impl Report {
    /// The results file's text.
    pub fn to_tsv(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "meta\tservers\t{}", self.servers);
        let _ = writeln!(out, "meta\tquick\t{}", self.quick);
        let _ = writeln!(out, "meta\tload_start\t{}", clean(&self.load.0));
        let _ = writeln!(out, "meta\tload_end\t{}", clean(&self.load.1));
        for (kind, origin) in &self.origins {
            let _ = writeln!(out, "origin\t{kind}\t{}", clean(origin));
        }
        for r in &self.rows {
            let _ = writeln!(
                out,
                "result\t{}\t{}\t{}\t{:.1}\t{:.2}\t{:.2}\t{:.6}\t{}",
                r.backend,
                r.workload,
                r.concurrency,
                r.ops_per_sec,
                r.p50_us,
                r.p99_us,
                r.denied_share,
                r.ops_measured
            );
        }
        for o in &self.over_limit {
            let _ = writeln!(
                out,
                "over_limit\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                o.backend, o.limit, o.rounds, o.attempts, o.allowed, o.over, o.worst_round
            );
        }
        for (backend, why) in &self.not_run {
            let _ = writeln!(out, "not_run\t{backend}\t{}", clean(why));
        }
        out
    }

    /// Writes the results file (to a temporary name first, so that a reader never sees
    /// half of it).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tsv.tmp");
        std::fs::write(&tmp, self.to_tsv())?;
        std::fs::rename(tmp, path)
    }
}

/// The over-limit counts as a table for people.
pub fn over_limit_table(counts: &[OverLimit]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Requests over the limit under concurrency ({} tasks at once, fresh key per round)",
        crate::over_limit::TASKS
    );
    let _ = writeln!(
        out,
        "{:<18} {:>6} {:>7} {:>9} {:>8} {:>6} {:>12}",
        "backend", "limit", "rounds", "attempts", "allowed", "over", "worst round"
    );
    for o in counts {
        let _ = writeln!(
            out,
            "{:<18} {:>6} {:>7} {:>9} {:>8} {:>6} {:>12}",
            o.backend, o.limit, o.rounds, o.attempts, o.allowed, o.over, o.worst_round
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_one_per_line_and_free_text_cannot_break_them() {
        let report = Report {
            servers: "native".into(),
            quick: true,
            load: ("1.00 2.00 3.00".into(), "4.00 5.00 6.00".into()),
            origins: vec![("redis".into(), "external\tserver\nx".into())],
            rows: vec![Row {
                backend: "redis".into(),
                workload: "verify_spread".into(),
                concurrency: 64,
                ops_per_sec: 12345.67,
                p50_us: 100.0,
                p99_us: 250.5,
                denied_share: 0.0,
                ops_measured: 1000,
            }],
            over_limit: vec![],
            not_run: vec![("fred".into(), "no\tserver".into())],
        };
        let tsv = report.to_tsv();
        let lines: Vec<&str> = tsv.lines().collect();
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[2], "meta\tload_start\t1.00 2.00 3.00");
        assert_eq!(lines[4], "origin\tredis\texternal server x");
        assert_eq!(
            lines[5],
            "result\tredis\tverify_spread\t64\t12345.7\t100.00\t250.50\t0.000000\t1000"
        );
        assert_eq!(lines[6].split('\t').count(), 3);
    }
}
