-- issue: stores a new key at version 1.
--
-- $1  text    key id (12 random base62 characters, from the client)
-- $2  text    subject
-- $3  text    metadata as a JSON object of strings
-- $4  bytea   digest of the new key (32 bytes)
-- $5  bigint  absolute expiry in microseconds since the epoch, or NULL
-- $6  bigint  relative expiry in microseconds from now (server clock), or NULL
-- $7  bigint  rate limit: rate, or NULL for none
-- $8  bigint  rate limit: period in nanoseconds, or NULL
-- $9  bigint  rate limit: burst, or NULL
-- $10 bigint  quota, or NULL for none
--
-- Reply: exactly one row.
--   gate_ok   false when the transaction is not READ COMMITTED (nothing written)
--   inserted  false when the id is taken (the client draws a new one)
--
-- Writes one new row; locks nothing another operation holds.
WITH gate AS MATERIALIZED (
    SELECT current_setting('transaction_isolation') = 'read committed' AS ok
),
inserted AS (
    INSERT INTO {schema}.keys
        (id, subject, metadata, version, digest, created_at, expires_at,
         rl_rate, rl_period_ns, rl_burst, quota, remaining)
    SELECT $1::text, $2::text, $3::text::jsonb, 1, $4::bytea, c.now_us,
           coalesce($5::bigint, c.now_us + $6::bigint),
           $7::bigint, $8::bigint, $9::bigint, $10::bigint, $10::bigint
    FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us) c
    WHERE current_setting('transaction_isolation') = 'read committed'
    ON CONFLICT (id) DO NOTHING
    RETURNING true AS done
)
SELECT gate.ok AS gate_ok, coalesce((SELECT done FROM inserted), false) AS inserted
FROM gate
