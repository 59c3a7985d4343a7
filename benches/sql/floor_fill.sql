-- floor-postgres: fills the floor table with $1 rows whose ids are
-- 'f' followed by the row number in 11 digits (12 characters, like a key id).
--
-- $1 integer  number of rows
INSERT INTO {table} (id, subject, metadata, version, digest, created_at)
SELECT 'f' || lpad(i::text, 11, '0'), 'bench-floor', '{}'::jsonb, 1,
       sha256(convert_to(i::text, 'UTF8')), 0
FROM generate_series(0, $1::integer - 1) AS i
