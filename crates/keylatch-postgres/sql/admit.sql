-- admit: the front shared by verify.sql and acquire.sql, which append their writes
-- to it (sql.rs joins the text; this part ends with the comma before their CTEs). Together they are one statement each.
--
-- $1 text    key id (parsed from the presented key by the client)
-- $2 bytea   digest of the presented key (32 bytes; the plaintext never leaves the client)
-- $3 bigint  cost, 0 ..= 2^53 - 1
--
-- CTEs it defines for the rest of the statement:
--   gate      one row, ok: false when the transaction is not READ COMMITTED, or would
--             commit without waiting for the disk or the synchronous standbys
--             (synchronous_commit = off or local, so a crash or failover could undo
--             an acknowledged charge and hand out a fencing token twice); then
--             nothing below reads, locks or changes anything
--   decision  zero rows (no key has this id) or the key row locked FOR NO KEY
--             UPDATE, with now_us read after the lock is held, the GCRA terms t,
--             capacity and new_tat, and outcome: allowed | unknown | revoked |
--             expired | cost_exceeds_burst | rate_limited | quota_exhausted, in the
--             model's check order (KeyRecord::admit)
--
-- Lock order: the key row only. The clock is read after that lock is held, so the
-- instant an operation happens at is never earlier than the instant of the operation
-- it queued behind. The arithmetic is KeyRecord::admit's, in integer microseconds;
-- products go through numeric and saturate like the model's i64 math.
WITH gate AS MATERIALIZED (
    SELECT current_setting('transaction_isolation') = 'read committed'
           AND current_setting('synchronous_commit') NOT IN ('off', 'local') AS ok
),
locked AS MATERIALIZED (
    SELECT k.id, k.subject, k.version, k.digest, k.prev_digest, k.prev_valid_until,
           k.expires_at, k.revoked_at, k.rl_rate, k.rl_period_ns, k.rl_burst, k.tat,
           k.remaining, k.uses, k.fencing
    FROM {schema}.keys k
    WHERE k.id = $1::text
      AND current_setting('transaction_isolation') = 'read committed'
      AND current_setting('synchronous_commit') NOT IN ('off', 'local')
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
