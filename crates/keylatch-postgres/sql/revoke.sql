-- revoke: marks a key revoked (idempotent). The drain that follows is drain.sql.
--
-- $1 text  key id
--
-- Reply: exactly one row.
--   gate_ok        false when the transaction is not READ COMMITTED, or would commit
--                  without waiting for the disk or the synchronous standbys
--                  (synchronous_commit = off or local): nothing touched; the client
--                  runs it again in a READ COMMITTED transaction that commits
--                  synchronously
--   found          whether a key has this id
--   newly_revoked  false when the key already was revoked
--   fencing        the key's lease counter: 0 means no lease was ever granted on it,
--                  so there is nothing to drain and the client skips drain.sql
--
-- Lock order: the key row only. Every verify, acquire and renew of the key queues on
-- that row lock, and sees the revocation once this statement commits; none that
-- starts after revoke returns can succeed. It only ever commits synchronously: an
-- acknowledged revocation is on disk (and on synchronous standbys, if configured).
WITH gate AS MATERIALIZED (
    SELECT current_setting('transaction_isolation') = 'read committed'
           AND current_setting('synchronous_commit') NOT IN ('off', 'local') AS ok
),
locked AS MATERIALIZED (
    SELECT k.id, k.revoked_at, k.fencing
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
marked AS (
    UPDATE {schema}.keys k
    SET revoked_at = c.now_us
    FROM clocked c
    WHERE k.id = c.id AND c.revoked_at IS NULL
    RETURNING true AS done
)
SELECT gate.ok AS gate_ok,
       c.id IS NOT NULL AS found,
       coalesce(m.done, false) AS newly_revoked,
       c.fencing
FROM gate
LEFT JOIN clocked c ON true
LEFT JOIN marked m ON true
