//! `cargo xtask bench [--quick] [--backend NAME]...`: the criterion benches of every
//! backend, and the table, JSON and plot made from them.
//!
//! The measuring is done by the `keylatch-benches` package (`cargo bench`, release
//! build). It leaves `target/keylatch/bench-results.tsv` (one record per line, see
//! that package's `report` module); this module reads it, works out the ratios to
//! the floor and textbook baselines, prints the table and the issue's targets, and
//! writes `target/keylatch/bench.json` and an SVG bar chart. Hand-written JSON and
//! SVG keep the xtask free of dependencies.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::util;

const HELP: &str = "\
cargo xtask bench [--quick] [--backend NAME]... [--svg PATH] [--report-only]

Runs the criterion benches of every backend and baseline (cargo bench -p
keylatch-benches, release build), then prints a table (ops/s, p50, p99, and the
ratios backend/floor and backend/textbook), the issue's targets, and the requests
over the limit that each implementation let through under concurrency.

OPTIONS:
    --quick           Short warm-up and measurement: finishes in under 3 minutes
                      (once the release build is done).
    --backend NAME    Run only this backend or baseline (repeatable). Names:
                      memory governor postgres floor-postgres textbook-postgres
                      redis fred floor-redis textbook-redis.
                      A named backend that cannot run fails the run; without
                      --backend every backend runs that has its server.
    --svg PATH        Where to draw the plot (default target/keylatch/bench.svg).
    --report-only     Do not run the benches: remake the table, JSON and plot from
                      the last run's target/keylatch/bench-results.tsv.

SERVERS:
    KEYLATCH_POSTGRES_URL / KEYLATCH_REDIS_URL name existing servers (native servers
    on loopback give truer numbers); otherwise containers are started (Docker).

OUTPUT:
    target/keylatch/bench.json           {\"servers\":…,\"results\":[…]}
    target/keylatch/bench.md             the same as Markdown tables (for docs/benchmarks.md)
    target/keylatch/bench-results.tsv    what the bench measured
    target/keylatch/latency/…            latency histogram of every benchmark
    target/criterion/…                   criterion's own data
";

/// Every backend and baseline the bench knows, in report order (the bench checks
/// the names too; this copy lets the xtask fail before a long build).
const BACKENDS: [&str; 9] = [
    "memory",
    "governor",
    "postgres",
    "floor-postgres",
    "textbook-postgres",
    "redis",
    "fred",
    "floor-redis",
    "textbook-redis",
];

/// The order workloads appear in.
const WORKLOADS: [&str; 10] = [
    "verify_spread",
    "verify_hot",
    "verify_limited",
    "lease",
    "revoke",
    "rotate",
    "update",
    "evalsha",
    "select1",
    "ping",
];

#[derive(Debug, Default)]
struct Options {
    quick: bool,
    backends: Vec<String>,
    svg: Option<PathBuf>,
    report_only: bool,
}

fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quick" => options.quick = true,
            "--report-only" => options.report_only = true,
            "--backend" => {
                let name = args.next().ok_or("--backend needs a name")?;
                for name in name.split(',').filter(|n| !n.is_empty()) {
                    if !BACKENDS.contains(&name) {
                        return Err(format!(
                            "unknown backend `{name}`; known: {}",
                            BACKENDS.join(" ")
                        ));
                    }
                    options.backends.push(name.to_owned());
                }
            }
            "--svg" => {
                let path = args.next().ok_or("--svg needs a path")?;
                options.svg = Some(PathBuf::from(path));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Some(options))
}

