#!lua flags=allow-oom
-- force.lua: an operator ends the lock's lease, whoever holds it, and any
-- lock-delay; the first live waiter gets the lock at once.
-- KEYS and ARGV[1..5]: see prelude.lua.
--
-- Returns {holders, owner, fence}   holders 1 when a lease (or a pending
--                                   hand-off) ended, with its owner and
--                                   fence; 0 when there was none
--
-- Invariant: the ended lease's token answers not_held from now on (a
-- marker that lives as long as the lease would have).
local h = lease_of()
local pttl = redis.call("PTTL", KEYS[1])
redis.call("DEL", KEYS[1], KEYS[5])
local r = {0, "", 0}
if h then
    if pttl > 0 then
        redis.call("SET", base .. "forced:" .. h.token, "1", "PX", pttl)
    end
    r = {1, h.owner, tonumber(h.fence)}
end
grant_head()
return with_direct(r)
