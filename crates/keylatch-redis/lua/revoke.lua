-- revoke.lua: mark a key revoked (idempotent) and report its live leases.
--
-- KEYS[1]  the key's record hash      <ns>:{<id>}:rec
-- KEYS[2]  the key's lease set        <ns>:{<id>}:leases
--
-- Reply: {'missing'} | {'ok', newly_revoked (1|0), live_leases, next_lease_end|nil, now}
--
-- Writes only the field r (revoked at) of KEYS[1], which has no TTL: the record of
-- a revoked key is kept so that inspect and the Revoked denial keep working.

local now = now_us()
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing'}
end
local newly = redis.call('HSETNX', KEYS[1], 'r', int(now))
local live, next_end = lease_status(KEYS[2], now)
return {'ok', newly, live, next_end, now}
