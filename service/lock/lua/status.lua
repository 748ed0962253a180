#!lua flags=no-writes
-- status.lua: read a lock without changing it: its holders, its queue.
-- Shared leases that have ended count as gone (a script that writes reaps
-- them).
-- KEYS and ARGV[1..5]: see prelude.lua.
-- ARGV[6] a token to check against the holders', or ""
-- ARGV[7] how many holders and queued waiters to list
--
-- Returns {state, pttl, fence, count, owner, held_ms, owned, waiting, mode,
--          holder_count, listed,
--          owner_1, fence_1, ttl_ms_1, count_1, held_ms_1, ...,
--          owner_1, waited_ms_1, mode_1, ...}
--   state 0 free, 1 held, 2 handed to queued waiters that have pttl ms
--   left to claim it, 3 free but in its lock-delay for pttl ms more;
--   pttl, fence, count, owner, held_ms: the exclusive holder's, or the
--   first shared holder's (the lowest fence); owned: 1 when ARGV[6] holds
--   a lease, 0 when it does not, -1 when no token was given or its lease
--   was force-released; waiting: the queue's length; mode 0 exclusive, 1
--   shared; holder_count: the leases held; then listed holders (lowest
--   fence first, at most ARGV[7]) and up to ARGV[7] queued waiters,
--   oldest first.
--
-- Invariant: never returns a token.
local token, listed = ARGV[6], tonumber(ARGV[7])
local h = lease_of()
local pttl = redis.call("PTTL", KEYS[1])
local r
local holders = {}
local function forced()
    return redis.call("EXISTS", base .. "forced:" .. token) == 1
end
if h and pttl >= 0 then
    local state = h.waiter and 2 or 1
    local owned = -1
    if token ~= "" then
        owned = (h.token == token and not h.waiter) and 1 or 0
        if owned == 0 and forced() then
            owned = -1
        end
    end
    r = {state, pttl, tonumber(h.fence), tonumber(h.count), h.owner,
        now_ms - tonumber(h.granted or now_ms), owned, 0, 0,
        h.waiter and 0 or 1}
    if not h.waiter then
        holders[1] = {owner = h.owner, fence = tonumber(h.fence),
            ttl = pttl, count = tonumber(h.count),
            held = now_ms - tonumber(h.granted or now_ms)}
    end
else
    local live = redis.call("ZRANGEBYSCORE", KEYS[8], "(" .. int(now_ms),
        "+inf", "LIMIT", 0, listed)
    local total = redis.call("ZCOUNT", KEYS[8], "(" .. int(now_ms), "+inf")
    local pending = 0
    local raws = records(KEYS[7], live)
    for i, t in ipairs(live) do
        local s = parse_shared(t, raws[i])
        if s and not s.waiter then
            holders[#holders + 1] = {owner = s.owner, fence = s.fence,
                ttl = s.expires - now_ms, count = s.count,
                held = now_ms - s.granted}
        else
            pending = pending + 1
        end
    end
    table.sort(holders, function(a, b) return a.fence < b.fence end)
    local count = total - pending
    if #holders > 0 then
        local f = holders[1]
        local owned = -1
        if token ~= "" then
            local s = live_shared(token)
            owned = (s and not s.waiter) and 1 or 0
            if owned == 0 and forced() then
                owned = -1
            end
        end
        r = {1, f.ttl, f.fence, f.count, f.owner, f.held, owned, 0, 1, count}
    elseif total > 0 then
        r = {2, shared_pttl(), 0, 0, "", 0, -1, 0, 1, 0}
    else
        -- A lock-delay runs from the marker, or from an ended shared
        -- lease no script has reaped yet.
        local delay = redis.call("PTTL", KEYS[5])
        local ended = redis.call("ZRANGEBYSCORE", KEYS[8], "-inf",
            int(now_ms), "LIMIT", 0, listed)
        local raws = records(KEYS[7], ended)
        for i, t in ipairs(ended) do
            local s = parse_shared(t, raws[i])
            if s and not s.waiter and s.expires + s.delay - now_ms > delay then
                delay = s.expires + s.delay - now_ms
            end
        end
        r = {delay > 0 and 3 or 0, delay > 0 and delay or 0, 0, 0, "", 0, -1,
            0, 0, 0}
    end
end
r[8] = redis.call("LLEN", KEYS[3])
r[#r + 1] = #holders
for _, x in ipairs(holders) do
    r[#r + 1] = x.owner
    r[#r + 1] = x.fence
    r[#r + 1] = x.ttl
    r[#r + 1] = x.count
    r[#r + 1] = x.held
end
local ids = redis.call("LRANGE", KEYS[3], 0, listed - 1)
local raws = records(KEYS[4], ids)
for i, _ in ipairs(ids) do
    local e = parse_entry(raws[i])
    if e and e.deadline > now_ms then
        r[#r + 1] = e.owner
        r[#r + 1] = now_ms - e.queued
        r[#r + 1] = e.shared and 1 or 0
    end
end
return r
