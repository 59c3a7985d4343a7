//! Readiness: a real protocol exchange with the server on its published port.
//!
//! The log line alone is not enough. The official PostgreSQL image logs "ready to accept
//! connections" twice: first for a temporary server that runs its init scripts and
//! listens on no TCP port, then for the real one. And Docker's port proxy accepts TCP
//! connections on the host port whether or not the server listens yet, so a successful
//! `connect` proves nothing. A PostgreSQL startup handshake that ends in ReadyForQuery,
//! or a Redis `+PONG`, does.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ServiceKind;

/// What PostgreSQL logs (on stderr) when it accepts connections.
pub(crate) const POSTGRES_READY_LINE: &str = "database system is ready to accept connections";
/// What Redis logs (on stdout) when it accepts connections.
pub(crate) const REDIS_READY_LINE: &str = "Ready to accept connections";

/// How long one attempt may take before it counts as "no answer".
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause between attempts. Polling is the only way here: the server sends no
/// signal when its TCP listener is up.
const RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// Retries the exchange until it succeeds or `timeout` has passed; the error says what
/// the last attempt saw.
pub(crate) async fn until_ready(
    kind: ServiceKind,
    port: u16,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let problem = match tokio::time::timeout(ATTEMPT_TIMEOUT, once(kind, port)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(problem)) => problem,
            Err(_) => format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "{kind} on 127.0.0.1:{port} not ready after {}s: {problem}",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// One attempt.
pub(crate) async fn once(kind: ServiceKind, port: u16) -> Result<(), String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|err| format!("connect: {err}"))?;
    match kind {
        ServiceKind::Postgres => postgres_handshake(&mut stream).await,
        ServiceKind::Redis => redis_ping(&mut stream).await,
    }
}

/// A protocol 3.0 startup as user `postgres` (trusted in our containers), up to
/// ReadyForQuery, then Terminate.
async fn postgres_handshake(stream: &mut TcpStream) -> Result<(), String> {
    stream
        .write_all(&startup_message("postgres", "postgres"))
        .await
        .map_err(|err| format!("send startup: {err}"))?;
    // A server sends a handful of messages before ReadyForQuery; a bound keeps a
    // misbehaving peer from holding us.
    for _ in 0..256 {
        let mut header = [0u8; 5];
        stream
            .read_exact(&mut header)
            .await
            .map_err(|err| format!("read reply: {err}"))?;
        let tag = header[0];
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if !(4..=1 << 16).contains(&length) {
            return Err(format!("malformed reply (message length {length})"));
        }
        let mut body = vec![0u8; length - 4];
        stream
            .read_exact(&mut body)
            .await
            .map_err(|err| format!("read reply: {err}"))?;
        match tag {
            b'Z' => {
                // Terminate, so the server does not log an unexpected EOF.
                let _ = stream.write_all(&[b'X', 0, 0, 0, 4]).await;
                return Ok(());
            }
            b'E' => return Err(format!("server refused: {}", error_message(&body))),
            b'R' if body.get(..4) != Some(&[0, 0, 0, 0]) => {
                return Err("server asks for a password; the container should trust".into())
            }
            // AuthenticationOk, ParameterStatus, BackendKeyData, notices.
            _ => {}
        }
    }
    Err("no ReadyForQuery after 256 messages".into())
}

fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for (key, value) in [("user", user), ("database", database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let length = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    let mut message = length.to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    message
}

/// The human message ('M' field) of an ErrorResponse, or its SQLSTATE ('C').
fn error_message(body: &[u8]) -> String {
    let mut code = None;
    for field in body.split(|&byte| byte == 0) {
        match field.split_first() {
            Some((b'M', text)) => return String::from_utf8_lossy(text).into_owned(),
            Some((b'C', text)) => code = Some(String::from_utf8_lossy(text).into_owned()),
            _ => {}
        }
    }
    code.map_or_else(
        || "unknown error".to_owned(),
        |code| format!("SQLSTATE {code}"),
    )
}

async fn redis_ping(stream: &mut TcpStream) -> Result<(), String> {
    stream
        .write_all(b"PING\r\n")
        .await
        .map_err(|err| format!("send PING: {err}"))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"\r\n") {
        let read = stream
            .read(&mut buf)
            .await
            .map_err(|err| format!("read reply: {err}"))?;
        if read == 0 {
            return Err("connection closed before a reply".into());
        }
        reply.extend_from_slice(&buf[..read]);
        if reply.len() > 4096 {
            return Err("reply too long".into());
        }
    }
    if reply.starts_with(b"+PONG") {
        Ok(())
    } else {
        Err(format!(
            "unexpected reply: {}",
            String::from_utf8_lossy(&reply).trim_end()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_message_is_well_formed() {
        let message = startup_message("postgres", "postgres");
        let length = u32::from_be_bytes([message[0], message[1], message[2], message[3]]);
        assert_eq!(length as usize, message.len());
        assert_eq!(&message[4..8], &196_608u32.to_be_bytes());
        assert!(message.ends_with(b"postgres\0\0"));
    }

    #[test]
    fn error_fields_are_read() {
        let body = b"SFATAL\0C57P03\0Mthe database system is starting up\0\0";
        assert_eq!(error_message(body), "the database system is starting up");
        assert_eq!(error_message(b"C57P03\0\0"), "SQLSTATE 57P03");
    }

    #[tokio::test]
    async fn a_port_nobody_listens_on_is_not_ready() {
        // Bind and drop a listener to get a port that is (very likely) free.
        let port = {
            let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            listener.local_addr().unwrap().port()
        };
        for kind in ServiceKind::ALL {
            assert!(once(kind, port).await.is_err());
        }
    }

    #[tokio::test]
    async fn a_peer_that_closes_at_once_is_not_ready() {
        // Docker's port proxy behaves like this while the server is not listening yet.
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let closer = tokio::spawn(async move {
            for _ in 0..2 {
                let (socket, _) = listener.accept().await.unwrap();
                drop(socket);
            }
        });
        for kind in ServiceKind::ALL {
            assert!(once(kind, port).await.is_err());
        }
        closer.await.unwrap();
    }
}
