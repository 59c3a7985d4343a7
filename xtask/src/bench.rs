//! `cargo xtask bench [ARGS...]`: the per-backend criterion benches.
//!
//! Not written yet: the benches engineer fills in [`run`]. Until then it says so and
//! fails, so that nobody mistakes an empty run for a measurement.

use std::process::ExitCode;

/// Entry point of the subcommand.
pub fn run(args: &[String]) -> ExitCode {
    let _ = args;
    eprintln!("xtask bench: the benches are not implemented yet");
    ExitCode::FAILURE
}
