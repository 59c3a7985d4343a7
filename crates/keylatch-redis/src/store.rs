//! [`RedisStore`]: the `AtomicKeyStore` contract on Redis, one script per operation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keylatch::{
    audit, validate_cost, validate_duration, AtomicKeyStore, Drain, Error, Grant, IssuedKey,
    KeyCodec, KeyId, KeyInfo, KeySpec, Lease, LeaseGrant, LeaseId, PresentedKey, Renewal, Result,
    Revocation, Verdict,
};

use crate::layout::Namespace;
use crate::transport::{self, bad_reply, Transport};
use crate::wire::{self, Call, Issued, LeaseStatus, Reply, Rotated};

/// How a [`RedisStore`] names its keys, parses API keys and waits.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    namespace: Namespace,
    codec: KeyCodec,
    response_timeout: Duration,
    drain_poll_interval: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            namespace: Namespace::default(),
            codec: KeyCodec::default(),
            response_timeout: Duration::from_secs(5),
            drain_poll_interval: Duration::from_millis(10),
        }
    }
}

impl StoreConfig {
    /// The prefix of every Redis key (default `keylatch`). Every handle on the same
    /// data must use the same namespace.
    pub fn namespace(mut self, namespace: Namespace) -> Self {
        self.namespace = namespace;
        self
    }

    /// The key format (prefix, pepper); default [`KeyCodec::default`]. Every handle
    /// on the same data must use the same codec.
    pub fn codec(mut self, codec: KeyCodec) -> Self {
        self.codec = codec;
        self
    }

    /// How long to wait for a reply before reporting [`Error::OutcomeUnknown`]
    /// (default 5 s). Used by the `connect_*` constructors; a client passed in
    /// ready-made keeps its own setting.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How often a draining revoke looks at the key's leases (default 10 ms). A
    /// revoke also wakes when the earliest lease is due to expire.
    pub fn drain_poll_interval(mut self, interval: Duration) -> Self {
        self.drain_poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The namespace in use.
    pub fn namespace_ref(&self) -> &Namespace {
        &self.namespace
    }
}

struct Inner {
    transport: Box<dyn Transport>,
    namespace: Namespace,
    codec: KeyCodec,
    drain_poll_interval: Duration,
}

/// A keylatch store on Redis. Cheap to clone; clones share one client.
///
/// Build one with [`RedisStore::connect_redis_rs`] or [`RedisStore::connect_fred`]
/// (or from a client you configured: [`RedisStore::from_redis_rs`],
/// [`RedisStore::from_fred`]). See the [crate documentation](crate) for the key
/// layout, the scripts and the durability of each operation.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("backend", &self.inner.transport.backend())
            .field("namespace", &self.inner.namespace.as_str())
            .field("codec", &self.inner.codec)
            .finish_non_exhaustive()
    }
}

/// How many fresh ids issue tries before giving up. With over 71 random bits per id
/// a single collision is already practically impossible.
const ISSUE_ATTEMPTS: usize = 3;

impl RedisStore {
    pub(crate) fn from_transport(transport: Box<dyn Transport>, config: StoreConfig) -> Self {
        RedisStore {
            inner: Arc::new(Inner {
                transport,
                namespace: config.namespace,
                codec: config.codec,
                drain_poll_interval: config.drain_poll_interval,
            }),
        }
    }

