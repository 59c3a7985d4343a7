-- issue.lua: create a key's record at version 1, unless the id is taken.
--
-- KEYS[1]  the key's record hash      <ns>:{<id>}:rec
-- ARGV[1]  the digest (64 lowercase hex characters)
-- ARGV[2]  the subject
-- ARGV[3]  expiry: '' (none), 'at' (ARGV[4] is an instant, us) or 'in' (ARGV[4] is a
--          duration, us, added to the server's now)
-- ARGV[4]  the expiry value (decimal) or ''
-- ARGV[5]  rate limit: T, the emission interval in us, or '' for none
-- ARGV[6]  rate limit: burst
-- ARGV[7]  rate limit: rate
-- ARGV[8]  rate limit: period in us
-- ARGV[9]  quota (decimal) or '' for none
-- ARGV[10..] metadata as name, value pairs
--
-- Reply: {'exists'} | {'ok', created_at}
--
-- The record has no TTL, even with an expiry: inspect of an expired key must keep
-- answering, and an expired key must be denied as Expired, not Unknown.

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
local now = now_us()
local f = {'d', ARGV[1], 'v', '1', 's', ARGV[2], 'c', int(now), 'u', '0', 'f', '0'}
local function put(name, value)
  f[#f + 1] = name
  f[#f + 1] = value
end
if ARGV[3] == 'at' then
  put('x', ARGV[4])
elseif ARGV[3] == 'in' then
  put('x', int(now + tonumber(ARGV[4])))
end
if ARGV[5] ~= '' then
  put('rt', ARGV[5])
  put('rb', ARGV[6])
  put('rr', ARGV[7])
  put('rp', ARGV[8])
end
if ARGV[9] ~= '' then
  put('q', ARGV[9])
  put('qr', ARGV[9])
end
for i = 10, #ARGV, 2 do
  put('m:' .. ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], unpack(f))
return {'ok', now}
