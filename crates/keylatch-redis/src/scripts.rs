//! The Lua scripts, embedded at compile time, one per operation.
//!
//! Each script is `common.lua` (helpers), plus `admit.lua` for the two that check a
//! key, plus the operation's own file, whose header states KEYS, ARGV and the reply.

use std::sync::LazyLock;

/// One embedded script and its SHA-1, the name `EVALSHA` calls it by.
#[derive(Debug)]
pub struct Script {
    name: &'static str,
    code: &'static str,
    sha1: String,
}

impl Script {
    fn new(name: &'static str, code: &'static str) -> Self {
        Script {
            name,
            code,
            sha1: sha1_smol::Sha1::from(code).digest().to_string(),
        }
    }

    /// The operation's name (`verify`, `acquire`, …).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The full Lua source, as `SCRIPT LOAD` receives it.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The lowercase hex SHA-1 of the source.
    pub fn sha1(&self) -> &str {
        &self.sha1
    }
}

macro_rules! script {
    ($name:literal $(, $part:literal)*) => {
        LazyLock::new(|| {
            Script::new(
                $name,
                concat!(
                    include_str!("../lua/common.lua"),
                    $(include_str!(concat!("../lua/", $part, ".lua")),)*
                    include_str!(concat!("../lua/", $name, ".lua"))
                ),
            )
        })
    };
}

/// `issue.lua`.
pub static ISSUE: LazyLock<Script> = script!("issue");
/// `verify.lua`.
pub static VERIFY: LazyLock<Script> = script!("verify", "admit");
/// `acquire.lua`.
pub static ACQUIRE: LazyLock<Script> = script!("acquire", "admit");
/// `renew.lua`.
pub static RENEW: LazyLock<Script> = script!("renew");
/// `release.lua`.
pub static RELEASE: LazyLock<Script> = script!("release");
/// `revoke.lua`.
pub static REVOKE: LazyLock<Script> = script!("revoke");
/// `leases.lua`.
pub static LEASES: LazyLock<Script> = script!("leases");
/// `rotate.lua`.
pub static ROTATE: LazyLock<Script> = script!("rotate");
/// `inspect.lua`.
pub static INSPECT: LazyLock<Script> = script!("inspect");

/// Every script, for loading ahead of time and for tests.
pub fn all() -> [&'static Script; 9] {
    [
        &ISSUE, &VERIFY, &ACQUIRE, &RENEW, &RELEASE, &REVOKE, &LEASES, &ROTATE, &INSPECT,
    ]
}
