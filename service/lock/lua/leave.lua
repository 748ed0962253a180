#!lua flags=allow-oom
-- leave.lua: a queued waiter stops waiting: its wait ended ("claim": if the
-- lock was handed to it meanwhile, it takes it after all) or its client
-- hung up ("release": a hand-off to it goes on to the next waiter).
-- KEYS and ARGV[1..4]: see prelude.lua.
-- ARGV[5] waiter id    ARGV[6] token    ARGV[7] "claim" or "release"
--
-- Returns {1, fence, count, ttl_ms, owner}   claimed
--         {0, pttl}                          left the queue
--         {2}                                the hand-off went on
local id, token = ARGV[5], ARGV[6]
local h = lease_of()
if h and h.token == token and h.waiter == id then
    if ARGV[7] == "claim" then
        redis.call("HDEL", KEYS[1], "waiter")
        redis.call("PEXPIRE", KEYS[1], tonumber(h.ttl))
        return lease_reply(h)
    end
    redis.call("DEL", KEYS[1])
    grant_head()
    return {2}
end
redis.call("LREM", KEYS[3], 1, id)
redis.call("HDEL", KEYS[4], id)
return {0, redis.call("PTTL", KEYS[1])}
