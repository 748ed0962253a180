#!lua flags=allow-oom
-- leave.lua: a queued waiter stops waiting: its wait ended ("claim": if the
-- lock was handed to it meanwhile, it takes it after all) or its client
-- hung up ("release": a hand-off to it goes on to the next waiter). A
-- waiter that leaves may unblock the waiters behind it (shared ones
-- behind a leaving exclusive head, while shared leases run): they are
-- served.
-- KEYS and ARGV[1..5]: see prelude.lua.
-- ARGV[6] waiter id    ARGV[7] token    ARGV[8] "claim" or "release"
--
-- Returns {1, fence, count, ttl_ms, owner[, 0, "", 1]}   claimed (the
--                                            final 1: shared)
--         {0, pttl}                          left the queue
--         {2}                                the hand-off went on
local id, token = ARGV[6], ARGV[7]
local h = lease_of()
-- Handed over (to claim), or granted outright by a script of this
-- instance whose reply has not reached the waiter yet.
if h and h.token == token and (h.waiter == id or not h.waiter) then
    if ARGV[8] == "claim" then
        return h.waiter and claim(h) or lease_reply(h)
    end
    redis.call("DEL", KEYS[1])
    grant_head()
    return with_direct({2})
end
local s = not h and live_shared(token)
if s and (s.waiter == id or not s.waiter) then
    if ARGV[8] == "claim" then
        return s.waiter and claim_shared(s) or shared_reply(s, false)
    end
    drop_shared(s)
    grant_head()
    return with_direct({2})
end
redis.call("LREM", KEYS[3], 1, id)
redis.call("HDEL", KEYS[4], id)
if not h then
    grant_head()
end
return with_direct({0, blocked_ms()})
