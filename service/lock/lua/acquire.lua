-- acquire.lua: grant, re-enter, or refuse (and queue) an exclusive lease.
-- KEYS and ARGV[1..4]: see prelude.lua.
-- ARGV[5] token: freshly minted, or the client's to re-enter
-- ARGV[6] "1" when re-entering      ARGV[7] ttl_ms     ARGV[8] owner
-- ARGV[9] wait_ms (0: no wait)       ARGV[10] max hold count
-- ARGV[11] waiter id when the caller waits, else ""
--
-- Returns {1, fence, count, ttl_ms, owner}  granted (new or re-entered)
--         {0, pttl, queued}                 held (or handed to the queue);
--                                           queued 1 when the caller now
--                                           waits in the queue
--         {-1}                              the re-entry token holds nothing
--         {-2}                              re-entry would pass the limit
--
-- Invariant: at most one holder; an acquire never jumps a non-empty queue
-- (a free lock with live waiters goes to the first of them).
local token, ttl, owner = ARGV[5], tonumber(ARGV[7]), ARGV[8]
local wait, id = tonumber(ARGV[9]), ARGV[11]

if ARGV[6] == "1" then
    local h = lease_of()
    if not h or h.token ~= token or h.waiter then
        return {-1}
    end
    if tonumber(h.count) >= tonumber(ARGV[10]) then
        return {-2}
    end
    h.count = redis.call("HINCRBY", KEYS[1], "count", 1)
    h.ttl = ttl
    redis.call("HSET", KEYS[1], "ttl", ttl)
    redis.call("PEXPIRE", KEYS[1], ttl)
    redis.call("PEXPIRE", KEYS[2], ttl + 60000)
    return lease_reply(h)
end

local function refuse()
    local pttl = redis.call("PTTL", KEYS[1])
    if wait > 0 and id ~= "" then
        enqueue(id, now_ms + wait, ttl, token, owner, false)
        return {0, pttl, 1}
    end
    return {0, pttl, 0}
end

if redis.call("EXISTS", KEYS[1]) == 1 then
    return refuse()
end
if redis.call("LLEN", KEYS[3]) > 0 and grant_head() then
    return refuse()
end
return grant(token, ttl, owner)
