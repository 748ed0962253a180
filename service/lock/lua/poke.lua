#!lua flags=allow-oom
-- poke.lua: look at a lock that instances have waiters for, when its lease
-- should have ended (it may expire without a release, which publishes
-- nothing) or a hand-off in front of them may have lapsed. A free lock goes
-- to the first live waiter. Never reorders the queue.
-- KEYS and ARGV[1..4]: see prelude.lua.
--
-- Returns {1, pttl, waiter}   held (waiter: the id it is handed to, or "")
--         {0}                 free, and nobody live is queued
local h = lease_of()
if h then
    local pttl = redis.call("PTTL", KEYS[1])
    if pttl >= 0 then
        return {1, pttl, h.waiter or ""}
    end
end
local id = grant_head()
if id then
    return {1, redis.call("PTTL", KEYS[1]), id}
end
return {0}
