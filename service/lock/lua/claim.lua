#!lua flags=allow-oom
-- claim.lua: a queued waiter that was handed the lock takes it up: its
-- lease now runs for its TTL. A hand-off that lapsed costs the waiter its
-- turn once: it goes back into the queue right behind the head.
-- KEYS and ARGV[1..4]: see prelude.lua.
-- ARGV[5] waiter id    ARGV[6] token    ARGV[7] ms left of its wait
-- ARGV[8] ttl_ms       ARGV[9] owner
--
-- Returns {1, fence, count, ttl_ms, owner}   claimed: the caller holds it
--         {0, pttl, 1}                       lapsed; queued again
--         {-3}                               lapsed, and its wait is over
local id, token, left = ARGV[5], ARGV[6], tonumber(ARGV[7])
local h = lease_of()
if h and h.token == token then
    if h.waiter == id then
        redis.call("HDEL", KEYS[1], "waiter")
        redis.call("PEXPIRE", KEYS[1], tonumber(h.ttl))
    end
    return lease_reply(h)
end
if left <= 0 then
    return {-3}
end
enqueue(id, now_ms + left, tonumber(ARGV[8]), token, ARGV[9], true)
if not h then
    grant_head()
end
return {0, redis.call("PTTL", KEYS[1]), 1}
