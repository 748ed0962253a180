-- status.lua: read a lock without changing it.
--
-- KEYS[1] lock hash
--
-- Returns {0}                                 free
--         {1, fence, count, pttl_ms, owner}   held
--
-- Invariant: never returns the token.
local h = redis.call("HMGET", KEYS[1], "fence", "count", "owner")
if not h[1] then
    return {0}
end
local pttl = redis.call("PTTL", KEYS[1])
if pttl < 0 then
    return {0}
end
return {1, tonumber(h[1]), tonumber(h[2]), pttl, h[3]}
