//! The keylatch conformance suite: races revocations, rotations and limits against
//! live use on any [`AtomicKeyStore`](keylatch::AtomicKeyStore), and checks every line
//! of its contract.
//!
//! The suite is a set of plain async functions ([`scenarios`]), each one round of one
//! race on a live store. A round runs many concurrent tasks on the caller's
//! multi-threaded runtime, records every call with its invoke and return instants
//! ([`history`]) and checks the history against what the contract allows, for
//! example "no verify that started after the revoke returned was allowed". Every
//! random choice derives from a seed that the runner prints, so a failing round can
//! be replayed.
//!
//! It depends on the core crate only, so a third-party backend runs it the same way
//! the bundled ones do:
//!
//! ```no_run
//! # use keylatch_conformance::{run_all, StoreFactory, SuiteConfig};
//! # async fn demo(factory: &dyn StoreFactory) {
//! let config = SuiteConfig::from_env().expect("KEYLATCH_ROUNDS / KEYLATCH_SEED are numbers");
//! run_all(factory, &config).await.assert_passed();
//! # }
//! ```
//!
//! The suite is meant to be run in a `#[tokio::test(flavor = "multi_thread")]` or
//! under `cargo xtask conformance`, which prints a table for every backend.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use keylatch::SharedKeyStore;
use serde::Serialize;

pub mod history;
pub mod scenarios;

use scenarios::{Ctx, Scenario};

/// Rounds per scenario when none are asked for.
pub const DEFAULT_ROUNDS: u32 = 10;

/// Opens handles on one backend.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    /// The backend's name, as in reports.
    fn name(&self) -> &str;
    /// Opens a new, independently built handle on the same backend data.
    async fn open(&self) -> keylatch::Result<SharedKeyStore>;
}

/// How many rounds, and with which randomness, the suite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteConfig {
    /// Rounds per scenario.
    pub rounds: u32,
    /// The seed; printed so a failure can be replayed.
    pub seed: u64,
}

impl Default for SuiteConfig {
    /// [`DEFAULT_ROUNDS`] rounds and a fresh random seed.
    fn default() -> Self {
        SuiteConfig {
            rounds: DEFAULT_ROUNDS,
            seed: rand::random(),
        }
    }
}

impl SuiteConfig {
    /// The default, with `KEYLATCH_ROUNDS` and `KEYLATCH_SEED` applied when they are set.
    /// Fails, naming the variable, when one is set to something that is not a number.
    pub fn from_env() -> Result<Self, String> {
        let mut config = SuiteConfig::default();
        if let Ok(v) = std::env::var("KEYLATCH_ROUNDS") {
            config.rounds = v
                .parse()
                .map_err(|_| format!("KEYLATCH_ROUNDS={v:?} is not a whole number"))?;
        }
        if let Ok(v) = std::env::var("KEYLATCH_SEED") {
            config.seed = v
                .parse()
                .map_err(|_| format!("KEYLATCH_SEED={v:?} is not a whole number"))?;
        }
        Ok(config)
    }
}

/// One contract violation, with what is needed to replay it.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// The scenario.
    pub scenario: &'static str,
    /// The round (0-based).
    pub round: u32,
    /// The round's seed.
    pub seed: u64,
    /// What went wrong.
    pub message: String,
}

/// What the rounds of one scenario saw.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// The scenario.
    pub name: &'static str,
    /// Rounds run.
    pub rounds: u32,
    /// Store operations run.
    pub operations: u64,
    /// Violations seen.
    pub violations: Vec<Violation>,
    /// Median latency of the operations under race, in microseconds.
    pub p50_us: u64,
    /// 99th percentile latency of the operations under race, in microseconds.
    pub p99_us: u64,
    /// Wall time of all rounds, in milliseconds.
    pub wall_ms: u64,
}

/// What a run of the suite on one backend found.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    /// The backend.
    pub backend: String,
    /// The seed of the run.
    pub seed: u64,
    /// One entry per scenario run.
    pub scenarios: Vec<ScenarioReport>,
    /// Set when the store could not even be opened.
    pub error: Option<String>,
}

impl SuiteReport {
    /// Whether the store opened and no scenario saw a violation.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.violation_count() == 0
    }

    /// Violations over all scenarios.
    pub fn violation_count(&self) -> usize {
        self.scenarios.iter().map(|s| s.violations.len()).sum()
    }

    /// Panics, listing the violations and the seed to replay them, unless the run passed.
    pub fn assert_passed(&self) {
        if self.passed() {
            return;
        }
        let mut message = format!(
            "conformance failed on {} (replay with KEYLATCH_SEED={})\n",
            self.backend, self.seed
        );
        if let Some(e) = &self.error {
            message.push_str(&format!("  could not open the store: {e}\n"));
        }
        for v in self.scenarios.iter().flat_map(|s| &s.violations).take(30) {
            message.push_str(&format!(
                "  {} round {}: {}\n",
                v.scenario, v.round, v.message
            ));
        }
        panic!("{message}");
    }
}

/// Runs every scenario against the backend.
pub async fn run_all(factory: &dyn StoreFactory, config: &SuiteConfig) -> SuiteReport {
    run(factory, config, scenarios::ALL).await
}

/// Runs the given scenarios against the backend, printing progress to stderr.
pub async fn run(
    factory: &dyn StoreFactory,
    config: &SuiteConfig,
    scenarios: &[Scenario],
) -> SuiteReport {
    let mut report = SuiteReport {
        backend: factory.name().to_owned(),
        seed: config.seed,
        scenarios: Vec::new(),
        error: None,
    };
    eprintln!(
        "[{}] {} scenarios x {} rounds, seed {} (replay: KEYLATCH_SEED={} or --seed {})",
        report.backend,
        scenarios.len(),
        config.rounds,
        config.seed,
        config.seed,
        config.seed
    );
    let (store, other) = match (factory.open().await, factory.open().await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            report.error = Some(format!("{e:?}"));
            return report;
        }
    };
    for scenario in scenarios {
        let started = Instant::now();
        let mut latencies: Vec<Duration> = Vec::new();
        let mut entry = ScenarioReport {
            name: scenario.name,
            rounds: config.rounds,
            operations: 0,
            violations: Vec::new(),
            p50_us: 0,
            p99_us: 0,
            wall_ms: 0,
        };
        for round in 0..config.rounds {
            let seed = round_seed(config.seed, scenario.name, round);
            let ctx = Ctx {
                store: store.clone(),
                other: other.clone(),
                seed,
            };
            let outcome = (scenario.run)(&ctx).await;
            entry.operations += outcome.operations;
            latencies.extend(outcome.latencies);
            entry
                .violations
                .extend(outcome.violations.into_iter().map(|message| Violation {
                    scenario: scenario.name,
                    round,
                    seed,
                    message,
                }));
        }
        entry.p50_us = history::percentile_us(&mut latencies, 0.50);
        entry.p99_us = history::percentile_us(&mut latencies, 0.99);
        entry.wall_ms = started.elapsed().as_millis() as u64;
        eprintln!(
            "[{}] {:<22} {:>3} rounds {:>8} ops {:>3} violations {:>6} ms",
            report.backend,
            entry.name,
            entry.rounds,
            entry.operations,
            entry.violations.len(),
            entry.wall_ms
        );
        report.scenarios.push(entry);
    }
    report
}

/// The seed of one round: a mix of the run's seed, the scenario and the round, so
/// that any round can be replayed alone and no two rounds share their randomness.
pub fn round_seed(seed: u64, scenario: &str, round: u32) -> u64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for b in scenario.bytes().chain(round.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
        h ^= h >> 29;
    }
    h
}
