-- release: ends a lease. Releasing an unknown or ended lease changes nothing.
--
-- $1 text  key id
-- $2 text  lease id
--
-- Reply: exactly one row.
--   gate_ok  false when the transaction is not READ COMMITTED (nothing touched)
--
-- Lock order: the lease row only. release never waits for a key row, so it cannot
-- close a cycle with acquire or renew, which lock the key row before lease rows.
WITH gate AS MATERIALIZED (
    SELECT current_setting('transaction_isolation') = 'read committed' AS ok
),
released AS (
    DELETE FROM {schema}.leases l
    WHERE l.key_id = $1::text
      AND l.lease_id = $2::text
      AND current_setting('transaction_isolation') = 'read committed'
)
SELECT gate.ok AS gate_ok
FROM gate
