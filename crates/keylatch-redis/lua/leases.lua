-- leases.lua: read-only; how many leases of a key are still live. A draining revoke
-- polls this.
--
-- KEYS[1]  the key's lease set        <ns>:{<id>}:leases
--
-- Reply: {live_leases, next_lease_end|nil, now}

local now = now_us()
local live, next_end = lease_status(KEYS[1], now)
return {live, next_end, now}
