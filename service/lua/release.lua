-- release.lua: drop one hold of the holder; free the lock at zero.
--
-- KEYS[1] lock hash      KEYS[2] waiters key
-- ARGV[1] token          ARGV[2] release channel      ARGV[3] lock name
--
-- Returns {1, count}   released; count is the remaining hold count
--         {0}          no lease on the name (not_held)
--         {-1}         another token holds it (not_owner)
--
-- Invariant: only the holder's token changes the lock. A release that frees
-- the lock publishes the name on the channel only while some instance
-- announced a waiter for it, so a release nobody waits for costs no PUBLISH.
local token = redis.call("HGET", KEYS[1], "token")
if not token then
    return {0}
end
if token ~= ARGV[1] then
    return {-1}
end
local count = redis.call("HINCRBY", KEYS[1], "count", -1)
if count > 0 then
    return {1, count}
end
redis.call("DEL", KEYS[1])
if redis.call("EXISTS", KEYS[2]) == 1 then
    redis.call("PUBLISH", ARGV[2], ARGV[3])
end
return {1, 0}