/// Entry point of the subcommand.
pub fn run(args: &[String]) -> ExitCode {
    let options = match parse_args(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("xtask bench: {message}\n");
            eprint!("{HELP}");
            return ExitCode::from(2);
        }
    };
    let out_dir = util::target_dir().join("keylatch");
    let results_path = out_dir.join("bench-results.tsv");
    let started = Instant::now();
    if !options.report_only {
        if let Err(code) = run_benches(&options, &out_dir, &results_path) {
            return code;
        }
    }
    let text = match std::fs::read_to_string(&results_path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("xtask bench: cannot read {}: {e}", results_path.display());
            return ExitCode::FAILURE;
        }
    };
    let results = match Results::parse(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xtask bench: {}: {e}", results_path.display());
            return ExitCode::FAILURE;
        }
    };
    println!();
    print!("{}", results.table());
    print!("{}", results.over_limit_table());
    print!("{}", results.targets_text());
    let json_path = out_dir.join("bench.json");
    let markdown_path = out_dir.join("bench.md");
    let svg_path = options.svg.unwrap_or_else(|| out_dir.join("bench.svg"));
    for (path, content) in [
        (&json_path, results.json()),
        (&markdown_path, results.markdown()),
        (&svg_path, results.svg()),
    ] {
        if let Err(e) = write_file(path, &content) {
            eprintln!("xtask bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    println!(
        "\nwrote {}, {} and {}",
        json_path.display(),
        markdown_path.display(),
        svg_path.display()
    );
    if !options.report_only {
        println!("xtask bench: done in {}", util::human(started.elapsed()));
    }
    ExitCode::SUCCESS
}

fn write_file(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, content)
}

/// Runs `cargo bench`; on failure, the exit code to hand on.
fn run_benches(options: &Options, out_dir: &Path, results_path: &Path) -> Result<(), ExitCode> {
    for (var, kind) in [
        ("KEYLATCH_POSTGRES_URL", "PostgreSQL"),
        ("KEYLATCH_REDIS_URL", "Redis"),
    ] {
        let external = std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
        println!(
            "xtask bench: {kind}: {}",
            if external {
                format!("the server named by {var} (native)")
            } else {
                format!("a container (set {var} to use a native server)")
            }
        );
    }
    // A stale file from an earlier run must never pass for this run's results.
    if let Err(e) = std::fs::remove_file(results_path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("xtask bench: cannot remove {}: {e}", results_path.display());
            return Err(ExitCode::FAILURE);
        }
    }
    let mut command = Command::new(util::cargo());
    command
        .current_dir(util::workspace_root())
        .args(["bench", "-p", "keylatch-benches", "--bench", "backends"])
        .env("KEYLATCH_BENCH_OUT", out_dir)
        .env("CRITERION_HOME", util::target_dir().join("criterion"))
        .env(
            "KEYLATCH_BENCH_QUICK",
            if options.quick { "1" } else { "0" },
        );
    if options.backends.is_empty() {
        command.env_remove("KEYLATCH_BENCH_BACKENDS");
    } else {
        command.env("KEYLATCH_BENCH_BACKENDS", options.backends.join(","));
    }
    match util::run_visible(&mut command) {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => {
            eprintln!("xtask bench: the benches failed");
            Err(util::exit_code_of(status))
        }
        Err(message) => {
            eprintln!("xtask bench: {message}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    backend: String,
    workload: String,
    concurrency: u32,
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    denied_share: f64,
}

/// One over-limit count.
#[derive(Debug, Clone, PartialEq)]
struct OverLimit {
    backend: String,
    limit: u64,
    rounds: u64,
    attempts: u64,
    allowed: u64,
    over: u64,
    worst_round: u64,
}

/// One of the issue's targets, assessed.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    what: String,
    measured: f64,
    required: f64,
}

impl Target {
    fn met(&self) -> bool {
        self.measured >= self.required
    }
}

/// Everything in a results file.
#[derive(Debug, Default)]
struct Results {
    servers: String,
    quick: bool,
    load: (String, String),
    origins: Vec<(String, String)>,
    rows: Vec<Row>,
    over_limit: Vec<OverLimit>,
    not_run: Vec<(String, String)>,
}

fn field<T: std::str::FromStr>(fields: &[&str], i: usize, line: usize) -> Result<T, String> {
    fields
        .get(i)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("line {line}: field {i} missing or not a number"))
}

