//! The adapter on the `fred` crate: a [`Pool`] of clients, centralized or clustered.
//!
//! Why nothing is ever sent twice: fred replays a command that was in flight when
//! its connection dropped, up to `max_command_attempts` writes (default 3). Every
//! command keylatch sends carries `Options { max_attempts: Some(1), .. }`, so it is
//! written at most once and a dropped connection fails it instead (fred 10.1,
//! `router/utils.rs`, `check_final_write_attempt`); cluster redirections, which
//! are counted separately, still work. The commands go out through `custom`,
//! because fred 10.1 drops per-command options on `evalsha` (see `Fred::send`).
//! A command is not sent at all while the chosen client is not connected, and
//! then fails as unavailable.

use async_trait::async_trait;
use fred::clients::Pool;
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::{ClientLike, LuaInterface};
use fred::types::config::Options;
use fred::types::CustomCommand;
use fred::types::{ClusterHash, Value};
use std::time::Duration;

use crate::transport::{Fault, Transport};
use crate::wire::Reply;

/// The backend name of this adapter.
pub(crate) const BACKEND: &str = "fred";

pub(crate) struct Fred {
    pool: Pool,
    options: Options,
    /// Whether the store built the pool (and so quits it when dropped). A pool passed
    /// in by the application shares its clients with the application's own clones,
    /// and quitting it would cut the application off.
    owns_pool: bool,
}

impl std::fmt::Debug for Fred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fred")
            .field("clients", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl Fred {
    pub(crate) fn new(pool: Pool, timeout: Duration, owns_pool: bool) -> Self {
        Fred {
            pool,
            owns_pool,
            options: Options {
                max_attempts: Some(1),
                timeout: Some(timeout),
                // Fail at once rather than queue a command until a reconnect: queued
                // commands would be sent long after the caller gave up.
                fail_fast: true,
                ..Options::default()
            },
        }
    }
}

impl Drop for Fred {
    fn drop(&mut self) {
        // The pool's connection tasks live until told to quit; without this every
        // dropped store that built its own pool would leave its connections open.
        if !self.owns_pool {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            handle.spawn(async move {
                let _ = pool.quit().await;
            });
        }
    }
}

fn reply(v: Value) -> Reply {
    match v {
        Value::Null => Reply::Nil,
        Value::Integer(n) => Reply::Int(n),
        Value::String(s) => Reply::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) => Reply::Bytes(b.to_vec()),
        Value::Array(items) => Reply::Array(items.into_iter().map(reply).collect()),
        _ => Reply::Other,
    }
}

fn is_noscript(e: &FredError) -> bool {
    // NOSCRIPT is the error code the Redis protocol defines for a missing script;
    // fred keeps the server's reply in the details.
    e.details().starts_with("NOSCRIPT")
}

pub(crate) fn fault(e: FredError) -> Fault {
    if is_noscript(&e) {
        return Fault::NoScript;
    }
    match e.kind() {
        // A reply the server sent: the command was received and answered.
        ErrorKind::Unknown
        | ErrorKind::InvalidCommand
        | ErrorKind::InvalidArgument
        | ErrorKind::Cluster
        | ErrorKind::Auth
            if e.details()
                .split_whitespace()
                .next()
                .is_some_and(is_error_code) =>
        {
            Fault::Server(Box::new(e))
        }
        ErrorKind::Config | ErrorKind::Url => Fault::NotSent(Box::new(e)),
        _ => Fault::Unknown(Box::new(e)),
    }
}

/// Redis error replies start with an upper-case code (`ERR`, `WRONGTYPE`, `BUSY`, …).
fn is_error_code(word: &str) -> bool {
    word.len() >= 2 && word.bytes().all(|b| b.is_ascii_uppercase())
}

impl Fred {
    /// Sends one command with this adapter's options (one write attempt, timeout,
    /// fail fast), routed to `slot` on a cluster.
    ///
    /// It goes through `custom` on purpose: fred 10.1 implements `LuaInterface`
    /// (`evalsha`, `script_load`) for the plain client but not for `WithOptions`,
    /// so `client.with_options(..).evalsha(..)` resolves through `Deref` to the
    /// plain client and silently drops the options: no timeout, and up to
    /// `max_command_attempts` writes. `custom` is a `ClientLike` method, which
    /// `WithOptions` does implement, so the options apply.
    async fn send(
        &self,
        cmd: &'static str,
        slot: ClusterHash,
        args: Vec<Value>,
    ) -> Result<Value, Fault> {
        let client = self.pool.next_connected();
        if !client.is_connected() {
            return Err(Fault::NotSent(
                "no connected client in the fred pool".into(),
            ));
        }
        client
            .with_options(&self.options)
            .custom::<Value, Value>(CustomCommand::new_static(cmd, slot, false), args)
            .await
            .map_err(fault)
    }
}

fn slot_of(keys: &[String]) -> ClusterHash {
    keys.first().map_or(ClusterHash::Random, |key| {
        ClusterHash::Custom(crate::layout::cluster_slot(key.as_bytes()))
    })
}

#[async_trait]
impl Transport for Fred {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn evalsha(&self, sha1: &str, keys: &[String], args: &[Vec<u8>]) -> Result<Reply, Fault> {
        let mut values = Vec::with_capacity(2 + keys.len() + args.len());
        values.push(Value::from(sha1));
        values.push(Value::Integer(keys.len() as i64));
        values.extend(keys.iter().map(|k| Value::from(k.as_str())));
        values.extend(args.iter().map(|a| Value::Bytes(a.clone().into())));
        self.send("EVALSHA", slot_of(keys), values).await.map(reply)
    }

    async fn script_load(&self, code: &str, keys: &[String]) -> Result<(), Fault> {
        if keys.is_empty() && self.pool.clients().iter().any(|c| c.is_clustered()) {
            // No call to serve: load on every primary. (fred sends this without
            // per-command options, but loading a script changes no key.)
            let client = self.pool.next_connected();
            return client
                .script_load_cluster::<Value, _>(code)
                .await
                .map(|_| ())
                .map_err(fault);
        }
        // Load on the node that serves the call's slot: the node that answered
        // NOSCRIPT. The script cache is per node and not replicated.
        self.send(
            "SCRIPT",
            slot_of(keys),
            vec![Value::from("LOAD"), Value::from(code)],
        )
        .await
        .map(|_| ())
    }
}
