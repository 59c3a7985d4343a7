//! Repository rules, enforced as a plain test so they hold without anyone remembering
//! them.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file under the workspace's source folders with one of these extensions.
fn files(exts: &[&str]) -> Vec<PathBuf> {
    let root = workspace_root();
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = ["crates", "benches", "xtask"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
            {
                out.push(path);
            }
        }
    }
    assert!(!out.is_empty(), "the walk found no {exts:?} files");
    out
}

fn offenders(exts: &[&str], needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for path in files(exts) {
        let text = fs::read_to_string(&path).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            // Prose may name what code must not contain.
            if line.trim_start().starts_with("//") {
                continue;
            }
            if needles.iter().any(|needle| line.contains(needle)) {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

// The needles are split so that this file does not match itself.

#[test]
fn no_unfinished_code_is_left() {
    let needles = [
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
        concat!("dbg", "!("),
    ];
    let found = offenders(&["rs"], &needles);
    assert!(found.is_empty(), "unfinished code:\n{}", found.join("\n"));
}

#[test]
fn no_test_is_ignored() {
    let found = offenders(&["rs"], &[concat!("#[", "ignore")]);
    assert!(found.is_empty(), "ignored tests:\n{}", found.join("\n"));
}

#[test]
fn no_service_address_is_read_at_compile_time() {
    let found = offenders(&["rs"], &[concat!("option_", "env!")]);
    assert!(
        found.is_empty(),
        "compile-time configuration:\n{}",
        found.join("\n")
    );
}

#[test]
fn lua_lives_in_lua_files() {
    // Library code keeps every script in a .lua file; a test may send a one-line EVAL.
    let found: Vec<String> = offenders(&["rs"], &[concat!("redis", ".call(")])
        .into_iter()
        .filter(|line| !line.contains("/tests/"))
        .collect();
    assert!(
        found.is_empty(),
        "Lua inside Rust sources:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_crate_uses_the_workspace_lints() {
    let missing: Vec<String> = files(&["toml"])
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "Cargo.toml"))
        .filter(|p| {
            let text = fs::read_to_string(p).unwrap_or_default();
            !text.contains("[lints]\nworkspace = true")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "crates without the workspace lints: {missing:?}"
    );
}
