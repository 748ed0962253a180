#!lua flags=allow-oom
-- sem_leave.lua: a queued waiter stops waiting: its wait ended ("claim":
-- if permits were handed to it meanwhile, it takes them after all) or its
-- client hung up ("release": a hand-off to it goes on to the next
-- waiters). Either way the waiters behind it that now fit are served: a
-- head that leaves no longer blocks them.
-- KEYS and ARGV[1..4]: see sem_prelude.lua.
-- ARGV[5] waiter id    ARGV[6] token    ARGV[7] "claim" or "release"
--
-- Returns {1, fence, permits, ttl_ms, owner, limit, 0, ""}   claimed
--         {0, pttl}             left the queue (pttl: until the earliest
--                               lease ends)
--         {2}                   the hand-off went on
local id, token = ARGV[5], ARGV[6]
reap()
local h = holder_of(token)
if h and h.waiter == id then
    if ARGV[7] == "claim" then
        return claim(h)
    end
    serve(drop_holder(h), h.limit)
    tidy()
    return {2}
end
redis.call("LREM", KEYS[4], 1, id)
redis.call("HDEL", KEYS[5], id)
serve()
tidy()
return {0, earliest_pttl() or 0}
