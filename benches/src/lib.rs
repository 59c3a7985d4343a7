//! The keylatch benchmarks: every backend against the textbook patterns and the
//! physical floor, in one run, on the same servers, through the same clients.
//!
//! `cargo xtask bench [--quick] [--backend NAME]...` runs the criterion bench
//! `benches/backends.rs` in release mode and turns its results into a table,
//! `target/keylatch/bench.json` and a plot; docs/benchmarks.md has the numbers and
//! says how they are made. In short:
//!
//! - [`stores`]: six workloads written once against `&dyn AtomicKeyStore`
//!   (`verify_spread`, `verify_hot`, `verify_limited`, `lease`, `revoke`, `rotate`),
//!   run on memory, postgres, redis and fred;
//! - [`baselines`]: `floor-postgres`, `floor-redis`, `textbook-postgres`,
//!   `textbook-redis` and `governor`, with their SQL and Lua in files;
//! - [`driver`]: each benchmark keeps 1, 16 or 64 operations in flight as tokio tasks
//!   under criterion's `iter_custom`, and records every operation's latency in a
//!   [`histogram`] for p50 and p99;
//! - [`over_limit`]: how many requests over its limit each implementation lets
//!   through under concurrency (the textbook Redis pattern lets some through);
//! - [`measure`], [`report`], [`run`]: criterion glue, the results file, the run.

pub mod baselines;
pub mod config;
pub mod driver;
pub mod histogram;
pub mod measure;
pub mod over_limit;
pub mod report;
pub mod run;
pub mod servers;
pub mod stores;
