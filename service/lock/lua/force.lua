#!lua flags=allow-oom
-- force.lua: an operator ends every lease of the lock, exclusive or shared,
-- whoever holds it, and any lock-delay; the head of the queue gets the lock
-- at once.
-- KEYS and ARGV[1..5]: see prelude.lua.
-- ARGV[6] how many of the ended leases to name
--
-- Returns {holders, owner_1, fence_1, owner_2, fence_2, ...}   holders:
--   the leases (or pending hand-offs) that ended, then the owner and fence
--   of up to ARGV[6] of them ({0, "", 0} when there were none)
--
-- Invariant: an ended lease's token answers not_held from now on (a
-- marker that lives as long as the lease would have).
local listed = tonumber(ARGV[6])
local h = lease_of()
local pttl = redis.call("PTTL", KEYS[1])
redis.call("DEL", KEYS[1], KEYS[5])
local r = {0}
if h then
    if pttl > 0 then
        redis.call("SET", base .. "forced:" .. h.token, "1", "PX", pttl)
    end
    r = {1, h.owner, tonumber(h.fence)}
end
reap_shared()
local live = redis.call("ZRANGEBYSCORE", KEYS[8], "(" .. int(now_ms), "+inf")
for _, token in ipairs(live) do
    local s = shared_of(token)
    if s then
        redis.call("SET", base .. "forced:" .. token, "1", "PXAT", s.expires)
        r[1] = r[1] + 1
        if r[1] <= listed then
            r[#r + 1] = s.owner
            r[#r + 1] = s.fence
        end
    end
end
redis.call("DEL", KEYS[7], KEYS[8], KEYS[5])
if r[1] == 0 then
    r = {0, "", 0}
end
grant_head()
return with_direct(r)
