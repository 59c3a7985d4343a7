//! Expiry on the store's clock, and keys that are unknown or not keys at all.

use std::sync::Arc;
use std::time::Duration;

use keylatch::{
    DenyReason, Error, Expiry, KeyCodec, KeyId, KeySpec, Lease, LeaseId, LeaseLost, Prefix,
    Renewal, Timestamp, Verdict,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::revoke::expect_reason;
use super::{Ctx, Round};
use crate::history::Epoch;

/// A key expiring a random 150-350 ms after it is issued: every verify that ends
/// before that instant is allowed, every one that starts after it is `Expired`.
/// Absolute expiries are read against the store's own clock.
pub async fn expiry(ctx: &Ctx) -> Round {
    const TASKS: usize = 4;
    let mut round = Round::default();
    let mut rng = StdRng::seed_from_u64(ctx.seed);
    let lifetime = Duration::from_millis(rng.gen_range(150..350));
    let store = &ctx.store;
    let epoch = Epoch::now();
    let spec = KeySpec::new("expiring").with_expiry(Expiry::In(lifetime));
    let issue = epoch.record(store.issue(&spec)).await;
    let Some(issued) = round.must("issue", issue.output) else {
        return round;
    };
    let (earliest, latest) = (issue.invoke + lifetime, issue.ret + lifetime);
    let stop = latest + Duration::from_millis(50);
    let key: Arc<str> = Arc::from(issued.key.expose_secret());
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move {
                let mut calls = Vec::new();
                while epoch.elapsed() < stop && calls.len() < 5_000 {
                    calls.push(epoch.record(store.verify(&key, 1)).await);
                    // Pacing: the scenario samples the timeline, it need not flood it.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                calls
            })
        })
        .collect();
    let mut calls = Vec::new();
    for t in tasks {
        match t.await {
            Ok(c) => calls.extend(c),
            Err(e) => round.violation(format!("verify task panicked: {e}")),
        }
    }
    round.raced(&calls);
    for call in &calls {
        match &call.output {
            Ok(Verdict::Allowed(_)) if call.invoke > latest => round.violation(format!(
                "allowed {:?} after the expiry",
                call.invoke - latest
            )),
            Ok(Verdict::Denied(d)) if d.reason == DenyReason::Expired && call.ret < earliest => {
                round.violation(format!(
                    "expired {:?} before the expiry",
                    earliest - call.ret
                ))
            }
            Ok(Verdict::Allowed(_)) => {}
            Ok(Verdict::Denied(d)) if d.reason == DenyReason::Expired => {}
            Ok(other) => round.violation(format!("expiring key: {other:?}")),
            Err(e) => round.violation(format!("verify failed: {e:?}")),
        }
    }
    expect_reason(
        &mut round,
        store.verify(&key, 1).await,
        DenyReason::Expired,
        "after the expiry",
    );

    // Absolute expiries, against the store's clock as `inspect` reports it.
    let Some(probe) = round.must("issue", store.issue(&KeySpec::new("clock")).await) else {
        return round;
    };
    let Some(info) = round.must("inspect", store.inspect(&probe.id).await) else {
        return round;
    };
    let store_now = info.created_at;
    let past = KeySpec::new("past").with_expiry(Expiry::At(store_now));
    let future = KeySpec::new("future").with_expiry(Expiry::At(
        store_now.saturating_add(Duration::from_secs(3600)),
    ));
    for (spec, expected) in [(past, Some(DenyReason::Expired)), (future, None)] {
        let Some(k) = round.must("issue", store.issue(&spec).await) else {
            return round;
        };
        match (
            round.must("verify", store.verify(k.key.expose_secret(), 1).await),
            expected,
        ) {
            (Some(Verdict::Allowed(_)), None) | (None, _) => {}
            (Some(Verdict::Denied(d)), Some(reason)) if d.reason == reason => {}
            (Some(v), _) => round.violation(format!("{}: {v:?}", spec.subject)),
        }
        if let Some(info) = round.must("inspect", store.inspect(&k.id).await) {
            if info.expires_at
                != spec.expiry.and_then(|e| match e {
                    Expiry::At(t) => Some(t),
                    Expiry::In(_) => None,
                })
            {
                round.violation(format!(
                    "{}: inspect shows expiry {:?}",
                    spec.subject, info.expires_at
                ));
            }
        }
    }
    round
}

