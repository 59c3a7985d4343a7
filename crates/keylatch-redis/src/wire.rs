//! The one layer that turns operations into script calls and replies into keylatch
//! values. Both client adapters go through it; they only move bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use keylatch::{
    duration_micros, Denial, DenyReason, Expiry, Grant, KeyDigest, KeyId, KeyInfo, KeySpec, Lease,
    LeaseGrant, LeaseId, LeaseLost, RateLimit, RateLimitState, Renewal, Timestamp, Verdict,
};

use crate::layout::Namespace;
use crate::scripts::{self, Script};

/// A reply from Redis, reduced to the shapes keylatch scripts produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// A nil (Lua `false`).
    Nil,
    /// An integer (a Lua number).
    Int(i64),
    /// A bulk or simple string.
    Bytes(Vec<u8>),
    /// An array (a Lua table).
    Array(Vec<Reply>),
    /// Anything else (maps, doubles, …), which no keylatch script returns.
    Other,
}

/// One script call: which script, its KEYS and its ARGV.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub script: &'static Script,
    pub keys: Vec<String>,
    pub args: Vec<Vec<u8>>,
}

/// A reply that does not have the shape the script documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadReply(pub &'static str);

impl fmt::Display for BadReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected reply from a keylatch script: {}", self.0)
    }
}

impl std::error::Error for BadReply {}

type Decoded<T> = Result<T, BadReply>;

fn arg(s: impl ToString) -> Vec<u8> {
    s.to_string().into_bytes()
}

fn digest_arg(d: &KeyDigest) -> Vec<u8> {
    hex::encode(d.as_bytes()).into_bytes()
}

fn micros_arg(d: Duration) -> Vec<u8> {
    arg(duration_micros(d))
}

// ---------------------------------------------------------------------------------
// Encoding: one function per script; see the header of each Lua file.

pub(crate) fn issue(ns: &Namespace, id: &KeyId, digest: &KeyDigest, spec: &KeySpec) -> Call {
    let mut args = vec![digest_arg(digest), arg(&spec.subject)];
    match spec.expiry {
        None => args.extend([arg(""), arg("")]),
        Some(Expiry::At(t)) => args.extend([arg("at"), arg(t.as_micros())]),
        Some(Expiry::In(d)) => args.extend([arg("in"), micros_arg(d)]),
    }
    match &spec.rate_limit {
        None => args.extend([arg(""), arg(""), arg(""), arg("")]),
        // The period is kept in nanoseconds so that inspect returns exactly the limit
        // the key was issued with; the scripts only ever compute with T.
        Some(limit) => args.extend([
            arg(limit.emission_interval_micros()),
            arg(limit.burst),
            arg(limit.rate),
            arg(limit.period.as_nanos()),
        ]),
    }
    args.push(spec.quota.map_or_else(Vec::new, arg));
    for (name, value) in &spec.metadata {
        args.push(arg(name));
        args.push(arg(value));
    }
    Call {
        script: &scripts::ISSUE,
        keys: vec![ns.record(id)],
        args,
    }
}

pub(crate) fn verify(ns: &Namespace, id: &KeyId, digest: &KeyDigest, cost: u64) -> Call {
    Call {
        script: &scripts::VERIFY,
        keys: vec![ns.record(id)],
        args: vec![digest_arg(digest), arg(cost)],
    }
}

pub(crate) fn acquire(
    ns: &Namespace,
    id: &KeyId,
    digest: &KeyDigest,
    cost: u64,
    ttl: Duration,
    lease: &LeaseId,
) -> Call {
    Call {
        script: &scripts::ACQUIRE,
        keys: vec![ns.record(id), ns.leases(id)],
        args: vec![
            digest_arg(digest),
            arg(cost),
            micros_arg(ttl),
            arg(lease.as_str()),
        ],
    }
}

pub(crate) fn renew(ns: &Namespace, lease: &Lease, ttl: Duration) -> Call {
    Call {
        script: &scripts::RENEW,
        keys: vec![ns.record(&lease.key_id), ns.leases(&lease.key_id)],
        args: vec![arg(lease.id.as_str()), micros_arg(ttl)],
    }
}

pub(crate) fn release(ns: &Namespace, lease: &Lease) -> Call {
    Call {
        script: &scripts::RELEASE,
        keys: vec![ns.leases(&lease.key_id)],
        args: vec![arg(lease.id.as_str())],
    }
}

