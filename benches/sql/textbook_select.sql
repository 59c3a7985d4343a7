-- textbook-postgres, step 2 of BEGIN; SELECT ... FOR UPDATE; UPDATE ...; COMMIT:
-- read the key row and lock it until COMMIT. The client then compares the digest
-- and checks revocation, expiry and the quota itself.
--
-- $1 text  key id
-- Reply: zero or one row.
SELECT digest, revoked_at, expires_at, remaining
FROM {table}
WHERE id = $1::text
FOR UPDATE
