//! Revocation racing live use: verifies, leases, a rotation, a second handle.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use keylatch::{
    DenyReason, Drain, Error, Grant, KeySpec, LeaseGrant, LeaseLost, Renewal, Result, Revocation,
    SharedKeyStore, Verdict,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use super::{micros, Ctx, Round};
use crate::history::{Call, Epoch};

/// Long enough for every lease a scenario releases itself; a revoke must never wait
/// this long in a healthy run.
const DRAIN: Duration = Duration::from_secs(10);

/// 64 tasks verify one key in a loop; the key is revoked at a random moment. No verify
/// that starts after the revoke returned may be allowed, and the key's use count must
/// equal the number of allowed verifies.
pub async fn revoke_during_verify(ctx: &Ctx) -> Round {
    race_revoke_against_verify(&ctx.store, &ctx.store, ctx.seed).await
}

/// Revokes through `revoker` while 64 tasks verify through `verifier`.
pub(crate) async fn race_revoke_against_verify(
    verifier: &SharedKeyStore,
    revoker: &SharedKeyStore,
    seed: u64,
) -> Round {
    const TASKS: u64 = 64;
    // Every task keeps going until it has made this many calls that started after
    // the revoke returned, so each one probes the window right after it.
    const AFTER: usize = 3;
    const MAX_CALLS: usize = 2_000;

    let mut round = Round::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let Some(issued) = round.must("issue", revoker.issue(&KeySpec::new("race")).await) else {
        return round;
    };
    let key: Arc<str> = Arc::from(issued.key.expose_secret());
    // The revoke happens once this many verifies have completed: a random moment.
    let moment = rng.gen_range(0..TASKS * 4);
    let epoch = Epoch::now();
    let completed = Arc::new(AtomicU64::new(0));
    let revoke_ret = Arc::new(AtomicU64::new(u64::MAX));
    let (trigger, mut moment_reached) = mpsc::channel::<()>(1);

    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (store, key, completed, revoke_ret) = (
            verifier.clone(),
            key.clone(),
            completed.clone(),
            revoke_ret.clone(),
        );
        let trigger = trigger.clone();
        tasks.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            let mut after = 0;
            for _ in 0..MAX_CALLS {
                let call = epoch.record(store.verify(&key, 1)).await;
                if completed.fetch_add(1, SeqCst) == moment {
                    let _ = trigger.try_send(());
                }
                if micros(call.invoke) > revoke_ret.load(SeqCst) {
                    after += 1;
                }
                calls.push(call);
                if after >= AFTER {
                    break;
                }
            }
            drop(trigger);
            (calls, after)
        }));
    }
    drop(trigger);
    // Returns at the moment, or when every verifier has stopped (which is itself a
    // violation caught below, since none of them saw the revocation).
    let _ = moment_reached.recv().await;
    let revoke = epoch.record(revoker.revoke(&issued.id, DRAIN)).await;
    revoke_ret.store(micros(revoke.ret), SeqCst);
    // Once revoke has returned, nothing may be charged to the key any more: a store
    // that checks, then charges later, shows up as uses that grow after this point.
    let uses_at_revoke = round
        .must("inspect", revoker.inspect(&issued.id).await)
        .map(|info| info.uses);

    let mut calls: Vec<Call<Result<Verdict<Grant>>>> = Vec::new();
    for task in tasks {
        match task.await {
            Ok((task_calls, after)) => {
                if after < AFTER {
                    round.violation(format!(
                        "a verifier stopped after {MAX_CALLS} calls without seeing the revocation"
                    ));
                }
                calls.extend(task_calls);
            }
            Err(e) => round.violation(format!("verifier task panicked: {e}")),
        }
    }
    round.raced(&calls);
    round.raced([&revoke]);
    check_revocation(&mut round, &revoke.output, true);

    let mut allowed = 0u64;
    for call in &calls {
        match &call.output {
            Ok(Verdict::Allowed(_)) => {
                allowed += 1;
                if call.invoke > revoke.ret {
                    round.violation(format!(
                        "verify started {:?} after revoke returned and was allowed",
                        call.invoke - revoke.ret
                    ));
                }
            }
            Ok(Verdict::Denied(d)) if d.reason == DenyReason::Revoked => {
                if call.ret < revoke.invoke {
                    round.violation("verify denied as revoked before revoke was called");
                }
            }
            Ok(Verdict::Denied(d)) => {
                round.violation(format!("verify of an unlimited key denied: {d:?}"))
            }
            Err(e) => round.violation(format!("verify failed: {e:?}")),
        }
    }
    if let Some(info) = round.must("inspect", revoker.inspect(&issued.id).await) {
        if info.uses != allowed {
            round.violation(format!(
                "use count {} differs from {allowed} allowed verifies",
                info.uses
            ));
        }
        if uses_at_revoke.is_some_and(|at_revoke| info.uses != at_revoke) {
            round.violation(format!(
                "{} uses were charged after revoke returned",
                info.uses.saturating_sub(uses_at_revoke.unwrap_or_default())
            ));
        }
        if info.revoked_at.is_none() {
            round.violation("inspect does not show the key revoked");
        }
    }
    round
}

