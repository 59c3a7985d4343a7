//! What a bench run does, from the environment `cargo xtask bench` sets.
//!
//! - `KEYLATCH_BENCH_QUICK=1`: short warm-up and measurement (the `--quick` run).
//! - `KEYLATCH_BENCH_BACKENDS=memory,governor,…`: run only these (default: all; a
//!   backend whose server cannot be had is then reported as not run, while a backend
//!   named here explicitly must run or the bench fails).
//! - `KEYLATCH_BENCH_OUT=DIR`: where results go (default `<target>/keylatch`).
//! - `KEYLATCH_POSTGRES_URL` / `KEYLATCH_REDIS_URL`: existing servers to use instead
//!   of containers (read by `keylatch-services`).

use std::path::PathBuf;
use std::time::Duration;

/// Every name the bench knows, in report order.
pub const BACKENDS: [&str; 9] = [
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

/// The server a backend needs, if any.
pub fn server_of(backend: &str) -> Option<keylatch_services::ServiceKind> {
    use keylatch_services::ServiceKind;
    match backend {
        "postgres" | "floor-postgres" | "textbook-postgres" => Some(ServiceKind::Postgres),
        "redis" | "fred" | "floor-redis" | "textbook-redis" => Some(ServiceKind::Redis),
        _ => None,
    }
}

/// How long criterion warms up and measures one benchmark, and with how many samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Warm-up time.
    pub warm_up: Duration,
    /// Measurement time.
    pub measurement: Duration,
    /// Samples (criterion's minimum is 10).
    pub samples: usize,
}

/// The settings of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `--quick` run.
    pub quick: bool,
    /// Whether criterion measures (`cargo bench`), rather than running each benchmark
    /// once as a smoke test (`cargo test --benches`). Results are written only when
    /// it measures.
    pub measuring: bool,
    /// The backends to run, in report order.
    pub backends: Vec<&'static str>,
    /// Whether the user named the backends (then each must run).
    pub explicit: bool,
    /// Operations in flight, for each benchmark.
    pub concurrency: Vec<usize>,
    /// Criterion's timing for most workloads.
    pub timing: Timing,
    /// Criterion's timing for `revoke`, which issues a fresh key (untimed) for every
    /// operation it measures: a shorter measurement bounds that setup work.
    pub revoke_timing: Timing,
    /// Where results go.
    pub out_dir: PathBuf,
    /// Where criterion writes its estimates.
    pub criterion_home: PathBuf,
}

/// The cargo target directory: `CARGO_TARGET_DIR`, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(|root| root.join("target"))
            .unwrap_or_else(|| PathBuf::from("target")),
    }
}

/// Parses a backend list; unknown names are an error that lists the known ones.
pub fn parse_backends(list: &str) -> Result<Vec<&'static str>, String> {
    let mut chosen = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match BACKENDS.iter().find(|b| **b == name) {
            Some(b) => chosen.push(*b),
            None => {
                return Err(format!(
                    "unknown backend `{name}`; known: {}",
                    BACKENDS.join(", ")
                ))
            }
        }
    }
    if chosen.is_empty() {
        return Err("the backend list is empty".to_owned());
    }
    // Report order, whatever order they were named in.
    Ok(BACKENDS
        .iter()
        .copied()
        .filter(|b| chosen.contains(b))
        .collect())
}

impl Settings {
    /// The settings from the environment and the command line criterion was given.
    pub fn from_env() -> Result<Settings, String> {
        let quick = std::env::var("KEYLATCH_BENCH_QUICK").is_ok_and(|v| v == "1");
        let (backends, explicit) = match std::env::var("KEYLATCH_BENCH_BACKENDS") {
            Ok(list) if !list.trim().is_empty() => (parse_backends(&list)?, true),
            _ => (BACKENDS.to_vec(), false),
        };
        // `cargo bench` passes --bench; `cargo test --benches` does not, and criterion
        // then runs every benchmark once without measuring. With --profile-time
        // criterion runs the routine for a profiler and analyses nothing either.
        let args: Vec<String> = std::env::args().collect();
        let measuring =
            args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time");
        let out_dir = match std::env::var_os("KEYLATCH_BENCH_OUT") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => target_dir().join("keylatch"),
        };
        // Criterion's own rule: CRITERION_HOME, else <target>/criterion.
        let criterion_home = match std::env::var_os("CRITERION_HOME") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => target_dir().join("criterion"),
        };
        let (timing, revoke_timing) = if quick {
            (
                Timing {
                    warm_up: Duration::from_millis(300),
                    measurement: Duration::from_millis(700),
                    samples: 10,
                },
                Timing {
                    warm_up: Duration::from_millis(100),
                    measurement: Duration::from_millis(300),
                    samples: 10,
                },
            )
        } else {
            (
                Timing {
                    warm_up: Duration::from_secs(1),
                    measurement: Duration::from_secs(4),
                    samples: 20,
                },
                Timing {
                    warm_up: Duration::from_millis(300),
                    measurement: Duration::from_secs(1),
                    samples: 10,
                },
            )
        };
        Ok(Settings {
            quick,
            measuring,
            backends,
            explicit,
            concurrency: vec![1, 16, 64],
            timing,
            revoke_timing,
            out_dir,
            criterion_home,
        })
    }

    /// Whether `backend` is to run.
    pub fn runs(&self, backend: &str) -> bool {
        self.backends.contains(&backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_lists_are_checked_and_put_in_report_order() {
        assert_eq!(
            parse_backends("redis, memory,governor"),
            Ok(vec!["memory", "governor", "redis"])
        );
        assert!(parse_backends("memory,mongo").is_err());
        assert!(parse_backends(" , ").is_err());
    }

    #[test]
    fn every_server_backend_names_its_server() {
        use keylatch_services::ServiceKind;
        assert_eq!(server_of("memory"), None);
        assert_eq!(server_of("governor"), None);
        assert_eq!(server_of("floor-postgres"), Some(ServiceKind::Postgres));
        assert_eq!(server_of("fred"), Some(ServiceKind::Redis));
    }
}
