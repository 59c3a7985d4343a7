-- release.lua: end a lease. Releasing an ended or unknown lease does nothing.
--
-- KEYS[1]  the key's lease set        <ns>:{<id>}:leases
-- ARGV[1]  the lease id
--
-- Reply: 1 when the lease was in the set, else 0.
--
-- Removing the last member deletes the set; otherwise its TTL (its last lease's
-- end) still bounds it.

return redis.call('ZREM', KEYS[1], ARGV[1])
