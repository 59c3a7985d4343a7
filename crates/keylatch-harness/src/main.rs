//! `keylatch-harness conformance …`: the binary behind `cargo xtask conformance`.
//!
//! It runs the conformance suite on every backend this build knows (or those named),
//! prints a table of backend x scenario, writes the same as JSON, and exits non-zero
//! on any violation. A backend whose server cannot be had (no Docker, say) is reported
//! `not-run` with the reason and the remedy; that is an error when the backend was
//! named with `--backend` or when `--require-all` is given (as CI does).

use std::path::PathBuf;
use std::process::ExitCode;

use keylatch_conformance::{run_all, SuiteConfig, SuiteReport};
use serde::Serialize;

mod backends;

const USAGE: &str = "\
usage: keylatch-harness conformance [--backend NAME]... [--rounds N] [--seed S] [--require-all] [--json PATH]

Runs the keylatch conformance suite and prints a table per backend and scenario.
  --backend NAME   run only this backend (repeatable); an unavailable one is an error
  --rounds N       rounds per scenario (default: KEYLATCH_ROUNDS or 10)
  --seed S         seed to replay a run (default: KEYLATCH_SEED or random)
  --require-all    a backend that cannot run fails the command
  --json PATH      where to write the report (default keylatch/conformance.json in the
                   cargo target directory: $CARGO_TARGET_DIR, else target)";

struct Args {
    backends: Vec<String>,
    config: SuiteConfig,
    require_all: bool,
    json: PathBuf,
}

/// `keylatch/conformance.json` in the cargo target directory: `CARGO_TARGET_DIR` when
/// set (cargo passes it on to what it runs), else `target` below the working
/// directory, which `cargo xtask` sets to the workspace root.
fn default_json() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("target"),
    };
    target.join("keylatch").join("conformance.json")
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    if args.next().as_deref() != Some("conformance") {
        return Err(USAGE.to_owned());
    }
    let mut parsed = Args {
        backends: Vec::new(),
        config: SuiteConfig::from_env()?,
        require_all: false,
        json: default_json(),
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or(format!("{name} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--backend" => parsed.backends.push(value("--backend")?),
            "--rounds" => {
                let v = value("--rounds")?;
                parsed.config.rounds = v
                    .parse()
                    .map_err(|_| format!("--rounds {v:?} is not a whole number"))?;
            }
            "--seed" => {
                let v = value("--seed")?;
                parsed.config.seed = v
                    .parse()
                    .map_err(|_| format!("--seed {v:?} is not a whole number"))?;
            }
            "--require-all" => parsed.require_all = true,
            "--json" => parsed.json = PathBuf::from(value("--json")?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    let known: Vec<&str> = backends::all().iter().map(|e| e.name).collect();
    if let Some(unknown) = parsed
        .backends
        .iter()
        .find(|b| !known.contains(&b.as_str()))
    {
        return Err(format!(
            "unknown backend {unknown:?}; this build knows: {}",
            known.join(", ")
        ));
    }
    Ok(parsed)
}

/// One backend's line in the JSON report.
#[derive(Serialize)]
struct BackendJson {
    backend: String,
    status: &'static str,
    reason: Option<String>,
    remedy: Option<String>,
    origin: Option<String>,
    seed: u64,
    scenarios: Vec<ScenarioJson>,
}

#[derive(Serialize)]
struct ScenarioJson {
    name: &'static str,
    rounds: u32,
    operations: u64,
    violations: usize,
    p50_us: u64,
    p99_us: u64,
    wall_ms: u64,
    details: Vec<String>,
}

#[derive(Serialize)]
struct ReportJson {
    backends: Vec<BackendJson>,
}

fn scenario_rows(report: &SuiteReport) -> Vec<ScenarioJson> {
    report
        .scenarios
        .iter()
        .map(|s| ScenarioJson {
            name: s.name,
            rounds: s.rounds,
            operations: s.operations,
            violations: s.violations.len(),
            p50_us: s.p50_us,
            p99_us: s.p99_us,
            wall_ms: s.wall_ms,
            details: s
                .violations
                .iter()
                .map(|v| format!("round {} (seed {}): {}", v.round, v.seed, v.message))
                .collect(),
        })
        .collect()
}

fn print_table(results: &[BackendJson]) {
    println!();
    println!(
        "{:<9} {:<22} {:>6} {:>9} {:>10} {:>8} {:>8}",
        "backend", "scenario", "rounds", "ops", "violations", "p50_us", "p99_us"
    );
    for b in results {
        for s in &b.scenarios {
            println!(
                "{:<9} {:<22} {:>6} {:>9} {:>10} {:>8} {:>8}",
                b.backend, s.name, s.rounds, s.operations, s.violations, s.p50_us, s.p99_us
            );
            for d in s.details.iter().take(5) {
                println!("          ! {d}");
            }
        }
    }
    println!();
    for b in results {
        match b.status {
            "not-run" => println!(
                "{}: not-run: {}. Remedy: {}",
                b.backend,
                b.reason.as_deref().unwrap_or("unknown"),
                b.remedy.as_deref().unwrap_or("none known")
            ),
            status => println!(
                "{}: {status} ({}){}",
                b.backend,
                b.origin.as_deref().unwrap_or("?"),
                b.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        }
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let mut results = Vec::new();
    let mut ok = true;
    for entry in backends::all() {
        let named = args.backends.iter().any(|b| b == entry.name);
        if !args.backends.is_empty() && !named {
            continue;
        }
        eprintln!("[{}] preparing", entry.name);
        let prepared = (entry.prepare)().await;
        let result = match prepared {
            Ok(mut prepared) => {
                eprintln!("[{}] using {}", entry.name, prepared.origin);
                let report = run_all(prepared.factory.as_ref(), &args.config).await;
                if let Some(cleanup) = prepared.cleanup.take() {
                    // A leftover schema or key set does not change what the run proved,
                    // so it is a warning, not a failure; but it is never silent.
                    match cleanup.run.await {
                        Ok(()) => eprintln!("[{}] removed {}", entry.name, cleanup.what),
                        Err(e) => eprintln!(
                            "[{}] warning: could not remove {} ({e}); remove it by hand",
                            entry.name, cleanup.what
                        ),
                    }
                }
                let passed = report.passed();
                ok &= passed;
                let result = BackendJson {
                    backend: entry.name.to_owned(),
                    status: if passed { "passed" } else { "failed" },
                    reason: report.error.clone(),
                    remedy: None,
                    origin: Some(prepared.origin.clone()),
                    seed: report.seed,
                    scenarios: scenario_rows(&report),
                };
                // Containers go away here, before the next backend starts.
                drop(prepared);
                result
            }
            Err(not_run) => {
                if named || args.require_all {
                    ok = false;
                }
                BackendJson {
                    backend: entry.name.to_owned(),
                    status: "not-run",
                    reason: Some(not_run.reason),
                    remedy: Some(not_run.remedy),
                    origin: None,
                    seed: args.config.seed,
                    scenarios: Vec::new(),
                }
            }
        };
        results.push(result);
    }
    print_table(&results);
    let json = serde_json::to_string_pretty(&ReportJson { backends: results })
        .map_err(|e| format!("could not encode the report: {e}"))?;
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    }
    std::fs::write(&args.json, json)
        .map_err(|e| format!("could not write {}: {e}", args.json.display()))?;
    println!("report written to {}", args.json.display());
    Ok(ok)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("conformance FAILED: see the table above");
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
