-- acquire: a verify that, when allowed, also grants a lease, in one statement.
--
-- $1 text    key id
-- $2 bytea   digest of the presented key
-- $3 bigint  cost, 0 ..= 2^53 - 1
-- $4 text    the new lease's id (22 base62 characters, random, from the client)
-- $5 bigint  the lease's lifetime in microseconds, 0 ..= 366 days
--
-- Reply: exactly one row, the columns of verify.sql plus
--   fencing_token     the lease's fencing token (the key's counter plus one)
--   lease_expires_at  now + $5, on the server's clock
--
-- Lock order: the key row (FOR NO KEY UPDATE), then, only through rows that join
-- the charged key row, the key's dead lease rows (pruned) and the new lease row. No
-- lease row can be locked before the key row, so acquire cannot deadlock with renew,
-- release or another acquire. The checks and arithmetic are admit.sql's, which
-- sql.rs puts in front of this text.
charged AS (
    UPDATE {schema}.keys k
    SET tat = CASE WHEN d.t IS NULL THEN d.tat ELSE d.new_tat END,
        remaining = d.remaining - $3::bigint,
        uses = d.uses + 1,
        fencing = d.fencing + 1
    FROM decision d
    WHERE k.id = d.id AND d.outcome = 'allowed'
    RETURNING true AS done, k.id, k.remaining, k.fencing, d.now_us
),
-- Leases that ended at or before now are dead; drop their rows (KeyRecord::prune_leases).
-- The statement's snapshot cannot see the lease inserted below, so it is never pruned.
pruned AS (
    DELETE FROM {schema}.leases l
    USING charged c
    WHERE l.key_id = c.id AND l.expires_at <= c.now_us
),
granted AS (
    INSERT INTO {schema}.leases (key_id, lease_id, expires_at)
    SELECT c.id, $4::text, c.now_us + $5::bigint
    FROM charged c
    RETURNING expires_at
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
            THEN d.new_tat - d.capacity - d.now_us END AS retry_after_us,
       c.fencing AS fencing_token,
       gr.expires_at AS lease_expires_at
FROM gate
LEFT JOIN decision d ON true
LEFT JOIN charged c ON true
LEFT JOIN granted gr ON true
