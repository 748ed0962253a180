#!lua flags=no-writes
-- sem_status.lua: read a semaphore without changing it: its holders, its
-- queue. Leases that have ended count as gone (a script that writes gives
-- their permits back).
-- KEYS and ARGV[1..4]: see sem_prelude.lua.
-- ARGV[5] how many holders and queued waiters to list
--
-- Returns {limit, used, holder_count, waiting, listed_holders,
--          owner_1, fence_1, ttl_ms_1, permits_1, held_ms_1, ...,
--          owner_1, permits_1, waited_ms_1, ...}
--   limit and used 0 when nobody holds permits; holders soonest expiry
--   first (up to ARGV[5]), then up to ARGV[5] queued waiters, oldest first.
--
-- Invariant: never returns a token.
local listed = tonumber(ARGV[5])
local used, limit = used_and_limit()
for _, token in ipairs(redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", now_ms)) do
    local h = holder_of(token)
    if h then
        used = used - h.permits
    end
end
local count = redis.call("ZCOUNT", KEYS[2], "(" .. int(now_ms), "+inf")
if count == 0 then
    used, limit = 0, 0
end
local r = {limit, used, count, redis.call("LLEN", KEYS[4]), 0}
local live = redis.call("ZRANGEBYSCORE", KEYS[2], "(" .. int(now_ms), "+inf",
    "WITHSCORES", "LIMIT", 0, listed)
for i = 1, #live, 2 do
    local h = holder_of(live[i])
    if h then
        r[#r + 1] = h.owner
        r[#r + 1] = h.fence
        r[#r + 1] = tonumber(live[i + 1]) - now_ms
        r[#r + 1] = h.permits
        r[#r + 1] = now_ms - h.granted
        r[5] = r[5] + 1
    end
end
for _, id in ipairs(redis.call("LRANGE", KEYS[4], 0, listed - 1)) do
    local e = entry_of(id)
    if e and e.deadline > now_ms then
        r[#r + 1] = e.owner
        r[#r + 1] = e.permits
        r[#r + 1] = now_ms - e.queued
    end
end
return r
