-- renew.lua: extend the lease of the holder.
--
-- KEYS[1] lock hash      KEYS[2] fence key
-- ARGV[1] token          ARGV[2] ttl_ms, or 0 for the TTL the lease was
--                        granted (or last renewed) with
--
-- Returns {1, fence, count, ttl_ms, owner}   renewed
--         {0}                                no lease on the name (not_held)
--         {-1}                               another token holds it (not_owner)
--
-- Invariant: only the holder's token changes the lease; the fence key lives
-- at least as long as the lease.
local h = redis.call("HMGET", KEYS[1], "token", "fence", "count", "owner", "ttl")
if not h[1] then
    return {0}
end
if h[1] ~= ARGV[1] then
    return {-1}
end
local ttl = tonumber(ARGV[2])
if ttl == 0 then
    ttl = tonumber(h[5])
end
redis.call("HSET", KEYS[1], "ttl", ttl)
redis.call("PEXPIRE", KEYS[1], ttl)
redis.call("PEXPIRE", KEYS[2], ttl + 60000)
return {1, tonumber(h[2]), tonumber(h[3]), ttl, h[4]}