pub(crate) fn revoke(ns: &Namespace, id: &KeyId) -> Call {
    Call {
        script: &scripts::REVOKE,
        keys: vec![ns.record(id), ns.leases(id)],
        args: vec![],
    }
}

pub(crate) fn leases(ns: &Namespace, id: &KeyId) -> Call {
    Call {
        script: &scripts::LEASES,
        keys: vec![ns.leases(id)],
        args: vec![],
    }
}

pub(crate) fn rotate(
    ns: &Namespace,
    id: &KeyId,
    expected_version: u64,
    digest: &KeyDigest,
    grace: Duration,
) -> Call {
    Call {
        script: &scripts::ROTATE,
        keys: vec![ns.record(id)],
        args: vec![arg(expected_version), digest_arg(digest), micros_arg(grace)],
    }
}

pub(crate) fn inspect(ns: &Namespace, id: &KeyId) -> Call {
    Call {
        script: &scripts::INSPECT,
        keys: vec![ns.record(id), ns.leases(id)],
        args: vec![],
    }
}

// ---------------------------------------------------------------------------------
// Decoding.

fn items(reply: Reply) -> Decoded<Vec<Reply>> {
    match reply {
        Reply::Array(items) => Ok(items),
        _ => Err(BadReply("expected an array")),
    }
}

/// The tag a script puts first in its reply (`ok`, `unknown`, …).
fn tag(items: &[Reply]) -> Decoded<&[u8]> {
    match items.first() {
        Some(Reply::Bytes(b)) => Ok(b),
        _ => Err(BadReply("expected a tag first")),
    }
}

fn at(items: &[Reply], i: usize) -> Decoded<&Reply> {
    items.get(i).ok_or(BadReply("reply too short"))
}

/// An integer, sent by Redis as an integer (a Lua number) or as decimal text (a
/// hash field returned as is).
fn int(r: &Reply) -> Decoded<i64> {
    match r {
        Reply::Int(n) => Ok(*n),
        Reply::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(BadReply("expected decimal text")),
        _ => Err(BadReply("expected an integer")),
    }
}

fn uint(r: &Reply) -> Decoded<u64> {
    u64::try_from(int(r)?).map_err(|_| BadReply("expected a non-negative integer"))
}

fn opt_int(r: &Reply) -> Decoded<Option<i64>> {
    match r {
        Reply::Nil => Ok(None),
        other => int(other).map(Some),
    }
}

fn text(r: &Reply) -> Decoded<String> {
    match r {
        Reply::Bytes(b) => String::from_utf8(b.clone()).map_err(|_| BadReply("expected UTF-8")),
        _ => Err(BadReply("expected text")),
    }
}

pub(crate) enum Issued {
    Created,
    IdTaken,
}

pub(crate) fn decode_issue(reply: Reply) -> Decoded<Issued> {
    let items = items(reply)?;
    match tag(&items)? {
        b"ok" => Ok(Issued::Created),
        b"exists" => Ok(Issued::IdTaken),
        _ => Err(BadReply("unknown issue outcome")),
    }
}

/// A denial reply of verify.lua or acquire.lua, or `None` when the reply is `ok`.
fn denial(items: &[Reply], id: &KeyId, cost: u64) -> Decoded<Option<Denial>> {
    let reason = match tag(items)? {
        b"ok" => return Ok(None),
        b"unknown" => DenyReason::Unknown,
        b"revoked" => DenyReason::Revoked,
        b"expired" => DenyReason::Expired,
        b"quota" => DenyReason::QuotaExhausted,
        b"over_burst" => DenyReason::CostExceedsBurst,
        b"rate" => {
            // The model's own integer arithmetic (KeyRecord::admit), on the values
            // the script read: tat' = max(tat, now) + cost * T, saturating.
            let now = int(at(items, 1)?)?;
            let ahead = int(at(items, 2)?)?;
            let t = int(at(items, 3)?)?;
            let burst = int(at(items, 4)?)?;
            let cost = i64::try_from(cost).unwrap_or(i64::MAX);
            // The script answers `over_burst` for these; a `rate` reply for one means
            // script and decoder disagree, and a retry_after would never come true.
            if cost > burst {
                return Err(BadReply("rate limit denial for a cost above the burst"));
            }
            let capacity = t.saturating_mul(burst);
            let new_tat = now
                .saturating_add(ahead)
                .saturating_add(cost.saturating_mul(t));
            let allow_at = new_tat - capacity;
            if allow_at <= now {
                return Err(BadReply("rate limit denial with room left"));
            }
            DenyReason::RateLimited {
                retry_after: Duration::from_micros((allow_at - now) as u64),
            }
        }
        _ => return Err(BadReply("unknown verify outcome")),
    };
    Ok(Some(Denial {
        reason,
        id: Some(id.clone()),
    }))
}

