-- verify: every check of a presented key and, if all pass, its charge, in one statement.
--
-- $1 text    key id (parsed from the presented key by the client)
-- $2 bytea   digest of the presented key (32 bytes; the plaintext never leaves the client)
-- $3 bigint  cost, 0 ..= 2^53 - 1
--
-- Reply: exactly one row.
--   gate_ok        false when the transaction is not READ COMMITTED, or would commit
--                  asynchronously (synchronous_commit = off, so a crash could undo an
--                  acknowledged charge and hand out a fencing token twice); then
--                  nothing was read, locked or changed and every other column is NULL
--                  (the client runs the statement again inside a READ COMMITTED
--                  transaction that commits synchronously)
--   outcome        NULL when no key has this id, else allowed | unknown | revoked |
--                  expired | cost_exceeds_burst | rate_limited | quota_exhausted (the
--                  model's check order)
--   charged        true when the charge was written (outcome allowed)
--   subject, version, remaining (after the charge), rl_burst, rl_remaining,
--   reset_after_us, retry_after_us (rate_limited only)
--
-- Two paths inside the one statement. The fast path is a single UPDATE that charges
-- a key whose checks need no arithmetic: the current secret, not revoked, not
-- expired, no rate limit, enough quota. It locks the row only by updating it, which
-- costs the server about what a bare UPDATE does; a SELECT ... FOR NO KEY UPDATE
-- first would write the row twice. At READ COMMITTED, when another statement changed
-- the row after this one's snapshot, PostgreSQL waits for it and evaluates the WHERE
-- again on the newest version (clock_timestamp() included, so the expiry check reads
-- the clock after the wait), which makes the fast path decide on the same row and
-- instant as the full checks would.
--
-- Everything else (a denial, a previous secret in its grace period, a rate-limited
-- key, whose GCRA step must read the clock after the lock is held) charges nothing
-- on the fast path, so slow_path.needed is true and admit.sql's full checks run
-- under the row lock; their charge is the `charged` CTE. At most one of the two
-- paths writes, since the slow path locks nothing when the fast path charged.
--
-- Lock order: the key row only.
WITH fast AS (
    UPDATE {schema}.keys k
    SET remaining = k.remaining - $3::bigint,
        uses = k.uses + 1
    WHERE k.id = $1::text
      AND current_setting('transaction_isolation') = 'read committed'
      AND current_setting('synchronous_commit') <> 'off'
      AND k.digest = $2::bytea
      AND k.revoked_at IS NULL
      AND (k.expires_at IS NULL
           OR (extract(epoch FROM clock_timestamp()) * 1000000)::bigint < k.expires_at)
      AND k.rl_rate IS NULL
      AND (k.remaining IS NULL OR k.remaining >= $3::bigint)
    RETURNING k.subject, k.version, k.remaining
),
slow_path AS MATERIALIZED (
    SELECT NOT EXISTS (SELECT 1 FROM fast) AS needed
),
{admit}
charged AS (
    UPDATE {schema}.keys k
    SET tat = CASE WHEN d.t IS NULL THEN d.tat ELSE d.new_tat END,
        remaining = d.remaining - $3::bigint,
        uses = d.uses + 1
    FROM decision d
    WHERE k.id = d.id AND d.outcome = 'allowed'
    RETURNING true AS done, k.remaining
)
-- The fast path's row, when it charged, is an allowed verdict without rate-limit
-- state (its key has no rate limit); otherwise the slow path's decision stands.
SELECT gate.ok AS gate_ok,
       CASE WHEN f.version IS NOT NULL THEN 'allowed' ELSE d.outcome END AS outcome,
       f.version IS NOT NULL OR coalesce(c.done, false) AS charged,
       coalesce(f.subject, d.subject) AS subject,
       coalesce(f.version, d.version) AS version,
       CASE WHEN f.version IS NOT NULL THEN f.remaining ELSE c.remaining END AS remaining,
       d.rl_burst,
       CASE WHEN d.outcome = 'allowed' AND d.t IS NOT NULL
            THEN (d.capacity - (d.new_tat - d.now_us)) / d.t END AS rl_remaining,
       CASE WHEN d.outcome = 'allowed' AND d.t IS NOT NULL
            THEN d.new_tat - d.now_us END AS reset_after_us,
       CASE WHEN d.outcome = 'rate_limited'
            THEN d.new_tat - d.capacity - d.now_us END AS retry_after_us
FROM gate
LEFT JOIN fast f ON true
LEFT JOIN decision d ON true
LEFT JOIN charged c ON true
