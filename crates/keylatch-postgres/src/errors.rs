//! How sqlx's errors become keylatch's, by when they happened.
//!
//! The one question that matters to a caller is whether the operation may have taken
//! effect, so errors are sorted by the moment they arose rather than by their kind:
//! before the statement was sent nothing can have changed (`Unavailable`); after it
//! was sent and before a reply, anything may have (`OutcomeUnknown`); a reply that is
//! an error means the server rolled the statement back (`Backend`).
//!
//! Only ids, digests, numbers, subjects and metadata are ever bound, so neither a
//! server message nor sqlx's text can carry a key's secret.

use keylatch::{BoxError, Error};

use crate::BACKEND;

/// Failure before the statement was sent: nothing changed.
pub(crate) fn not_sent(e: impl Into<BoxError>) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        source: e.into(),
    }
}

/// Failure after the statement was sent in autocommit mode.
pub(crate) fn after_send(e: sqlx::Error) -> Error {
    match e {
        // An error reply: the statement's transaction was rolled back.
        sqlx::Error::Database(_) => Error::Backend {
            backend: BACKEND,
            source: Box::new(e),
        },
        // An I/O or protocol failure with the statement on its way or running: it may
        // have committed. Never retried here, so nothing is applied twice.
        other => Error::OutcomeUnknown {
            backend: BACKEND,
            source: Box::new(other),
        },
    }
}

/// The request timeout ran out with the statement sent and no reply.
pub(crate) fn no_reply() -> Error {
    Error::OutcomeUnknown {
        backend: BACKEND,
        source: "no reply within the request timeout".into(),
    }
}

/// A reply this crate does not understand (a missing column, a value out of range).
/// The statement itself may well have committed.
pub(crate) fn bad_reply(e: impl Into<BoxError>) -> Error {
    Error::Backend {
        backend: BACKEND,
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_after_sending_are_never_retry_safe() {
        let io = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert!(matches!(after_send(io), Error::OutcomeUnknown { .. }));
        assert!(matches!(
            after_send(sqlx::Error::Protocol("garbled".into())),
            Error::OutcomeUnknown { .. }
        ));
        assert!(!no_reply().is_retry_safe());
        assert!(not_sent(sqlx::Error::PoolTimedOut).is_retry_safe());
    }
}
