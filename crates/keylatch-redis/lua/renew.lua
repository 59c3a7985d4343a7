-- renew.lua: extend a live lease, unless it ended or its key was revoked or expired.
--
-- KEYS[1]  the key's record hash      <ns>:{<id>}:rec
-- KEYS[2]  the key's lease set        <ns>:{<id>}:leases
-- ARGV[1]  the lease id
-- ARGV[2]  the new lifetime in microseconds, from now
--
-- Reply: {'renewed', lease_end} | {'gone'} | {'revoked'} | {'expired'}
--
-- A lease found ended is removed. The lease set's TTL follows its last lease.

local now = now_us()
local lease_end = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not lease_end then
  return {'gone'}
end
if tonumber(lease_end) <= now then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'gone'}
end
local h = redis.call('HMGET', KEYS[1], 'r', 'x')
if h[1] then
  return {'revoked'}
end
if h[2] and now >= tonumber(h[2]) then
  return {'expired'}
end
local new_end = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], 'XX', int(new_end), ARGV[1])
expire_with_last_lease(KEYS[2])
return {'renewed', new_end}
