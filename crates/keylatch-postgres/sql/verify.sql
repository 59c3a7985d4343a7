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
-- Lock order: the key row only (FOR NO KEY UPDATE). The clock is read after that lock
-- is held, so the instant this verify happens at is never earlier than the instant of
-- the operation it queued behind. The arithmetic is KeyRecord::admit's, in integer
-- microseconds; products go through numeric and saturate like the model's i64 math.
WITH gate AS MATERIALIZED (
    SELECT current_setting('transaction_isolation') = 'read committed'
           AND current_setting('synchronous_commit') <> 'off' AS ok
),
locked AS MATERIALIZED (
    SELECT k.id, k.subject, k.version, k.digest, k.prev_digest, k.prev_valid_until,
           k.expires_at, k.revoked_at, k.rl_rate, k.rl_period_ns, k.rl_burst, k.tat,
           k.remaining, k.uses
    FROM {schema}.keys k
    WHERE k.id = $1::text
      AND current_setting('transaction_isolation') = 'read committed'
      AND current_setting('synchronous_commit') <> 'off'
    FOR NO KEY UPDATE
),
clocked AS MATERIALIZED (
    SELECT l.*,
           (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us,
           (l.rl_period_ns / 1000) / l.rl_rate AS t
    FROM locked l
),
gcra AS MATERIALIZED (
    SELECT c.*,
           c.t * c.rl_burst AS capacity,
           least(greatest(c.tat, c.now_us)::numeric + $3::bigint::numeric * c.t,
                 9223372036854775807)::bigint AS new_tat
    FROM clocked c
),
decision AS MATERIALIZED (
    SELECT g.*,
           CASE
               -- IS NOT TRUE, not NOT: with no previous secret the second comparison
               -- is NULL, and a NULL condition must deny, never fall through.
               WHEN ((g.digest = $2::bytea)
                     OR (g.prev_digest = $2::bytea AND g.now_us < g.prev_valid_until))
                    IS NOT TRUE
                   THEN 'unknown'
               WHEN g.revoked_at IS NOT NULL THEN 'revoked'
               WHEN g.expires_at IS NOT NULL AND g.now_us >= g.expires_at THEN 'expired'
               WHEN g.t IS NOT NULL AND $3::bigint > g.rl_burst THEN 'cost_exceeds_burst'
               WHEN g.t IS NOT NULL AND g.new_tat - g.capacity > g.now_us THEN 'rate_limited'
               WHEN g.remaining IS NOT NULL AND g.remaining < $3::bigint THEN 'quota_exhausted'
               ELSE 'allowed'
           END AS outcome
    FROM gcra g
),
charged AS (
    UPDATE {schema}.keys k
    SET tat = CASE WHEN d.t IS NULL THEN d.tat ELSE d.new_tat END,
        remaining = d.remaining - $3::bigint,
        uses = d.uses + 1
    FROM decision d
    WHERE k.id = d.id AND d.outcome = 'allowed'
    RETURNING true AS done, k.remaining
)
SELECT gate.ok AS gate_ok,
       d.outcome,
       coalesce(c.done, false) AS charged,
       d.subject,
       d.version,
       c.remaining,
       d.rl_burst,
       CASE WHEN d.outcome = 'allowed' AND d.t IS NOT NULL
            THEN (d.capacity - (d.new_tat - d.now_us)) / d.t END AS rl_remaining,
       CASE WHEN d.outcome = 'allowed' AND d.t IS NOT NULL
            THEN d.new_tat - d.now_us END AS reset_after_us,
       CASE WHEN d.outcome = 'rate_limited'
            THEN d.new_tat - d.capacity - d.now_us END AS retry_after_us
FROM gate
LEFT JOIN decision d ON true
LEFT JOIN charged c ON true
