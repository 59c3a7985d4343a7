//! The adapter on the `redis` crate: a [`ConnectionManager`] (one multiplexed
//! connection that reconnects in the background).
//!
//! Why nothing is ever sent twice: a `ConnectionManager` hands a failed request's
//! error back to the caller and reconnects for later requests; it does not resend
//! the failed one (redis 1.8, `aio/connection_manager.rs`). Its multiplexed
//! connection fails a request whose connection drops, or whose reply does not come
//! within the response timeout, with an I/O error and never resends it. The
//! cluster client (`cluster-async`) does resend in-flight requests after a
//! reconnect, which is why this crate does not offer it: see the crate docs.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{ErrorKind, RedisError, ServerErrorKind, Value};

use crate::transport::{Fault, Transport};
use crate::wire::Reply;

/// The backend name of this adapter.
pub(crate) const BACKEND: &str = "redis";

pub(crate) struct RedisRs {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisRs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The manager's Debug shows the connection info, which may hold a password.
        f.write_str("RedisRs { .. }")
    }
}

impl RedisRs {
    pub(crate) fn new(conn: ConnectionManager) -> Self {
        RedisRs { conn }
    }
}

fn reply(v: Value) -> Reply {
    match v {
        Value::Nil => Reply::Nil,
        Value::Int(n) => Reply::Int(n),
        Value::BulkString(b) => Reply::Bytes(b),
        Value::SimpleString(s) => Reply::Bytes(s.into_bytes()),
        Value::Okay => Reply::Bytes(b"OK".to_vec()),
        Value::Array(items) | Value::Set(items) => {
            Reply::Array(items.into_iter().map(reply).collect())
        }
        _ => Reply::Other,
    }
}

pub(crate) fn fault(e: RedisError) -> Fault {
    if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) {
        Fault::NoScript
    } else if e.is_connection_refusal() {
        // Refused while connecting: the request never left this process.
        Fault::NotSent(Box::new(e))
    } else if matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) {
        Fault::Server(Box::new(e))
    } else {
        // I/O errors, timeouts and unparsable replies: the request may have run.
        Fault::Unknown(Box::new(e))
    }
}

#[async_trait]
impl Transport for RedisRs {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn evalsha(&self, sha1: &str, keys: &[String], args: &[Vec<u8>]) -> Result<Reply, Fault> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(sha1).arg(keys.len()).arg(keys).arg(args);
        let mut conn = self.conn.clone();
        cmd.query_async::<Value>(&mut conn)
            .await
            .map(reply)
            .map_err(fault)
    }

    async fn script_load(&self, code: &str, _keys: &[String]) -> Result<(), Fault> {
        // One server: the connection's.
        let mut conn = self.conn.clone();
        redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(code)
            .query_async::<Value>(&mut conn)
            .await
            .map(|_| ())
            .map_err(fault)
    }
}
