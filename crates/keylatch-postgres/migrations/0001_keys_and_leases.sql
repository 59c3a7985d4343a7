-- keylatch-postgres schema, version 1.
--
-- PgStore runs this migration with search_path set to the store's schema, so the
-- names below are unqualified and land in that schema (sqlx's _sqlx_migrations
-- bookkeeping table too). Every instant is a bigint of microseconds since the Unix
-- epoch on the server's clock, the unit the reference model computes in, so that the
-- GCRA arithmetic is exact integer arithmetic and any keylatch Timestamp round-trips.

-- One row per key. Every operation on a key locks this row and nothing else first,
-- which is the whole of keylatch's lock order (key row, then its lease rows).
-- fillfactor leaves room on each page so that the hot path (verify rewrites tat,
-- remaining and uses, none of them indexed) stays a HOT update without index writes.
CREATE TABLE keys (
    id               text COLLATE "C" PRIMARY KEY,
    subject          text   NOT NULL,
    metadata         jsonb  NOT NULL,
    version          bigint NOT NULL,
    digest           bytea  NOT NULL,
    prev_digest      bytea,
    prev_valid_until bigint,
    created_at       bigint NOT NULL,
    expires_at       bigint,
    revoked_at       bigint,
    rl_rate          bigint,
    rl_period_ns     bigint,
    rl_burst         bigint,
    tat              bigint NOT NULL DEFAULT 0,
    quota            bigint,
    remaining        bigint,
    uses             bigint NOT NULL DEFAULT 0,
    fencing          bigint NOT NULL DEFAULT 0,
    CONSTRAINT keys_digest_len CHECK (octet_length(digest) = 32),
    CONSTRAINT keys_prev_pair CHECK ((prev_digest IS NULL) = (prev_valid_until IS NULL)),
    CONSTRAINT keys_rate_limit_whole CHECK (
        (rl_rate IS NULL) = (rl_period_ns IS NULL) AND (rl_rate IS NULL) = (rl_burst IS NULL)),
    -- The emission interval T = floor(floor(period_ns / 1000) / rate) is at least one
    -- microsecond (KeySpec::validate), so the statements never divide by zero.
    CONSTRAINT keys_rate_limit_sane CHECK (
        rl_rate >= 1 AND rl_burst >= 1 AND (rl_period_ns / 1000) / rl_rate >= 1),
    CONSTRAINT keys_quota_pair CHECK ((quota IS NULL) = (remaining IS NULL)),
    CONSTRAINT keys_remaining_sane CHECK (remaining >= 0)
) WITH (fillfactor = 80);

-- One row per lease that has not been released or pruned. A lease whose expires_at
-- has passed is dead even while its row is still here: every reader compares it
-- with the clock, and acquire prunes the dead rows of its key.
CREATE TABLE leases (
    key_id     text COLLATE "C" NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
    lease_id   text COLLATE "C" NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (key_id, lease_id)
);
