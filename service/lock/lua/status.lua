#!lua flags=no-writes
-- status.lua: read a lock without changing it: its holder, its queue.
-- KEYS and ARGV[1..5]: see prelude.lua.
-- ARGV[6] a token to check against the holder's, or ""
-- ARGV[7] how many queued waiters to list
--
-- Returns {state, pttl, fence, count, owner, held_ms, owned, waiting,
--          owner_1, waited_ms_1, owner_2, waited_ms_2, ...}
--   state 0 free, 1 held, 2 handed to a queued waiter that has pttl ms
--   left to claim it, 3 free but in its lock-delay for pttl ms more;
--   owned: 1 when ARGV[6] is the holder's token, 0 when it is not, -1
--   when no token was given or its lease was force-released; waiting: the
--   queue's length; then up to ARGV[7] queued waiters, oldest first.
--
-- Invariant: never returns a token.
local token, listed = ARGV[6], tonumber(ARGV[7])
local h = lease_of()
local pttl = redis.call("PTTL", KEYS[1])
local r
if h and pttl >= 0 then
    local state = h.waiter and 2 or 1
    local owned = -1
    if token ~= "" then
        owned = (h.token == token and not h.waiter) and 1 or 0
        if owned == 0 and
            redis.call("EXISTS", base .. "forced:" .. token) == 1 then
            owned = -1
        end
    end
    r = {state, pttl, tonumber(h.fence), tonumber(h.count), h.owner,
        now_ms - tonumber(h.granted or now_ms), owned}
else
    local delay = redis.call("PTTL", KEYS[5])
    r = {delay > 0 and 3 or 0, delay > 0 and delay or 0, 0, 0, "", 0, -1}
end
local ids = redis.call("LRANGE", KEYS[3], 0, listed - 1)
r[8] = redis.call("LLEN", KEYS[3])
for _, id in ipairs(ids) do
    local e = entry_of(id)
    if e and e.deadline > now_ms then
        r[#r + 1] = e.owner
        r[#r + 1] = now_ms - e.queued
    end
end
return r
