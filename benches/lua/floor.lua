-- floor-redis `evalsha`: the least a script call on one key can do.
-- KEYS[1]  a hash; ARGV none.  Reply: the hash's new `u` counter.
return redis.call('HINCRBY', KEYS[1], 'u', 1)
