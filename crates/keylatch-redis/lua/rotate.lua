-- rotate.lua: compare-and-set the key's secret on its version.
--
-- KEYS[1]  the key's record hash      <ns>:{<id>}:rec
-- ARGV[1]  the expected version (decimal)
-- ARGV[2]  the new digest (64 lowercase hex characters)
-- ARGV[3]  the grace period of the old secret, in microseconds (0: none)
--
-- Reply: {'missing'} | {'revoked'} | {'conflict', current_version} | {'ok', new_version}
--
-- The previous secret (pd) works until pu = now + grace; a secret from an earlier
-- rotation still in its grace stops at once. Writes only fields of KEYS[1].

local now = now_us()
local h = redis.call('HMGET', KEYS[1], 'v', 'r', 'd')
if not h[1] then
  return {'missing'}
end
if h[2] then
  return {'revoked'}
end
-- Both are canonical decimal strings, so comparing the text is exact.
if h[1] ~= ARGV[1] then
  return {'conflict', h[1]}
end
local grace = tonumber(ARGV[3])
if grace > 0 then
  redis.call('HSET', KEYS[1], 'pd', h[3], 'pu', int(now + grace))
else
  redis.call('HDEL', KEYS[1], 'pd', 'pu')
end
redis.call('HSET', KEYS[1], 'd', ARGV[2])
local version = redis.call('HINCRBY', KEYS[1], 'v', '1')
return {'ok', version}
