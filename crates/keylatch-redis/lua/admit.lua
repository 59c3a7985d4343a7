-- admit.lua: checks 1 to 5 of a verify, shared by verify.lua and acquire.lua (not a
-- script on its own). It mirrors keylatch::model::KeyRecord::admit line for line.
--
-- The GCRA theoretical arrival time is kept as two fields, tat = tw + tr, where tw
-- is the server time of the last charge and tr the room it used (at most burst * T,
-- below 2^53). A single tat field could exceed 2^53 when burst * T is near the
-- limit, and then Lua could not hold it exactly; tr - (now - tw) always can.

-- Returns (admission, nil) or (nil, denial reply).
local function admit(rec, digest, cost, now)
  local h = redis.call('HMGET', rec, 'd', 'pd', 'pu', 'r', 'x', 'rt', 'rb', 'tw', 'tr', 'qr', 'v', 's')
  if not h[1] then
    return nil, {'unknown'}
  end
  -- 1. The current secret, or the previous one during its grace period. Both
  -- comparisons always run, as in the model.
  local current = (h[1] == digest)
  local previous = (h[2] ~= false) and (h[2] == digest) and (now < tonumber(h[3]))
  if not (current or previous) then
    return nil, {'unknown'}
  end
  -- 2. Not revoked.
  if h[4] then
    return nil, {'revoked'}
  end
  -- 3. Not expired (the expiry instant itself is already expired).
  if h[5] and now >= tonumber(h[5]) then
    return nil, {'expired'}
  end
  local adm = {version = h[11], subject = h[12], quota = h[10], t = false, burst = false, used = false}
  -- 4. GCRA. A cost above the burst never fits, however long one waits, so it is
  -- its own denial rather than a retry_after that never comes true.
  if h[6] then
    local t = tonumber(h[6])
    local burst = tonumber(h[7])
    if cost > burst then
      return nil, {'over_burst'}
    end
    local cap = t * burst
    -- How far the theoretical arrival time lies ahead of now (0 when behind).
    local ahead = 0
    if h[8] then
      ahead = tonumber(h[9]) - (now - tonumber(h[8]))
      if ahead < 0 then
        ahead = 0
      end
    end
    -- cost <= burst here, so cost * t <= cap, which is below 2^53: exact.
    if cost * t > cap - ahead then
      -- The caller computes retry_after from these, with the model's integer math.
      return nil, {'rate', now, ahead, t, burst}
    end
    adm.t = t
    adm.burst = burst
    adm.used = ahead + cost * t
  end
  -- 5. Quota.
  if h[10] and tonumber(h[10]) < cost then
    return nil, {'quota'}
  end
  return adm, nil
end

-- Applies an admission: moves the GCRA state, spends the quota, counts one use.
-- Returns the quota left (false when the key has no quota).
local function charge(rec, adm, cost, now)
  if adm.t then
    redis.call('HSET', rec, 'tw', int(now), 'tr', int(adm.used))
  end
  local remaining = false
  if adm.quota then
    remaining = redis.call('HINCRBY', rec, 'qr', int(-cost))
  end
  redis.call('HINCRBY', rec, 'u', '1')
  return remaining
end
