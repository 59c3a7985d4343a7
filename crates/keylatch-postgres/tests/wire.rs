//! What goes over the wire: round trips per operation, keys that must never be sent,
//! and connections that break with a request in flight. A counting proxy on
//! 127.0.0.1 stands between the store and the server (see `common::proxy`).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::proxy::{Fault, Proxy};
use keylatch::{AtomicKeyStore, DenyReason, Error, KeyCodec, KeyId, KeySpec, Verdict};
use keylatch_postgres::{PgStore, PgStoreOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// A proxy in front of the server, and connect options that go through it.
async fn proxied(server: &common::Server) -> (Proxy, PgConnectOptions) {
    let direct = server.connect_options();
    let upstream: SocketAddr = format!("127.0.0.1:{}", direct.get_port())
        .parse()
        .expect("a socket address");
    assert!(
        matches!(direct.get_host(), "127.0.0.1" | "localhost"),
        "tests talk to 127.0.0.1 only"
    );
    let proxy = Proxy::start(upstream).await;
    let through = direct.host("127.0.0.1").port(proxy.port());
    (proxy, through)
}

/// A one-connection store through the proxy, so that every count is one connection's.
async fn proxied_store(server: &common::Server, tag: &str) -> (Proxy, PgStore) {
    let (proxy, through) = proxied(server).await;
    let schema = common::fresh_schema(tag);
    let store = PgStore::connect_with(through, common::options(&schema).max_connections(1))
        .await
        .expect("connects through the proxy");
    (proxy, store)
}

/// Round trips one call costs once its statement is prepared on the connection: the
/// call runs once to prepare (the first call on a connection costs one more round
/// trip, once), then again, counted.
async fn round_trips<T, F, Fut>(proxy: &Proxy, call: F) -> (u64, T)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let _ = call().await;
    proxy.reset();
    let result = call().await;
    (proxy.round_trips(), result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_one_round_trip() {
    let server = common::server().await;
    let (proxy, store) = proxied_store(&server, "rt").await;
    let spec = KeySpec::new("rt").with_quota(1_000);
    let issued = store.issue(&spec).await.expect("issue");
    let key = issued.key.expose_secret().to_owned();
    let ttl = Duration::from_secs(60);

    let (n, v) = round_trips(&proxy, || store.verify(&key, 1)).await;
    assert!(v.expect("verify").is_allowed());
    assert_eq!(n, 1, "verify");

    let (n, a) = round_trips(&proxy, || store.acquire(&key, 1, ttl)).await;
    let lease = match a.expect("acquire") {
        Verdict::Allowed(g) => g.lease,
        other => panic!("acquire denied: {other:?}"),
    };
    assert_eq!(n, 1, "acquire");

    let (n, r) = round_trips(&proxy, || store.renew(&lease, ttl)).await;
    assert!(matches!(
        r.expect("renew"),
        keylatch::Renewal::Renewed { .. }
    ));
    assert_eq!(n, 1, "renew");

    let (n, r) = round_trips(&proxy, || store.release(&lease)).await;
    r.expect("release");
    assert_eq!(n, 1, "release");

    let (n, r) = round_trips(&proxy, || store.inspect(&issued.id)).await;
    r.expect("inspect");
    assert_eq!(n, 1, "inspect");

    // Rotate with a version that has moved: the same statement, a conflict answer.
    let (n, r) = round_trips(&proxy, || store.rotate(&issued.id, 99, Duration::ZERO)).await;
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    assert_eq!(n, 1, "rotate");

    let (n, r) = round_trips(&proxy, || store.issue(&spec)).await;
    r.expect("issue");
    assert_eq!(n, 1, "issue");

    // A key that never had a lease: the revoke statement is the whole revoke.
    let fresh = store.issue(&spec).await.expect("issue");
    let other = store.issue(&spec).await.expect("issue");
    store
        .revoke(&other.id, Duration::ZERO)
        .await
        .expect("prepares the revoke statement");
    proxy.reset();
    store
        .revoke(&fresh.id, Duration::ZERO)
        .await
        .expect("revoke");
    assert_eq!(proxy.round_trips(), 1, "revoke without leases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_sees_extra_round_trips() {
    // The same verify through a pool that costs more round trips, to show that the
    // count above would catch them.
    let server = common::server().await;
    let (proxy, through) = proxied(&server).await;
    let schema = common::fresh_schema("rt_more");
    let key = {
        let store = PgStore::connect_with(through.clone(), common::options(&schema))
            .await
            .expect("connects");
        store.issue(&KeySpec::new("x")).await.expect("issue")
    };
    let key = key.key.expose_secret().to_owned();

    // Connections that default to SERIALIZABLE: the statement declines to run (one
    // round trip), then BEGIN, the statement, COMMIT.
    let serializable = PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(through.options([("default_transaction_isolation", "serializable")]))
        .await
        .expect("connects");
    let store = PgStore::from_pool(serializable, common::options(&schema))
        .await
        .expect("store");
    let (n, v) = round_trips(&proxy, || store.verify(&key, 1)).await;
    assert!(v.expect("verify").is_allowed());
    assert_eq!(n, 4, "gate + BEGIN + verify + COMMIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_that_charges_or_revokes_commits_asynchronously() {
    // A session with synchronous_commit = off (no wait for the disk) or local (no
    // wait for synchronous standbys): verify, acquire, revoke and rotate decline and
    // run again in a transaction that commits synchronously, because a crash or a
    // failover must not undo an acknowledged charge, fencing token or revocation.
    let server = common::server().await;
    for setting in ["off", "local"] {
        weak_commit_is_upgraded(&server, setting).await;
    }
}

async fn weak_commit_is_upgraded(server: &common::Server, setting: &str) {
    let (proxy, through) = proxied(server).await;
    let schema = common::fresh_schema(&format!("commit_{setting}"));
    let store = PgStore::connect_with(
        through.options([("synchronous_commit", setting)]),
        common::options(&schema).max_connections(1),
    )
    .await
    .expect("connects");
    let level: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(store.pool())
        .await
        .expect("show");
    assert_eq!(level, setting);
    let issued = store.issue(&KeySpec::new("a")).await.expect("issue");
    let key = issued.key.expose_secret().to_owned();

    let (n, v) = round_trips(&proxy, || store.verify(&key, 1)).await;
    assert!(v.expect("verify").is_allowed());
    assert_eq!(n, 4, "verify: gate + BEGIN + verify + COMMIT");

    // A key of its own, so that the revoke below has no lease to drain.
    let leased = store.issue(&KeySpec::new("l")).await.expect("issue");
    let leased = leased.key.expose_secret().to_owned();
    let (n, v) = round_trips(&proxy, || store.acquire(&leased, 1, Duration::from_secs(1))).await;
    assert!(v.expect("acquire").is_allowed());
    assert_eq!(n, 4, "acquire: gate + BEGIN + acquire + COMMIT");

    let (n, r) = round_trips(&proxy, || store.rotate(&issued.id, 99, Duration::ZERO)).await;
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    assert_eq!(n, 4, "rotate: gate + BEGIN + rotate + COMMIT");

    let (n, r) = round_trips(&proxy, || store.revoke(&issued.id, Duration::ZERO)).await;
    r.expect("revoke");
    assert_eq!(n, 4, "revoke: gate + BEGIN + revoke + COMMIT");

    // The session's own setting is untouched afterwards (SET LOCAL semantics).
    let level: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(store.pool())
        .await
        .expect("show");
    assert_eq!(level, setting);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_keys_never_reach_the_database() {
    let server = common::server().await;
    let (proxy, store) = proxied_store(&server, "malformed").await;
    let good = store.issue(&KeySpec::new("m")).await.expect("issue");
    let good = good.key.expose_secret().to_owned();
    let other_prefix = KeyCodec::new(keylatch::Prefix::new("other").expect("valid"))
        .generate(&KeyId::random())
        .key;
    let mut bad_check = good.clone();
    let last = bad_check.pop().expect("non-empty");
    bad_check.push(if last == '0' { '1' } else { '0' });
    let oversized = "k".repeat(1 << 20);
    let inputs = [
        oversized.as_str(),
        "",
        "kl_",
        "not a key at all",
        "kl_é",
        other_prefix.expose_secret(),
        bad_check.as_str(),
        &good[..good.len() - 1],
    ];

    proxy.reset();
    for input in inputs {
        let verdict = store
            .verify(input, 1)
            .await
            .expect("a verdict, not an error");
        assert_eq!(
            verdict.denial().map(|d| (d.reason, d.id.is_none())),
            Some((DenyReason::Malformed, true)),
        );
        let verdict = store
            .acquire(input, 1, Duration::from_secs(1))
            .await
            .expect("a verdict, not an error");
        assert_eq!(
            verdict.denial().map(|d| d.reason),
            Some(DenyReason::Malformed)
        );
    }
    assert_eq!(
        proxy.round_trips(),
        0,
        "a malformed key reached the database"
    );
    assert_eq!(proxy.connections(), 0);

    // The counter is live: a well-formed key does go to the database.
    assert!(store.verify(&good, 1).await.expect("verify").is_allowed());
    assert!(proxy.round_trips() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_keys_are_denied_with_no_server_at_all() {
    // A pool aimed at a port nobody listens on: any I/O would be an error.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = nobody.local_addr().expect("addr").port();
    drop(nobody);
    let options = PgConnectOptions::new().host("127.0.0.1").port(port);
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy_with(options);
    let store = PgStore::from_pool(pool, PgStoreOptions::new().run_migrations(false))
        .await
        .expect("no I/O yet");
    let verdict = store.verify(&"x".repeat(1 << 20), 1).await.expect("no I/O");
    assert_eq!(
        verdict.denial().map(|d| d.reason),
        Some(DenyReason::Malformed)
    );
    assert_eq!(store.pool().size(), 0, "a connection was opened");

    // A well-formed key does try the server, and fails closed before sending.
    let key = KeyCodec::default().generate(&KeyId::random()).key;
    let err = store
        .verify(key.expose_secret(), 1)
        .await
        .expect_err("no server");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.is_retry_safe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_after_sending_is_outcome_unknown_and_not_replayed() {
    let server = common::server().await;
    let (proxy, store) = proxied_store(&server, "cut").await;
    let direct = common::options(store.schema());
    let direct = PgStore::connect_with(server.connect_options(), direct)
        .await
        .expect("a direct handle");
    let issued = store
        .issue(&KeySpec::new("c").with_quota(10))
        .await
        .expect("issue");
    let key = issued.key.expose_secret().to_owned();
    assert!(store.verify(&key, 1).await.expect("warm").is_allowed());

    proxy.reset();
    proxy.arm(Fault::CutAfterSend).await;
    let err = store
        .verify(&key, 1)
        .await
        .expect_err("the connection was cut");
    assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err:?}");
    assert!(!err.is_retry_safe());
    // Sent once, never again behind the caller's back.
    assert_eq!(proxy.round_trips(), 1);

    // The server did run it: that is why the outcome must be reported as unknown.
    proxy.withheld_reply_done().await;
    let info = direct.inspect(&issued.id).await.expect("inspect");
    assert_eq!((info.uses, info.remaining_quota), (2, Some(8)));

    // The broken connection was discarded; the next call opens a fresh one.
    assert!(store.verify(&key, 1).await.expect("recovers").is_allowed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_verdict_is_returned_before_the_commit_is_acknowledged() {
    // The server sends a statement's result row before its transaction commits; only
    // the ReadyForQuery that follows says the commit is done (and, with synchronous
    // commit, on disk). A revoke reported before that could be lost in a crash.
    let server = common::server().await;
    let (proxy, through) = proxied(&server).await;
    let schema = common::fresh_schema("commit_ack");
    let store = PgStore::connect_with(
        through,
        common::options(&schema)
            .max_connections(1)
            .request_timeout(Duration::from_millis(300)),
    )
    .await
    .expect("connects");
    let issued = store.issue(&KeySpec::new("a")).await.expect("issue");
    let key = issued.key.expose_secret().to_owned();
    assert!(store.verify(&key, 1).await.expect("warm").is_allowed());
    let other = store.issue(&KeySpec::new("b")).await.expect("issue");
    store
        .revoke(&other.id, Duration::ZERO)
        .await
        .expect("prepares revoke");

    for fault_on in ["verify", "revoke"] {
        proxy.arm(Fault::WithholdCommitAck).await;
        let err = match fault_on {
            "verify" => store.verify(&key, 1).await.map(drop),
            _ => store.revoke(&issued.id, Duration::ZERO).await.map(drop),
        }
        .expect_err("the row alone is not an answer");
        assert!(
            matches!(err, Error::OutcomeUnknown { .. }),
            "{fault_on}: {err:?}"
        );
        proxy.withheld_reply_done().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_is_outcome_unknown_after_the_timeout() {
    let server = common::server().await;
    let (proxy, through) = proxied(&server).await;
    let schema = common::fresh_schema("stall");
    let store = PgStore::connect_with(
        through,
        common::options(&schema)
            .max_connections(1)
            .request_timeout(Duration::from_millis(300)),
    )
    .await
    .expect("connects");
    let issued = store.issue(&KeySpec::new("s")).await.expect("issue");
    let key = issued.key.expose_secret().to_owned();
    assert!(store.verify(&key, 1).await.expect("warm").is_allowed());

    proxy.arm(Fault::Stall).await;
    let err = store.verify(&key, 1).await.expect_err("no reply");
    assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err:?}");
    proxy.withheld_reply_done().await;
    let info = store.inspect(&issued.id).await.expect("a fresh connection");
    assert_eq!(info.uses, 2, "the unanswered verify was applied once");
}
