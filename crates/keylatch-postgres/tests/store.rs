//! The store's semantics on a live server, checked against what
//! `keylatch::model::KeyRecord` prescribes, plus its isolation-level guarantees.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use keylatch::{
    AtomicKeyStore, DenyReason, Drain, Error, Expiry, KeyCodec, KeyId, KeySpec, LeaseLost,
    RateLimit, Renewal, Timestamp, Verdict, MAX_CREDITS, MAX_DURATION,
};
use keylatch_postgres::{PgStore, PgStoreOptions, Schema};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor};

const HOUR: Duration = Duration::from_secs(3600);

fn reason<T: std::fmt::Debug>(v: &Verdict<T>) -> Option<DenyReason> {
    v.denial().map(|d| d.reason)
}

fn allowed<T: std::fmt::Debug>(v: Verdict<T>) -> T {
    match v {
        Verdict::Allowed(t) => t,
        Verdict::Denied(d) => panic!("denied: {d:?}"),
    }
}

/// Another handle on the same schema, built independently (its own pool).
async fn second_handle(server: &common::Server, store: &PgStore) -> PgStore {
    PgStore::connect_with(server.connect_options(), common::options(store.schema()))
        .await
        .expect("a second handle")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_verify_and_inspect_round_trip_every_field() {
    let server = common::server().await;
    let store = common::store(&server, "fields").await;
    let limit = RateLimit::new(5, Duration::new(60, 500), 7);
    let spec = KeySpec::new("tenant-42")
        .with_metadata("plan", "gold")
        .with_metadata("région", "eu-west ✓")
        .with_expiry(Expiry::In(HOUR))
        .with_rate_limit(limit)
        .with_quota(100);
    let issued = store.issue(&spec).await.expect("issue");
    assert_eq!(issued.version, 1);
    assert_eq!(issued.key.id(), &issued.id);

    let grant = allowed(
        store
            .verify(issued.key.expose_secret(), 3)
            .await
            .expect("verify"),
    );
    assert_eq!(grant.id, issued.id);
    assert_eq!(grant.subject, "tenant-42");
    assert_eq!((grant.version, grant.remaining_quota), (1, Some(97)));
    let state = grant.rate_limit.expect("limited");
    // A fresh key: three units of T = 12 s taken from a burst of seven.
    assert_eq!((state.limit, state.remaining), (7, 4));
    assert_eq!(state.reset_after, Duration::from_secs(36));

    let info = store.inspect(&issued.id).await.expect("inspect");
    assert_eq!(info.id, issued.id);
    assert_eq!(info.subject, "tenant-42");
    assert_eq!(info.metadata, spec.metadata);
    assert_eq!(info.version, 1);
    assert_eq!(
        info.expires_at,
        Some(info.created_at.saturating_add(HOUR)),
        "a relative expiry counts from the server's issue instant"
    );
    assert_eq!(info.revoked_at, None);
    assert_eq!(info.previous_valid_until, None);
    assert_eq!(
        (info.uses, info.quota, info.remaining_quota),
        (1, Some(100), Some(97))
    );
    assert_eq!(
        info.rate_limit,
        Some(limit),
        "the period keeps its nanoseconds"
    );
    assert_eq!((info.active_leases, info.fencing_token), (0, 0));
    let debug = format!("{store:?}");
    assert!(!debug.contains(issued.key.expose_secret()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_secrets_and_unknown_ids_are_unknown_and_change_nothing() {
    let server = common::server().await;
    let store = common::store(&server, "unknown").await;
    let issued = store.issue(&KeySpec::new("a")).await.expect("issue");
    // Same id, another secret: the key has no previous secret, so the comparison
    // with it is NULL in SQL, which must deny.
    let forged = KeyCodec::default().generate(&issued.id).key;
    let v = store
        .verify(forged.expose_secret(), 1)
        .await
        .expect("verdict");
    assert_eq!(reason(&v), Some(DenyReason::Unknown));
    assert_eq!(
        v.denial().and_then(|d| d.id.clone()),
        Some(issued.id.clone())
    );
    let stranger = KeyCodec::default().generate(&KeyId::random()).key;
    let v = store
        .verify(stranger.expose_secret(), 1)
        .await
        .expect("verdict");
    assert_eq!(reason(&v), Some(DenyReason::Unknown));
    let v = store
        .acquire(forged.expose_secret(), 1, HOUR)
        .await
        .expect("verdict");
    assert_eq!(reason(&v), Some(DenyReason::Unknown));
    let info = store.inspect(&issued.id).await.expect("inspect");
    assert_eq!(
        (info.uses, info.fencing_token, info.active_leases),
        (0, 0, 0)
    );
    assert!(matches!(
        store.inspect(&KeyId::random()).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_is_checked_after_revocation() {
    let server = common::server().await;
    let store = common::store(&server, "expiry").await;
    let past = KeySpec::new("a").with_expiry(Expiry::At(Timestamp::from_micros(1)));
    let issued = store.issue(&past).await.expect("issue");
    let key = issued.key.expose_secret();
    assert_eq!(
        reason(&store.verify(key, 1).await.expect("v")),
        Some(DenyReason::Expired)
    );
    store
        .revoke(&issued.id, Duration::ZERO)
        .await
        .expect("revoke");
    assert_eq!(
        reason(&store.verify(key, 1).await.expect("v")),
        Some(DenyReason::Revoked)
    );
    let info = store.inspect(&issued.id).await.expect("inspect");
    assert_eq!(info.expires_at, Some(Timestamp::from_micros(1)));
    assert_eq!(info.uses, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_is_exact_under_contention_across_handles() {
    let server = common::server().await;
    let first = common::store(&server, "quota").await;
    let mut handles = vec![first.clone()];
    for _ in 0..3 {
        handles.push(second_handle(&server, &first).await);
    }
    let issued = first
        .issue(&KeySpec::new("q").with_quota(25))
        .await
        .expect("issue");
    let key = Arc::new(issued.key.expose_secret().to_owned());
    let calls = (0..120).map(|i| {
        let store = handles[i % handles.len()].clone();
        let key = key.clone();
        tokio::spawn(async move { store.verify(&key, 1).await })
    });
    let verdicts: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("no error under contention"))
        .collect();
    let granted = verdicts.iter().filter(|v| v.is_allowed()).count();
    assert_eq!(granted, 25);
    assert!(verdicts
        .iter()
        .filter(|v| !v.is_allowed())
        .all(|v| reason(v) == Some(DenyReason::QuotaExhausted)));
    let info = first.inspect(&issued.id).await.expect("inspect");
    assert_eq!((info.uses, info.remaining_quota), (25, Some(0)));
    // A cost of zero still fits an empty quota.
    assert!(first.verify(&key, 0).await.expect("v").is_allowed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gcra_follows_the_model_in_integer_microseconds() {
    let server = common::server().await;
    let store = common::store(&server, "gcra").await;
    // T = 1 hour: nothing drifts measurably while the test runs.
    let limit = RateLimit::new(1, HOUR, 3);
    let spec = KeySpec::new("r").with_rate_limit(limit);

    // A cost above the burst never fits, and is refused as such (changing nothing).
    let fresh = store.issue(&spec).await.expect("issue");
    let v = store.verify(fresh.key.expose_secret(), 4).await.expect("v");
    assert_eq!(reason(&v), Some(DenyReason::CostExceedsBurst));
    // The whole burst at once: nothing left, full again after 3 T.
    let grant = allowed(store.verify(fresh.key.expose_secret(), 3).await.expect("v"));
    let state = grant.rate_limit.expect("limited");
    assert_eq!(
        (state.limit, state.remaining, state.reset_after),
        (3, 0, 3 * HOUR)
    );
    match reason(&store.verify(fresh.key.expose_secret(), 1).await.expect("v")) {
        Some(DenyReason::RateLimited { retry_after }) => {
            assert!(retry_after <= HOUR && retry_after > HOUR - Duration::from_secs(60));
        }
        other => panic!("{other:?}"),
    }

    // One at a time: the remaining count goes 2, 1, 0.
    let stepwise = store.issue(&spec).await.expect("issue");
    for expected in [2, 1, 0] {
        let grant = allowed(
            store
                .verify(stepwise.key.expose_secret(), 1)
                .await
                .expect("v"),
        );
        assert_eq!(grant.rate_limit.expect("limited").remaining, expected);
    }

    // A quota denial does not charge the rate limit: a cost-0 verify afterwards
    // still sees one interval used, not two.
    let both = store
        .issue(&spec.clone().with_quota(1))
        .await
        .expect("issue");
    let key = both.key.expose_secret();
    allowed(store.verify(key, 1).await.expect("v"));
    assert_eq!(
        reason(&store.verify(key, 1).await.expect("v")),
        Some(DenyReason::QuotaExhausted)
    );
    let grant = allowed(store.verify(key, 0).await.expect("v"));
    let state = grant.rate_limit.expect("limited");
    assert_eq!(state.remaining, 2);
    assert!(state.reset_after <= HOUR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_is_a_compare_and_set_across_handles() {
    let server = common::server().await;
    let first = common::store(&server, "rotate").await;
    let other = second_handle(&server, &first).await;
    let issued = first.issue(&KeySpec::new("r")).await.expect("issue");
    let racers = (0..16).map(|i| {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            other.clone()
        };
        let id = issued.id.clone();
        tokio::spawn(async move { store.rotate(&id, 1, Duration::ZERO).await })
    });
    let results: Vec<_> = join_all(racers)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(winners[0].version, 2);
    for r in &results {
        if let Err(e) = r {
            assert!(
                matches!(
                    e,
                    Error::Conflict {
                        current_version: 2,
                        ..
                    }
                ),
                "{e:?}"
            );
        }
    }
    let new_key = winners[0].key.expose_secret().to_owned();
    let old_key = issued.key.expose_secret();
    // No grace: the old secret stopped when rotate returned.
    assert_eq!(
        reason(&first.verify(old_key, 1).await.expect("v")),
        Some(DenyReason::Unknown)
    );
    assert_eq!(
        allowed(first.verify(&new_key, 1).await.expect("v")).version,
        2
    );

    // With grace, both work, and share the key's counters.
    let third = first.rotate(&issued.id, 2, HOUR).await.expect("rotate");
    assert_eq!(third.version, 3);
    assert!(first.verify(&new_key, 1).await.expect("v").is_allowed());
    assert!(first
        .verify(third.key.expose_secret(), 1)
        .await
        .expect("v")
        .is_allowed());
    let info = first.inspect(&issued.id).await.expect("inspect");
    assert_eq!((info.version, info.uses), (3, 3));
    assert!(info.previous_valid_until.is_some());
    // A further rotation ends the earlier grace at once.
    let fourth = first
        .rotate(&issued.id, 3, Duration::ZERO)
        .await
        .expect("rotate");
    assert_eq!(
        reason(&first.verify(&new_key, 1).await.expect("v")),
        Some(DenyReason::Unknown)
    );
    assert_eq!(
        reason(&first.verify(third.key.expose_secret(), 1).await.expect("v")),
        Some(DenyReason::Unknown)
    );
    assert!(first
        .verify(fourth.key.expose_secret(), 1)
        .await
        .expect("v")
        .is_allowed());
    assert_eq!(
        first
            .inspect(&issued.id)
            .await
            .expect("i")
            .previous_valid_until,
        None
    );

    assert!(matches!(
        first.rotate(&KeyId::random(), 1, Duration::ZERO).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        first.rotate(&issued.id, u64::MAX, Duration::ZERO).await,
        Err(Error::Conflict {
            current_version: 4,
            ..
        })
    ));
    // Revoked beats a stale version: a revoked key is never rotated back to life.
    first
        .revoke(&issued.id, Duration::ZERO)
        .await
        .expect("revoke");
    assert!(matches!(
        first.rotate(&issued.id, 1, Duration::ZERO).await,
        Err(Error::Revoked { .. })
    ));
    assert!(matches!(
        first.rotate(&issued.id, 4, Duration::ZERO).await,
        Err(Error::Revoked { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_fence_renew_release_and_prune() {
    let server = common::server().await;
    let store = common::store(&server, "leases").await;
    let issued = store.issue(&KeySpec::new("l")).await.expect("issue");
    let key = issued.key.expose_secret();
    let a = allowed(store.acquire(key, 1, HOUR).await.expect("a")).lease;
    let b = allowed(store.acquire(key, 1, HOUR).await.expect("a")).lease;
    assert_eq!((a.fencing_token, b.fencing_token), (1, 2));
    assert_eq!((&a.key_id, &b.key_id), (&issued.id, &issued.id));
    let info = store.inspect(&issued.id).await.expect("inspect");
    assert_eq!(
        (info.active_leases, info.fencing_token, info.uses),
        (2, 2, 2)
    );

    match store.renew(&a, 2 * HOUR).await.expect("renew") {
        Renewal::Renewed { expires_at } => assert!(expires_at > a.expires_at),
        other => panic!("{other:?}"),
    }
    store.release(&b).await.expect("release");
    store.release(&b).await.expect("releasing twice is fine");
    assert_eq!(
        store.renew(&b, HOUR).await.expect("renew"),
        Renewal::Lost(LeaseLost::Gone)
    );

    // A lease with no time is over at once: not live, not renewable.
    let c = allowed(store.acquire(key, 1, Duration::ZERO).await.expect("a")).lease;
    assert_eq!(c.fencing_token, 3);
    assert_eq!(store.inspect(&issued.id).await.expect("i").active_leases, 1);
    assert_eq!(
        store.renew(&c, HOUR).await.expect("renew"),
        Renewal::Lost(LeaseLost::Gone)
    );

    // An expired key keeps its leases but cannot renew them.
    let soon = store
        .issue(&KeySpec::new("l").with_expiry(Expiry::At(Timestamp::from_micros(1))))
        .await
        .expect("issue");
    assert_eq!(
        reason(
            &store
                .acquire(soon.key.expose_secret(), 1, HOUR)
                .await
                .expect("a")
        ),
        Some(DenyReason::Expired)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoke_stops_everything_and_reports_the_drain_honestly() {
    let server = common::server().await;
    let store = common::store(&server, "revoke").await;
    let issued = store.issue(&KeySpec::new("v")).await.expect("issue");
    let key = issued.key.expose_secret().to_owned();
    let lease = allowed(store.acquire(&key, 1, HOUR).await.expect("a")).lease;

    let r = store
        .revoke(&issued.id, Duration::from_millis(50))
        .await
        .expect("revoke");
    assert!(r.newly_revoked);
    assert_eq!(r.drain, Drain::TimedOut { outstanding: 1 });
    assert_eq!(
        reason(&store.verify(&key, 1).await.expect("v")),
        Some(DenyReason::Revoked)
    );
    assert_eq!(
        reason(&store.acquire(&key, 1, HOUR).await.expect("a")),
        Some(DenyReason::Revoked)
    );
    assert_eq!(
        store.renew(&lease, HOUR).await.expect("r"),
        Renewal::Lost(LeaseLost::Revoked)
    );
    let info = store.inspect(&issued.id).await.expect("inspect");
    assert!(info.revoked_at.is_some());
    assert_eq!((info.active_leases, info.uses), (1, 1));

    // A second revoke waits for the same drain, and sees the release.
    let waiting = {
        let store = store.clone();
        let id = issued.id.clone();
        tokio::spawn(async move { store.revoke(&id, Duration::from_secs(30)).await })
    };
    store.release(&lease).await.expect("release");
    let started = std::time::Instant::now();
    let r = waiting.await.expect("task").expect("revoke");
    assert!(!r.newly_revoked);
    assert_eq!(r.drain, Drain::Drained);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        store.inspect(&issued.id).await.expect("i").revoked_at,
        info.revoked_at
    );

    // A lease that runs out by itself also ends the drain.
    let short = store.issue(&KeySpec::new("v")).await.expect("issue");
    allowed(
        store
            .acquire(short.key.expose_secret(), 1, Duration::from_millis(200))
            .await
            .expect("a"),
    );
    let r = store
        .revoke(&short.id, Duration::from_secs(30))
        .await
        .expect("revoke");
    assert_eq!(r.drain, Drain::Drained);

    assert!(matches!(
        store.revoke(&KeyId::random(), Duration::ZERO).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_arguments_fail_before_any_io() {
    let server = common::server().await;
    let store = common::store(&server, "args").await;
    let issued = store.issue(&KeySpec::new("a")).await.expect("issue");
    let key = issued.key.expose_secret();
    let too_long = MAX_DURATION + Duration::from_secs(1);
    let invalid = |r: keylatch::Result<()>| matches!(r, Err(Error::InvalidArgument { .. }));
    assert!(invalid(store.verify(key, MAX_CREDITS + 1).await.map(drop)));
    assert!(invalid(store.acquire(key, 1, too_long).await.map(drop)));
    assert!(invalid(store.revoke(&issued.id, too_long).await.map(drop)));
    assert!(invalid(
        store.rotate(&issued.id, 1, too_long).await.map(drop)
    ));
    assert!(invalid(
        store.issue(&KeySpec::new("x".repeat(257))).await.map(drop)
    ));
    assert!(invalid(
        store.issue(&KeySpec::new("nul\0inside")).await.map(drop)
    ));
    assert!(invalid(
        store
            .issue(&KeySpec::new("a").with_metadata("k", "v\0"))
            .await
            .map(drop)
    ));
    assert!(invalid(
        PgStore::connect("not a url", PgStoreOptions::new())
            .await
            .map(drop)
    ));
    assert_eq!(store.inspect(&issued.id).await.expect("i").uses, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemas_are_separate_and_migrate_concurrently() {
    let server = common::server().await;
    let schema = common::fresh_schema("migrate");
    // Inside tokio::spawn, which also proves that building a store is a Send future.
    let opens = (0..4).map(|_| {
        let options = common::options(&schema);
        let connect = server.connect_options();
        tokio::spawn(async move { PgStore::connect_with(connect, options).await })
    });
    let stores: Vec<PgStore> = join_all(opens)
        .await
        .into_iter()
        .map(|r| {
            r.expect("task")
                .expect("concurrent first connections all succeed")
        })
        .collect();
    let issued = stores[0].issue(&KeySpec::new("m")).await.expect("issue");
    assert!(stores[3]
        .verify(issued.key.expose_secret(), 1)
        .await
        .expect("v")
        .is_allowed());

    let elsewhere = common::store(&server, "elsewhere").await;
    assert_eq!(
        reason(
            &elsewhere
                .verify(issued.key.expose_secret(), 1)
                .await
                .expect("v")
        ),
        Some(DenyReason::Unknown)
    );
    // Migrating again is a no-op.
    stores[1].migrate().await.expect("migrate again");
    // A store built without migrations on a schema that has none fails loudly
    // (a server error), never with a verdict.
    let bare = PgStore::connect_with(
        server.connect_options(),
        PgStoreOptions::new()
            .schema(common::fresh_schema("bare"))
            .run_migrations(false),
    )
    .await
    .expect("connects");
    let err = bare
        .verify(issued.key.expose_secret(), 1)
        .await
        .expect_err("no tables");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(Schema::new("Not-Valid").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_role_without_create_rights_runs_in_a_schema_made_for_it() {
    // The "existing database" setup: a DBA makes the schema and hands it to the
    // application's role, which may not create schemas itself.
    let server = common::server().await;
    let tag = format!("{:016x}", rand::random::<u64>());
    let (role, password, schema) = (
        format!("kl_app_{tag}"),
        format!("pw{tag}"),
        format!("kl_given_{tag}"),
    );
    let mut admin = sqlx::PgConnection::connect_with(&server.connect_options())
        .await
        .expect("admin connection");
    // Names and password made here from hex digits: safe to write into statements.
    for statement in [
        format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        format!("CREATE SCHEMA {schema} AUTHORIZATION {role}"),
    ] {
        admin.execute(statement.as_str()).await.expect("setup");
    }
    let as_app = server.connect_options().username(&role).password(&password);
    let given = PgStore::connect_with(
        as_app.clone(),
        common::options(&Schema::new(&schema).expect("valid")),
    )
    .await
    .expect("migrates into the schema it was given");
    let issued = given.issue(&KeySpec::new("app")).await.expect("issue");
    assert!(given
        .verify(issued.key.expose_secret(), 1)
        .await
        .expect("v")
        .is_allowed());

    // The same role cannot make a schema of its own: a clear server error.
    let err = PgStore::connect_with(as_app, common::options(&common::fresh_schema("denied")))
        .await
        .expect_err("no right to create a schema");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
}

/// The isolation guarantees: no 40001 or 40P01 reaches the caller, whatever the
/// database's default isolation level.
mod isolation {
    use super::*;

    /// A database whose default isolation is SERIALIZABLE, on the test server.
    async fn serializable_database(server: &common::Server) -> sqlx::postgres::PgConnectOptions {
        let name = format!("kl_serializable_{:016x}", rand::random::<u64>());
        let mut admin = sqlx::PgConnection::connect_with(&server.connect_options())
            .await
            .expect("admin connection");
        // The name is made here from hex digits: safe to write into the statement.
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        admin
            .execute(
                format!("ALTER DATABASE {name} SET default_transaction_isolation = 'serializable'")
                    .as_str(),
            )
            .await
            .expect("alter database");
        server.connect_options().database(&name)
    }

    /// Many verifies, acquires and releases on one key at once, through `handles`.
    async fn hammer(handles: &[PgStore], key: &str) -> Vec<keylatch::Result<bool>> {
        let calls = (0..96).map(|i| {
            let store = handles[i % handles.len()].clone();
            let key = key.to_owned();
            tokio::spawn(async move {
                if i % 3 == 0 {
                    let v = store.acquire(&key, 1, HOUR).await?;
                    if let Verdict::Allowed(g) = &v {
                        store.release(&g.lease).await?;
                    }
                    Ok(v.is_allowed())
                } else {
                    Ok(store.verify(&key, 1).await?.is_allowed())
                }
            })
        });
        join_all(calls)
            .await
            .into_iter()
            .map(|r| r.expect("task"))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_serializable_database_default_changes_nothing() {
        let server = common::server().await;
        let db = serializable_database(&server).await;
        let schema = common::fresh_schema("ser");
        // Pools the store builds pin READ COMMITTED on every connection.
        let pinned = PgStore::connect_with(db.clone(), common::options(&schema))
            .await
            .expect("store");
        // A pool from elsewhere, with SERIALIZABLE asked for explicitly as well.
        let foreign_pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(db.options([("default_transaction_isolation", "serializable")]))
            .await
            .expect("pool");
        let foreign = PgStore::from_pool(foreign_pool, common::options(&schema))
            .await
            .expect("store");
        // The pin is in force: the store's connections run at READ COMMITTED, the
        // foreign pool's at the SERIALIZABLE it asked for (so its operations take the
        // explicit-transaction path).
        for (store, expected) in [(&pinned, "read committed"), (&foreign, "serializable")] {
            let level: String =
                sqlx::query_scalar("SELECT current_setting('transaction_isolation')")
                    .fetch_one(store.pool())
                    .await
                    .expect("query");
            assert_eq!(level, expected);
        }
        let issued = pinned
            .issue(&KeySpec::new("s").with_quota(50))
            .await
            .expect("issue");
        let results = hammer(
            &[pinned.clone(), foreign.clone()],
            issued.key.expose_secret(),
        )
        .await;
        let granted = results
            .iter()
            .map(|r| *r.as_ref().expect("no serialization failure or deadlock"))
            .filter(|ok| *ok)
            .count();
        assert_eq!(granted, 50);
        let info = foreign.inspect(&issued.id).await.expect("inspect");
        assert_eq!(
            (info.uses, info.remaining_quota, info.active_leases),
            (50, Some(0), 0)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_statements_refuse_to_run_where_a_serialization_failure_could_arise() {
        // The situation that produces 40001: a SERIALIZABLE transaction whose
        // snapshot predates a committed change to the row it then writes.
        let server = common::server().await;
        let store = common::store(&server, "gate").await;
        let issued = store.issue(&KeySpec::new("g")).await.expect("issue");
        let presented = KeyCodec::default()
            .parse(issued.key.expose_secret())
            .expect("well-formed");
        let verify_sql = [
            include_str!("../sql/admit.sql"),
            include_str!("../sql/verify.sql"),
        ]
        .concat()
        .replace("{schema}", &format!("\"{}\"", store.schema()));

        let mut conn = sqlx::PgConnection::connect_with(&server.connect_options())
            .await
            .expect("connect");
        let mut tx = conn
            .begin_with("BEGIN ISOLATION LEVEL SERIALIZABLE")
            .await
            .expect("begin");
        tx.execute("SELECT 1").await.expect("takes the snapshot");
        assert!(store
            .verify(issued.key.expose_secret(), 1)
            .await
            .expect("v")
            .is_allowed());

        // keylatch's verify in that transaction: it declines, touching nothing.
        let row = sqlx::query(&verify_sql)
            .bind(presented.id.as_str())
            .bind(presented.digest.as_bytes().to_vec())
            .bind(1_i64)
            .fetch_one(&mut *tx)
            .await
            .expect("no error: the statement declines instead");
        let gate_ok: bool = sqlx::Row::get(&row, "gate_ok");
        let outcome: Option<String> = sqlx::Row::get(&row, "outcome");
        assert_eq!((gate_ok, outcome), (false, None));

        // A plain write of the same row in the same transaction does fail with
        // 40001: the situation is real, and the gate is what avoids it.
        let err = sqlx::query(&format!(
            "UPDATE \"{}\".keys SET uses = uses + 1 WHERE id = $1",
            store.schema()
        ))
        .bind(presented.id.as_str())
        .execute(&mut *tx)
        .await
        .expect_err("a serialization failure");
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("40001"));
        drop(tx);
        assert_eq!(store.inspect(&issued.id).await.expect("i").uses, 1);
    }
}

/// No secret reaches a log line (keylatch's audit events and sqlx's own statement
/// logging, at TRACE), an error or a Debug string.
mod no_secrets {
    use std::io::Write;
    use std::sync::Mutex;

    use keylatch::{Prefix, CHECK_LEN, SECRET_LEN};
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Collects everything the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    fn secret_of(key: &str) -> String {
        key[key.len() - SECRET_LEN - CHECK_LEN..].to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_path_logs_or_shows_a_secret() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(captured.clone())
            .with_ansi(false)
            .finish();
        // Global, not per thread: a thread-local subscriber competes with the other
        // tests' threads for tracing's per-callsite cache, and sqlx's events can then
        // be filtered out before they reach it. The other tests' events land here
        // too, which does no harm.
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");

        let server = common::server().await;
        let codec =
            KeyCodec::new(Prefix::new("acme").expect("valid")).with_pepper(b"pepper-42".to_vec());
        let options = common::options(&common::fresh_schema("secrets")).codec(codec);
        let store = PgStore::connect_with(server.connect_options(), options.clone())
            .await
            .expect("store");
        let spec = KeySpec::new("tenant")
            .with_quota(2)
            .with_rate_limit(RateLimit::new(1, Duration::from_secs(60), 2));
        let issued = store.issue(&spec).await.expect("issue");
        let key = issued.key.expose_secret().to_owned();
        let mut secrets = vec![secret_of(&key), "pepper-42".to_owned()];
        let mut shown = vec![
            format!("{issued:?}"),
            format!("{store:?}"),
            format!("{options:?}"),
        ];
        for _ in 0..3 {
            shown.push(format!("{:?}", store.verify(&key, 1).await));
        }
        let mut bad_check = key.clone();
        bad_check.pop();
        for probe in [bad_check, format!("{key}x"), key.replace("acme", "other")] {
            shown.push(format!("{:?}", store.verify(&probe, 1).await));
            shown.push(format!("{:?}", store.acquire(&probe, 1, HOUR).await));
        }
        let forged = KeyCodec::new(Prefix::new("acme").expect("valid")).generate(&issued.id);
        shown.push(format!(
            "{:?}",
            store.verify(forged.key.expose_secret(), 1).await
        ));
        let rotated = store.rotate(&issued.id, 1, HOUR).await.expect("rotate");
        secrets.push(secret_of(rotated.key.expose_secret()));
        shown.push(format!("{rotated:?}"));
        shown.push(format!("{:?}", store.rotate(&issued.id, 1, HOUR).await));
        shown.push(format!(
            "{:?}",
            store.acquire(rotated.key.expose_secret(), 0, HOUR).await
        ));
        shown.push(format!(
            "{:?}",
            store.revoke(&issued.id, Duration::from_millis(10)).await
        ));
        shown.push(format!("{:?}", store.verify(&key, 1).await));
        shown.push(format!("{:?}", store.inspect(&issued.id).await));
        shown.push(format!("{:?}", store.issue(&KeySpec::new("nul\0")).await));
        drop(store);

        let logged =
            String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("utf-8 log");
        assert!(
            logged.contains("keylatch::audit"),
            "the audit events were captured"
        );
        assert!(
            logged.contains("sqlx::query"),
            "sqlx's statement log was captured"
        );
        assert!(logged.contains(issued.id.as_str()));
        for secret in &secrets {
            assert!(!logged.contains(secret.as_str()), "a secret was logged");
            for s in &shown {
                assert!(!s.contains(secret.as_str()), "a secret was shown: {s}");
            }
        }
    }
}
