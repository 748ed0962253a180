#!lua flags=allow-oom
-- leave.lua: a queued waiter stops waiting: its wait ended ("claim": if the
-- lock was handed to it meanwhile, it takes it after all) or its client
-- hung up ("release": a hand-off to it goes on to the next waiter).
-- KEYS and ARGV[1..5]: see prelude.lua.
-- ARGV[6] waiter id    ARGV[7] token    ARGV[8] "claim" or "release"
--
-- Returns {1, fence, count, ttl_ms, owner}   claimed
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
redis.call("LREM", KEYS[3], 1, id)
redis.call("HDEL", KEYS[4], id)
return {0, redis.call("PTTL", KEYS[1])}
