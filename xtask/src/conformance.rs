//! `cargo xtask conformance [ARGS...]`: runs the harness binary and hands on its status.
//!
//! The harness (crates/keylatch-harness) owns the command line: arguments are passed
//! through untouched, so the two can never disagree about what an option means.

use std::process::{Command, ExitCode};

use crate::util;

const HELP: &str = "\
cargo xtask conformance [ARGS...]

Runs the conformance suite on every backend:
    cargo run --quiet -p keylatch-harness -- conformance [ARGS...]

ARGS (interpreted by the harness):
    --backend NAME    Run only this backend (repeatable); a backend that cannot run fails.
    --rounds N        Rounds per race scenario.
    --seed S          Seed for the scenarios' randomness.
    --require-all     Fail when any backend is reported not-run.
    --json PATH       Where to write the JSON report (default
                      keylatch/conformance.json in the cargo target directory);
                      a relative PATH is relative to the workspace root.

PostgreSQL and Redis run in containers (Docker), or on the servers named by
KEYLATCH_POSTGRES_URL / KEYLATCH_REDIS_URL. Offline: build images with `cargo xtask images`.
";

/// The harness invocation for these arguments.
pub fn command(args: &[String]) -> Command {
    let mut command = Command::new(util::cargo());
    command
        .current_dir(util::workspace_root())
        .args([
            "run",
            "--quiet",
            "-p",
            "keylatch-harness",
            "--",
            "conformance",
        ])
        .args(args);
    command
}

/// Entry point of the subcommand.
pub fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    match util::run_visible(&mut command(args)) {
        Ok(status) => util::exit_code_of(status),
        Err(message) => {
            eprintln!("xtask conformance: {message}");
            ExitCode::FAILURE
        }
    }
}
