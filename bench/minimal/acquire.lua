-- minimal/acquire.lua: the least a fenced lock acquire can do in Redis, the
-- baseline bench/run measures the service against (issue 9: "SET NX PX +
-- INCR fence"). No re-entry, no queue, no owner label.
--
-- KEYS[1] lock key (string: the token; PX = lease TTL)
-- KEYS[2] fence counter
-- ARGV[1] token          ARGV[2] ttl_ms
--
-- Returns the new fence (> 0) when granted, 0 when the lock is held.
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
    return redis.call("INCR", KEYS[2])
end
return 0
