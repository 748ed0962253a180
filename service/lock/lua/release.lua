#!lua flags=allow-oom
-- release.lua: drop one hold; at zero free the lock, handing it to the
-- first live waiter. Runs at maxmemory (allow-oom): releasing frees memory.
-- KEYS and ARGV[1..4]: see prelude.lua.      ARGV[5] token
--
-- Returns {1, count, fence}  released; count holds remain; fence is the
--                            fence of the hand-off it made, or 0
--         {0}                nobody holds the lock (not_held)
--         {-1}               another token holds it (not_owner)
--
-- Invariant: only the holder's token changes the lock; a release with
-- nobody queued publishes nothing.
local h = lease_of()
if not h then
    return {0}
end
if h.token ~= ARGV[5] or h.waiter then
    return {-1}
end
local count = tonumber(h.count) - 1
if count > 0 then
    redis.call("HSET", KEYS[1], "count", count)
    return {1, count, 0}
end
redis.call("DEL", KEYS[1])
local _, fence = grant_head()
return {1, 0, fence or 0}