/// Checks a revoke that had no lease outliving it.
fn check_revocation(round: &mut Round, revocation: &Result<Revocation>, newly: bool) {
    match revocation {
        Ok(r) => {
            if r.newly_revoked != newly {
                round.violation(format!(
                    "revoke reported newly_revoked = {}",
                    r.newly_revoked
                ));
            }
            if r.drain != Drain::Drained {
                round.violation(format!("revoke did not drain: {:?}", r.drain));
            }
        }
        Err(e) => round.violation(format!("revoke failed: {e:?}")),
    }
}

/// One attempt of a lease holder: the acquire, and if granted, its renew and release.
struct Attempt {
    acquire: Call<Result<Verdict<LeaseGrant>>>,
    renew: Option<Call<Result<Renewal>>>,
    release: Option<Call<Result<()>>>,
}

/// 32 tasks acquire a lease, hold it 0-20 ms (renewing halfway) and release it; the
/// key is revoked mid-way. The revoke may return only after every lease granted
/// before it was released; no lease is granted and no renew succeeds after it
/// returned. A lease that outlives the drain timeout is reported, not hidden.
pub async fn revoke_during_lease(ctx: &Ctx) -> Round {
    const TASKS: u64 = 32;
    const TTL: Duration = Duration::from_secs(30);
    const MAX_ATTEMPTS: usize = 400;

    let mut round = Round::default();
    let mut rng = StdRng::seed_from_u64(ctx.seed);
    let store = &ctx.store;
    let Some(issued) = round.must("issue", store.issue(&KeySpec::new("leases")).await) else {
        return round;
    };
    let key: Arc<str> = Arc::from(issued.key.expose_secret());
    let moment = rng.gen_range(1..TASKS * 2);
    let epoch = Epoch::now();
    let granted = Arc::new(AtomicU64::new(0));
    let revoke_ret = Arc::new(AtomicU64::new(u64::MAX));
    let (trigger, mut moment_reached) = mpsc::channel::<()>(1);

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (store, key, granted, revoke_ret) = (
            store.clone(),
            key.clone(),
            granted.clone(),
            revoke_ret.clone(),
        );
        let trigger = trigger.clone();
        let mut rng = StdRng::seed_from_u64(ctx.seed ^ (task + 1).wrapping_mul(0x9E37_79B9));
        tasks.push(tokio::spawn(async move {
            let mut attempts = Vec::new();
            for _ in 0..MAX_ATTEMPTS {
                let acquire = epoch.record(store.acquire(&key, 1, TTL)).await;
                let lease = match &acquire.output {
                    Ok(Verdict::Allowed(g)) => g.lease.clone(),
                    _ => {
                        let after = micros(acquire.invoke) > revoke_ret.load(SeqCst);
                        attempts.push(Attempt {
                            acquire,
                            renew: None,
                            release: None,
                        });
                        if after {
                            break;
                        }
                        // Pacing while the revoke drains: the denials are sampled, not
                        // flooded.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                };
                if granted.fetch_add(1, SeqCst) == moment {
                    let _ = trigger.try_send(());
                }
                // The hold stands for the work the lease covers.
                let hold = Duration::from_micros(rng.gen_range(0..20_000));
                tokio::time::sleep(hold / 2).await;
                let renew = epoch.record(store.renew(&lease, TTL)).await;
                tokio::time::sleep(hold / 2).await;
                let release = epoch.record(store.release(&lease)).await;
                attempts.push(Attempt {
                    acquire,
                    renew: Some(renew),
                    release: Some(release),
                });
            }
            drop(trigger);
            attempts
        }));
    }
    drop(trigger);
    let _ = moment_reached.recv().await;
    let revoke = epoch.record(store.revoke(&issued.id, DRAIN)).await;
    revoke_ret.store(micros(revoke.ret), SeqCst);

    let mut attempts = Vec::new();
    for task in tasks {
        match task.await {
            Ok(a) => attempts.extend(a),
            Err(e) => round.violation(format!("lease task panicked: {e}")),
        }
    }
    round.raced([&revoke]);
    check_revocation(&mut round, &revoke.output, true);
    let mut saw_denial_after = false;
    for a in &attempts {
        round.raced([&a.acquire]);
        round.raced(&a.renew);
        round.raced(&a.release);
        match &a.acquire.output {
            Ok(Verdict::Allowed(_)) => {
                if a.acquire.invoke > revoke.ret {
                    round.violation(
                        "lease granted to an acquire that started after revoke returned",
                    );
                }
                match &a.release {
                    Some(release) if release.invoke < revoke.ret => {}
                    _ => round
                        .violation("revoke returned before a lease granted before it was released"),
                }
            }
            Ok(Verdict::Denied(d)) if d.reason == DenyReason::Revoked => {
                saw_denial_after |= a.acquire.invoke > revoke.ret;
            }
            Ok(Verdict::Denied(d)) => round.violation(format!("acquire denied: {d:?}")),
            Err(e) => round.violation(format!("acquire failed: {e:?}")),
        }
        if let Some(renew) = &a.renew {
            match &renew.output {
                Ok(Renewal::Renewed { .. }) if renew.invoke > revoke.ret => {
                    round.violation("renew succeeded after revoke returned")
                }
                Ok(_) => {}
                Err(e) => round.violation(format!("renew failed: {e:?}")),
            }
        }
        if let Some(Err(e)) = a.release.as_ref().map(|r| &r.output) {
            round.violation(format!("release failed: {e:?}"));
        }
    }
    if !saw_denial_after {
        round.violation("no acquire after the revoke was seen denied");
    }
    lease_outliving_revoke(ctx, &mut round).await;
    round
}

/// A lease held past the drain timeout: revoke must say it timed out with one lease
/// outstanding, and renews racing the revoke must fail once it returned. After the
/// release, a second revoke is a no-op that drains.
async fn lease_outliving_revoke(ctx: &Ctx, round: &mut Round) {
    let store = &ctx.store;
    let Some(issued) = round.must("issue", store.issue(&KeySpec::new("held")).await) else {
        return;
    };
    let acquired = store
        .acquire(issued.key.expose_secret(), 1, Duration::from_secs(60))
        .await;
    let lease = match round.must("acquire", acquired) {
        Some(Verdict::Allowed(g)) => g.lease,
        Some(Verdict::Denied(d)) => return round.violation(format!("acquire denied: {d:?}")),
        None => return,
    };
    let epoch = Epoch::now();
    let revoke_ret = Arc::new(AtomicU64::new(u64::MAX));
    let renewer = {
        let (store, lease, revoke_ret) = (store.clone(), lease.clone(), revoke_ret.clone());
        tokio::spawn(async move {
            let mut renews = Vec::new();
            for _ in 0..2_000 {
                let call = epoch
                    .record(store.renew(&lease, Duration::from_secs(60)))
                    .await;
                let after = micros(call.invoke) > revoke_ret.load(SeqCst);
                renews.push(call);
                if after {
                    break;
                }
                // Pacing, so the renewer does not monopolise a core of the store.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            renews
        })
    };
    let revoke = epoch
        .record(store.revoke(&issued.id, Duration::from_millis(50)))
        .await;
    revoke_ret.store(micros(revoke.ret), SeqCst);
    round.op();
    match &revoke.output {
        Ok(r) if r.drain == (Drain::TimedOut { outstanding: 1 }) && r.newly_revoked => {}
        other => round.violation(format!(
            "revoke with a live lease reported {other:?}, expected a timed-out drain with 1 outstanding"
        )),
    }
    match renewer.await {
        Ok(renews) => {
            for r in &renews {
                round.op();
                match &r.output {
                    Ok(Renewal::Renewed { .. }) if r.invoke > revoke.ret => {
                        round.violation("renew succeeded after revoke returned")
                    }
                    Ok(Renewal::Lost(reason)) if *reason != LeaseLost::Revoked => {
                        round.violation(format!("renew lost for {reason:?}, expected Revoked"))
                    }
                    Ok(_) => {}
                    Err(e) => round.violation(format!("renew failed: {e:?}")),
                }
            }
            if renews.last().is_none_or(|r| r.invoke <= revoke.ret) {
                round.violation("the renewer never ran after the revoke returned");
            }
        }
        Err(e) => round.violation(format!("renew task panicked: {e}")),
    }
    round.must("release", store.release(&lease).await);
    let again = store.revoke(&issued.id, Duration::from_secs(1)).await;
    round.op();
    check_revocation(round, &again, false);
}

/// A revoke and a rotation race; afterwards neither the old nor the new secret works.
pub async fn revoke_vs_rotate(ctx: &Ctx) -> Round {
    let mut round = Round::default();
    let mut rng = StdRng::seed_from_u64(ctx.seed);
    let store = &ctx.store;
    let Some(issued) = round.must("issue", store.issue(&KeySpec::new("revrot")).await) else {
        return round;
    };
    let epoch = Epoch::now();
    let (revoke_yields, rotate_yields) = (rng.gen_range(0..4), rng.gen_range(0..4));
    let revoker = {
        let (store, id) = (store.clone(), issued.id.clone());
        tokio::spawn(async move {
            for _ in 0..revoke_yields {
                tokio::task::yield_now().await;
            }
            epoch.record(store.revoke(&id, DRAIN)).await
        })
    };
    let rotator = {
        let (store, id) = (store.clone(), issued.id.clone());
        tokio::spawn(async move {
            for _ in 0..rotate_yields {
                tokio::task::yield_now().await;
            }
            // A long grace keeps the old secret matching, so a failure to deny it
            // could only come from the revocation being lost.
            epoch
                .record(store.rotate(&id, 1, Duration::from_secs(30)))
                .await
        })
    };
    let (Ok(revoke), Ok(rotate)) = (revoker.await, rotator.await) else {
        round.violation("a racing task panicked");
        return round;
    };
    round.raced([&revoke]);
    round.raced([&rotate]);
    check_revocation(&mut round, &revoke.output, true);
    let mut secrets = vec![issued.key.clone()];
    match rotate.output {
        Ok(new) => {
            if new.version != 2 {
                round.violation(format!("rotation produced version {}", new.version));
            }
            secrets.push(new.key);
        }
        Err(Error::Revoked { .. }) => {}
        Err(e) => round.violation(format!("rotate failed: {e:?}")),
    }
    for key in &secrets {
        match round.must("verify", store.verify(key.expose_secret(), 1).await) {
            Some(Verdict::Allowed(_)) => {
                round.violation("a secret still verifies after revoke and rotate returned")
            }
            Some(Verdict::Denied(d)) if d.reason == DenyReason::Revoked => {}
            Some(Verdict::Denied(d)) => {
                round.violation(format!("expected Revoked after revoke, got {d:?}"))
            }
            None => {}
        }
    }
    round
}

/// Two handles opened independently on one backend: what one does, the other sees at
/// once; then the revoke-during-verify race with verifies and revoke on different
/// handles.
pub async fn two_handles(ctx: &Ctx) -> Round {
    let mut round = Round::default();
    let (a, b) = (&ctx.store, &ctx.other);
    let Some(issued) = round.must("issue", a.issue(&KeySpec::new("handles")).await) else {
        return round;
    };
    let old = issued.key.expose_secret();
    if !round
        .must("verify", b.verify(old, 1).await)
        .is_some_and(|v| v.is_allowed())
    {
        round.violation("a key issued through one handle is not allowed through the other");
    }
    if let Some(rotated) = round.must("rotate", b.rotate(&issued.id, 1, Duration::ZERO).await) {
        let new = rotated.key.expose_secret();
        expect_reason(
            &mut round,
            a.verify(old, 1).await,
            DenyReason::Unknown,
            "old secret",
        );
        if !round
            .must("verify", a.verify(new, 1).await)
            .is_some_and(|v| v.is_allowed())
        {
            round.violation("the rotated secret is not allowed through the other handle");
        }
        if let Some(r) = round.must("revoke", a.revoke(&issued.id, DRAIN).await) {
            check_revocation(&mut round, &Ok(r), true);
        }
        expect_reason(
            &mut round,
            b.verify(new, 1).await,
            DenyReason::Revoked,
            "new secret",
        );
    }
    let raced = race_revoke_against_verify(b, a, ctx.seed).await;
    round.operations += raced.operations;
    round.latencies.extend(raced.latencies);
    round.violations.extend(raced.violations);
    round
}

/// Checks that a verify was denied for `reason`.
pub(crate) fn expect_reason(
    round: &mut Round,
    result: Result<Verdict<Grant>>,
    reason: DenyReason,
    what: &str,
) {
    match round.must("verify", result) {
        Some(Verdict::Denied(d)) if d.reason == reason => {}
        Some(other) => round.violation(format!("{what}: expected {reason:?}, got {other:?}")),
        None => {}
    }
}
