#!lua flags=allow-oom
-- poke.lua: look at a lock that instances have waiters for, when its lease
-- or lock-delay should have ended (either may end without a release, which
-- publishes nothing) or a hand-off in front of them may have lapsed. A free
-- lock goes to the head of the queue (a shared one to the shared waiters at
-- its head). Never reorders the queue.
-- KEYS and ARGV[1..5]: see prelude.lua.
--
-- Returns {1, pttl, waiter}   held or in its lock-delay for pttl ms more
--                             (waiter: the id an exclusive lease is handed
--                             to, or "")
--         {0}                 free (or shared with nobody left behind),
--                             and nobody live is queued
local h = lease_of()
if h then
    local pttl = redis.call("PTTL", KEYS[1])
    if pttl >= 0 then
        return {1, pttl, h.waiter or ""}
    end
end
local n = shared_live()
local delay = redis.call("PTTL", KEYS[5])
if delay > 0 then
    return {1, delay, ""}
end
local id = grant_head()
if redis.call("EXISTS", KEYS[1]) == 1 then
    return with_direct({1, redis.call("PTTL", KEYS[1]), id or ""})
end
n = redis.call("ZCARD", KEYS[8])
if n > 0 and redis.call("LLEN", KEYS[3]) > 0 then
    return with_direct({1, shared_pttl(), ""})
end
return with_direct({0})
