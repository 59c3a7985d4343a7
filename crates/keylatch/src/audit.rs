//! Audit events, emitted by every backend through these functions so that the
//! fields are the same everywhere.
//!
//! Events go to the `tracing` target [`TARGET`] with the fields `op`, `backend`,
//! `key_id` (absent for malformed keys), `outcome` and, for denials, `reason`. A
//! secret never appears in any of them: only ids and outcomes are passed in.
//! Allowed verifies are logged at DEBUG (they are the bulk), denials at INFO, and a
//! revoked key being presented at WARN, because that is what an attempt to slip
//! through the revocation window looks like.

use crate::{Denial, DenyReason, Error, KeyId, Revocation, Verdict};

/// The `tracing` target of every audit event.
pub const TARGET: &str = "keylatch::audit";

fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::NotFound { .. } => "not_found",
        Error::Conflict { .. } => "conflict",
        Error::Revoked { .. } => "revoked",
        Error::InvalidArgument { .. } => "invalid_argument",
        Error::NotSupported { .. } => "not_supported",
        Error::Unavailable { .. } => "unavailable",
        Error::OutcomeUnknown { .. } => "outcome_unknown",
        Error::Backend { .. } => "backend_error",
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
        Err(e) => tracing::warn!(
            target: TARGET, op, backend, key_id = id.as_str(), outcome = "error",
            reason = error_kind(e)
        ),
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
        Err(e) => tracing::warn!(
            target: TARGET, op = "revoke", backend, key_id = id.as_str(), outcome = "error",
            reason = error_kind(e)
        ),
    }
}

/// Records the outcome of a rotate (`new_version` on success).
pub fn rotated(backend: &'static str, id: &KeyId, result: Result<u64, &Error>) {
    match result {
        Ok(version) => tracing::info!(
            target: TARGET, op = "rotate", backend, key_id = id.as_str(), outcome = "ok",
            version
        ),
        Err(e) => tracing::info!(
            target: TARGET, op = "rotate", backend, key_id = id.as_str(), outcome = "error",
            reason = error_kind(e)
        ),
    }
}
