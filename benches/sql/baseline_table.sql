-- A table of exactly the shape of keylatch-postgres's `keys` (its migration
-- 0001_keys_and_leases.sql): the same columns, constraints and fillfactor, so that
-- the floor and textbook baselines write rows as wide as the backend's and pay the
-- same constraint checks. `{table}` is replaced by a schema-qualified, quoted name.
CREATE TABLE {table} (
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
    CONSTRAINT digest_len CHECK (octet_length(digest) = 32),
    CONSTRAINT prev_pair CHECK ((prev_digest IS NULL) = (prev_valid_until IS NULL)),
    CONSTRAINT rate_limit_whole CHECK (
        (rl_rate IS NULL) = (rl_period_ns IS NULL) AND (rl_rate IS NULL) = (rl_burst IS NULL)),
    CONSTRAINT rate_limit_sane CHECK (rl_rate >= 1 AND rl_burst >= 1 AND rl_period_ns >= 0),
    CONSTRAINT quota_pair CHECK ((quota IS NULL) = (remaining IS NULL)),
    CONSTRAINT remaining_sane CHECK (remaining >= 0)
) WITH (fillfactor = 80);
