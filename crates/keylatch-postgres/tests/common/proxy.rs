//! A PostgreSQL wire-protocol proxy on 127.0.0.1 that counts round trips and can
//! break a connection at a chosen moment.
//!
//! It reads the frontend's messages (type byte, then a length that counts itself).
//! Every `Sync` and simple `Query` asks the server for a `ReadyForQuery` that the
//! client waits for: one round trip. Those that carry a statement (a `Query`, or a
//! `Sync` after `Parse`/`Bind`/`Execute` messages) are counted as round trips; an
//! empty `Sync` is sqlx's connection ping, which its pool sends when it takes a
//! connection back (in a task of its own, after the operation has returned), and is
//! counted apart. TLS must be off (`sslmode=disable`) for the messages to be readable.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Mutex, Notify};

/// What the proxy does with the next request (the next `Sync` from a client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Forward the request to the server, then close the client's connection before
    /// any reply reaches it (a connection lost after sending).
    CutAfterSend,
    /// Forward the request, and hold back every reply (a server or network that
    /// stopped answering).
    Stall,
    /// Forward the request and its reply, all but the closing `ReadyForQuery`, which
    /// the server sends only once the statement's transaction has committed.
    WithholdCommitAck,
}

struct Shared {
    upstream: SocketAddr,
    round_trips: AtomicU64,
    pings: AtomicU64,
    connections: AtomicU64,
    fault: Mutex<Fault>,
    /// Raised when the server has finished (sent ReadyForQuery for) a request whose
    /// reply was withheld from the client by a fault.
    withheld_reply_done: Notify,
}

/// A running proxy; stops accepting when dropped (its tasks end with the runtime).
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: watch::Sender<()>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (a 127.0.0.1 address).
    pub async fn start(upstream: SocketAddr) -> Proxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy only talks to loopback"
        );
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            upstream,
            round_trips: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            fault: Mutex::new(Fault::None),
            withheld_reply_done: Notify::new(),
        });
        let (stop, mut stopped) = watch::channel(());
        let accept_shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { return };
                        let shared = accept_shared.clone();
                        tokio::spawn(async move { serve(client, shared).await });
                    }
                }
            }
        });
        Proxy {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// The port to connect to instead of the server's.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Round trips that carried a statement since the last reset.
    pub fn round_trips(&self) -> u64 {
        self.shared.round_trips.load(Ordering::SeqCst)
    }

    /// Empty round trips (connection pings) since the last reset.
    pub fn pings(&self) -> u64 {
        self.shared.pings.load(Ordering::SeqCst)
    }

    /// Client connections accepted since the last reset.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Zeroes the counters.
    pub fn reset(&self) {
        self.shared.round_trips.store(0, Ordering::SeqCst);
        self.shared.pings.store(0, Ordering::SeqCst);
        self.shared.connections.store(0, Ordering::SeqCst);
    }

    /// Applies `fault` to the next request.
    pub async fn arm(&self, fault: Fault) {
        *self.shared.fault.lock().await = fault;
    }

    /// Waits until the server has finished the request whose reply a fault withheld.
    pub async fn withheld_reply_done(&self) {
        self.shared.withheld_reply_done.notified().await;
    }
}

/// What the server-to-client direction does with replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replies {
    Forward,
    /// Drop them; close the client side at once (`cut`) or leave it hanging.
    Withhold {
        cut: bool,
    },
    /// Forward them, except ReadyForQuery.
    WithholdReady,
}

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    // Messages are forwarded one by one; without NODELAY, Nagle's algorithm would
    // hold small ones back and slow every exchange down.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_rx, client_tx) = client.into_split();
    let (server_rx, server_tx) = server.into_split();
    let (replies_tx, replies_rx) = watch::channel(Replies::Forward);
    let up = tokio::spawn(frontend(client_rx, server_tx, shared.clone(), replies_tx));
    let down = tokio::spawn(backend(server_rx, client_tx, shared, replies_rx));
    let _ = tokio::join!(up, down);
}

async fn read_exact_vec(rx: &mut OwnedReadHalf, n: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0; n];
    rx.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

/// Reads one typed message: its type byte, and the whole message as read.
async fn read_message(rx: &mut OwnedReadHalf) -> Option<(u8, Vec<u8>)> {
    let mut message = read_exact_vec(rx, 5).await?;
    let n = u32::from_be_bytes([message[1], message[2], message[3], message[4]]) as usize;
    message.extend(read_exact_vec(rx, n.saturating_sub(4)).await?);
    Some((message[0], message))
}

/// Client to server: forwards messages whole, counts round trips, arms faults.
async fn frontend(
    mut rx: OwnedReadHalf,
    mut tx: OwnedWriteHalf,
    shared: Arc<Shared>,
    replies: watch::Sender<Replies>,
) {
    // The startup message has no type byte: a length, then the protocol version.
    let Some(len) = read_exact_vec(&mut rx, 4).await else {
        return;
    };
    let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let Some(body) = read_exact_vec(&mut rx, n.saturating_sub(4)).await else {
        return;
    };
    assert!(
        !(n == 8 && body == [0x04, 0xd2, 0x16, 0x2f]),
        "the proxy needs sslmode=disable"
    );
    if tx.write_all(&len).await.is_err() || tx.write_all(&body).await.is_err() {
        return;
    }
    let mut carries_statement = false;
    loop {
        let Some((kind, message)) = read_message(&mut rx).await else {
            return;
        };
        let ends_request = match kind {
            b'Q' => true,
            b'S' if carries_statement => true,
            b'S' => {
                shared.pings.fetch_add(1, Ordering::SeqCst);
                false
            }
            _ => {
                carries_statement = true;
                false
            }
        };
        if ends_request {
            carries_statement = false;
            shared.round_trips.fetch_add(1, Ordering::SeqCst);
            // Decided before the request goes on, so that no reply to it can slip
            // through ahead of the fault.
            let fault = std::mem::replace(&mut *shared.fault.lock().await, Fault::None);
            match fault {
                Fault::None => {}
                Fault::CutAfterSend => {
                    let _ = replies.send(Replies::Withhold { cut: true });
                }
                Fault::Stall => {
                    let _ = replies.send(Replies::Withhold { cut: false });
                }
                Fault::WithholdCommitAck => {
                    let _ = replies.send(Replies::WithholdReady);
                }
            }
        }
        if tx.write_all(&message).await.is_err() {
            return;
        }
    }
}

/// Server to client: forwards replies unless a fault withholds them.
async fn backend(
    mut rx: OwnedReadHalf,
    mut tx: OwnedWriteHalf,
    shared: Arc<Shared>,
    replies: watch::Receiver<Replies>,
) {
    let mut client_closed = false;
    loop {
        let Some((kind, message)) = read_message(&mut rx).await else {
            return;
        };
        let mode = *replies.borrow();
        match mode {
            Replies::Forward => {
                if tx.write_all(&message).await.is_err() {
                    return;
                }
            }
            Replies::WithholdReady if kind != b'Z' => {
                if tx.write_all(&message).await.is_err() {
                    return;
                }
            }
            Replies::WithholdReady => shared.withheld_reply_done.notify_one(),
            Replies::Withhold { cut } => {
                if cut && !client_closed {
                    // The client sees its connection end with the request in flight.
                    let _ = tx.shutdown().await;
                    client_closed = true;
                }
                if kind == b'Z' {
                    shared.withheld_reply_done.notify_one();
                }
            }
        }
    }
}
