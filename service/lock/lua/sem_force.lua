#!lua flags=allow-oom
-- sem_force.lua: an operator ends every lease of a semaphore, whoever
-- holds it; the waiters at the head of the queue that fit get permits at
-- once.
-- KEYS and ARGV[1..4]: see sem_prelude.lua.
-- ARGV[5] how many of the ended leases to name
--
-- Returns {holders, owner_1, fence_1, owner_2, fence_2, ...}   holders:
--         the leases (and pending hand-offs) it ended; up to ARGV[5] of
--         them named, soonest expiry first
--
-- Invariant: the ended leases' tokens answer not_held from now on (they
-- hold nothing).
reap()
local r = {redis.call("ZCARD", KEYS[2])}
for _, token in ipairs(redis.call("ZRANGE", KEYS[2], 0,
    tonumber(ARGV[5]) - 1)) do
    local h = holder_of(token)
    if h then
        r[#r + 1] = h.owner
        r[#r + 1] = h.fence
    end
end
redis.call("DEL", KEYS[1], KEYS[2])
serve(0, 0)
return r