/// The grant of an `ok` reply: `{'ok', version, subject, quota_left, used, T, burst, …}`.
fn grant(items: &[Reply], id: &KeyId) -> Decoded<Grant> {
    let rate_limit = match (
        opt_int(at(items, 4)?)?,
        opt_int(at(items, 5)?)?,
        opt_int(at(items, 6)?)?,
    ) {
        (Some(used), Some(t), Some(burst)) if t > 0 && used >= 0 => {
            let capacity = t.saturating_mul(burst);
            Some(RateLimitState {
                limit: u32::try_from(burst).map_err(|_| BadReply("burst out of range"))?,
                remaining: u32::try_from((capacity - used) / t).unwrap_or(u32::MAX),
                reset_after: Duration::from_micros(used as u64),
            })
        }
        (None, None, None) => None,
        _ => return Err(BadReply("incomplete rate limit state")),
    };
    Ok(Grant {
        id: id.clone(),
        subject: text(at(items, 2)?)?,
        version: uint(at(items, 1)?)?,
        remaining_quota: opt_int(at(items, 3)?)?
            .map(|r| u64::try_from(r).map_err(|_| BadReply("negative quota")))
            .transpose()?,
        rate_limit,
    })
}

pub(crate) fn decode_verify(reply: Reply, id: &KeyId, cost: u64) -> Decoded<Verdict<Grant>> {
    let items = items(reply)?;
    if let Some(denial) = denial(&items, id, cost)? {
        return Ok(Verdict::Denied(denial));
    }
    Ok(Verdict::Allowed(grant(&items, id)?))
}

pub(crate) fn decode_acquire(
    reply: Reply,
    id: &KeyId,
    cost: u64,
    lease: LeaseId,
) -> Decoded<Verdict<LeaseGrant>> {
    let items = items(reply)?;
    if let Some(denial) = denial(&items, id, cost)? {
        return Ok(Verdict::Denied(denial));
    }
    let grant = grant(&items, id)?;
    Ok(Verdict::Allowed(LeaseGrant {
        lease: Lease {
            id: lease,
            key_id: id.clone(),
            fencing_token: uint(at(&items, 7)?)?,
            expires_at: Timestamp::from_micros(int(at(&items, 8)?)?),
        },
        grant,
    }))
}

pub(crate) fn decode_renew(reply: Reply) -> Decoded<Renewal> {
    let items = items(reply)?;
    Ok(match tag(&items)? {
        b"renewed" => Renewal::Renewed {
            expires_at: Timestamp::from_micros(int(at(&items, 1)?)?),
        },
        b"gone" => Renewal::Lost(LeaseLost::Gone),
        b"revoked" => Renewal::Lost(LeaseLost::Revoked),
        b"expired" => Renewal::Lost(LeaseLost::KeyExpired),
        _ => return Err(BadReply("unknown renew outcome")),
    })
}

pub(crate) fn decode_release(reply: Reply) -> Decoded<()> {
    int(&reply).map(|_| ())
}

/// Live leases of a key as a script saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseStatus {
    pub live: u64,
    pub next_end: Option<Timestamp>,
    pub now: Timestamp,
}

fn lease_status(items: &[Reply], first: usize) -> Decoded<LeaseStatus> {
    Ok(LeaseStatus {
        live: uint(at(items, first)?)?,
        next_end: opt_int(at(items, first + 1)?)?.map(Timestamp::from_micros),
        now: Timestamp::from_micros(int(at(items, first + 2)?)?),
    })
}

/// What revoke.lua found: `None` when the key does not exist.
pub(crate) fn decode_revoke(reply: Reply) -> Decoded<Option<(bool, LeaseStatus)>> {
    let items = items(reply)?;
    match tag(&items)? {
        b"missing" => Ok(None),
        b"ok" => Ok(Some((int(at(&items, 1)?)? == 1, lease_status(&items, 2)?))),
        _ => Err(BadReply("unknown revoke outcome")),
    }
}

pub(crate) fn decode_leases(reply: Reply) -> Decoded<LeaseStatus> {
    lease_status(&items(reply)?, 0)
}

