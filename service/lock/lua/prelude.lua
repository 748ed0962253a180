-- prelude.lua: what every script of the exclusive lock shares. It is put in
-- front of each script (after the script's own #! line) when the service
-- loads them, so it is not a script of its own.
--
-- KEYS[1] lock hash    {token, fence, count, owner, ttl, granted, delay,
--                      rid[, waiter]}; TTL = the lease, or the hand-off
--                      window while "waiter" is set (the lock was handed to
--                      that queued waiter, which has not claimed it yet)
-- KEYS[2] fence key    last fence handed out; TTL = lease + 60 s
-- KEYS[3] queue        list of waiter ids, oldest first
-- KEYS[4] waiters      hash: waiter id -> "<deadline ms> <queued ms> <ttl
--                      ms> <token> <lock delay ms> <request id or -> <owner>";
--                      TTL of both = the longest wait queued + 1 s; a
--                      shared waiter's entry starts with "s " (an
--                      exclusive one's is as version 2.0 wrote it)
-- KEYS[5] delay key    exists while a lease that expired keeps the name
--                      unavailable (lock_delay_ms); TTL = lease + delay
-- KEYS[6] request record of the call's request_id (acquire: "...:acq:<id>"
--                      -> the lease's token, TTL lease + 60 s; release:
--                      "...:rel:<id>" -> "<token> <count it left>"); unused without
-- KEYS[7] shared holders  hash: token -> "<count> <fence> <ttl ms> <granted
--                      ms> <expires ms> <lock delay ms> <request id or ->
--                      <waiter id or -> <owner>" (waiter: handed to that
--                      queued waiter, not claimed yet; expires: when the
--                      lease, or the hand-off window, ends)
-- KEYS[8] shared expiries  sorted set: each shared holder's token by its
--                      expiry. TTL of both = the latest expiry plus its
--                      lock delay: an ended lease stays until a script
--                      reaps it (reap_shared), which starts its lock-delay
-- ARGV[1..4] base.lua's (prefix, hand-off window, fence floor, "lock:<name>")
-- ARGV[5] the calling instance's id  ARGV[6...] the script's own
--
-- A free lock goes to the first live queued waiter. When that waiter is
-- parked on the calling instance, which is alive since it runs this very
-- script, the lock is granted outright for the waiter's TTL and the script
-- says so by ending its reply with a nested {waiter id, fence} (no other
-- element of a reply is an array): the instance
-- answers the waiter from the reply, one round trip less and no message.
-- A waiter elsewhere gets a hand-off to claim (see grant_head).
--
-- Waiter ids, liveness and the "g <waiter id>" / "w <name> <ms>" messages:
-- base.lua.
--
-- A shared lease lives in KEYS[7] and KEYS[8], an exclusive one in KEYS[1].
-- When the name is free the head of the queue is served: an exclusive head
-- alone, a shared head with every shared waiter queued right behind it.
-- An exclusive head behind shared holders waits, and its instance is told
-- to look again when the earliest of them ends ("w").
--
-- Invariants: an exclusive holder excludes every other holder (KEYS[1]
-- present => no live shared holder), shared holders coexist; fences
-- strictly increase per name across modes and stay below 2^53, since a new
-- fence is max(last + 1, Redis TIME in µs, floor + 1); the queue is FIFO
-- across modes; a waiter is in the queue from its refusal until it is
-- granted, its wait ends, it leaves, or its instance is found dead.
local me = ARGV[5]
-- "<prefix>{<name>}:", for the keys only a lease knows (its forced marker).
local base = string.sub(KEYS[1], 1, -5)

local function next_fence()
    return fence_after(KEYS[2])
end

-- The queued entry stored as raw (nil or false: none), or nil.
local function parse_entry(raw)
    if not raw then
        return nil
    end
    local shared = string.sub(raw, 1, 2) == "s "
    if shared then
        raw = string.sub(raw, 3)
    end
    local d, q, t, k, delay, rid, o = string.match(raw,
        "^(%d+) (%d+) (%d+) (%x+) (%d+) (%S+) (.*)$")
    if not d then
        return nil
    end
    return {deadline = tonumber(d), queued = tonumber(q), ttl = tonumber(t),
        token = k, delay = tonumber(delay), rid = rid, shared = shared,
        owner = o}
end

-- The queued entry of id, or nil.
local function entry_of(id)
    return parse_entry(redis.call("HGET", KEYS[4], id))
