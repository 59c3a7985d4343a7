-- floor-postgres `update`: the least a write of one key row can cost, one statement
-- in one round trip with no checks, on a table of the backend's shape. This is the
-- physical floor for keylatch's verify (also one statement, one round trip).
--
-- $1 text  row id
-- Reply: one row, the new use count.
UPDATE {table} SET uses = uses + 1 WHERE id = $1::text RETURNING uses
