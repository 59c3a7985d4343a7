-- inspect: a snapshot of a key, never its digest.
--
-- $1 text  key id
--
-- Reply: exactly one row.
--   gate_ok  false when the transaction is not READ COMMITTED (nothing read)
--   found    whether a key has this id; the other columns are the key's, with
--            previous_valid_until only while that secret still works and
--            active_leases counting leases with expires_at > now
--
-- Reads only, from one snapshot; takes no row locks.
WITH gate AS MATERIALIZED (
    SELECT current_setting('transaction_isolation') = 'read committed' AS ok
),
clock AS MATERIALIZED (
    SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us
),
k AS MATERIALIZED (
    SELECT k.*
    FROM {schema}.keys k
    WHERE k.id = $1::text
      AND current_setting('transaction_isolation') = 'read committed'
)
SELECT gate.ok AS gate_ok,
       k.id IS NOT NULL AS found,
       k.subject,
       k.metadata::text AS metadata,
       k.version,
       k.created_at,
       k.expires_at,
       k.revoked_at,
       CASE WHEN clock.now_us < k.prev_valid_until THEN k.prev_valid_until END
           AS previous_valid_until,
       k.uses,
       k.quota,
       k.remaining,
       k.rl_rate,
       k.rl_period_ns,
       k.rl_burst,
       (SELECT count(*) FROM {schema}.leases l
         WHERE l.key_id = k.id AND l.expires_at > clock.now_us) AS active_leases,
       k.fencing
FROM gate
CROSS JOIN clock
LEFT JOIN k ON true