impl Results {
    fn parse(text: &str) -> Result<Results, String> {
        let mut r = Results::default();
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            let f: Vec<&str> = line.split('\t').collect();
            let text_at = |i: usize| {
                f.get(i)
                    .map(|s| (*s).to_owned())
                    .ok_or_else(|| format!("line {n}: field {i} missing"))
            };
            match f[0] {
                "" => {}
                "meta" => match (f.get(1), f.get(2)) {
                    (Some(&"servers"), Some(v)) => r.servers = (*v).to_owned(),
                    (Some(&"quick"), Some(v)) => r.quick = *v == "true",
                    (Some(&"load_start"), Some(v)) => r.load.0 = (*v).to_owned(),
                    (Some(&"load_end"), Some(v)) => r.load.1 = (*v).to_owned(),
                    _ => {}
                },
                "origin" => r.origins.push((text_at(1)?, text_at(2)?)),
                "result" => r.rows.push(Row {
                    backend: text_at(1)?,
                    workload: text_at(2)?,
                    concurrency: field(&f, 3, n)?,
                    ops_per_sec: field(&f, 4, n)?,
                    p50_us: field(&f, 5, n)?,
                    p99_us: field(&f, 6, n)?,
                    denied_share: field(&f, 7, n)?,
                }),
                "over_limit" => r.over_limit.push(OverLimit {
                    backend: text_at(1)?,
                    limit: field(&f, 2, n)?,
                    rounds: field(&f, 3, n)?,
                    attempts: field(&f, 4, n)?,
                    allowed: field(&f, 5, n)?,
                    over: field(&f, 6, n)?,
                    worst_round: field(&f, 7, n)?,
                }),
                "not_run" => r.not_run.push((text_at(1)?, text_at(2)?)),
                other => return Err(format!("line {n}: unknown record `{other}`")),
            }
        }
        if r.servers.is_empty() {
            return Err("no `meta servers` record: not a results file".to_owned());
        }
        Ok(r)
    }

    fn find(&self, backend: &str, workload: &str, concurrency: u32) -> Option<&Row> {
        self.rows.iter().find(|r| {
            r.backend == backend && r.workload == workload && r.concurrency == concurrency
        })
    }

    fn ops(&self, backend: &str, workload: &str, concurrency: u32) -> Option<f64> {
        self.find(backend, workload, concurrency)
            .map(|r| r.ops_per_sec)
    }

    /// The floor a row is compared with: (backend, workload) of the reference.
    fn floor_of(row: &Row) -> Option<(&'static str, &'static str)> {
        match row.backend.as_str() {
            "postgres" | "textbook-postgres" => Some(("floor-postgres", "update")),
            "redis" | "fred" | "textbook-redis" => Some(("floor-redis", "evalsha")),
            // The in-process reference for the memory backend is governor's check.
            "memory" if row.workload == "verify_limited" => Some(("governor", "verify_limited")),
            _ => None,
        }
    }

    /// The textbook pattern a row is compared with.
    fn textbook_of(row: &Row) -> Option<&'static str> {
        let verify = matches!(row.workload.as_str(), "verify_spread" | "verify_hot");
        match row.backend.as_str() {
            "postgres" if verify => Some("textbook-postgres"),
            "redis" | "fred" if verify => Some("textbook-redis"),
            _ => None,
        }
    }

    /// This row's ops/s over its floor's at the same concurrency.
    fn vs_floor(&self, row: &Row) -> Option<f64> {
        let (backend, workload) = Self::floor_of(row)?;
        Some(row.ops_per_sec / self.ops(backend, workload, row.concurrency)?)
    }

    /// This row's ops/s over its textbook pattern's, same workload and concurrency.
    fn vs_textbook(&self, row: &Row) -> Option<f64> {
        let textbook = Self::textbook_of(row)?;
        Some(row.ops_per_sec / self.ops(textbook, &row.workload, row.concurrency)?)
    }

    fn sorted_rows(&self) -> Vec<&Row> {
        let backend_order = |b: &str| BACKENDS.iter().position(|x| *x == b).unwrap_or(usize::MAX);
        let workload_order = |w: &str| WORKLOADS.iter().position(|x| *x == w).unwrap_or(usize::MAX);
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| {
            (
                backend_order(&r.backend),
                workload_order(&r.workload),
                r.concurrency,
            )
        });
        rows
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "keylatch benchmarks ({} servers{})",
            self.servers,
            if self.quick { ", quick run" } else { "" }
        );
        for (kind, origin) in &self.origins {
            let _ = writeln!(out, "  {kind}: {origin}");
        }
        if !self.load.0.is_empty() {
            let _ = writeln!(
                out,
                "  load average (1, 5, 15 min): {} at the start, {} at the end",
                self.load.0, self.load.1
            );
        }
        let _ = writeln!(
            out,
            "\n{:<18} {:<15} {:>9} {:>12} {:>10} {:>10} {:>9} {:>9}",
            "backend", "workload", "in flight", "ops/s", "p50 µs", "p99 µs", "/floor", "/textbook"
        );
        let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
        for row in self.sorted_rows() {
            let _ = writeln!(
                out,
                "{:<18} {:<15} {:>9} {:>12.0} {:>10.1} {:>10.1} {:>9} {:>9}{}",
                row.backend,
                row.workload,
                row.concurrency,
                row.ops_per_sec,
                row.p50_us,
                row.p99_us,
                ratio(self.vs_floor(row)),
                ratio(self.vs_textbook(row)),
                if row.denied_share > 0.01 {
                    format!("  ({:.1} % denied)", row.denied_share * 100.0)
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(
            out,
            "\n/floor: ops/s over floor-postgres `update` (postgres, textbook-postgres) or \
             floor-redis `evalsha` (redis, fred, textbook-redis) at the same concurrency; \
             for memory verify_limited, over governor's check.\n/textbook: ops/s over the \
             textbook pattern of the same server, same workload and concurrency."
        );
        for (backend, why) in &self.not_run {
            let _ = writeln!(out, "NOT RUN: {backend}: {why}");
        }
        out
    }

    /// The results as Markdown tables, for docs/benchmarks.md.
    fn markdown(&self) -> String {
        let ratio = |r: Option<f64>| r.map_or_else(|| "".to_owned(), |r| format!("{r:.2}"));
        let mut out = String::from(
            "| backend | workload | in flight | ops/s | p50 µs | p99 µs | /floor | /textbook |\n\
             |---|---|--:|--:|--:|--:|--:|--:|\n",
        );
        for row in self.sorted_rows() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {} | {} |",
                row.backend,
                row.workload,
                row.concurrency,
                row.ops_per_sec,
                row.p50_us,
                row.p99_us,
                ratio(self.vs_floor(row)),
                ratio(self.vs_textbook(row)),
            );
        }
        if !self.over_limit.is_empty() {
            out.push_str(
                "\n| backend | limit | rounds | attempts | allowed | over the limit | worst round |\n\
                 |---|--:|--:|--:|--:|--:|--:|\n",
            );
            for o in &self.over_limit {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    o.backend, o.limit, o.rounds, o.attempts, o.allowed, o.over, o.worst_round
                );
            }
        }
        let targets = self.targets();
        if !targets.is_empty() {
            out.push_str("\n| target | measured | needs | |\n|---|--:|--:|---|\n");
            for t in &targets {
                let _ = writeln!(
                    out,
                    "| {} | {:.2} | >= {:.2} | {} |",
                    t.what,
                    t.measured,
                    t.required,
                    if t.met() { "met" } else { "missed" }
                );
            }
        }
        out
    }

    fn over_limit_table(&self) -> String {
        if self.over_limit.is_empty() {
            return String::new();
        }
        let mut out = String::from(
            "\nRequests let through over the limit under concurrency \
             (64 tasks at once, a fresh key per round):\n",
        );
        let _ = writeln!(
            out,
            "{:<18} {:>6} {:>7} {:>9} {:>8} {:>6} {:>12}",
            "backend", "limit", "rounds", "attempts", "allowed", "over", "worst round"
        );
        for o in &self.over_limit {
            let _ = writeln!(
                out,
                "{:<18} {:>6} {:>7} {:>9} {:>8} {:>6} {:>12}",
                o.backend, o.limit, o.rounds, o.attempts, o.allowed, o.over, o.worst_round
            );
        }
        out
    }

    /// The issue's targets that this run has the numbers for.
    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for backend in ["redis", "fred"] {
            if let (Some(b), Some(f)) = (
                self.ops(backend, "verify_spread", 64),
                self.ops("floor-redis", "evalsha", 64),
            ) {
                targets.push(Target {
                    what: format!("{backend} verify_spread / floor-redis evalsha, 64 in flight"),
                    measured: b / f,
                    required: 0.8,
                });
            }
        }
        if let (Some(b), Some(f)) = (
            self.ops("postgres", "verify_spread", 64),
            self.ops("floor-postgres", "update", 64),
        ) {
            targets.push(Target {
                what: "postgres verify_spread / floor-postgres update, 64 in flight".to_owned(),
                measured: b / f,
                required: 0.8,
            });
        }
        for c in [1, 16, 64] {
            if let (Some(b), Some(t)) = (
                self.ops("postgres", "verify_hot", c),
                self.ops("textbook-postgres", "verify_hot", c),
            ) {
                targets.push(Target {
                    what: format!(
                        "postgres verify_hot / textbook-postgres verify_hot, {c} in flight"
                    ),
                    measured: b / t,
                    required: 1.5,
                });
            }
        }
        for c in [1, 16, 64] {
            if let (Some(m), Some(g)) = (
                self.ops("memory", "verify_limited", c),
                self.ops("governor", "verify_limited", c),
            ) {
                // "Within 3x of governor's time per operation": memory's time over
                // governor's at most 3, i.e. memory's ops/s at least a third of its.
                targets.push(Target {
                    what: format!("memory verify_limited / governor check (ops/s), {c} in flight"),
                    measured: m / g,
                    required: 1.0 / 3.0,
                });
            }
        }
        targets
    }

    fn targets_text(&self) -> String {
        let targets = self.targets();
        if targets.is_empty() {
            return String::new();
        }
        let mut out = String::from("\nTargets of issue 6:\n");
        for t in &targets {
            let _ = writeln!(
                out,
                "  {:<4} {:<72} {:>6.2} (needs >= {:.2})",
                if t.met() { "MET" } else { "MISS" },
                t.what,
                t.measured,
                t.required
            );
        }
        out
    }

    fn json(&self) -> String {
        let num = |v: f64| {
            if v.is_finite() {
                format!("{}", (v * 100.0).round() / 100.0)
            } else {
                "null".to_owned()
            }
        };
        let opt = |v: Option<f64>| {
            v.map_or_else(
                || "null".to_owned(),
                |v| format!("{}", (v * 1000.0).round() / 1000.0),
            )
        };
        let mut out = String::from("{\n");
        let _ = writeln!(out, "  \"servers\": {},", json_str(&self.servers));
        let _ = writeln!(out, "  \"quick\": {},", self.quick);
        let _ = writeln!(
            out,
            "  \"load_average\": {{\"start\": {}, \"end\": {}}},",
            json_str(&self.load.0),
            json_str(&self.load.1)
        );
        let origins: Vec<String> = self
            .origins
            .iter()
            .map(|(k, o)| format!("{}: {}", json_str(k), json_str(o)))
            .collect();
        let _ = writeln!(out, "  \"origins\": {{{}}},", origins.join(", "));
        out.push_str("  \"results\": [\n");
        let rows: Vec<String> = self
            .sorted_rows()
            .into_iter()
            .map(|r| {
                format!(
                    "    {{\"backend\": {}, \"workload\": {}, \"concurrency\": {}, \
                     \"ops_per_sec\": {}, \"p50_us\": {}, \"p99_us\": {}, \"vs_floor\": {}, \
                     \"vs_textbook\": {}, \"denied_share\": {}}}",
                    json_str(&r.backend),
                    json_str(&r.workload),
                    r.concurrency,
                    num(r.ops_per_sec),
                    num(r.p50_us),
                    num(r.p99_us),
                    opt(self.vs_floor(r)),
                    opt(self.vs_textbook(r)),
                    opt(Some(r.denied_share)),
                )
            })
            .collect();
        out.push_str(&rows.join(",\n"));
        out.push_str("\n  ],\n  \"over_limit\": [\n");
        let over: Vec<String> = self
            .over_limit
            .iter()
            .map(|o| {
                format!(
                    "    {{\"backend\": {}, \"limit\": {}, \"rounds\": {}, \"attempts\": {}, \
                     \"allowed\": {}, \"over\": {}, \"worst_round\": {}}}",
                    json_str(&o.backend),
                    o.limit,
                    o.rounds,
                    o.attempts,
                    o.allowed,
                    o.over,
                    o.worst_round
                )
            })
            .collect();
        out.push_str(&over.join(",\n"));
        out.push_str("\n  ],\n  \"targets\": [\n");
        let targets: Vec<String> = self
            .targets()
            .iter()
            .map(|t| {
                format!(
                    "    {{\"target\": {}, \"measured\": {}, \"required\": {}, \"met\": {}}}",
                    json_str(&t.what),
                    opt(Some(t.measured)),
                    opt(Some(t.required)),
                    t.met()
                )
            })
            .collect();
        out.push_str(&targets.join(",\n"));
        out.push_str("\n  ],\n  \"not_run\": [");
        let not_run: Vec<String> = self
            .not_run
            .iter()
            .map(|(b, why)| {
                format!(
                    "{{\"backend\": {}, \"reason\": {}}}",
                    json_str(b),
                    json_str(why)
                )
            })
            .collect();
        out.push_str(&not_run.join(", "));
        out.push_str("]\n}\n");
        out
    }

    /// A horizontal bar chart, one panel per workload, one group of bars per backend
    /// (a bar per concurrency), on a logarithmic ops/s axis.
    fn svg(&self) -> String {
        const WIDTH: f64 = 960.0;
        const LABEL_W: f64 = 230.0;
        const PLOT_W: f64 = 620.0;
        const BAR_H: f64 = 7.0;
        const GROUP_GAP: f64 = 7.0;
        const PANEL_GAP: f64 = 22.0;
        let colours = [(1, "#9ecae1"), (16, "#4292c6"), (64, "#08306b")];
        // Panels: the store workloads, each with the baselines that belong next to it.
        let mut panels: BTreeMap<usize, Panel<'_>> = BTreeMap::new();
        for row in self.sorted_rows() {
            // The one-round-trip floors also appear next to verify_spread, the
            // workload the issue's targets compare them with.
            if matches!(row.workload.as_str(), "update" | "evalsha") {
                panels
                    .entry(0)
                    .or_insert_with(|| ("verify_spread".to_owned(), Vec::new()))
                    .1
                    .push((format!("{} {}", row.backend, row.workload), row));
            }
            let (panel, label) = match row.workload.as_str() {
                "update" | "evalsha" | "select1" | "ping" => (
                    "round-trip floors".to_owned(),
                    format!("{} {}", row.backend, row.workload),
                ),
                "verify_limited" if row.backend == "governor" => (
                    "verify_limited".to_owned(),
                    "governor (keyed check)".to_owned(),
                ),
                w => (w.to_owned(), row.backend.clone()),
            };
            let order = WORKLOADS
                .iter()
                .position(|w| *w == panel)
                .unwrap_or(WORKLOADS.len());
            panels
                .entry(order)
                .or_insert_with(|| (panel, Vec::new()))
                .1
                .push((label, row));
        }
        let values = self.rows.iter().map(|r| r.ops_per_sec).filter(|v| *v > 0.0);
        let lo = values.clone().fold(f64::INFINITY, f64::min);
        let hi = values.fold(0.0, f64::max);
        let (lo_exp, hi_exp) = if lo.is_finite() && hi > 0.0 {
            (
                lo.log10().floor() as i32,
                (hi.log10().ceil() as i32).max(lo.log10().floor() as i32 + 1),
            )
        } else {
            (2, 7)
        };
        let x = |v: f64| {
            let t = (v.max(10f64.powi(lo_exp)).log10() - f64::from(lo_exp))
                / f64::from(hi_exp - lo_exp);
            LABEL_W + t * PLOT_W
        };
        let mut body = String::new();
        let mut y = 70.0;
        for (panel, entries) in panels.values() {
            let _ = writeln!(
                body,
                r#"<text x="10" y="{:.1}" font-size="14" font-weight="bold">{}</text>"#,
                y + 4.0,
                xml(panel)
            );
            y += 12.0;
            let top = y;
            // Group the entries by label: one group of bars per backend.
            let mut labels: Vec<&str> = Vec::new();
            for (label, _) in entries {
                if !labels.contains(&label.as_str()) {
                    labels.push(label);
                }
            }
            for label in &labels {
                let group_h = BAR_H * colours.len() as f64;
                let _ = writeln!(
                    body,
                    r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"#,
                    LABEL_W - 8.0,
                    y + group_h / 2.0 + 4.0,
                    xml(label)
                );
                for (i, (c, colour)) in colours.iter().enumerate() {
                    let bar_y = y + i as f64 * BAR_H;
                    let Some((_, row)) = entries
                        .iter()
                        .find(|(l, r)| l == label && r.concurrency == *c)
                    else {
                        continue;
                    };
                    let end = x(row.ops_per_sec);
                    let _ = writeln!(
                        body,
                        r#"<rect x="{LABEL_W:.1}" y="{bar_y:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{} {} {} in flight: {:.0} ops/s</title></rect>"#,
                        (end - LABEL_W).max(1.0),
                        BAR_H - 1.0,
                        xml(&row.backend),
                        xml(&row.workload),
                        c,
                        row.ops_per_sec
                    );
                    let _ = writeln!(
                        body,
                        r##"<text x="{:.1}" y="{:.1}" font-size="8" fill="#333">{}</text>"##,
                        end + 3.0,
                        bar_y + BAR_H - 1.0,
                        si(row.ops_per_sec)
                    );
                }
                y += group_h + GROUP_GAP;
            }
            // The decade grid of this panel.
            for e in lo_exp..=hi_exp {
                let gx = x(10f64.powi(e));
                let _ = writeln!(
                    body,
                    r##"<line x1="{gx:.1}" y1="{:.1}" x2="{gx:.1}" y2="{:.1}" stroke="#ccc" stroke-width="0.5"/>"##,
                    top - 4.0,
                    y - GROUP_GAP + 2.0
                );
            }
            y += PANEL_GAP;
        }
        // The axis labels, once at the bottom.
        let mut axis = String::new();
        for e in lo_exp..=hi_exp {
            let _ = writeln!(
                axis,
                r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
                x(10f64.powi(e)),
                y,
                si(10f64.powi(e))
            );
        }
        let _ = writeln!(
            axis,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">operations per second (log scale)</text>"#,
            LABEL_W + PLOT_W / 2.0,
            y + 16.0
        );
        let height = y + 30.0;
        let mut legend = String::new();
        for (i, (c, colour)) in colours.iter().enumerate() {
            let lx = LABEL_W + i as f64 * 110.0;
            let _ = writeln!(
                legend,
                r#"<rect x="{lx:.1}" y="40" width="14" height="10" fill="{colour}"/><text x="{:.1}" y="49" font-size="12">{c} in flight</text>"#,
                lx + 18.0
            );
        }
        format!(
            concat!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h:.0}" viewBox="0 0 {w} {h:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#,
                "\n",
                r#"<rect width="100%" height="100%" fill="white"/>"#,
                "\n",
                r#"<text x="10" y="22" font-size="16" font-weight="bold">keylatch: throughput per backend and concurrency ({servers} servers{quick})</text>"#,
                "\n{legend}{body}{axis}</svg>\n"
            ),
            w = WIDTH,
            h = height,
            servers = xml(&self.servers),
            quick = if self.quick { ", quick run" } else { "" },
            legend = legend,
            body = body,
            axis = axis,
        )
    }
}

