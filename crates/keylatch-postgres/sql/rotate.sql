-- rotate: compare-and-set of a key's secret on its version.
--
-- $1 text    key id
-- $2 bigint  the version the caller expects
-- $3 bytea   digest of the new key (32 bytes)
-- $4 bigint  grace in microseconds (0 ..= 366 days): how long the old secret keeps working
--
-- Reply: exactly one row.
--   gate_ok          false when the transaction is not READ COMMITTED, or would commit
--                    without waiting for the disk or the synchronous standbys
--                    (synchronous_commit = off or local): nothing touched; the client
--                    runs it again in a READ COMMITTED transaction that commits
--                    synchronously
--   current_version  the key's version before this statement; NULL when no key has this id
--   revoked          whether the key is revoked (a revoked key is never rotated)
--   new_version      the version written; NULL when nothing was written, which the
--                    client reports as NotFound, Revoked or Conflict, never as success
--
-- Lock order: the key row only. Of all rotations racing with the same expected
-- version, the first to lock the row writes version + 1; the others queue on the
-- lock, re-read the row and find the version moved. Like revoke, it only ever
-- commits synchronously: a retired secret cannot come back after a crash.
WITH gate AS MATERIALIZED (
    SELECT current_setting('transaction_isolation') = 'read committed'
           AND current_setting('synchronous_commit') NOT IN ('off', 'local') AS ok
),
locked AS MATERIALIZED (
    SELECT k.id, k.version, k.revoked_at, k.digest
    FROM {schema}.keys k
    WHERE k.id = $1::text
      AND current_setting('transaction_isolation') = 'read committed'
      AND current_setting('synchronous_commit') NOT IN ('off', 'local')
    FOR NO KEY UPDATE
),
clocked AS MATERIALIZED (
    SELECT l.*, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us
    FROM locked l
),
rotated AS (
    UPDATE {schema}.keys k
    SET digest = $3::bytea,
        version = c.version + 1,
        -- A grace of zero keeps no previous secret; a secret from an earlier
        -- rotation still in its grace is replaced and stops working at once.
        prev_digest = CASE WHEN $4::bigint > 0 THEN c.digest END,
        prev_valid_until = CASE WHEN $4::bigint > 0 THEN c.now_us + $4::bigint END
    FROM clocked c
    WHERE k.id = c.id AND c.revoked_at IS NULL AND c.version = $2::bigint
    RETURNING k.version
)
SELECT gate.ok AS gate_ok,
       c.version AS current_version,
       c.revoked_at IS NOT NULL AS revoked,
       r.version AS new_version
FROM gate
LEFT JOIN clocked c ON true
LEFT JOIN rotated r ON true
