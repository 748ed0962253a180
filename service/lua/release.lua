-- release.lua: drop one hold of the holder; free the lock at zero.
--
-- KEYS[1] lock hash      KEYS[2] waiter set (see acquire.lua)
-- KEYS[3] handoff key
-- ARGV[1] token          ARGV[2] release channel  ARGV[3] lock name
-- ARGV[4] hand-off window in milliseconds (0: no reservation)
--
-- Returns {1, count}   released; count is the remaining hold count
--         {0}          no lease on the name (not_held)
--         {-1}         another token holds it (not_owner)
--
-- Invariant: only the holder's token changes the lock. A release that frees
-- the lock publishes only while the waiter set holds a wait that has not
-- ended, so a release nobody waits for costs no PUBLISH. Then it reserves the lock for
-- the hand-off window under a ticket (the released lease's fence, unique per
-- grant) and publishes "<name> <ticket>": the waiter each instance wakes
-- presents the ticket, so a newcomer cannot take the lock from under the
-- queue, and the waiter's attempt does not fail.
local h = redis.call("HMGET", KEYS[1], "token", "fence")
if not h[1] then
    return {0}
end
if h[1] ~= ARGV[1] then
    return {-1}
end
local count = redis.call("HINCRBY", KEYS[1], "count", -1)
if count > 0 then
    return {1, count}
end
redis.call("DEL", KEYS[1])
if redis.call("EXISTS", KEYS[2]) == 0 then
    return {1, 0}
end
local now = redis.call("TIME")
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", now_ms)
if redis.call("ZCARD", KEYS[2]) > 0 then
    if tonumber(ARGV[4]) > 0 then
        redis.call("SET", KEYS[3], h[2], "PX", ARGV[4])
    end
    redis.call("PUBLISH", ARGV[2], ARGV[3] .. " " .. h[2])
end
return {1, 0}
