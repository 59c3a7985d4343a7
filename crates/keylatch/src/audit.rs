//! Audit events, emitted by every backend through these functions so that the
//! fields are the same everywhere.
//!
//! Events go to the `tracing` target [`TARGET`] with the fields `op`, `backend`,
//! `key_id` (absent for malformed keys), `outcome` and, for denials, `reason`. A
//! secret never appears in any of them: only ids and outcomes are passed in.
//! Levels follow one rule, so that each can drive its own alert:
//!
//! - DEBUG: allowed verifies and acquires (they are the bulk).
//! - INFO: denials, revocations and rotations, and errors that describe the request
//!   (`not_found`, `conflict`, `revoked`, `invalid_argument`, `not_supported`).
//! - WARN: only a revoked key being presented, because that is what an attempt to
//!   slip through the revocation window looks like.
//! - ERROR: the store's infrastructure failed (`unavailable`, `outcome_unknown`,
//!   `backend_error`; see [`Error::is_backend_failure`]).

use crate::{Denial, DenyReason, Error, KeyId, Revocation, Verdict};

/// The `tracing` target of every audit event.
pub const TARGET: &str = "keylatch::audit";

/// Logs an operation that failed: at ERROR when the store's infrastructure failed, at
/// INFO when the error describes the request.
fn failed(op: &'static str, backend: &'static str, id: &KeyId, e: &Error) {
    let key_id = id.as_str();
    let reason = e.as_str();
    if e.is_backend_failure() {
        tracing::error!(target: TARGET, op, backend, key_id, outcome = "error", reason);
    } else {
        tracing::info!(target: TARGET, op, backend, key_id, outcome = "error", reason);
    }
}

fn denied(op: &'static str, backend: &'static str, denial: &Denial) {
    let key_id = denial.id.as_ref().map(|id| id.as_str());
    let reason = denial.reason.as_str();
    if denial.reason == DenyReason::Revoked {
        tracing::warn!(target: TARGET, op, backend, key_id, outcome = "denied", reason);
    } else {
        tracing::info!(target: TARGET, op, backend, key_id, outcome = "denied", reason);
    }
}

/// Records the outcome of a verify or acquire (`op` names which).
pub fn checked<T>(
    op: &'static str,
    backend: &'static str,
    id: &KeyId,
    result: &Result<Verdict<T>, Error>,
) {
    match result {
        Ok(Verdict::Allowed(_)) => {
            tracing::debug!(target: TARGET, op, backend, key_id = id.as_str(), outcome = "allowed")
        }
        Ok(Verdict::Denied(denial)) => denied(op, backend, denial),
        Err(e) => failed(op, backend, id, e),
    }
}

/// Records a verify or acquire denied because the key is malformed, and returns that
/// verdict. Nothing about the presented text is logged: it may be a secret.
pub fn malformed<T>(op: &'static str, backend: &'static str) -> Verdict<T> {
    let denial = Denial {
        reason: DenyReason::Malformed,
        id: None,
    };
    denied(op, backend, &denial);
    Verdict::Denied(denial)
}

/// Records the outcome of a revoke.
pub fn revoked(backend: &'static str, id: &KeyId, result: &Result<Revocation, Error>) {
    match result {
        Ok(r) => tracing::info!(
            target: TARGET, op = "revoke", backend, key_id = id.as_str(), outcome = "ok",
            newly_revoked = r.newly_revoked, drain = ?r.drain
        ),
        Err(e) => failed("revoke", backend, id, e),
    }
}

/// Records the outcome of a rotate (`new_version` on success).
pub fn rotated(backend: &'static str, id: &KeyId, result: Result<u64, &Error>) {
    match result {
        Ok(version) => tracing::info!(
            target: TARGET, op = "rotate", backend, key_id = id.as_str(), outcome = "ok",
            version
        ),
        Err(e) => failed("rotate", backend, id, e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    use super::*;
    use crate::{Drain, Grant};

    /// Records the level of every event it sees.
    #[derive(Clone, Default)]
    struct Levels(Arc<Mutex<Vec<Level>>>);

    impl<S: Subscriber> Layer<S> for Levels {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            self.0
                .lock()
                .expect("not poisoned")
                .push(*event.metadata().level());
        }
    }

    /// The level of the one event `emit` logs.
    fn level_of(emit: impl FnOnce()) -> Level {
        let levels = Levels::default();
        let subscriber = tracing_subscriber::registry().with(levels.clone());
        tracing::subscriber::with_default(subscriber, emit);
        let seen = levels.0.lock().expect("not poisoned").clone();
        assert_eq!(seen.len(), 1, "one event: {seen:?}");
        seen[0]
    }

    fn id() -> KeyId {
        KeyId::random()
    }

    fn denial(reason: DenyReason) -> Result<Verdict<Grant>, Error> {
        Ok(Verdict::Denied(Denial {
            reason,
            id: Some(id()),
        }))
    }

    fn infrastructure() -> [Error; 3] {
        [
            Error::Unavailable {
                backend: "t",
                source: "down".into(),
            },
            Error::OutcomeUnknown {
                backend: "t",
                source: "lost".into(),
            },
            Error::Backend {
                backend: "t",
                source: "odd".into(),
            },
        ]
    }

    fn request_errors() -> [Error; 5] {
        [
            Error::NotFound { id: id() },
            Error::Conflict {
                id: id(),
                current_version: 2,
            },
            Error::Revoked { id: id() },
            Error::InvalidArgument { what: "cost" },
            Error::NotSupported {
                operation: "acquire",
                backend: "t",
            },
        ]
    }

    #[test]
    fn only_a_revoked_key_presented_is_a_warning() {
        assert_eq!(
            level_of(|| checked("verify", "t", &id(), &denial(DenyReason::Revoked))),
            Level::WARN
        );
        for reason in [
            DenyReason::Unknown,
            DenyReason::Expired,
            DenyReason::QuotaExhausted,
        ] {
            assert_eq!(
                level_of(|| checked("verify", "t", &id(), &denial(reason))),
                Level::INFO
            );
        }
        assert_eq!(
            level_of(|| drop(malformed::<Grant>("verify", "t"))),
            Level::INFO
        );
        let revocation = Revocation {
            newly_revoked: true,
            drain: Drain::Drained,
        };
        assert_eq!(
            level_of(|| revoked("t", &id(), &Ok(revocation))),
            Level::INFO
        );
        assert_eq!(level_of(|| rotated("t", &id(), Ok(2))), Level::INFO);
    }

    #[test]
    fn infrastructure_failures_are_errors_and_request_errors_are_info() {
        for e in infrastructure() {
            let e = Err::<Verdict<Grant>, _>(e);
            assert_eq!(level_of(|| checked("verify", "t", &id(), &e)), Level::ERROR);
        }
        for e in request_errors() {
            let e = Err::<Verdict<Grant>, _>(e);
            assert_eq!(level_of(|| checked("acquire", "t", &id(), &e)), Level::INFO);
        }
        for e in infrastructure() {
            assert_eq!(level_of(|| rotated("t", &id(), Err(&e))), Level::ERROR);
            let e = Err(e);
            assert_eq!(level_of(|| revoked("t", &id(), &e)), Level::ERROR);
        }
        for e in request_errors() {
            assert_eq!(level_of(|| rotated("t", &id(), Err(&e))), Level::INFO);
        }
    }
}
