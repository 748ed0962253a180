-- status.lua: read a lock without changing it.
--
-- KEYS[1] lock hash
-- KEYS[2] handoff key (see acquire.lua): set while a release reserves the
--         free lock for the waiter it woke
--
-- Returns {0}                                 free
--         {2, pttl_ms}                        free, but reserved for a woken
--                                             waiter for pttl_ms more
--         {1, fence, count, pttl_ms, owner}   held
--
-- Invariant: never returns the token or the hand-off ticket.
local h = redis.call("HMGET", KEYS[1], "fence", "count", "owner")
if h[1] then
    local pttl = redis.call("PTTL", KEYS[1])
    if pttl >= 0 then
        return {1, tonumber(h[1]), tonumber(h[2]), pttl, h[3]}
    end
    return {0}
end
local reserved = redis.call("PTTL", KEYS[2])
if reserved > 0 then
    return {2, reserved}
end
return {0}
