//! `cargo xtask`: the project's automation, as a small binary with no dependencies.
//!
//! Each subcommand lives in its own module. The binary shells out to `cargo`, `docker`
//! and `debootstrap` instead of linking the workspace, so it builds in seconds and a
//! broken crate elsewhere never stops it from running.

use std::process::ExitCode;

mod bench;
mod ci;
mod conformance;
mod images;
mod util;

const HELP: &str = "\
cargo xtask: keylatch's automation

USAGE:
    cargo xtask <SUBCOMMAND> [ARGS...]

SUBCOMMANDS:
    images [--force]     Build the local keylatch/test-postgres and keylatch/test-redis
                         images from Debian packages (debootstrap + docker import), with
                         no container registry. Skips the build when both exist;
                         --force rebuilds them. Needs root, Docker and debootstrap.
    conformance [ARGS]   Run the conformance suite on every backend through the harness:
                         cargo run -p keylatch-harness -- conformance [ARGS]
                         ARGS: [--backend NAME]... [--rounds N] [--seed S]
                               [--require-all] [--json PATH]
    ci                   What CI runs: fmt check, clippy, tests, then conformance with
                         --require-all. Stops at the first failing step.
    bench [ARGS]         Criterion benches of every backend against the textbook patterns
                         and the round-trip floor: table, bench.json, plot (--help).
    help                 Print this help.
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(subcommand) = args.next() else {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    };
    let rest: Vec<String> = args.collect();
    match subcommand.as_str() {
        "images" => images::run(&rest),
        "conformance" => conformance::run(&rest),
        "ci" => ci::run(&rest),
        "bench" => bench::run(&rest),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("xtask: unknown subcommand `{other}`\n");
            eprint!("{HELP}");
            ExitCode::from(2)
        }
    }
}
