//! What a client adapter must provide (send `EVALSHA`, send `SCRIPT LOAD`, and say
//! what kind of failure happened), and the one place that runs a script call.

use std::fmt;

use async_trait::async_trait;
use keylatch::{BoxError, Error};

use crate::wire::{BadReply, Call, Reply};

/// How a request to Redis failed, as far as the client library can tell.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The server answered `NOSCRIPT`: the script is not in its cache and did not run.
    NoScript,
    /// The request was certainly not sent (no connection could be made).
    NotSent(BoxError),
    /// The request may have been sent, but no reply came (timeout, dropped
    /// connection): it may or may not have run.
    Unknown(BoxError),
    /// The server answered with an error.
    Server(BoxError),
}

/// A client library, reduced to what keylatch needs. Implementations only move
/// bytes: every decision about keys, arguments and replies is made in `wire`.
///
/// Implementations must never resend a request on their own once it may have been
/// written to a connection: a consuming script that ran but whose reply was lost
/// would otherwise be charged twice.
#[async_trait]
pub(crate) trait Transport: Send + Sync + fmt::Debug + 'static {
    /// The backend name reported in errors and audit events.
    fn backend(&self) -> &'static str;

    /// `EVALSHA sha1 numkeys keys… args…`, sent once.
    async fn evalsha(&self, sha1: &str, keys: &[String], args: &[Vec<u8>]) -> Result<Reply, Fault>;

    /// `SCRIPT LOAD code` on the node(s) that serve `keys` (every primary of a
    /// cluster is fine).
    async fn script_load(&self, code: &str, keys: &[String]) -> Result<(), Fault>;
}

/// How many times a call may find its script missing before giving up. One reload
/// is enough unless scripts are being flushed continuously.
const MAX_LOADS: usize = 3;

fn to_error(backend: &'static str, fault: Fault) -> Error {
    match fault {
        Fault::NoScript => Error::Backend {
            backend,
            source: "the script cache kept being flushed (NOSCRIPT after reloading)".into(),
        },
        Fault::NotSent(source) => Error::Unavailable { backend, source },
        Fault::Unknown(source) => Error::OutcomeUnknown { backend, source },
        Fault::Server(source) => Error::Backend { backend, source },
    }
}

/// Runs one script call: `EVALSHA`, and on `NOSCRIPT` `SCRIPT LOAD` then `EVALSHA`
/// again. Resending is safe only there: `NOSCRIPT` proves the script did not run.
/// Every other failure is returned as it is, never retried.
pub(crate) async fn run(transport: &dyn Transport, call: &Call) -> Result<Reply, Error> {
    let backend = transport.backend();
    let mut loads = 0;
    loop {
        match transport
            .evalsha(call.script.sha1(), &call.keys, &call.args)
            .await
        {
            Ok(reply) => return Ok(reply),
            Err(Fault::NoScript) if loads < MAX_LOADS => {
                loads += 1;
                tracing::debug!(
                    backend,
                    script = call.script.name(),
                    "script not cached on the server; loading it"
                );
                match transport.script_load(call.script.code(), &call.keys).await {
                    Ok(()) => {}
                    // Loading a script changes no key, and the call itself has not run:
                    // whatever happened to the load, the operation was not applied.
                    Err(Fault::NotSent(source) | Fault::Unknown(source)) => {
                        return Err(Error::Unavailable { backend, source })
                    }
                    Err(other) => return Err(to_error(backend, other)),
                }
            }
            Err(fault) => return Err(to_error(backend, fault)),
        }
    }
}

/// Turns a reply that does not decode into an error: the script ran, so the outcome
/// is reported as a backend error rather than guessed.
pub(crate) fn bad_reply(backend: &'static str) -> impl Fn(BadReply) -> Error {
    move |e| Error::Backend {
        backend,
        source: Box::new(e),
    }
}
