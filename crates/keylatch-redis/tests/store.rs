//! The Redis store against a real Redis (a container of each test's own), on both
//! client adapters: the semantics, SCRIPT FLUSH mid-run, the TTL of every key
//! written, malformed keys never reaching Redis, and failures that are reported,
//! never replayed.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keylatch::{
    AtomicKeyStore, DenyReason, Drain, Error, Expiry, KeyCodec, KeyId, KeySpec, LeaseLost, Prefix,
    RateLimit, Renewal, Timestamp, Verdict,
};
use keylatch_redis::{Namespace, RedisStore, StoreConfig};
use support::{info_calls, open, unique_namespace, Adapter, Server, ADAPTERS};

fn config(ns: &Namespace) -> StoreConfig {
    StoreConfig::default().namespace(ns.clone())
}

fn reason<T>(v: &Verdict<T>) -> Option<DenyReason> {
    v.denial().map(|d| d.reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_follows_the_model_in_order() {
    let server = Server::start().await;
    for adapter in ADAPTERS {
        let ns = unique_namespace("verify");
        let store = open(adapter, &server.url(), config(&ns)).await;
        assert_eq!(
            store.backend(),
            match adapter {
                Adapter::RedisRs => "redis",
                Adapter::Fred => "fred",
            }
        );
        let spec = KeySpec::new("alice")
            .with_metadata("team", "blue")
            .with_metadata("tier", "gold")
            .with_quota(5);
        let issued = store.issue(&spec).await.expect("issues");
        assert_eq!(issued.version, 1);
        let key = issued.key.expose_secret();

        let Verdict::Allowed(grant) = store.verify(key, 3).await.expect("verifies") else {
            panic!("{adapter:?}: first verify denied")
        };
        assert_eq!(grant.id, issued.id);
        assert_eq!(grant.subject, "alice");
        assert_eq!(grant.version, 1);
        assert_eq!(grant.remaining_quota, Some(2));
        assert_eq!(grant.rate_limit, None);

        let denied = store.verify(key, 3).await.expect("verifies");
        assert_eq!(reason(&denied), Some(DenyReason::QuotaExhausted));
        // A zero cost always fits the quota.
        assert!(store.verify(key, 0).await.expect("verifies").is_allowed());

        // Same id, another secret: unknown, and nothing charged.
        let impostor = KeyCodec::default().generate(&issued.id).key;
        let denied = store.verify(impostor.expose_secret(), 1).await.expect("ok");
        assert_eq!(reason(&denied), Some(DenyReason::Unknown));
        // An id never issued.
        let stranger = KeyCodec::default().generate(&KeyId::random()).key;
        let denied = store.verify(stranger.expose_secret(), 1).await.expect("ok");
        assert_eq!(reason(&denied), Some(DenyReason::Unknown));

        let info = store.inspect(&issued.id).await.expect("inspects");
        assert_eq!(info.uses, 2);
        assert_eq!((info.quota, info.remaining_quota), (Some(5), Some(2)));
        assert_eq!(info.subject, "alice");
        assert_eq!(
            info.metadata,
            BTreeMap::from([
                ("team".to_owned(), "blue".to_owned()),
                ("tier".to_owned(), "gold".to_owned())
            ])
        );
        assert_eq!(
            (info.version, info.expires_at, info.revoked_at),
            (1, None, None)
        );
        assert_eq!((info.active_leases, info.fencing_token), (0, 0));
        assert!(info.created_at > Timestamp::EPOCH);

        // Cost bounds are checked before any I/O.
        assert!(matches!(
            store.verify(key, keylatch::MAX_CREDITS + 1).await,
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            store.inspect(&KeyId::random()).await,
            Err(Error::NotFound { .. })
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_revocation_deny_in_the_models_order() {
    let server = Server::start().await;
    for adapter in ADAPTERS {
        let ns = unique_namespace("expiry");
        let store = open(adapter, &server.url(), config(&ns)).await;
        let past = store
            .issue(&KeySpec::new("a").with_expiry(Expiry::At(Timestamp::from_micros(1))))
            .await
            .expect("issues");
        let denied = store.verify(past.key.expose_secret(), 1).await.expect("ok");
        assert_eq!(reason(&denied), Some(DenyReason::Expired));
        let info = store.inspect(&past.id).await.expect("inspects");
        assert_eq!(info.expires_at, Some(Timestamp::from_micros(1)));
        assert_eq!(info.uses, 0);

        let relative = store
            .issue(&KeySpec::new("a").with_expiry(Expiry::In(Duration::from_secs(3600))))
            .await
            .expect("issues");
        assert!(store
            .verify(relative.key.expose_secret(), 1)
            .await
            .expect("ok")
            .is_allowed());
        let info = store.inspect(&relative.id).await.expect("inspects");
        let expires = info.expires_at.expect("has an expiry");
        assert_eq!(
            expires.as_micros() - info.created_at.as_micros(),
            3_600_000_000
        );

        // Revocation is checked before expiry.
        let revocation = store
            .revoke(&past.id, Duration::ZERO)
            .await
            .expect("revokes");
        assert!(revocation.newly_revoked);
        assert_eq!(revocation.drain, Drain::Drained);
        let denied = store.verify(past.key.expose_secret(), 1).await.expect("ok");
        assert_eq!(reason(&denied), Some(DenyReason::Revoked));
        let again = store
            .revoke(&past.id, Duration::ZERO)
            .await
            .expect("revokes");
        assert!(!again.newly_revoked);
        let info = store.inspect(&past.id).await.expect("inspects");
        assert!(info.revoked_at.is_some());
        assert!(matches!(
            store.revoke(&KeyId::random(), Duration::ZERO).await,
            Err(Error::NotFound { .. })
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_gcra_on_the_servers_clock() {
    let server = Server::start().await;
    for adapter in ADAPTERS {
        let ns = unique_namespace("rate");
        let store = open(adapter, &server.url(), config(&ns)).await;
        // One per hour with a burst of 3: nothing refills during the test.
        let limit = RateLimit::new(1, Duration::from_secs(3600), 3);
        let issued = store
            .issue(&KeySpec::new("a").with_rate_limit(limit))
            .await
            .expect("issues");
        let key = issued.key.expose_secret();
        let hour = Duration::from_secs(3600);
        for expected_remaining in [2, 1, 0] {
            let Verdict::Allowed(g) = store.verify(key, 1).await.expect("ok") else {
                panic!("{adapter:?}: denied inside the burst")
            };
            let state = g.rate_limit.expect("rate limited key");
            assert_eq!((state.limit, state.remaining), (3, expected_remaining));
            // Each unit takes one hour to drain; a few microseconds have passed.
            let units: u32 = 3 - expected_remaining;
            assert!(state.reset_after <= hour * units);
            assert!(state.reset_after > hour * units - Duration::from_secs(10));
        }
        let denied = store.verify(key, 1).await.expect("ok");
        let Some(DenyReason::RateLimited { retry_after }) = reason(&denied) else {
            panic!("{adapter:?}: not rate limited: {denied:?}")
        };
        assert!(retry_after <= hour && retry_after > hour - Duration::from_secs(10));
        // A cost above the burst can never fit: its own denial at the rate-limit
        // step (the quota of 10 would take it), on verify and acquire alike, and
        // nothing changes.
        let issued = store
            .issue(&KeySpec::new("b").with_rate_limit(limit).with_quota(10))
            .await
            .expect("issues");
        let key = issued.key.expose_secret();
        let before = store.inspect(&issued.id).await.expect("inspects");
        let denied = store.verify(key, 4).await.expect("ok");
        assert_eq!(reason(&denied), Some(DenyReason::CostExceedsBurst));
        assert_eq!(
            denied.denial().and_then(|d| d.id.clone()),
            Some(issued.id.clone())
        );
        let denied = store.acquire(key, 4, hour).await.expect("ok");
        assert_eq!(reason(&denied), Some(DenyReason::CostExceedsBurst));
        assert_eq!(
            store.inspect(&issued.id).await.expect("inspects"),
            before,
            "{adapter:?}"
        );
        assert_eq!((before.uses, before.remaining_quota), (0, Some(10)));
        assert_eq!(before.rate_limit, Some(limit));
        // The whole burst still fits.
        let Verdict::Allowed(g) = store.verify(key, 3).await.expect("ok") else {
            panic!("{adapter:?}: a cost equal to the burst was denied")
        };
        assert_eq!(g.rate_limit.map(|s| s.remaining), Some(0));
        assert_eq!(g.remaining_quota, Some(7));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_compare_and_set_with_grace() {
    let server = Server::start().await;
    for adapter in ADAPTERS {
        let ns = unique_namespace("rotate");
        let store = Arc::new(open(adapter, &server.url(), config(&ns)).await);
        let issued = store
            .issue(&KeySpec::new("a").with_quota(100))
            .await
            .expect("issues");
        let v2 = store
            .rotate(&issued.id, 1, Duration::ZERO)
            .await
            .expect("rotates");
        assert_eq!(v2.version, 2);
        let old = store
            .verify(issued.key.expose_secret(), 1)
            .await
            .expect("ok");
        assert_eq!(reason(&old), Some(DenyReason::Unknown));
        let Verdict::Allowed(g) = store.verify(v2.key.expose_secret(), 1).await.expect("ok") else {
            panic!("{adapter:?}: new secret denied")
        };
        assert_eq!(g.version, 2);
        assert!(matches!(
            store.rotate(&issued.id, 1, Duration::ZERO).await,
            Err(Error::Conflict {
                current_version: 2,
                ..
            })
        ));

        // With grace, the old secret keeps working and shares the quota.
        let v3 = store
            .rotate(&issued.id, 2, Duration::from_secs(600))
            .await
            .expect("rotates");
        assert!(store
            .verify(v2.key.expose_secret(), 1)
            .await
            .expect("ok")
            .is_allowed());
        assert!(store
            .verify(v3.key.expose_secret(), 1)
            .await
            .expect("ok")
            .is_allowed());
        let info = store.inspect(&issued.id).await.expect("inspects");
        assert_eq!(info.version, 3);
        assert_eq!(info.remaining_quota, Some(97));
        assert!(info.previous_valid_until.is_some());
        // A rotation without grace ends the previous grace at once.
        let v4 = store
            .rotate(&issued.id, 3, Duration::ZERO)
            .await
            .expect("rotates");
        let old = store.verify(v2.key.expose_secret(), 1).await.expect("ok");
        assert_eq!(reason(&old), Some(DenyReason::Unknown));
        let old = store.verify(v3.key.expose_secret(), 1).await.expect("ok");
        assert_eq!(reason(&old), Some(DenyReason::Unknown));
        assert_eq!(
            store
                .inspect(&issued.id)
                .await
                .expect("inspects")
                .previous_valid_until,
            None
        );

        // Of eight racing rotations from the same version, exactly one wins.
        let racers = (0..8).map(|_| {
            let store = Arc::clone(&store);
            let id = issued.id.clone();
            tokio::spawn(async move { store.rotate(&id, v4.version, Duration::ZERO).await })
        });
        let mut wins = 0;
        for racer in racers {
            match racer.await.expect("joins") {
                Ok(k) => {
                    assert_eq!(k.version, 5);
                    wins += 1;
                }
                Err(Error::Conflict {
                    current_version: 5, ..
                }) => {}
                Err(other) => panic!("{adapter:?}: {other:?}"),
            }
        }
        assert_eq!(wins, 1);

        store
            .revoke(&issued.id, Duration::ZERO)
            .await
            .expect("revokes");
        assert!(matches!(
            store.rotate(&issued.id, 5, Duration::ZERO).await,
            Err(Error::Revoked { .. })
        ));
        assert!(matches!(
            store.rotate(&KeyId::random(), 1, Duration::ZERO).await,
            Err(Error::NotFound { .. })
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_fence_renew_release_and_drain() {
    let server = Server::start().await;
    for adapter in ADAPTERS {
        let ns = unique_namespace("lease");
        let store = Arc::new(open(adapter, &server.url(), config(&ns)).await);
        let issued = store
            .issue(&KeySpec::new("a").with_quota(10))
            .await
            .expect("issues");
        let key = issued.key.expose_secret();
        let long = Duration::from_secs(60);
        let Verdict::Allowed(a) = store.acquire(key, 2, long).await.expect("ok") else {
            panic!("{adapter:?}: acquire denied")
        };
        let Verdict::Allowed(b) = store.acquire(key, 1, long).await.expect("ok") else {
            panic!("{adapter:?}: acquire denied")
        };
        assert_eq!((a.lease.fencing_token, b.lease.fencing_token), (1, 2));
        assert_eq!(a.grant.remaining_quota, Some(8));
        assert_eq!(b.lease.key_id, issued.id);
        let info = store.inspect(&issued.id).await.expect("inspects");
        assert_eq!(
            (info.active_leases, info.fencing_token, info.uses),
            (2, 2, 2)
        );

        let Renewal::Renewed { expires_at } = store.renew(&a.lease, long * 2).await.expect("ok")
        else {
            panic!("{adapter:?}: renew failed")
        };
        assert!(expires_at > a.lease.expires_at);
        store.release(&b.lease).await.expect("releases");
        store
            .release(&b.lease)
            .await
            .expect("releasing twice is fine");
        assert_eq!(
            store.renew(&b.lease, long).await.expect("ok"),
            Renewal::Lost(LeaseLost::Gone)
        );

        // Revoke with lease `a` held: the drain times out and says so.
        let revocation = store
            .revoke(&issued.id, Duration::from_millis(30))
            .await
            .expect("revokes");
        assert_eq!(revocation.drain, Drain::TimedOut { outstanding: 1 });
        assert_eq!(
            store.renew(&a.lease, long).await.expect("ok"),
            Renewal::Lost(LeaseLost::Revoked)
        );
        let denied = store.acquire(key, 1, long).await.expect("ok");
        assert_eq!(reason(&denied), Some(DenyReason::Revoked));

        // A second revoke waits for the drain; releasing the lease ends it.
        let waiting = {
            let store = Arc::clone(&store);
            let id = issued.id.clone();
            tokio::spawn(async move { store.revoke(&id, Duration::from_secs(30)).await })
        };
        store.release(&a.lease).await.expect("releases");
        let revocation = waiting.await.expect("joins").expect("revokes");
        assert!(!revocation.newly_revoked);
        assert_eq!(revocation.drain, Drain::Drained);

        // A lease that expires by itself also ends the drain, with no release.
        let other = store.issue(&KeySpec::new("b")).await.expect("issues");
        let short = Duration::from_millis(300);
        let Verdict::Allowed(_) = store
            .acquire(other.key.expose_secret(), 1, short)
            .await
            .expect("ok")
        else {
            panic!("{adapter:?}: acquire denied")
        };
        let started = tokio::time::Instant::now();
        let revocation = store
            .revoke(&other.id, Duration::from_secs(30))
            .await
            .expect("revokes");
        assert_eq!(revocation.drain, Drain::Drained);
        assert!(started.elapsed() < Duration::from_secs(10));

        // A lease on a key never issued is simply gone.
        let mut ghost = a.lease.clone();
        ghost.key_id = KeyId::random();
        assert_eq!(
            store.renew(&ghost, long).await.expect("ok"),
            Renewal::Lost(LeaseLost::Gone)
        );
        store.release(&ghost).await.expect("releases");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_handles_see_each_others_effects() {
    let server = Server::start().await;
    let ns = unique_namespace("handles");
    let a = open(Adapter::RedisRs, &server.url(), config(&ns)).await;
    let b = open(Adapter::Fred, &server.url(), config(&ns)).await;
    let c = open(Adapter::RedisRs, &server.url(), config(&ns)).await;
    let issued = a
        .issue(&KeySpec::new("x").with_quota(3))
        .await
        .expect("issues");
    assert!(b
        .verify(issued.key.expose_secret(), 2)
        .await
        .expect("ok")
        .is_allowed());
    let info = c.inspect(&issued.id).await.expect("inspects");
    assert_eq!((info.uses, info.remaining_quota), (1, Some(1)));
    c.revoke(&issued.id, Duration::ZERO).await.expect("revokes");
    let denied = a.verify(issued.key.expose_secret(), 1).await.expect("ok");
    assert_eq!(reason(&denied), Some(DenyReason::Revoked));

    // Another namespace on the same server sees none of it.
    let elsewhere = open(
        Adapter::Fred,
        &server.url(),
        config(&unique_namespace("elsewhere")),
    )
    .await;
    assert!(matches!(
        elsewhere.inspect(&issued.id).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn script_flush_mid_run_costs_nothing_and_charges_nothing_twice() {
    let server = Server::start().await;
    let mut raw = server.raw().await;
    for adapter in ADAPTERS {
        let ns = unique_namespace("flush");
        let store = Arc::new(open(adapter, &server.url(), config(&ns)).await);
        const QUOTA: u64 = 150;
        const ATTEMPTS: u64 = 240;
        let issued = store
            .issue(&KeySpec::new("a").with_quota(QUOTA))
            .await
            .expect("issues");
        let loads_before = info_calls(&mut raw, "script|load").await;
        let allowed = Arc::new(AtomicU64::new(0));
        let attempts = Arc::new(AtomicU64::new(0));
        // The flusher runs whenever a worker has made progress, so flushes land in
        // the middle of the run rather than before or after it.
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                let key = issued.key.expose_secret().to_owned();
                let allowed = Arc::clone(&allowed);
                let attempts = Arc::clone(&attempts);
                let progress_tx = progress_tx.clone();
                tokio::spawn(async move {
                    while attempts.fetch_add(1, Ordering::SeqCst) < ATTEMPTS {
                        match store.verify(&key, 1).await {
                            Ok(v) if v.is_allowed() => {
                                let n = allowed.fetch_add(1, Ordering::SeqCst) + 1;
                                let _ = progress_tx.send(n);
                            }
                            Ok(v) => {
                                assert_eq!(reason(&v), Some(DenyReason::QuotaExhausted))
                            }
                            Err(e) => panic!("a verify failed across SCRIPT FLUSH: {e:?}"),
                        }
                    }
                })
            })
            .collect();
        drop(progress_tx);
        let mut flushes = 0;
        let mut next_flush_at = 10;
        while let Some(n) = progress_rx.recv().await {
            if n >= next_flush_at && flushes < 6 {
                let _: () = redis::cmd("SCRIPT")
                    .arg("FLUSH")
                    .query_async(&mut raw)
                    .await
                    .expect("SCRIPT FLUSH");
                flushes += 1;
                next_flush_at = n + 20;
            }
        }
        for w in workers {
            w.await.expect("worker finished without error");
        }
        assert_eq!(flushes, 6, "{adapter:?}: the flushes did not land mid-run");
        let info = store.inspect(&issued.id).await.expect("inspects");
        let allowed = allowed.load(Ordering::SeqCst);
        assert_eq!(allowed, QUOTA, "{adapter:?}");
        assert_eq!(info.uses, allowed, "{adapter:?}: uses differ from allowed");
        assert_eq!(info.remaining_quota, Some(0));
        // The scripts really were reloaded after the flushes.
        let loads = info_calls(&mut raw, "script|load").await - loads_before;
        assert!(
            loads >= flushes,
            "{adapter:?}: {loads} loads for {flushes} flushes"
        );
    }
}

/// Every key under `ns` with its type and PTTL.
async fn keys_under(
    raw: &mut redis::aio::MultiplexedConnection,
    ns: &Namespace,
) -> BTreeMap<String, (String, i64)> {
    let mut out = BTreeMap::new();
    let mut cursor: u64 = 0;
    // SCAN visits every key present for the whole scan; bounded by the key count.
    for _ in 0..10_000 {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}:*", ns.as_str()))
            .arg("COUNT")
            .arg(100)
            .query_async(raw)
            .await
            .expect("SCAN");
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(raw)
                .await
                .expect("TYPE");
            let pttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(raw)
                .await
                .expect("PTTL");
            out.insert(key, (kind, pttl));
        }
        if next == 0 {
            return out;
        }
        cursor = next;
    }
    panic!("SCAN did not finish");
}

/// The TTL rule of the design: records (`:rec`, hashes) have no TTL; lease sets
/// (`:leases`, sorted sets) always have one; nothing else exists. Returns every
/// key that breaks it.
fn ttl_violations(keys: &BTreeMap<String, (String, i64)>) -> Vec<String> {
    keys.iter()
        .filter(|(name, (kind, pttl))| {
            let ok = (name.ends_with(":rec") && kind == "hash" && *pttl == -1)
                || (name.ends_with(":leases") && kind == "zset" && *pttl > 0);
            !ok
        })
        .map(|(name, (kind, pttl))| format!("{name} ({kind}, pttl {pttl})"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_written_has_the_ttl_the_design_says() {
    let server = Server::start().await;
    let mut raw = server.raw().await;
    for adapter in ADAPTERS {
        let ns = unique_namespace("ttl");
        let store = open(adapter, &server.url(), config(&ns)).await;
        let limit = RateLimit::new(100, Duration::from_secs(1), 10);
        let full = KeySpec::new("a")
            .with_metadata("m", "v")
            .with_expiry(Expiry::In(Duration::from_secs(3600)))
            .with_rate_limit(limit)
            .with_quota(100);
        // Every script, each path that writes.
        let a = store.issue(&full).await.expect("issues");
        let b = store.issue(&KeySpec::new("b")).await.expect("issues");
        let key_a = a.key.expose_secret();
        assert!(store.verify(key_a, 1).await.expect("ok").is_allowed());
        let long = Duration::from_secs(120);
        let Verdict::Allowed(l1) = store.acquire(key_a, 1, long).await.expect("ok") else {
            panic!("denied")
        };
        let Verdict::Allowed(l2) = store.acquire(key_a, 1, long).await.expect("ok") else {
            panic!("denied")
        };
        let Verdict::Allowed(l3) = store
            .acquire(b.key.expose_secret(), 1, long)
            .await
            .expect("ok")
        else {
            panic!("denied")
        };
        let _ = store.renew(&l1.lease, long * 2).await.expect("renews");
        // Renewing to a shorter end moves the set's TTL down with its last lease.
        let _ = store
            .renew(&l2.lease, Duration::from_secs(30))
            .await
            .expect("renews");
        store.release(&l3.lease).await.expect("releases");
        let rotated = store
            .rotate(&a.id, 1, Duration::from_secs(60))
            .await
            .expect("rotates");
        assert!(store
            .verify(rotated.key.expose_secret(), 1)
            .await
            .expect("ok")
            .is_allowed());
        let _ = store.inspect(&a.id).await.expect("inspects");
        let _ = store.revoke(&a.id, Duration::ZERO).await.expect("revokes");
        let _ = store.revoke(&b.id, Duration::ZERO).await.expect("revokes");

        let keys = keys_under(&mut raw, &ns).await;
        let a_leases = format!("{}:{{{}}}:leases", ns.as_str(), a.id);
        let mut expected: Vec<String> = vec![
            a_leases.clone(),
            format!("{}:{{{}}}:rec", ns.as_str(), a.id),
            format!("{}:{{{}}}:rec", ns.as_str(), b.id),
        ];
        expected.sort();
        // b's lease set vanished with its last lease.
        assert_eq!(keys.keys().cloned().collect::<Vec<_>>(), expected);
        assert_eq!(ttl_violations(&keys), Vec::<String>::new(), "{adapter:?}");
        // The lease set expires with its last lease (l1, about 240 s), not before.
        let (_, pttl) = &keys[&a_leases];
        assert!(*pttl > 200_000 && *pttl <= 240_001, "pttl {pttl}");
    }

    // The rule is able to fail: a lease set without a TTL, or a stray key, is caught.
    let ns = unique_namespace("ttl-planted");
    let _: () = redis::cmd("ZADD")
        .arg(format!("{}:{{x}}:leases", ns.as_str()))
        .arg(1)
        .arg("l")
        .query_async(&mut raw)
        .await
        .expect("ZADD");
    let _: () = redis::cmd("SET")
        .arg(format!("{}:{{x}}:stray", ns.as_str()))
        .arg(1)
        .query_async(&mut raw)
        .await
        .expect("SET");
    assert_eq!(ttl_violations(&keys_under(&mut raw, &ns).await).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_keys_never_reach_redis() {
    let server = Server::start().await;
    let mut raw = server.raw().await;
    for adapter in ADAPTERS {
        let ns = unique_namespace("malformed");
        let store = open(adapter, &server.url(), config(&ns)).await;
        let good = store.issue(&KeySpec::new("a")).await.expect("issues");
        let text = good.key.expose_secret().to_owned();
        let mut bad_check = text.clone();
        bad_check.pop();
        bad_check.push(if text.ends_with('0') { '1' } else { '0' });
        let other_prefix = KeyCodec::new(Prefix::new("other").expect("valid"))
            .generate(&good.id)
            .key;
        let oversized = "k".repeat(1 << 20);
        let malformed = [
            oversized.as_str(),
            "",
            "kl_",
            "kl_abc def",
            "kl_é",
            &text[..text.len() - 1],
            &bad_check,
            other_prefix.expose_secret(),
        ];
        // With every script cached, one call is exactly one EVALSHA.
        store.load_scripts().await.expect("loads");
        let before = info_calls(&mut raw, "evalsha").await;
        for key in malformed {
            let v = store.verify(key, 1).await.expect("a verdict, not an error");
            assert_eq!(reason(&v), Some(DenyReason::Malformed));
            assert_eq!(v.denial().and_then(|d| d.id.clone()), None);
            let v = store
                .acquire(key, 1, Duration::from_secs(1))
                .await
                .expect("a verdict, not an error");
            assert_eq!(reason(&v), Some(DenyReason::Malformed));
        }
        assert_eq!(info_calls(&mut raw, "evalsha").await, before, "{adapter:?}");
        // The counter does see a well-formed key, so the check above can fail.
        assert!(store.verify(&text, 1).await.expect("ok").is_allowed());
        assert_eq!(info_calls(&mut raw, "evalsha").await, before + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_is_outcome_unknown_and_never_replayed() {
    let server = Server::start().await;
    for adapter in ADAPTERS {
        let ns = unique_namespace("unknown");
        let cfg = config(&ns).response_timeout(Duration::from_millis(300));
        let store = open(adapter, &server.url(), cfg).await;
        let issued = store
            .issue(&KeySpec::new("a").with_quota(10))
            .await
            .expect("issues");
        let key = issued.key.expose_secret();
        // Warm the script cache so that the frozen call is a single EVALSHA.
        assert!(store.verify(key, 1).await.expect("ok").is_allowed());

        server.freeze().await;
        // The outer bound turns a missing client timeout into a failure, not a hang.
        let result = tokio::time::timeout(Duration::from_secs(10), store.verify(key, 1))
            .await
            .expect("the store's own response timeout fires");
        server.resume().await;
        assert!(
            matches!(result, Err(Error::OutcomeUnknown { .. })),
            "{adapter:?}: {result:?}"
        );
        assert!(!result.as_ref().err().is_some_and(Error::is_retry_safe));

        // The request reached the server before it froze, so it runs once on resume.
        // There is no signal for that, so look for it, within a bound.
        let mut uses = 0;
        for _ in 0..200 {
            match store.inspect(&issued.id).await {
                Ok(info) if info.uses >= 2 => {
                    uses = info.uses;
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
        assert_eq!(uses, 2, "{adapter:?}: the lost call did not run once");
        // One more call is charged once: the lost one was not sent again.
        let Verdict::Allowed(g) = store.verify(key, 1).await.expect("ok") else {
            panic!("{adapter:?}: denied")
        };
        assert_eq!(g.remaining_quota, Some(7), "{adapter:?}");
        let info = store.inspect(&issued.id).await.expect("inspects");
        assert_eq!(info.uses, 3, "{adapter:?}: a call was charged twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_is_unavailable_not_a_verdict() {
    // A port nothing listens on: bind it, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let cfg = StoreConfig::default().response_timeout(Duration::from_secs(2));
    assert!(matches!(
        RedisStore::connect_redis_rs(&url, cfg.clone()).await,
        Err(Error::Unavailable { .. })
    ));
    assert!(matches!(
        RedisStore::connect_fred(&url, 1, cfg.clone()).await,
        Err(Error::Unavailable { .. })
    ));
    assert!(matches!(
        RedisStore::connect_redis_rs("not a url", cfg).await,
        Err(Error::InvalidArgument { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_url_on_fred_is_refused_before_any_connection() {
    // fred built without a TLS stack would connect to this listener in plain text and
    // send AUTH with the password; the store must refuse the URL instead.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("address").port();
    let cfg = StoreConfig::default().response_timeout(Duration::from_secs(2));
    for scheme in [
        "rediss",
        "REDISS",
        "rediss-cluster",
        "valkeys",
        "valkeys-sentinel",
    ] {
        let url = format!("{scheme}://:hunter2@127.0.0.1:{port}/");
        let result = RedisStore::connect_fred(&url, 1, cfg.clone()).await;
        assert!(
            matches!(result, Err(Error::InvalidArgument { .. })),
            "{scheme}: {result:?}"
        );
    }
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a connection was made: {accepted:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_a_store_leaves_the_callers_fred_pool_connected() {
    use fred::interfaces::{ClientLike, KeysInterface};
    use fred::types::config::Config;
    use fred::types::Builder;

    let server = Server::start().await;
    let pool = Builder::from_config(Config::from_url(&server.url()).expect("url"))
        .build_pool(1)
        .expect("pool");
    pool.init().await.expect("connects");
    pool.set::<(), _, _>("app:own", "v", None, None, false)
        .await
        .expect("the application's own write");

    let ns = unique_namespace("from-fred");
    let store = RedisStore::from_fred(pool.clone(), config(&ns));
    let issued = store.issue(&KeySpec::new("a")).await.expect("issues");
    assert!(store
        .verify(issued.key.expose_secret(), 1)
        .await
        .expect("verifies")
        .is_allowed());
    drop(store);
    // On this one-threaded runtime, anything the drop spawned runs here, before the
    // application's next command is sent.
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }

    let read = tokio::time::timeout(Duration::from_secs(5), pool.get::<String, _>("app:own")).await;
    assert!(
        matches!(&read, Ok(Ok(v)) if v == "v"),
        "the pool no longer answers: {read:?}"
    );
    assert!(pool.clients().iter().all(|c| c.is_connected()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_shows_no_secret() {
    let server = Server::start().await;
    for adapter in ADAPTERS {
        let ns = unique_namespace("debug");
        let codec = KeyCodec::default().with_pepper(b"pepper-hunter2".to_vec());
        let store = open(adapter, &server.url(), config(&ns).codec(codec)).await;
        let issued = store.issue(&KeySpec::new("a")).await.expect("issues");
        let text = issued.key.expose_secret();
        let secret = &text[text.len() - keylatch::SECRET_LEN - keylatch::CHECK_LEN..];
        for shown in [format!("{store:?}"), format!("{issued:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
