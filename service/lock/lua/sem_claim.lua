#!lua flags=allow-oom
-- sem_claim.lua: a queued waiter that was handed permits takes them up:
-- its lease now runs for its TTL. A hand-off that lapsed costs the waiter
-- its turn once: it goes back into the queue right behind the head (and is
-- served at once if it fits there).
-- KEYS and ARGV[1..4]: see sem_prelude.lua.
-- ARGV[5] waiter id    ARGV[6] token    ARGV[7] ms left of its wait
-- ARGV[8] ttl_ms       ARGV[9] owner    ARGV[10] permits
-- ARGV[11] limit       ARGV[12] request_id, or "-"
--
-- Returns {1, fence, permits, ttl_ms, owner, limit, 0, ""}   claimed
--         {0, pttl, 1}          lapsed; queued again (pttl: until the
--                               earliest lease ends)
--         {-3}                  lapsed, and its wait is over
local id, token, left = ARGV[5], ARGV[6], tonumber(ARGV[7])
reap()
local h = holder_of(token)
if h then
    if h.waiter == id then
        return claim(h)
    end
    return lease_reply(h, false)
end
if left <= 0 then
    tidy()
    return {-3}
end
enqueue(id, {deadline = now_ms + left, queued = now_ms,
    ttl = tonumber(ARGV[8]), token = token, permits = tonumber(ARGV[10]),
    limit = tonumber(ARGV[11]), rid = ARGV[12], owner = ARGV[9]}, true)
serve()
h = holder_of(token)
if h and h.waiter == id then
    return claim(h)
end
return {0, earliest_pttl() or 0, 1}
