#!lua flags=allow-oom
-- renew.lua: extend the holder's lease. Runs at maxmemory (allow-oom).
-- KEYS and ARGV[1..4]: see prelude.lua.
-- ARGV[5] token      ARGV[6] ttl_ms, or 0 for the TTL last granted
--
-- Returns {1, fence, count, ttl_ms, owner}   renewed
--         {0}                                nobody holds it (not_held)
--         {-1}                               another token holds it
--
-- Invariant: only the holder's token changes the lease; the fence key
-- lives at least as long as the lease; the queue is not touched.
local h = lease_of()
if not h then
    return {0}
end
if h.token ~= ARGV[5] or h.waiter then
    return {-1}
end
local ttl = tonumber(ARGV[6])
if ttl == 0 then
    ttl = tonumber(h.ttl)
end
h.ttl = ttl
redis.call("HSET", KEYS[1], "ttl", ttl)
redis.call("PEXPIRE", KEYS[1], ttl)
redis.call("PEXPIRE", KEYS[2], ttl + 60000)
return lease_reply(h)
