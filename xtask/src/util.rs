//! Helpers shared by the subcommands: locating the workspace, running commands, timing.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus};
use std::time::Duration;

/// The workspace root: xtask always lives one level below it.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// The cargo target directory, honouring `CARGO_TARGET_DIR` like cargo itself does.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target"),
    }
}

/// The cargo that runs us (cargo sets `CARGO`), so that toolchain overrides carry over.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// A command line as a person would type it, for the log.
pub fn display(command: &Command) -> String {
    // The program by name only: cargo runs us with the full path of its toolchain's
    // cargo, which only makes the log harder to read.
    let program = std::path::Path::new(command.get_program());
    let program = program.file_name().unwrap_or(program.as_os_str());
    let mut parts = vec![quote(&program.to_string_lossy())];
    parts.extend(command.get_args().map(|arg| quote(&arg.to_string_lossy())));
    parts.join(" ")
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs a command with inherited standard streams after printing it.
///
/// A command that cannot be started at all (not installed, say) is an `Err` with a
/// sentence that names it, so callers can tell that apart from a command that failed.
pub fn run_visible(command: &mut Command) -> Result<ExitStatus, String> {
    println!("$ {}", display(command));
    command
        .status()
        .map_err(|err| format!("could not start `{}`: {err}", display(command)))
}

/// Runs a command quietly and reports whether it succeeded; it is a probe, so a command
/// that cannot be started counts as a failure.
pub fn succeeds(command: &mut Command) -> bool {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// The exit code to hand on for a child's status: its own code when it has one, else 1
/// (killed by a signal).
pub fn exit_code_of(status: ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1).max(1)),
        None => ExitCode::FAILURE,
    }
}

/// A duration the way a person reads it: `4.2s`, `1m 03.5s`.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let minutes = (secs / 60.0).floor();
        format!("{minutes:.0}m {:04.1}s", secs - minutes * 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(4_260)), "4.3s");
        assert_eq!(human(Duration::from_millis(63_500)), "1m 03.5s");
    }

    #[test]
    fn display_quotes_only_what_needs_it() {
        let mut command = Command::new("/usr/bin/redis-server");
        command.args(["--bind", "* -::*", "--save", ""]);
        assert_eq!(display(&command), "redis-server --bind '* -::*' --save ''");
    }

    #[cfg(unix)]
    #[test]
    fn exit_codes_are_handed_on() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code_of(ExitStatus::from_raw(0)), ExitCode::SUCCESS);
        assert_eq!(
            exit_code_of(ExitStatus::from_raw(3 << 8)),
            ExitCode::from(3)
        );
        // Killed by SIGKILL: no code of its own, still a failure.
        assert_eq!(exit_code_of(ExitStatus::from_raw(9)), ExitCode::FAILURE);
    }
}