pub(crate) enum Rotated {
    Missing,
    Revoked,
    Conflict(u64),
    Done(u64),
}

pub(crate) fn decode_rotate(reply: Reply) -> Decoded<Rotated> {
    let items = items(reply)?;
    Ok(match tag(&items)? {
        b"missing" => Rotated::Missing,
        b"revoked" => Rotated::Revoked,
        b"conflict" => Rotated::Conflict(uint(at(&items, 1)?)?),
        b"ok" => Rotated::Done(uint(at(&items, 1)?)?),
        _ => return Err(BadReply("unknown rotate outcome")),
    })
}

/// The snapshot of inspect.lua: `None` when the key does not exist.
pub(crate) fn decode_inspect(reply: Reply, id: &KeyId) -> Decoded<Option<KeyInfo>> {
    let items = items(reply)?;
    match tag(&items)? {
        b"missing" => return Ok(None),
        b"ok" => {}
        _ => return Err(BadReply("unknown inspect outcome")),
    }
    let now = Timestamp::from_micros(int(at(&items, 1)?)?);
    let active_leases = uint(at(&items, 2)?)?;
    let mut fields: BTreeMap<&[u8], &Reply> = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    let mut pairs = items[3..].chunks_exact(2);
    for pair in &mut pairs {
        let Reply::Bytes(name) = &pair[0] else {
            return Err(BadReply("field name is not text"));
        };
        match name.strip_prefix(b"m:") {
            Some(meta) => {
                let meta = String::from_utf8(meta.to_vec())
                    .map_err(|_| BadReply("metadata name is not UTF-8"))?;
                metadata.insert(meta, text(&pair[1])?);
            }
            None => {
                fields.insert(name, &pair[1]);
            }
        }
    }
    if !pairs.remainder().is_empty() {
        return Err(BadReply("odd number of record fields"));
    }
    let field = |name: &'static str| fields.get(name.as_bytes()).copied();
    let required = |name: &'static str| field(name).ok_or(BadReply("record field missing"));
    let time = |name: &'static str| -> Decoded<Option<Timestamp>> {
        field(name)
            .map(|r| int(r).map(Timestamp::from_micros))
            .transpose()
    };
    let number = |name: &'static str| field(name).map(uint).transpose();
    let rate_limit = match (field("rr"), field("rp"), field("rb")) {
        (Some(rate), Some(period), Some(burst)) => {
            let nanos = uint(period)?;
            Some(RateLimit {
                rate: u32::try_from(uint(rate)?).map_err(|_| BadReply("rate out of range"))?,
                period: Duration::from_nanos(nanos),
                burst: u32::try_from(uint(burst)?).map_err(|_| BadReply("burst out of range"))?,
            })
        }
        (None, None, None) => None,
        _ => return Err(BadReply("incomplete rate limit")),
    };
    Ok(Some(KeyInfo {
        id: id.clone(),
        subject: text(required("s")?)?,
        metadata,
        version: uint(required("v")?)?,
        created_at: Timestamp::from_micros(int(required("c")?)?),
        expires_at: time("x")?,
        revoked_at: time("r")?,
        previous_valid_until: time("pu")?.filter(|until| now < *until),
        uses: number("u")?.unwrap_or(0),
        quota: number("q")?,
        remaining_quota: number("qr")?,
        rate_limit,
        active_leases,
        fencing_token: number("f")?.unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::cluster_slot;

    fn b(s: &str) -> Reply {
        Reply::Bytes(s.as_bytes().to_vec())
    }

    /// One call of every script, with every optional part present.
    fn every_call(ns: &Namespace) -> Vec<Call> {
        let id = KeyId::random();
        let digest = KeyDigest([7; 32]);
        let spec = KeySpec::new("s")
            .with_metadata("team", "a")
            .with_expiry(Expiry::In(Duration::from_secs(60)))
            .with_rate_limit(RateLimit::new(10, Duration::from_secs(1), 5))
            .with_quota(9);
        let lease = Lease {
            id: LeaseId::random(),
            key_id: id.clone(),
            fencing_token: 1,
            expires_at: Timestamp::EPOCH,
        };
        let ttl = Duration::from_secs(1);
        vec![
            issue(ns, &id, &digest, &spec),
            verify(ns, &id, &digest, 1),
            acquire(ns, &id, &digest, 1, ttl, &LeaseId::random()),
            renew(ns, &lease, ttl),
            release(ns, &lease),
            revoke(ns, &id),
            leases(ns, &id),
            rotate(ns, &id, 1, &digest, ttl),
            inspect(ns, &id),
        ]
    }

    #[test]
    fn the_keys_of_every_script_call_hash_to_one_cluster_slot() {
        for ns in ["keylatch", "a:b", "x-1.y_z"] {
            let ns = Namespace::new(ns).expect("valid");
            let calls = every_call(&ns);
            let names: Vec<_> = calls.iter().map(|c| c.script.name()).collect();
            // Every script is covered.
            assert_eq!(names.len(), scripts::all().len());
            for script in scripts::all() {
                assert!(
                    names.contains(&script.name()),
                    "{} not called",
                    script.name()
                );
            }
            for call in calls {
                assert!(!call.keys.is_empty(), "{} names no key", call.script.name());
                let slot = cluster_slot(call.keys[0].as_bytes());
                for key in &call.keys {
                    assert_eq!(
                        cluster_slot(key.as_bytes()),
                        slot,
                        "{}: {key} is on another slot",
                        call.script.name()
                    );
                }
            }
        }
    }

    #[test]
    fn the_slot_check_can_fail() {
        // Two different ids land on different slots (for these two, checked), so a
        // script call mixing keys of two API keys would be caught above.
        let ns = Namespace::default();
        let a = KeyId::parse("aaaaaaaaaaaa").expect("valid");
        let b = KeyId::parse("bbbbbbbbbbbb").expect("valid");
        assert_ne!(
            cluster_slot(ns.record(&a).as_bytes()),
            cluster_slot(ns.leases(&b).as_bytes())
        );
    }

    #[test]
    fn rate_limit_denials_use_the_models_arithmetic() {
        let id = KeyId::random();
        // now = 1000, tat 300 ahead, T = 100, burst 3: a cost of 1 needs 100 of room
        // and 0 is left, so it fits at 1000 + 300 + 100 - 300 = 1100.
        let reply = Reply::Array(vec![
            b("rate"),
            Reply::Int(1000),
            Reply::Int(300),
            Reply::Int(100),
            Reply::Int(3),
        ]);
        let verdict = decode_verify(reply, &id, 1).expect("decodes");
        assert_eq!(
            verdict.denial().map(|d| d.reason),
            Some(DenyReason::RateLimited {
                retry_after: Duration::from_micros(100)
            })
        );
        // A cost above the burst is the script's `over_burst`, never a `rate` reply
        // (whose retry_after would never come true).
        let reply = Reply::Array(vec![
            b("rate"),
            Reply::Int(1000),
            Reply::Int(0),
            Reply::Int(1 << 40),
            Reply::Int(3),
        ]);
        assert!(decode_verify(reply, &id, 4).is_err());
        let reply = Reply::Array(vec![b("over_burst")]);
        let verdict = decode_verify(reply.clone(), &id, 4).expect("decodes");
        assert_eq!(
            verdict.denial().map(|d| d.reason),
            Some(DenyReason::CostExceedsBurst)
        );
        let lease = LeaseId::random();
        let verdict = decode_acquire(reply, &id, 4, lease).expect("decodes");
        assert_eq!(
            verdict.denial().map(|d| d.reason),
            Some(DenyReason::CostExceedsBurst)
        );
    }

    #[test]
    fn grants_carry_quota_and_rate_state() {
        let id = KeyId::random();
        let reply = Reply::Array(vec![
            b("ok"),
            b("2"),
            b("alice"),
            Reply::Int(4),
            Reply::Int(200),
            Reply::Int(100),
            Reply::Int(3),
        ]);
        let Verdict::Allowed(g) = decode_verify(reply, &id, 1).expect("decodes") else {
            panic!("not allowed")
        };
        assert_eq!((g.version, g.subject.as_str()), (2, "alice"));
        assert_eq!(g.remaining_quota, Some(4));
        assert_eq!(
            g.rate_limit,
            Some(RateLimitState {
                limit: 3,
                remaining: 1,
                reset_after: Duration::from_micros(200)
            })
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_verdicts() {
        let id = KeyId::random();
        for reply in [
            Reply::Nil,
            Reply::Int(1),
            Reply::Array(vec![]),
            Reply::Array(vec![b("allowed")]),
            Reply::Array(vec![b("ok"), b("1")]),
            Reply::Array(vec![b("rate"), Reply::Int(1)]),
        ] {
            assert!(decode_verify(reply, &id, 1).is_err());
        }
    }
}
