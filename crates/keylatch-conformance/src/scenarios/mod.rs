//! The scenarios: plain async functions, each one round of a race on a live store.
//!
//! A scenario issues its own fresh keys, so rounds and scenarios never interfere, and
//! returns a [`Round`]: how many operations it ran, their latencies, and every
//! violation of the contract it saw. An unexpected error from the store is a
//! violation too: the suite runs against healthy servers.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use keylatch::{Error, SharedKeyStore};

use crate::history::Call;

mod lifecycle;
mod limits;
mod revoke;
mod rotation;

pub use lifecycle::{expiry, unknown_and_malformed};
pub use limits::{quota_exact, rate_exact};
pub use revoke::{revoke_during_lease, revoke_during_verify, revoke_vs_rotate, two_handles};
pub use rotation::{rotate_cas, rotate_grace};

/// What a scenario round gets: two independently opened handles on one backend.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The handle most operations go through.
    pub store: SharedKeyStore,
    /// A second handle, opened separately, on the same backend data.
    pub other: SharedKeyStore,
    /// This round's seed: every random choice of the round derives from it.
    pub seed: u64,
}

/// What one round of a scenario saw.
#[derive(Debug, Default)]
pub struct Round {
    /// Store operations run.
    pub operations: u64,
    /// Latencies of the operations under race.
    pub latencies: Vec<Duration>,
    /// Every contract violation seen, in words (never a secret).
    pub violations: Vec<String>,
}

impl Round {
    pub(crate) fn violation(&mut self, message: impl Into<String>) {
        self.violations.push(message.into());
    }

    /// Counts calls as operations under race and keeps their latencies.
    pub(crate) fn raced<'a, T: 'a>(&mut self, calls: impl IntoIterator<Item = &'a Call<T>>) {
        for call in calls {
            self.operations += 1;
            self.latencies.push(call.latency());
        }
    }

    /// Counts one operation outside the race.
    pub(crate) fn op(&mut self) {
        self.operations += 1;
    }

    /// The value of a setup step, or a violation naming the step.
    pub(crate) fn must<T>(&mut self, step: &str, result: Result<T, Error>) -> Option<T> {
        self.op();
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.violation(format!("{step} failed: {e:?}"));
                None
            }
        }
    }
}

/// A boxed scenario future.
pub type RoundFuture<'a> = Pin<Box<dyn Future<Output = Round> + Send + 'a>>;

/// A named scenario.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Its name in reports.
    pub name: &'static str,
    /// Runs one round.
    pub run: for<'a> fn(&'a Ctx) -> RoundFuture<'a>,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every scenario, in report order.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "revoke_during_verify",
        run: |c| Box::pin(revoke_during_verify(c)),
    },
    Scenario {
        name: "revoke_during_lease",
        run: |c| Box::pin(revoke_during_lease(c)),
    },
    Scenario {
        name: "quota_exact",
        run: |c| Box::pin(quota_exact(c)),
    },
    Scenario {
        name: "rate_exact",
        run: |c| Box::pin(rate_exact(c)),
    },
    Scenario {
        name: "rotate_cas",
        run: |c| Box::pin(rotate_cas(c)),
    },
    Scenario {
        name: "rotate_grace",
        run: |c| Box::pin(rotate_grace(c)),
    },
    Scenario {
        name: "revoke_vs_rotate",
        run: |c| Box::pin(revoke_vs_rotate(c)),
    },
    Scenario {
        name: "expiry",
        run: |c| Box::pin(expiry(c)),
    },
    Scenario {
        name: "unknown_and_malformed",
        run: |c| Box::pin(unknown_and_malformed(c)),
    },
    Scenario {
        name: "two_handles",
        run: |c| Box::pin(two_handles(c)),
    },
];

/// The scenario with this name.
pub fn by_name(name: &str) -> Option<&'static Scenario> {
    ALL.iter().find(|s| s.name == name)
}

/// Offset as whole microseconds, for the atomics tasks share.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