end

local function alive(id, e)
    return waits(KEYS[3], id, e)
end

-- Queues id (base.lua's queue_up) with entry e.
local function enqueue(id, e, behind_head)
    queue_up(KEYS[3], KEYS[4], id, (e.shared and "s " or "") ..
        int(e.deadline) .. " " .. int(e.queued) .. " " .. int(e.ttl) .. " " ..
        e.token .. " " .. int(e.delay) .. " " .. e.rid .. " " .. e.owner,
        e.deadline, behind_head)
end

-- Tells the instance of the first live waiter to look again when the
-- hand-off now pending may lapse; drops dead waiters on the way.
local function watch_next(ms)
    tell_first(KEYS[3], KEYS[4], entry_of, function()
        return "w " .. name .. " " .. int(ms)
    end)
end

-- What a lease keeps beside its hash while it runs for its TTL: the
-- lock-delay marker and the record of the request that got it.
local function lease_runs(ttl, delay, rid_key, token)
    if delay > 0 then
        redis.call("SET", KEYS[5], "1", "PX", ttl + delay)
    end
    if rid_key then
        redis.call("SET", rid_key, token, "PX", ttl + 60000)
    end
end

-- ---- shared holders -------------------------------------------------------

-- The shared lease of token stored as raw (nil or false: none), or nil.
local function parse_shared(token, raw)
    if not raw then
        return nil
    end
    local c, f, t, g, x, d, rid, w, o = string.match(raw,
        "^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%S+) (%S+) (.*)$")
    if not c then
        return nil
    end
    return {token = token, count = tonumber(c), fence = tonumber(f),
        ttl = tonumber(t), granted = tonumber(g), expires = tonumber(x),
        delay = tonumber(d), rid = rid, waiter = w ~= "-" and w or nil,
        owner = o}
end

-- The shared lease of token, or nil; ended or not.
local function shared_of(token)
    return parse_shared(token, redis.call("HGET", KEYS[7], token))
end

-- The stored records of the fields of hash key (HMGET; false for one
-- missing), in one call: a status reading many holders or waiters.
local function records(key, fields)
    if #fields == 0 then
        return {}
    end
    return redis.call("HMGET", key, unpack(fields))
end

-- The shared lease of token while it runs (or its hand-off is pending),
-- or nil.
local function live_shared(token)
    local s = shared_of(token)
    if s and s.expires > now_ms then
        return s
    end
    return nil
end

-- Stores shared lease s, to end at s.expires; its keys live at least
-- until then plus its lock delay (both keys get their TTLs together, so
-- the sorted set's says the hash's too), the fence key 60 s more than the
-- lease (fence: a new fence to store there, or nil).
local function put_shared(s, fence)
    redis.call("HSET", KEYS[7], s.token, int(s.count) .. " " ..
        int(s.fence) .. " " .. int(s.ttl) .. " " .. int(s.granted) .. " " ..
        int(s.expires) .. " " .. int(s.delay) .. " " .. s.rid .. " " ..
        (s.waiter or "-") .. " " .. s.owner)
    local at = s.expires + s.delay
    local cur = redis.call("PTTL", KEYS[8])
    redis.call("ZADD", KEYS[8], s.expires, s.token)
    if cur < 0 or now_ms + cur < at then
        redis.call("PEXPIREAT", KEYS[7], at)
        redis.call("PEXPIREAT", KEYS[8], at)
    end
    cur = redis.call("PTTL", KEYS[2])
    local longer = cur < 0 or now_ms + cur < s.expires + 60000
    if fence then
        if longer then
            redis.call("SET", KEYS[2], int(fence), "PXAT", s.expires + 60000)
        else
            redis.call("SET", KEYS[2], int(fence), "KEEPTTL")
        end
    elseif longer then
        redis.call("PEXPIREAT", KEYS[2], s.expires + 60000)
    end
end

-- Ends shared lease s (with no shared lease left, its keys go).
local function drop_shared(s)
    redis.call("HDEL", KEYS[7], s.token)
    redis.call("ZREM", KEYS[8], s.token)
    if redis.call("EXISTS", KEYS[8]) == 0 then
        redis.call("DEL", KEYS[7])
    end
end

-- Drops the shared leases that have ended; an expiry (not a hand-off that
-- lapsed) starts the lease's lock-delay, which runs from its expiry.
local function reap_shared()
    local ended = redis.call("ZRANGEBYSCORE", KEYS[8], "-inf", now_ms,
        "LIMIT", 0, REAP_MAX)
    for _, token in ipairs(ended) do
        local s = shared_of(token)
        if s then
            local until_ms = s.expires + s.delay
            if not s.waiter and s.delay > 0 and until_ms > now_ms then
                local cur = redis.call("PTTL", KEYS[5])
                if cur < 0 or now_ms + cur < until_ms then
                    redis.call("SET", KEYS[5], "1", "PXAT", until_ms)
                end
            end
            drop_shared(s)
        else
            redis.call("ZREM", KEYS[8], token)
        end
    end
    if #ended > 0 and redis.call("EXISTS", KEYS[8]) == 0 then
        redis.call("DEL", KEYS[7])
    end
end

-- The number of shared leases running (or handed over), after reaping
-- those that ended: one EXISTS when there are none.
local function shared_live()
    if redis.call("EXISTS", KEYS[8]) == 0 then
        return 0
    end
    reap_shared()
    return redis.call("ZCARD", KEYS[8])
end

-- Ms until the earliest shared lease (or hand-off window) ends, or 0.
local function shared_pttl()
    local first = redis.call("ZRANGE", KEYS[8], 0, 0, "WITHSCORES")
    if not first[1] then
        return 0
    end
    local ms = tonumber(first[2]) - now_ms
    return ms > 0 and ms or 0
end

-- {1, fence, count, ttl, owner, replayed, token, 1}: the last 1 says
-- shared.
local function shared_reply(s, replayed)
    return {1, s.fence, s.count, s.ttl, s.owner, replayed and 1 or 0,
        replayed and s.token or "", 1}
end

-- A new shared lease from entry e; waiter: the queued waiter it is handed
-- to (held for the hand-off window), or nil. Returns the lease.
local function add_shared(e, waiter)
    local hold = e.ttl
    if waiter and handoff_ms > 0 then
        hold = handoff_ms
    end
    local fence = next_fence()
    local s = {token = e.token, count = 1, fence = fence, ttl = e.ttl,
        granted = now_ms, expires = now_ms + hold, delay = e.delay,
        rid = e.rid, waiter = waiter, owner = e.owner}
    put_shared(s, fence)
    if not waiter and e.rid ~= "-" then
        redis.call("SET", base .. "acq:" .. e.rid, e.token, "PX",
            e.ttl + 60000)
    end
    return s
end

-- A claimed shared hand-off's lease now runs for its TTL.
local function claim_shared(s)
    s.waiter = nil
    s.expires = now_ms + s.ttl
    put_shared(s)
    if s.rid ~= "-" then
        redis.call("SET", base .. "acq:" .. s.rid, s.token, "PX",
            s.ttl + 60000)
    end
    return shared_reply(s, false)
end

-- ---- serving the queue ----------------------------------------------------

-- The locks granted outright to waiters of the calling instance, as
-- {waiter id, fence, ...}: the reply ends with them (with_direct).
local direct = {}

-- Serves the queue while the name allows it (the caller knows no
-- exclusive lease holds it): an exclusive head alone, when no shared
-- lease runs; a shared head and every live shared waiter right behind it.
-- Each grant goes outright to a waiter of the calling instance, else for
-- the hand-off window, to be claimed. A live exclusive head that must wait
-- for shared holders is told when to look again. Returns the first waiter
-- id served and its fence, or nil when nobody was.
local function grant_head()
    local first, first_fence
    local id = redis.call("LINDEX", KEYS[3], 0)
    if not id then
        return nil
    end
    local n = shared_live()
    if redis.call("EXISTS", KEYS[5]) == 1 then
        return nil
    end
    while id do
        local e = entry_of(id)
        if not alive(id, e) then
            redis.call("LPOP", KEYS[3])
            redis.call("HDEL", KEYS[4], id)
        elseif not e.shared then
            if n > 0 then
                redis.call("PUBLISH", prefix .. "notify:" .. instance_of(id),
                    "w " .. name .. " " .. int(shared_pttl()))
                break
            end
            redis.call("LPOP", KEYS[3])
            redis.call("HDEL", KEYS[4], id)
            local fence = next_fence()
            redis.call("SET", KEYS[2], fence, "PX", e.ttl + 60000)
            redis.call("HSET", KEYS[1], "token", e.token, "fence", fence,
                "count", 1, "owner", e.owner, "ttl", e.ttl, "granted", now_ms,
                "delay", e.delay, "rid", e.rid)
            if instance_of(id) == me then
                redis.call("PEXPIRE", KEYS[1], e.ttl)
                lease_runs(e.ttl, e.delay,
                    e.rid ~= "-" and (base .. "acq:" .. e.rid) or nil, e.token)
                direct[#direct + 1] = id
                direct[#direct + 1] = fence
            else
                local hold = handoff_ms > 0 and handoff_ms or e.ttl
                redis.call("HSET", KEYS[1], "waiter", id)
                redis.call("PEXPIRE", KEYS[1], hold)
                redis.call("PUBLISH", prefix .. "notify:" .. instance_of(id),
                    "g " .. id)
                watch_next(hold)
            end
            return id, fence
        else
            redis.call("LPOP", KEYS[3])
            redis.call("HDEL", KEYS[4], id)
            local local_waiter = instance_of(id) == me
            local s = add_shared(e, not local_waiter and id or nil)
            if local_waiter then
                direct[#direct + 1] = id
                direct[#direct + 1] = s.fence
            else
                redis.call("PUBLISH", prefix .. "notify:" .. instance_of(id),
                    "g " .. id)
            end
            n = n + 1
            if not first then
                first, first_fence = id, s.fence
            end
        end
        -- (LINDEX of an empty list is false in Lua, not nil)
        id = redis.call("LINDEX", KEYS[3], 0)
    end
    return first, first_fence
end

-- r, ended with the outright grants this script made, if it made any.
local function with_direct(r)
    if #direct > 0 then
        r[#r + 1] = direct
    end
    return r
end

-- Grants the free lock to the caller: {1, fence, count, ttl, owner}.
local function grant(token, ttl, owner, delay, rid)
    local fence = next_fence()
    redis.call("SET", KEYS[2], fence, "PX", ttl + 60000)
    redis.call("HSET", KEYS[1], "token", token, "fence", fence, "count", 1,
        "owner", owner, "ttl", ttl, "granted", now_ms, "delay", delay,
        "rid", rid)
    redis.call("PEXPIRE", KEYS[1], ttl)
    lease_runs(ttl, delay, rid ~= "-" and KEYS[6] or nil, token)
    return {1, fence, 1, ttl, owner}
end

local function lease_reply(h)
    return {1, tonumber(h.fence), tonumber(h.count), tonumber(h.ttl), h.owner}
end

local function lease_of()
    local v = redis.call("HMGET", KEYS[1], "token", "fence", "count", "owner",
        "ttl", "waiter", "granted", "delay", "rid")
    if not v[1] then
        return nil
    end
    return {token = v[1], fence = v[2], count = v[3], owner = v[4],
        ttl = v[5], waiter = v[6], granted = v[7], delay = tonumber(v[8] or 0),
        rid = v[9] or "-"}
end

-- A claimed hand-off's lease now runs for its TTL.
local function claim(h)
    local ttl = tonumber(h.ttl)
    redis.call("HDEL", KEYS[1], "waiter")
    redis.call("PEXPIRE", KEYS[1], ttl)
    lease_runs(ttl, h.delay, h.rid ~= "-" and (base .. "acq:" .. h.rid) or nil,
        h.token)
    return lease_reply(h)
end

-- Whether the name is free for an exclusive lease: no lease of either
-- mode, and no lock-delay running.
local function free()
    return redis.call("EXISTS", KEYS[1]) == 0 and shared_live() == 0 and
        redis.call("EXISTS", KEYS[5]) == 0
end

-- How long what keeps the caller waiting may last: the exclusive lease,
-- else the lock-delay or the earliest shared lease, whichever is longer.
local function blocked_ms()
    local pttl = redis.call("PTTL", KEYS[1])
    if pttl >= 0 then
        return pttl
    end
    local delay = redis.call("PTTL", KEYS[5])
    local s = shared_pttl()
    return delay > s and delay or s
end

-- The refusal of a token that is not the lease's: not_held (-1 ... 0) when
-- its lease ended by a force release or nobody holds the lock, else
-- not_owner.
local function not_holder(h, token)
    if (not h and shared_live() == 0) or
        redis.call("EXISTS", base .. "forced:" .. token) == 1 then
        return {0}
    end
    return {-1}
end
