#!lua flags=allow-oom
-- claim.lua: a queued waiter that was handed the lock (exclusive or shared)
-- takes it up: its lease now runs for its TTL. A hand-off that lapsed
-- costs the waiter its turn once: it goes back into the queue right behind
-- the head.
-- KEYS and ARGV[1..5]: see prelude.lua.
-- ARGV[6] waiter id    ARGV[7] token    ARGV[8] ms left of its wait
-- ARGV[9] ttl_ms       ARGV[10] owner    ARGV[11] lock_delay_ms
-- ARGV[12] request_id, or "-"           ARGV[13] "shared" or "exclusive"
--
-- Returns {1, fence, count, ttl_ms, owner[, 0, "", 1]}   claimed: the
--                                            caller holds it (the final 1:
--                                            shared)
--         {0, pttl, 1}                       lapsed; queued again
--         {-3}                               lapsed, and its wait is over
local id, token, left = ARGV[6], ARGV[7], tonumber(ARGV[8])
local h = lease_of()
if h and h.token == token then
    if h.waiter == id then
        return claim(h)
    end
    return lease_reply(h)
end
local s = not h and live_shared(token)
if s then
    if s.waiter == id then
        return claim_shared(s)
    end
    return shared_reply(s, false)
end
if left <= 0 then
    return {-3}
end
enqueue(id, {deadline = now_ms + left, queued = now_ms,
    ttl = tonumber(ARGV[9]), token = token, delay = tonumber(ARGV[11]),
    rid = ARGV[12], shared = ARGV[13] == "shared", owner = ARGV[10]}, true)
if redis.call("EXISTS", KEYS[1]) == 0 then
    grant_head()
end
return with_direct({0, blocked_ms(), 1})
