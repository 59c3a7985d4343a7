-- verify: every check of a presented key and, if all pass, its charge, in one statement.
--
-- $1 text    key id (parsed from the presented key by the client)
-- $2 bytea   digest of the presented key (32 bytes; the plaintext never leaves the client)
-- $3 bigint  cost, 0 ..= 2^53 - 1
--
-- Reply: exactly one row.
--   gate_ok        false when the transaction is not READ COMMITTED, or would commit
--                  without waiting for the disk or the synchronous standbys
--                  (synchronous_commit = off or local, so a crash or failover could
--                  undo an acknowledged charge and hand out a fencing token twice); then
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
-- Lock order: the key row only. The checks, the clock and the arithmetic are
-- admit.sql's, which sql.rs puts in front of this text.
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