    fn name(&self) -> &'static str {
        self.inner.transport.backend()
    }

    async fn call(&self, call: Call) -> Result<Reply> {
        transport::run(&*self.inner.transport, &call).await
    }

    /// Loads every script into the server's script cache ahead of the first call.
    /// Optional: a call whose script is missing loads it and runs once more.
    pub async fn load_scripts(&self) -> Result<()> {
        for script in crate::scripts::all() {
            let call = Call {
                script,
                keys: vec![],
                args: vec![],
            };
            // Through the same path as every call, so that a cluster loads on the
            // node of the slot it would use; with no key any node will do.
            self.inner
                .transport
                .script_load(call.script.code(), &call.keys)
                .await
                .map_err(|f| match f {
                    transport::Fault::Server(source) => Error::Backend {
                        backend: self.name(),
                        source,
                    },
                    transport::Fault::NoScript => Error::Backend {
                        backend: self.name(),
                        source: "NOSCRIPT answering SCRIPT LOAD".into(),
                    },
                    transport::Fault::NotSent(source) | transport::Fault::Unknown(source) => {
                        Error::Unavailable {
                            backend: self.name(),
                            source,
                        }
                    }
                })?;
        }
        Ok(())
    }

    /// A verify or acquire: parses the key (a malformed one is denied before any
    /// I/O), then, when the other arguments are valid, runs the script. Every outcome
    /// but a malformed key, argument errors included, is audited under the key's id.
    async fn check<T>(
        &self,
        op: &'static str,
        key: &str,
        arguments: Result<()>,
        call: impl FnOnce(&PresentedKey) -> Call,
        decode: impl FnOnce(Reply, &KeyId) -> std::result::Result<Verdict<T>, wire::BadReply>,
    ) -> Result<Verdict<T>> {
        // The format check comes before any I/O: malformed and oversized keys never
        // reach Redis.
        let Ok(presented) = self.inner.codec.parse(key) else {
            return Ok(audit::malformed(op, self.name()));
        };
        let result = match arguments {
            Ok(()) => self
                .call(call(&presented))
                .await
                .and_then(|reply| decode(reply, &presented.id).map_err(bad_reply(self.name()))),
            Err(e) => Err(e),
        };
        audit::checked(op, self.name(), &presented.id, &result);
        result
    }

    /// Waits until no lease of `id` granted before the revoke is live, or the
    /// timeout passes. Revoke made acquire and renew fail, so the live count can
    /// only fall; it is polled (leases end by expiring, which raises no signal).
    async fn drain(&self, id: &KeyId, first: LeaseStatus, timeout: Duration) -> Drain {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut status = first;
        loop {
            if status.live == 0 {
                return Drain::Drained;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Drain::TimedOut {
                    outstanding: status.live,
                };
            }
            // Wake at the next poll, when the earliest lease is due on the server's
            // clock, or at the deadline for one last look, whichever comes first.
            let mut wait = self.inner.drain_poll_interval.min(deadline - now);
            if let Some(end) = status.next_end {
                wait =
                    wait.min(end.saturating_duration_since(status.now) + Duration::from_millis(1));
            }
            tokio::time::sleep(wait).await;
            match self
                .call(wire::leases(&self.inner.namespace, id))
                .await
                .and_then(|r| wire::decode_leases(r).map_err(bad_reply(self.name())))
            {
                Ok(next) => status = next,
                Err(e) => {
                    // The key is revoked whatever happens now; what is unknown is only
                    // whether its leases ended, so the honest answer is "not drained",
                    // with the last count seen.
                    tracing::warn!(
                        backend = self.name(),
                        key_id = id.as_str(),
                        error = %e,
                        "could not check the leases of a revoked key"
                    );
                    return Drain::TimedOut {
                        outstanding: status.live,
                    };
                }
            }
        }
    }
}

