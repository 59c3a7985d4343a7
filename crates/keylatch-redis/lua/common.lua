-- common.lua: helpers prepended to every keylatch script (not a script on its own).
--
-- Numbers: Redis runs Lua 5.1, whose numbers are doubles. Every value keylatch keeps
-- is an integer below 2^53 (the core validates MAX_CREDITS; microsecond timestamps
-- are near 2^51), so arithmetic on them is exact. They are never handed to
-- redis.call or stored as Lua numbers, because tostring() prints only 14 digits:
-- int() formats them with %d, which is exact.

local function int(x)
  return string.format('%d', x)
end

-- The server's clock in microseconds. Time never comes from the caller, so one
-- application server with a slow clock cannot refill buckets early.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Leases still live at `now` (ending strictly after it) and the earliest end among
-- them (false when there is none).
local function lease_status(leases, now)
  local bound = '(' .. int(now)
  local live = redis.call('ZCOUNT', leases, bound, '+inf')
  local first = redis.call('ZRANGEBYSCORE', leases, bound, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local next_end = false
  if first[2] then
    next_end = tonumber(first[2])
  end
  return live, next_end
end

-- Gives the lease set the TTL the design requires: it expires with its last lease,
-- so no lease set outlives the leases in it. Called by every script that adds to it
-- or moves a lease's end, in the same script, so the set never exists without a TTL.
local function expire_with_last_lease(leases)
  local last = redis.call('ZRANGE', leases, -1, -1, 'WITHSCORES')
  if last[2] then
    -- Round up to the next millisecond: the set must not expire before its last
    -- lease ends.
    local end_ms = math.floor(tonumber(last[2]) / 1000) + 1
    redis.call('PEXPIREAT', leases, int(end_ms))
  end
end
