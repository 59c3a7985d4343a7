//! `cargo xtask ci`: everything CI checks, in order, stopping at the first failure.
//!
//! Each step's wall time is printed as it ends and again in a summary, so a slow CI run
//! shows at a glance where the time went.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::{conformance, util};

const HELP: &str = "\
cargo xtask ci

Runs, in order, stopping at the first failure:
    1. fmt           cargo fmt --all -- --check
    2. clippy        cargo clippy --workspace --all-targets -- -D warnings
    3. test          cargo test --workspace
    4. conformance   cargo xtask conformance --require-all (every backend must run)
";

/// One CI step: a name for the log and the command that performs it.
struct Step {
    name: &'static str,
    command: Command,
}

fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(util::cargo());
    command.current_dir(util::workspace_root()).args(args);
    command
}

fn steps() -> Vec<Step> {
    vec![
        Step {
            name: "fmt",
            command: cargo(&["fmt", "--all", "--", "--check"]),
        },
        Step {
            name: "clippy",
            command: cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        },
        Step {
            name: "test",
            command: cargo(&["test", "--workspace"]),
        },
        Step {
            name: "conformance",
            command: conformance::command(&["--require-all".to_owned()]),
        },
    ]
}

/// Entry point of the subcommand.
pub fn run(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("xtask ci: unexpected argument `{other}`\n");
            eprint!("{HELP}");
            return ExitCode::from(2);
        }
    }

    let started = Instant::now();
    let steps = steps();
    let total = steps.len();
    let mut times: Vec<(&'static str, Duration)> = Vec::new();
    for (index, mut step) in steps.into_iter().enumerate() {
        println!("\n==> ci step {}/{total}: {}", index + 1, step.name);
        let step_started = Instant::now();
        let outcome = util::run_visible(&mut step.command);
        let elapsed = step_started.elapsed();
        times.push((step.name, elapsed));
        let failure = match outcome {
            Ok(status) if status.success() => None,
            Ok(status) => Some(format!(
                "`{}` failed ({status})",
                util::display(&step.command)
            )),
            Err(message) => Some(message),
        };
        if let Some(failure) = failure {
            print_summary(&times, started.elapsed());
            eprintln!(
                "\nCI FAILED at step `{}` ({}/{total}) after {}: {failure}",
                step.name,
                index + 1,
                util::human(elapsed)
            );
            return ExitCode::FAILURE;
        }
        println!(
            "<== ci step `{}` passed in {}",
            step.name,
            util::human(elapsed)
        );
    }
    print_summary(&times, started.elapsed());
    println!("CI passed.");
    ExitCode::SUCCESS
}

fn print_summary(times: &[(&'static str, Duration)], total: Duration) {
    println!("\nci step times:");
    for (name, elapsed) in times {
        println!("    {name:<12} {:>10}", util::human(*elapsed));
    }
    println!("    {:<12} {:>10}", "total", util::human(total));
}
