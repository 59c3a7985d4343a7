//! Quotas and rate limits under concurrent use: exact, never overrun.

use std::sync::Arc;
use std::time::Duration;

use keylatch::{DenyReason, Grant, KeySpec, RateLimit, Result, SharedKeyStore, Verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;

use super::{Ctx, Round};
use crate::history::{Call, Epoch};

/// Starts one verify per cost, all released at once by a barrier, and returns them.
async fn burst(
    store: &SharedKeyStore,
    key: &str,
    costs: &[u64],
) -> (Vec<(u64, Call<Result<Verdict<Grant>>>)>, Vec<String>) {
    let epoch = Epoch::now();
    let barrier = Arc::new(Barrier::new(costs.len()));
    let key: Arc<str> = Arc::from(key);
    let tasks: Vec<_> = costs
        .iter()
        .map(|&cost| {
            let (store, key, barrier) = (store.clone(), key.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                (cost, epoch.record(store.verify(&key, cost)).await)
            })
        })
        .collect();
    let mut calls = Vec::new();
    let mut panics = Vec::new();
    for t in tasks {
        match t.await {
            Ok(c) => calls.push(c),
            Err(e) => panics.push(format!("verify task panicked: {e}")),
        }
    }
    (calls, panics)
}

/// Quota 50, 400 concurrent verifies: exactly 50 allowed, remaining 0, and the
/// remaining counts reported form one sequence. Then with random costs 1-5: what is
/// charged plus what remains is exactly 50, and the quota never goes below zero.
pub async fn quota_exact(ctx: &Ctx) -> Round {
    const QUOTA: u64 = 50;
    const REQUESTS: usize = 400;
    let mut round = Round::default();
    let mut rng = StdRng::seed_from_u64(ctx.seed);
    for variant in ["unit costs", "random costs"] {
        let costs: Vec<u64> = if variant == "unit costs" {
            vec![1; REQUESTS]
        } else {
            (0..REQUESTS).map(|_| rng.gen_range(1..=5)).collect()
        };
        let spec = KeySpec::new("quota").with_quota(QUOTA);
        let Some(issued) = round.must("issue", ctx.store.issue(&spec).await) else {
            return round;
        };
        let (calls, panics) = burst(&ctx.store, issued.key.expose_secret(), &costs).await;
        round.violations.extend(panics);
        round.raced(calls.iter().map(|(_, c)| c));
        // (remaining after the charge, cost) of every allowed verify.
        let mut charges = Vec::new();
        for (cost, call) in &calls {
            match &call.output {
                Ok(Verdict::Allowed(g)) => match g.remaining_quota {
                    Some(r) => charges.push((r, *cost)),
                    None => round.violation("an allowed verify of a quota key reports no quota"),
                },
                Ok(Verdict::Denied(d)) if d.reason == DenyReason::QuotaExhausted => {}
                Ok(Verdict::Denied(d)) => round.violation(format!("{variant}: denied {d:?}")),
                Err(e) => round.violation(format!("{variant}: verify failed: {e:?}")),
            }
        }
        let charged: u64 = charges.iter().map(|(_, c)| c).sum();
        if charged > QUOTA {
            round.violation(format!(
                "{variant}: {charged} credits charged from a quota of {QUOTA}"
            ));
        }
        if variant == "unit costs" && charges.len() as u64 != QUOTA {
            round.violation(format!(
                "{} of {REQUESTS} allowed with a quota of {QUOTA}",
                charges.len()
            ));
        }
        // Allowed charges, in the order they took effect, each leave the previous
        // remainder minus their cost: one sequence, no credit charged twice or lost.
        charges.sort_by_key(|c| std::cmp::Reverse(c.0));
        let mut before = QUOTA;
        for (remaining, cost) in &charges {
            if before.checked_sub(*cost) != Some(*remaining) {
                round.violation(format!(
                    "{variant}: a charge of {cost} left {remaining}, but {before} remained before it"
                ));
                break;
            }
            before = *remaining;
        }
        if let Some(info) = round.must("inspect", ctx.store.inspect(&issued.id).await) {
            if info.remaining_quota != Some(QUOTA.saturating_sub(charged)) {
                round.violation(format!(
                    "{variant}: inspect shows {:?} remaining after {charged} charged",
                    info.remaining_quota
                ));
            }
            if info.uses != charges.len() as u64 {
                round.violation(format!(
                    "{variant}: {} uses for {} allowed",
                    info.uses,
                    charges.len()
                ));
            }
        }
    }
    round
}

