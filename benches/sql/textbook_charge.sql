-- textbook-postgres, step 3: charge the key the client decided to allow, while the
-- row lock of step 2 is still held.
--
-- $1 text    key id
-- $2 bigint  cost
UPDATE {table} SET remaining = remaining - $2::bigint, uses = uses + 1 WHERE id = $1::text
