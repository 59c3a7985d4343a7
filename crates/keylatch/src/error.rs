//! The one error type of every store.

use crate::KeyId;

/// A boxed error from a backend's client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a store operation can fail with.
///
/// A denied `verify` or `acquire` is not an error: it is a [`Verdict::Denied`]. An
/// error means the operation did not produce a verdict, and no caller may treat it as
/// "allowed" (fail closed). Match on variants, never on message text. No message ever
/// contains a key's secret.
///
/// [`Verdict::Denied`]: crate::Verdict::Denied
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No key has this id.
    #[error("key {id} not found")]
    NotFound {
        /// The id that was looked up.
        id: KeyId,
    },
    /// A compare-and-set on the key's version lost: the key is now at `current_version`.
    #[error("version conflict on key {id}: the current version is {current_version}")]
    Conflict {
        /// The key.
        id: KeyId,
        /// Its version when the operation ran.
        current_version: u64,
    },
    /// The key is revoked, and the operation cannot bring it back.
    #[error("key {id} is revoked")]
    Revoked {
        /// The key.
        id: KeyId,
    },
    /// An argument was out of range or badly formed; nothing was sent to the store.
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// What was wrong, in words that never contain user data.
        what: &'static str,
    },
    /// The backend cannot do this operation.
    #[error("{operation} is not supported by the {backend} backend")]
    NotSupported {
        /// The operation.
        operation: &'static str,
        /// The backend's name.
        backend: &'static str,
    },
    /// The backend could not be reached and the request was not sent: nothing changed.
    #[error("the {backend} backend is unavailable; the operation was not applied")]
    Unavailable {
        /// The backend's name.
        backend: &'static str,
        /// The client library's error.
        #[source]
        source: BoxError,
    },
    /// The request was sent but no reply came back (timeout, lost connection): the
    /// operation may or may not have taken effect. It is never retried behind the
    /// caller's back, so nothing is charged twice.
    #[error("the {backend} backend failed after the request was sent; the outcome is unknown")]
    OutcomeUnknown {
        /// The backend's name.
        backend: &'static str,
        /// The client library's error.
        #[source]
        source: BoxError,
    },
    /// The backend answered with an error, or with a reply this library does not
    /// understand. The operation did not take effect as far as the backend reported.
    #[error("the {backend} backend reported an error")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// The client library's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Whether sending the same operation again cannot apply it twice: true when this
    /// error proves the operation had no effect. False for [`Error::OutcomeUnknown`]
    /// and [`Error::Backend`], where the effect cannot be ruled out.
    ///
    /// "Safe" is not "useful": resending after `NotFound`, `Conflict`, `Revoked` or
    /// `InvalidArgument` fails the same way. Only [`Error::Unavailable`] is worth
    /// retrying as it is.
    pub fn is_retry_safe(&self) -> bool {
        !matches!(self, Error::OutcomeUnknown { .. } | Error::Backend { .. })
    }

    /// The error's kind as a short, stable name (`not_found`, `conflict`, `revoked`,
    /// `invalid_argument`, `not_supported`, `unavailable`, `outcome_unknown`,
    /// `backend_error`): the `reason` field of audit events, and a label for metrics.
    /// It never contains user data.
    pub fn as_str(&self) -> &'static str {
        match self {
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

    /// Whether the failure lies with the store's infrastructure rather than with the
    /// request (an HTTP layer answers 503 for these).
    pub fn is_backend_failure(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::OutcomeUnknown { .. } | Error::Backend { .. }
        )
    }
}

/// Shorthand for results of store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
