-- acquire.lua: a verify that also grants a lease with the next fencing token.
--
-- KEYS[1]  the key's record hash      <ns>:{<id>}:rec
-- KEYS[2]  the key's lease set        <ns>:{<id>}:leases  (sorted set: lease id -> end, us)
-- ARGV[1]  the presented digest (64 lowercase hex characters)
-- ARGV[2]  the cost (decimal, at most 2^53 - 1)
-- ARGV[3]  the lease lifetime in microseconds
-- ARGV[4]  the new lease's id (22 base62 characters, chosen by the caller)
--
-- Reply: a denial as in verify.lua ({'unknown'} | {'revoked'} | {'expired'} |
-- {'quota'} | {'over_burst'} | {'rate', now, ahead, T, burst}), or
--   {'ok', version, subject, quota_left|nil, used|nil, T|nil, burst|nil, fencing, lease_end}
--
-- Leases that have ended are pruned first. The lease set gets a TTL (its last
-- lease's end) in this same script.

local now = now_us()
local cost = tonumber(ARGV[2])
local adm, denial = admit(KEYS[1], ARGV[1], cost, now)
if not adm then
  return denial
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', int(now))
local remaining = charge(KEYS[1], adm, cost, now)
local fencing = redis.call('HINCRBY', KEYS[1], 'f', '1')
local lease_end = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], int(lease_end), ARGV[4])
expire_with_last_lease(KEYS[2])
return {'ok', adm.version, adm.subject, remaining, adm.used, adm.t, adm.burst, fencing, lease_end}
