//! Rotation: compare-and-set under contention, and the grace period.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use keylatch::{DenyReason, Error, KeySpec, Verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;

use super::revoke::expect_reason;
use super::{micros, Ctx, Round};
use crate::history::Epoch;

/// 25 concurrent rotations expecting the same version: exactly one succeeds, the
/// others get a conflict naming the new version. Verifies of the old secret racing
/// the rotation are never allowed once it returned.
pub async fn rotate_cas(ctx: &Ctx) -> Round {
    const ROTATORS: usize = 25;
    const VERIFIERS: usize = 16;
    const AFTER: usize = 3;
    let mut round = Round::default();
    let store = &ctx.store;
    let Some(issued) = round.must("issue", store.issue(&KeySpec::new("cas")).await) else {
        return round;
    };
    let old: Arc<str> = Arc::from(issued.key.expose_secret());
    let epoch = Epoch::now();
    let barrier = Arc::new(Barrier::new(ROTATORS));
    let rotated_ret = Arc::new(AtomicU64::new(u64::MAX));
    let verifiers: Vec<_> = (0..VERIFIERS)
        .map(|_| {
            let (store, old, rotated_ret) = (store.clone(), old.clone(), rotated_ret.clone());
            tokio::spawn(async move {
                let mut calls = Vec::new();
                let mut after = 0;
                for _ in 0..2_000 {
                    let call = epoch.record(store.verify(&old, 1)).await;
                    after += usize::from(micros(call.invoke) > rotated_ret.load(SeqCst));
                    calls.push(call);
                    if after >= AFTER {
                        break;
                    }
                }
                calls
            })
        })
        .collect();
    let rotators: Vec<_> = (0..ROTATORS)
        .map(|_| {
            let (store, id, barrier, rotated_ret) = (
                store.clone(),
                issued.id.clone(),
                barrier.clone(),
                rotated_ret.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let call = epoch.record(store.rotate(&id, 1, Duration::ZERO)).await;
                if call.output.is_ok() {
                    rotated_ret.fetch_min(micros(call.ret), SeqCst);
                }
                call
            })
        })
        .collect();
    let mut rotations = Vec::new();
    for r in rotators {
        match r.await {
            Ok(call) => rotations.push(call),
            Err(e) => round.violation(format!("rotate task panicked: {e}")),
        }
    }
    // If no rotation succeeded, nothing would stop the verifiers but their bound.
    if rotated_ret.load(SeqCst) == u64::MAX {
        rotated_ret.store(0, SeqCst);
    }
    let mut verifies = Vec::new();
    for v in verifiers {
        match v.await {
            Ok(calls) => verifies.extend(calls),
            Err(e) => round.violation(format!("verify task panicked: {e}")),
        }
    }
    round.raced(&rotations);
    round.raced(&verifies);
    let mut winners = Vec::new();
    for call in &rotations {
        match &call.output {
            Ok(new) => winners.push((call, new)),
            Err(Error::Conflict {
                current_version: 2, ..
            }) => {}
            Err(e) => round.violation(format!(
                "losing rotate failed with {e:?}, expected Conflict at version 2"
            )),
        }
    }
    if winners.len() != 1 {
        round.violation(format!(
            "{} of {ROTATORS} rotations with one expected version succeeded",
            winners.len()
        ));
        return round;
    }
    let (win, new) = winners[0];
    if new.version != 2 {
        round.violation(format!("the rotation produced version {}", new.version));
    }
    for call in &verifies {
        match &call.output {
            Ok(Verdict::Allowed(_)) if call.invoke > win.ret => {
                round.violation("the old secret was allowed after the rotation returned")
            }
            Ok(Verdict::Allowed(_)) => {}
            Ok(Verdict::Denied(d)) if d.reason == DenyReason::Unknown => {
                if call.ret < win.invoke {
                    round.violation("the old secret was refused before any rotation started");
                }
            }
            Ok(Verdict::Denied(d)) => round.violation(format!("old secret denied: {d:?}")),
            Err(e) => round.violation(format!("verify failed: {e:?}")),
        }
    }
    if !round
        .must("verify", store.verify(new.key.expose_secret(), 1).await)
        .is_some_and(|v| v.is_allowed())
    {
        round.violation("the new secret is not allowed");
    }
    if let Some(info) = round.must("inspect", store.inspect(&issued.id).await) {
        if info.version != 2 {
            round.violation(format!("inspect shows version {}", info.version));
        }
    }
    round
}

/// The old secret works until the grace period ends and not after; old and new
/// secret spend one quota.
pub async fn rotate_grace(ctx: &Ctx) -> Round {
    const QUOTA: u64 = 10;
    let mut round = Round::default();
    let mut rng = StdRng::seed_from_u64(ctx.seed);
    let grace = Duration::from_millis(rng.gen_range(200..400));
    let store = &ctx.store;
    let spec = KeySpec::new("grace").with_quota(QUOTA);
    let Some(issued) = round.must("issue", store.issue(&spec).await) else {
        return round;
    };
    let old = issued.key.expose_secret();
    let epoch = Epoch::now();
    let rotation = epoch.record(store.rotate(&issued.id, 1, grace)).await;
    round.raced([&rotation]);
    let Some(rotated) = round.must("rotate", rotation.output) else {
        return round;
    };
    let new = rotated.key.expose_secret();
    // The grace ends no earlier than `grace` after the rotation was invoked, and no
    // later than `grace` after it returned.
    let (earliest_end, latest_end) = (rotation.invoke + grace, rotation.ret + grace);
    let mut allowed = 0u64;
    for (i, key) in [old, old, old, new, new].into_iter().enumerate() {
        let call = epoch.record(store.verify(key, 1)).await;
        round.raced([&call]);
        match call.output {
            Ok(Verdict::Allowed(_)) => allowed += 1,
            Ok(Verdict::Denied(d))
                if i < 3 && d.reason == DenyReason::Unknown && call.ret >= earliest_end => {}
            Ok(other) => round.violation(format!("during the grace period: {other:?}")),
            Err(e) => round.violation(format!("verify failed: {e:?}")),
        }
    }
    // Waiting for the store's clock to pass the end of the grace period.
    tokio::time::sleep_until(
        epoch
            .instant_at(latest_end + Duration::from_millis(5))
            .into(),
    )
    .await;
    expect_reason(
        &mut round,
        store.verify(old, 1).await,
        DenyReason::Unknown,
        "old secret after the grace",
    );
    while allowed < QUOTA {
        match round.must("verify", store.verify(new, 1).await) {
            Some(Verdict::Allowed(_)) => allowed += 1,
            Some(other) => {
                round.violation(format!(
                    "{allowed} of {QUOTA} credits spent, then {other:?}"
                ));
                return round;
            }
            None => return round,
        }
    }
    expect_reason(
        &mut round,
        store.verify(new, 1).await,
        DenyReason::QuotaExhausted,
        "new secret after the shared quota",
    );
    round
}
