#!lua flags=no-writes
-- status.lua: read a lock without changing it.
-- KEYS and ARGV[1..4]: see prelude.lua.
--
-- Returns {0}                               free
--         {2, pttl}                         handed to a queued waiter that
--                                           has pttl ms left to claim it
--         {1, fence, count, pttl, owner}    held
--
-- Invariant: never returns a token.
local h = lease_of()
if not h then
    return {0}
end
local pttl = redis.call("PTTL", KEYS[1])
if pttl < 0 then
    return {0}
end
if h.waiter then
    return {2, pttl}
end
return {1, tonumber(h.fence), tonumber(h.count), pttl, h.owner}