/// One panel of the plot: its title and its (bar label, result) entries.
type Panel<'a> = (String, Vec<(String, &'a Row)>);

/// A number the way a chart shows it: 950, 12k, 1.2M.
fn si(v: f64) -> String {
    let text = if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    };
    // 1.0k reads better as 1k.
    text.replace(".0k", "k").replace(".0M", "M")
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn json_str(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "meta\tservers\tnative
meta\tquick\tfalse
origin\tredis\texternal server \"127.0.0.1:6390\"
result\tredis\tverify_spread\t64\t40000.0\t1500.00\t3000.00\t0.000000\t100000
result\tfloor-redis\tevalsha\t64\t50000.0\t1200.00\t2500.00\t0.000000\t100000
result\ttextbook-redis\tverify_spread\t64\t20000.0\t3000.00\t6000.00\t0.000000\t100000
result\tpostgres\tverify_hot\t1\t3000.0\t300.00\t600.00\t0.000000\t10000
result\ttextbook-postgres\tverify_hot\t1\t1000.0\t900.00\t1500.00\t0.000000\t10000
result\tmemory\tverify_limited\t1\t1000000.0\t0.90\t2.00\t0.000000\t1000000
result\tgovernor\tverify_limited\t1\t4000000.0\t0.20\t0.50\t0.000000\t1000000
over_limit\ttextbook-redis\t100\t5\t2560\t700\t200\t63
not_run\tfred\tredis unavailable
";

    #[test]
    fn arguments() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let o = parse_args(&args(&[
            "--quick",
            "--backend",
            "memory",
            "--backend",
            "redis,fred",
        ]))
        .expect("valid")
        .expect("not help");
        assert!(o.quick);
        assert_eq!(o.backends, ["memory", "redis", "fred"]);
        assert!(parse_args(&args(&["--backend", "mongo"])).is_err());
        assert!(parse_args(&args(&["--backend"])).is_err());
        assert!(parse_args(&args(&["--fast"])).is_err());
        assert!(parse_args(&args(&["--help"])).expect("valid").is_none());
    }

    #[test]
    fn results_parse_and_ratios_follow_the_floor_and_textbook() {
        let r = Results::parse(SAMPLE).expect("parses");
        assert_eq!(r.servers, "native");
        assert_eq!(r.rows.len(), 7);
        let redis = r.find("redis", "verify_spread", 64).expect("row");
        assert_eq!(r.vs_floor(redis), Some(0.8));
        assert_eq!(r.vs_textbook(redis), Some(2.0));
        let floor = r.find("floor-redis", "evalsha", 64).expect("row");
        assert_eq!(r.vs_floor(floor), None);
        let memory = r.find("memory", "verify_limited", 1).expect("row");
        assert_eq!(r.vs_floor(memory), Some(0.25));
        let targets = r.targets();
        let met: Vec<(bool, &str)> = targets.iter().map(|t| (t.met(), t.what.as_str())).collect();
        assert_eq!(
            met,
            [
                (
                    true,
                    "redis verify_spread / floor-redis evalsha, 64 in flight"
                ),
                (
                    true,
                    "postgres verify_hot / textbook-postgres verify_hot, 1 in flight"
                ),
                (
                    false,
                    "memory verify_limited / governor check (ops/s), 1 in flight"
                ),
            ]
        );
    }

    #[test]
    fn malformed_results_are_refused() {
        assert!(Results::parse("").is_err());
        assert!(
            Results::parse("meta\tservers\tnative\nresult\tredis\tverify_spread\tx\n").is_err()
        );
        assert!(Results::parse("meta\tservers\tnative\nsurprise\n").is_err());
    }

    #[test]
    fn json_has_the_issue_fields_and_escapes_text() {
        let json = Results::parse(SAMPLE).expect("parses").json();
        assert!(json.contains("\"servers\": \"native\""));
        assert!(json.contains(
            "{\"backend\": \"redis\", \"workload\": \"verify_spread\", \"concurrency\": 64, \
             \"ops_per_sec\": 40000, \"p50_us\": 1500, \"p99_us\": 3000"
        ));
        assert!(json.contains(r#""redis": "external server \"127.0.0.1:6390\"""#));
        assert!(json.contains("\"allowed\": 700, \"over\": 200"));
        assert_eq!(json_str("a\"b\\c\u{1}"), r#""a\"b\\c\u0001""#);
    }

    #[test]
    fn markdown_has_a_row_per_result_and_the_targets() {
        let md = Results::parse(SAMPLE).expect("parses").markdown();
        assert!(
            md.contains("| redis | verify_spread | 64 | 40000 | 1500.0 | 3000.0 | 0.80 | 2.00 |")
        );
        assert!(md.contains("| textbook-redis | 100 | 5 | 2560 | 700 | 200 | 63 |"));
        assert!(md.contains("| memory verify_limited / governor check (ops/s), 1 in flight | 0.25 | >= 0.33 | missed |"));
    }

    #[test]
    fn the_plot_has_a_bar_per_result_and_escapes_labels() {
        let svg = Results::parse(SAMPLE).expect("parses").svg();
        assert!(svg.starts_with("<svg"));
        // Seven results, and the evalsha floor drawn a second time next to verify_spread.
        assert_eq!(svg.matches("</title></rect>").count(), 8);
        assert!(svg.contains("governor (keyed check)"));
        assert!(svg.contains("round-trip floors"));
        assert_eq!(xml("a<b&\"c\""), "a&lt;b&amp;&quot;c&quot;");
        assert_eq!(si(1_234_567.0), "1.2M");
        assert_eq!(si(45_600.0), "46k");
        assert_eq!(si(950.0), "950");
        assert_eq!(si(1000.0), "1k");
        assert_eq!(si(10_000_000.0), "10M");
    }
}
