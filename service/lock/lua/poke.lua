#!lua flags=allow-oom
-- poke.lua: look at a lock that instances have waiters for, when its lease
-- or lock-delay should have ended (either may end without a release, which
-- publishes nothing) or a hand-off in front of them may have lapsed. A free
-- lock goes to the first live waiter. Never reorders the queue.
-- KEYS and ARGV[1..5]: see prelude.lua.
--
-- Returns {1, pttl, waiter}   held or in its lock-delay for pttl ms more
--                             (waiter: the id it is handed to, or "")
--         {0}                 free, and nobody live is queued
local h = lease_of()
if h then
    local pttl = redis.call("PTTL", KEYS[1])
    if pttl >= 0 then
        return {1, pttl, h.waiter or ""}
    end
end
local delay = redis.call("PTTL", KEYS[5])
if delay > 0 then
    return {1, delay, ""}
end
local id = grant_head()
if id then
    return with_direct({1, redis.call("PTTL", KEYS[1]), id})
end
return {0}
