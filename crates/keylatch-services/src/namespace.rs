//! Fresh names for scenarios' schemas and key prefixes, so that runs sharing a server
//! (an external one above all) never see each other's data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest label kept, so that the name stays within PostgreSQL's 63-byte limit
/// for identifiers.
const LABEL_MAX: usize = 20;

/// A new name for one scenario's PostgreSQL schema or Redis key prefix.
///
/// It is `kl_<label>_<pid>_<time>_<counter>`: only lowercase ASCII letters, digits and
/// underscores (safe unquoted in SQL and inside a Redis hash tag), starting with a
/// letter, at most 63 bytes. The counter makes names unique within a process, the
/// process id and the clock across processes and runs. `label` is shortened and any
/// other character replaced by `_`.
pub fn unique_namespace(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let label: String = label
        .chars()
        .take(LABEL_MAX)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    // 40 bits of nanoseconds wrap every 18 minutes; with the pid and the counter beside
    // them, two runs would have to collide in all three.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64 & 0xff_ffff_ffff)
        .unwrap_or_default();
    format!("kl_{label}_{:x}_{nanos:x}_{count:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_identifiers_and_unique() {
        let names: Vec<String> = (0..1000)
            .map(|_| unique_namespace("Quota Race/©-scenario with a long name"))
            .collect();
        for name in &names {
            assert!(name.len() <= 63, "{name}");
            assert!(name.starts_with("kl_"));
            assert!(name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        assert!(unique_namespace("").starts_with("kl__"));
    }
}
