-- drain: how many leases of a key are still live, and when the first of them ends.
-- revoke runs this after its own statement has committed, so that this statement's
-- snapshot includes every lease granted before the revocation.
--
-- $1 text  key id
--
-- Reply: exactly one row.
--   gate_ok      false when the transaction is not READ COMMITTED (nothing read)
--   live         leases with expires_at > now
--   next_end_us  microseconds until the earliest of them ends (NULL when none)
--
-- Reads only; takes no row locks.
WITH gate AS MATERIALIZED (
    SELECT current_setting('transaction_isolation') = 'read committed' AS ok
),
clock AS MATERIALIZED (
    SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us
),
live AS MATERIALIZED (
    SELECT l.expires_at
    FROM {schema}.leases l, clock c
    WHERE l.key_id = $1::text
      AND l.expires_at > c.now_us
      AND current_setting('transaction_isolation') = 'read committed'
)
SELECT gate.ok AS gate_ok,
       (SELECT count(*) FROM live) AS live,
       (SELECT min(expires_at) FROM live) - clock.now_us AS next_end_us
FROM gate, clock
