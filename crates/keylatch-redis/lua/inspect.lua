-- inspect.lua: read-only snapshot of a key, without its digests.
--
-- KEYS[1]  the key's record hash      <ns>:{<id>}:rec
-- KEYS[2]  the key's lease set        <ns>:{<id>}:leases
--
-- Reply: {'missing'} | {'ok', now, live_leases, field1, value1, field2, value2, ...}
-- with every field of the record except the digests d and pd.

local now = now_us()
local all = redis.call('HGETALL', KEYS[1])
if #all == 0 then
  return {'missing'}
end
local live = lease_status(KEYS[2], now)
local out = {'ok', now, live}
for i = 1, #all, 2 do
  if all[i] ~= 'd' and all[i] ~= 'pd' then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
