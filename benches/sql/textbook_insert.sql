-- textbook-postgres: inserts the keys, with their digests, and a quota of $3.
--
-- $1 text[]   key ids
-- $2 bytea[]  digests of the keys (same order)
-- $3 bigint   credits each key may spend
INSERT INTO {table} (id, subject, metadata, version, digest, created_at, quota, remaining)
SELECT k.id, 'bench-textbook', '{}'::jsonb, 1, k.digest,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, $3::bigint, $3::bigint
FROM unnest($1::text[], $2::bytea[]) AS k(id, digest)