/// A cost above the burst is refused as such. Then burst 20, 200 concurrent
/// verifies: exactly 20 allowed (plus whatever the rate
/// could refill while the race ran, nothing when it is fast); every denial carries a
/// `retry_after` in (0, T]; after waiting that long, the next verify is allowed.
pub async fn rate_exact(ctx: &Ctx) -> Round {
    const BURST: u32 = 20;
    const REQUESTS: usize = 200;
    // 5 per second: one unit refills every 200 ms.
    let limit = RateLimit::new(5, Duration::from_secs(1), BURST);
    let interval = Duration::from_micros(limit.emission_interval_micros() as u64);
    let mut round = Round::default();
    let spec = KeySpec::new("rate").with_rate_limit(limit);
    let Some(issued) = round.must("issue", ctx.store.issue(&spec).await) else {
        return round;
    };
    let key = issued.key.expose_secret();
    // A cost above the burst can never fit: it is refused as such, and costs nothing,
    // so the race below still starts from a full bucket.
    match round.must("verify", ctx.store.verify(key, u64::from(BURST) + 1).await) {
        Some(Verdict::Denied(d)) if d.reason == DenyReason::CostExceedsBurst => {}
        Some(other) => round.violation(format!("a cost above the burst gave {other:?}")),
        None => {}
    }
    let (calls, panics) = burst(&ctx.store, key, &[1; REQUESTS]).await;
    round.violations.extend(panics);
    round.raced(calls.iter().map(|(_, c)| c));
    let first_invoke = calls
        .iter()
        .map(|(_, c)| c.invoke)
        .min()
        .unwrap_or_default();
    let last_ret = calls.iter().map(|(_, c)| c.ret).max().unwrap_or_default();
    let refills = (last_ret.saturating_sub(first_invoke).as_micros() / interval.as_micros()) as u64;
    let mut allowed = 0u64;
    for (_, call) in &calls {
        match &call.output {
            Ok(Verdict::Allowed(g)) => {
                allowed += 1;
                if g.rate_limit.is_none_or(|s| s.limit != BURST) {
                    round.violation(format!(
                        "allowed verify reports rate limit {:?}",
                        g.rate_limit
                    ));
                }
            }
            Ok(Verdict::Denied(d)) => match d.reason {
                DenyReason::RateLimited { retry_after } => {
                    if retry_after.is_zero() || retry_after > interval {
                        round.violation(format!(
                            "retry_after {retry_after:?} outside (0, {interval:?}]"
                        ));
                    }
                }
                other => round.violation(format!("denied {other:?}, expected RateLimited")),
            },
            Err(e) => round.violation(format!("verify failed: {e:?}")),
        }
    }
    let most = u64::from(BURST) + refills;
    if allowed < u64::from(BURST) || allowed > most {
        round.violation(format!(
            "{allowed} allowed from a burst of {BURST} (at most {most} with the refills of the race)"
        ));
    }
    // Empty the bucket, then wait exactly as long as the store says.
    for _ in 0..=BURST {
        match round.must("verify", ctx.store.verify(key, 1).await) {
            Some(Verdict::Allowed(_)) => continue,
            Some(Verdict::Denied(d)) => {
                if let DenyReason::RateLimited { retry_after } = d.reason {
                    tokio::time::sleep(retry_after).await;
                    match round.must("verify", ctx.store.verify(key, 1).await) {
                        Some(Verdict::Allowed(_)) | None => {}
                        Some(v) => round.violation(format!("after waiting retry_after: {v:?}")),
                    }
                } else {
                    round.violation(format!("denied {:?}, expected RateLimited", d.reason));
                }
                return round;
            }
            None => return round,
        }
    }
    round.violation("the bucket never emptied");
    round
}
