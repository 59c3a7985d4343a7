-- renew: extends a live lease, unless it ended or its key is revoked or expired.
--
-- $1 text    key id
-- $2 text    lease id
-- $3 bigint  the new lifetime in microseconds from now, 0 ..= 366 days
--
-- Reply: exactly one row.
--   gate_ok     false when the transaction is not READ COMMITTED (nothing touched)
--   outcome     NULL when the lease (or its key) does not exist, else
--               gone | revoked | key_expired | renewed (KeyRecord::renew's order)
--   expires_at  the lease's new end, when renewed
--
-- Lock order: the key row FOR SHARE first, then the lease row FOR UPDATE, reached
-- only through the locked key row. FOR SHARE conflicts with the row lock revoke
-- takes, so a renew and a revoke of the same key are ordered by the key row: a renew
-- queued behind a revoke sees the revocation. Renews of the same key share the lock.
WITH gate AS MATERIALIZED (
    SELECT current_setting('transaction_isolation') = 'read committed' AS ok
),
key_row AS MATERIALIZED (
    SELECT k.id, k.revoked_at, k.expires_at
    FROM {schema}.keys k
    WHERE k.id = $1::text
      AND current_setting('transaction_isolation') = 'read committed'
    FOR SHARE
),
lease_row AS MATERIALIZED (
    SELECT l.key_id, l.lease_id, l.expires_at
    FROM {schema}.leases l
    JOIN key_row k ON l.key_id = k.id
    WHERE l.lease_id = $2::text
    FOR UPDATE OF l
),
decision AS MATERIALIZED (
    SELECT c.*,
           CASE
               WHEN c.expires_at <= c.now_us THEN 'gone'
               WHEN c.revoked_at IS NOT NULL THEN 'revoked'
               WHEN c.key_expires_at IS NOT NULL AND c.now_us >= c.key_expires_at
                   THEN 'key_expired'
               ELSE 'renewed'
           END AS outcome
    FROM (
        SELECT l.key_id, l.lease_id, l.expires_at,
               k.revoked_at, k.expires_at AS key_expires_at,
               (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us
        FROM lease_row l
        JOIN key_row k ON k.id = l.key_id
    ) c
),
-- A lease found ended is pruned, as KeyRecord::renew does.
pruned AS (
    DELETE FROM {schema}.leases l
    USING decision d
    WHERE l.key_id = d.key_id AND l.lease_id = d.lease_id AND d.outcome = 'gone'
),
renewed AS (
    UPDATE {schema}.leases l
    SET expires_at = d.now_us + $3::bigint
    FROM decision d
    WHERE l.key_id = d.key_id AND l.lease_id = d.lease_id AND d.outcome = 'renewed'
    RETURNING l.expires_at
)
SELECT gate.ok AS gate_ok, d.outcome, r.expires_at
FROM gate
LEFT JOIN decision d ON true
LEFT JOIN renewed r ON true
