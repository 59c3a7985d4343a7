-- verify.lua: check a presented key and, when every check passes, charge it.
--
-- KEYS[1]  the key's record hash      <ns>:{<id>}:rec
-- ARGV[1]  the presented digest (64 lowercase hex characters)
-- ARGV[2]  the cost (decimal, at most 2^53 - 1)
--
-- Reply, one of:
--   {'unknown'} | {'revoked'} | {'expired'} | {'quota'}
--   {'over_burst'}                     the cost is above the burst: it never fits
--   {'rate', now, ahead, T, burst}     rate limited; the caller derives retry_after
--   {'ok', version, subject, quota_left|nil, used|nil, T|nil, burst|nil}
--
-- A denial writes nothing. An allowed verify writes only fields of KEYS[1], a key
-- that lives as long as the API key does and so has no TTL.

local now = now_us()
local cost = tonumber(ARGV[2])
local adm, denial = admit(KEYS[1], ARGV[1], cost, now)
if not adm then
  return denial
end
local remaining = charge(KEYS[1], adm, cost, now)
return {'ok', adm.version, adm.subject, remaining, adm.used, adm.t, adm.burst}
