-- floor-postgres `select1`: one round trip that touches no table.
SELECT 1