#[async_trait]
impl AtomicKeyStore for RedisStore {
    fn backend(&self) -> &'static str {
        self.name()
    }

    async fn issue(&self, spec: &KeySpec) -> Result<IssuedKey> {
        spec.validate()?;
        for _ in 0..ISSUE_ATTEMPTS {
            let id = KeyId::random();
            let minted = self.inner.codec.generate(&id);
            let call = wire::issue(&self.inner.namespace, &id, &minted.digest, spec);
            let reply = self.call(call).await?;
            match wire::decode_issue(reply).map_err(bad_reply(self.name()))? {
                Issued::Created => {
                    return Ok(IssuedKey {
                        key: minted.key,
                        id,
                        version: 1,
                    })
                }
                // Never overwrite: that would hand a second owner the first one's key.
                Issued::IdTaken => continue,
            }
        }
        Err(Error::Backend {
            backend: self.name(),
            source: "key id collision on every attempt".into(),
        })
    }

    async fn verify(&self, key: &str, cost: u64) -> Result<Verdict<Grant>> {
        let ns = &self.inner.namespace;
        self.check(
            "verify",
            key,
            validate_cost(cost),
            |presented| wire::verify(ns, &presented.id, &presented.digest, cost),
            |reply, id| wire::decode_verify(reply, id, cost),
        )
        .await
    }

    async fn acquire(&self, key: &str, cost: u64, ttl: Duration) -> Result<Verdict<LeaseGrant>> {
        let ns = &self.inner.namespace;
        let lease = LeaseId::random();
        let arguments =
            validate_cost(cost).and(validate_duration(ttl, "lease ttl longer than 366 days"));
        self.check(
            "acquire",
            key,
            arguments,
            |presented| wire::acquire(ns, &presented.id, &presented.digest, cost, ttl, &lease),
            |reply, id| wire::decode_acquire(reply, id, cost, lease.clone()),
        )
        .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Renewal> {
        validate_duration(ttl, "lease ttl longer than 366 days")?;
        let reply = self
            .call(wire::renew(&self.inner.namespace, lease, ttl))
            .await?;
        wire::decode_renew(reply).map_err(bad_reply(self.name()))
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let reply = self
            .call(wire::release(&self.inner.namespace, lease))
            .await?;
        wire::decode_release(reply).map_err(bad_reply(self.name()))
    }

    async fn revoke(&self, id: &KeyId, drain_timeout: Duration) -> Result<Revocation> {
        // An invalid timeout is returned, and audited, without sending anything.
        let revoked = match validate_duration(drain_timeout, "drain timeout longer than 366 days") {
            Ok(()) => match self.call(wire::revoke(&self.inner.namespace, id)).await {
                Ok(reply) => wire::decode_revoke(reply).map_err(bad_reply(self.name())),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let result = match revoked {
            Ok(None) => Err(Error::NotFound { id: id.clone() }),
            Ok(Some((newly_revoked, status))) => Ok(Revocation {
                newly_revoked,
                drain: self.drain(id, status, drain_timeout).await,
            }),
            Err(e) => Err(e),
        };
        audit::revoked(self.name(), id, &result);
        result
    }

    async fn rotate(
        &self,
        id: &KeyId,
        expected_version: u64,
        grace: Duration,
    ) -> Result<IssuedKey> {
        let minted = self.inner.codec.generate(id);
        let call = wire::rotate(
            &self.inner.namespace,
            id,
            expected_version,
            &minted.digest,
            grace,
        );
        // An invalid grace period is returned, and audited, without sending anything.
        let sent = match validate_duration(grace, "grace period longer than 366 days") {
            Ok(()) => self.call(call).await,
            Err(e) => Err(e),
        };
        let result = match sent {
            Ok(reply) => match wire::decode_rotate(reply).map_err(bad_reply(self.name())) {
                Ok(Rotated::Done(version)) => Ok(IssuedKey {
                    key: minted.key,
                    id: id.clone(),
                    version,
                }),
                Ok(Rotated::Missing) => Err(Error::NotFound { id: id.clone() }),
                Ok(Rotated::Revoked) => Err(Error::Revoked { id: id.clone() }),
                Ok(Rotated::Conflict(current_version)) => Err(Error::Conflict {
                    id: id.clone(),
                    current_version,
                }),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        audit::rotated(self.name(), id, result.as_ref().map(|k| k.version));
        result
    }

    async fn inspect(&self, id: &KeyId) -> Result<KeyInfo> {
        let reply = self.call(wire::inspect(&self.inner.namespace, id)).await?;
        wire::decode_inspect(reply, id)
            .map_err(bad_reply(self.name()))?
            .ok_or_else(|| Error::NotFound { id: id.clone() })
    }
}

#[cfg(feature = "redis-rs")]
impl RedisStore {
    /// Connects with the `redis` crate (backend name `redis`) to `url`
    /// (`redis://host:port/db`), through a `ConnectionManager` whose response
    /// timeout is the config's.
    ///
    /// Fails with [`Error::InvalidArgument`] for a bad URL (the URL is not repeated:
    /// it may hold a password) and [`Error::Unavailable`] when no connection can be
    /// made.
    pub async fn connect_redis_rs(url: &str, config: StoreConfig) -> Result<Self> {
        use redis::aio::{ConnectionManager, ConnectionManagerConfig};
        let client = redis::Client::open(url).map_err(|_| Error::InvalidArgument {
            what: "not a valid redis URL",
        })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.response_timeout));
        let conn = ConnectionManager::new_with_config(client, manager_config)
            .await
            .map_err(|e| Error::Unavailable {
                backend: crate::redis_rs::BACKEND,
                source: Box::new(e),
            })?;
        Ok(Self::from_redis_rs(conn, config))
    }

    /// A store on a `ConnectionManager` you built (backend name `redis`). Its
    /// response timeout is the one it was built with; without one a request to a
    /// server that stopped answering waits until the connection drops.
    pub fn from_redis_rs(conn: redis::aio::ConnectionManager, config: StoreConfig) -> Self {
        Self::from_transport(Box::new(crate::redis_rs::RedisRs::new(conn)), config)
    }
}

#[cfg(feature = "fred")]
impl RedisStore {
    /// Connects a pool of `pool_size` fred clients (backend name `fred`) to `url`
    /// (`redis://host:port/db`, or `redis-cluster://…` for a cluster) and waits
    /// until every client is connected.
    ///
    /// Fails with [`Error::InvalidArgument`] for a bad URL or pool size and
    /// [`Error::Unavailable`] when the first connection attempt fails. A TLS URL
    /// (`rediss://`, `valkeys://` and their cluster and sentinel forms) is refused
    /// with `InvalidArgument` before any connection is made: this crate builds fred
    /// without a TLS stack, and fred would otherwise connect in plain text and send
    /// the password in the clear. For TLS, build a pool with fred's TLS features and
    /// pass it to [`RedisStore::from_fred`].
    pub async fn connect_fred(url: &str, pool_size: usize, config: StoreConfig) -> Result<Self> {
        use fred::interfaces::ClientLike;
        use fred::types::config::{Config, ReconnectPolicy};
        use fred::types::Builder;
        if asks_for_tls(url) {
            return Err(Error::InvalidArgument {
                what: "TLS redis URLs need a fred pool built with a TLS feature (see from_fred)",
            });
        }
        let fred_config = Config::from_url(url).map_err(|_| Error::InvalidArgument {
            what: "not a valid redis URL",
        })?;
        let timeout = config.response_timeout;
        let pool = Builder::from_config(fred_config)
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
                // Every keylatch command already carries one write attempt and a
                // timeout; the pool-wide defaults say the same, so that no path can
                // fall back to fred's replaying default of three.
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| p.default_command_timeout = timeout)
            // Reconnect forever, backing off to one attempt a second: a store handle
            // outlives Redis restarts. Commands are never replayed (see the adapter).
            .set_policy(ReconnectPolicy::new_exponential(0, 10, 1_000, 2))
            .build_pool(pool_size)
            .map_err(|_| Error::InvalidArgument {
                what: "fred pool size must be at least 1",
            })?;
        pool.init().await.map_err(|e| Error::Unavailable {
            backend: crate::fred_adapter::BACKEND,
            source: Box::new(e),
        })?;
        // The store made this pool, so it also ends it when the last handle goes.
        let adapter = crate::fred_adapter::Fred::new(pool, config.response_timeout, true);
        Ok(Self::from_transport(Box::new(adapter), config))
    }

    /// A store on a fred pool you built and connected (backend name `fred`). Every
    /// command is sent with at most one write attempt and the config's response
    /// timeout, whatever the pool's defaults. The pool stays yours: dropping the store
    /// leaves it connected.
    pub fn from_fred(pool: fred::clients::Pool, config: StoreConfig) -> Self {
        let adapter = crate::fred_adapter::Fred::new(pool, config.response_timeout, false);
        Self::from_transport(Box::new(adapter), config)
    }
}

/// Whether a Redis URL's scheme asks for TLS (`rediss`, `valkeys`, with or without a
/// `-cluster` or `-sentinel` suffix), the way fred reads it. Schemes are
/// case-insensitive.
#[cfg(feature = "fred")]
fn asks_for_tls(url: &str) -> bool {
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme.trim());
    let scheme = scheme.to_ascii_lowercase();
    scheme.starts_with("rediss") || scheme.starts_with("valkeys")
}
