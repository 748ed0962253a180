#!lua flags=no-writes
-- sem_status.lua: read a semaphore without changing it: its holders, its
-- queue. Leases that have ended count as gone (a script that writes gives
-- their permits back).
-- KEYS and ARGV[1..4]: see sem_prelude.lua.
-- ARGV[5] how many holders and queued waiters to list
--
-- Returns {limit, used, holder_count, waiting, now_ms,
--          {holder_1, ...}, waiter_1, ...}
--   limit and used 0 when nobody holds permits; the holders, soonest
--   expiry first (up to ARGV[5]), as the holders hash stores them
--   ("<permits> <fence> <ttl ms> <granted ms> <expires ms> <request id>
--   <waiter> <owner>": no token; the service reads them, so the script
--   does no per-holder work), then up to ARGV[5] queued waiters, oldest
--   first, as the waiters hash stores them without the token ("<deadline
--   ms> <queued ms> <ttl ms> <permits> <limit> <request id> <owner>";
--   those whose wait is over are the service's to leave out).
--
-- Invariant: never returns a token.
local listed = tonumber(ARGV[5])
local used, limit = used_and_limit()
-- Each list is read with one command per 100 entries, not one per entry.
for _, h in pairs(holders_of(redis.call("ZRANGEBYSCORE", KEYS[2], "-inf",
    now_ms))) do
    used = used - h.permits
end
local count = redis.call("ZCOUNT", KEYS[2], "(" .. int(now_ms), "+inf")
if count == 0 then
    used, limit = 0, 0
end
local tokens = redis.call("ZRANGEBYSCORE", KEYS[2], "(" .. int(now_ms),
    "+inf", "LIMIT", 0, listed)
local r = {limit, used, count, redis.call("LLEN", KEYS[4]), now_ms,
    #tokens > 0 and redis.call("HMGET", KEYS[1], unpack(tokens)) or {}}
local ids = redis.call("LRANGE", KEYS[4], 0, listed - 1)
if #ids > 0 then
    -- Each entry without its token (its first 33 characters).
    for _, raw in ipairs(redis.call("HMGET", KEYS[5], unpack(ids))) do
        if raw then
            r[#r + 1] = string.sub(raw, 34)
        end
    end
end
return r
