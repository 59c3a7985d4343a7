//! A private `redis-server` per test, on 127.0.0.1, and the two ways to open a store
//! on it.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use keylatch::SharedKeyStore;
use keylatch_redis::{Namespace, RedisStore, StoreConfig};

/// A `redis-server` child process, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// Starts `redis-server` with no persistence on a free loopback port and waits
    /// until it logs that it accepts connections. Panics (fails the test) when the
    /// binary is missing: a test that needs a server never skips.
    pub fn start() -> Server {
        // Ask the kernel for a free port. Another process could take it before
        // redis binds it; then redis exits and the readiness wait below fails loudly.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--loglevel", "notice"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            // Keep draining the log after readiness so that redis never blocks on a
            // full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        let mut server = Server { child, port };
        if ready_rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let status = server.child.try_wait();
            panic!("redis-server on port {port} did not become ready: {status:?}");
        }
        server
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Freezes the server (SIGSTOP): requests hang until [`Server::resume`].
    pub fn freeze(&self) {
        signal(self.child.id(), "-STOP");
    }

    /// Thaws a frozen server (SIGCONT).
    pub fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }

    /// A plain connection for looking at what the scripts wrote.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {sig} {pid} failed");
}

impl Drop for Server {
    fn drop(&mut self) {
        // A frozen server would ignore SIGKILL's cleanup; resume it first.
        signal(self.child.id(), "-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The two client adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    RedisRs,
    Fred,
}

pub const ADAPTERS: [Adapter; 2] = [Adapter::RedisRs, Adapter::Fred];

/// A namespace no other test uses.
pub fn unique_namespace(tag: &str) -> Namespace {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Namespace::new(&format!("t-{tag}-{}-{n}", std::process::id())).expect("valid namespace")
}

/// Opens a new, independent store handle (its own connection).
pub async fn open(adapter: Adapter, url: &str, config: StoreConfig) -> RedisStore {
    match adapter {
        Adapter::RedisRs => RedisStore::connect_redis_rs(url, config).await,
        Adapter::Fred => RedisStore::connect_fred(url, 2, config).await,
    }
    .expect("store connects")
}

/// [`open`] behind `Arc<dyn AtomicKeyStore>`.
pub async fn open_shared(adapter: Adapter, url: &str, config: StoreConfig) -> SharedKeyStore {
    std::sync::Arc::new(open(adapter, url, config).await)
}