/// Unknown but well-formed keys are `Unknown`; every kind of malformed input is
/// `Malformed`; none of them creates or changes any state.
pub async fn unknown_and_malformed(ctx: &Ctx) -> Round {
    let mut round = Round::default();
    let store = &ctx.store;
    let Some(issued) = round.must("issue", store.issue(&KeySpec::new("real")).await) else {
        return round;
    };
    let real = issued.key.expose_secret();
    // The suite does not know the store's prefix; the issued key tells it.
    let prefix = real.split('_').next().unwrap_or_default();
    let Ok(prefix) = Prefix::new(prefix) else {
        round.violation("the store issued a key whose prefix is not valid");
        return round;
    };
    let codec = KeyCodec::new(prefix);
    let stranger = KeyId::random();
    let unknown_id = codec.generate(&stranger).key;
    let wrong_secret = codec.generate(&issued.id).key;
    for (what, key) in [
        ("unknown id", unknown_id.expose_secret()),
        ("wrong secret", wrong_secret.expose_secret()),
    ] {
        expect_reason(
            &mut round,
            store.verify(key, 1).await,
            DenyReason::Unknown,
            what,
        );
        match round.must(
            "acquire",
            store.acquire(key, 1, Duration::from_secs(1)).await,
        ) {
            Some(Verdict::Denied(d)) if d.reason == DenyReason::Unknown => {}
            Some(other) => round.violation(format!("acquire with {what}: {other:?}")),
            None => {}
        }
    }

    let other_prefix = if codec.prefix().as_str() == "zz" {
        "yy"
    } else {
        "zz"
    };
    let foreign = KeyCodec::new(Prefix::new(other_prefix).unwrap_or_default())
        .generate(&issued.id)
        .key;
    let mut bad_check = real.to_owned();
    let last = bad_check.pop().unwrap_or('0');
    bad_check.push(if last == '0' { '1' } else { '0' });
    let mut oversized = real.to_owned();
    oversized.push_str(&"A".repeat(1 << 20));
    let non_ascii = format!("{}é", &real[..real.len() - 1]);
    let malformed: [(&str, String); 9] = [
        ("bad checksum", bad_check),
        ("wrong prefix", foreign.expose_secret().to_owned()),
        ("truncated by one", real[..real.len() - 1].to_owned()),
        ("truncated to half", real[..real.len() / 2].to_owned()),
        ("oversized (1 MiB)", oversized),
        ("non-ASCII", non_ascii),
        ("empty", String::new()),
        ("trailing newline", format!("{real}\n")),
        ("no separators", real.replace('_', "")),
    ];
    for (what, key) in &malformed {
        match round.must("verify", store.verify(key, 1).await) {
            Some(Verdict::Denied(d)) if d.reason == DenyReason::Malformed && d.id.is_none() => {}
            Some(other) => round.violation(format!("{what}: {other:?}, expected Malformed")),
            None => {}
        }
        match round.must(
            "acquire",
            store.acquire(key, 1, Duration::from_secs(1)).await,
        ) {
            Some(Verdict::Denied(d)) if d.reason == DenyReason::Malformed => {}
            Some(other) => {
                round.violation(format!("acquire {what}: {other:?}, expected Malformed"))
            }
            None => {}
        }
    }
    match store.verify(real, u64::MAX).await {
        Err(Error::InvalidArgument { .. }) => {}
        other => round.violation(format!(
            "a cost of u64::MAX gave {other:?}, expected InvalidArgument"
        )),
    }

    // Nothing above changed the real key or created the stranger.
    if let Some(info) = round.must("inspect", store.inspect(&issued.id).await) {
        if info.uses != 0 || info.version != 1 || info.active_leases != 0 {
            round.violation(format!(
                "refused requests changed the key: {} uses, version {}, {} leases",
                info.uses, info.version, info.active_leases
            ));
        }
    }
    let fake_lease = Lease {
        id: LeaseId::random(),
        key_id: stranger.clone(),
        fencing_token: 1,
        expires_at: Timestamp::EPOCH,
    };
    round.op();
    match store.inspect(&stranger).await {
        Err(Error::NotFound { .. }) => {}
        other => round.violation(format!("inspect of an unknown id: {other:?}")),
    }
    round.op();
    match store.revoke(&stranger, Duration::ZERO).await {
        Err(Error::NotFound { .. }) => {}
        other => round.violation(format!("revoke of an unknown id: {other:?}")),
    }
    round.op();
    match store.rotate(&stranger, 1, Duration::ZERO).await {
        Err(Error::NotFound { .. }) => {}
        other => round.violation(format!(
            "rotate of an unknown id: {:?}",
            other.map(|k| k.version)
        )),
    }
    match round.must(
        "renew",
        store.renew(&fake_lease, Duration::from_secs(1)).await,
    ) {
        Some(Renewal::Lost(LeaseLost::Gone)) | None => {}
        Some(other) => round.violation(format!("renew of an unknown lease: {other:?}")),
    }
    round.must("release", store.release(&fake_lease).await);
    round.op();
    match store.inspect(&stranger).await {
        Err(Error::NotFound { .. }) => {}
        other => round.violation(format!("the unknown id exists after use: {other:?}")),
    }
    round
}
