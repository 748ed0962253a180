-- sem_prelude.lua: what every script of the semaphore shares. It is put in
-- front of each script (after the script's own #! line) when the service
-- loads them, so it is not a script of its own.
--
-- KEYS[1] holders      hash: "limit" -> the limit in force, "used" -> the
--                      permits held, and each holder's token -> "<permits>
--                      <fence> <ttl ms> <granted ms> <expires ms> <request id
--                      or -> <waiter id or -> <owner>" (waiter: the lease is
--                      handed to that queued waiter, which has not claimed
--                      it yet; expires: when the lease, or the hand-off
--                      window, ends)
-- KEYS[2] expiries     sorted set: each holder's token by its expiry; TTL
--                      of both = the latest expiry. A lease that has ended
--                      holds nothing, but its permits count as used until a
--                      script gives them back (reap), so that "used" never
--                      undercounts
-- KEYS[3] fence key    last fence handed out; TTL = latest expiry + 60 s
-- KEYS[4] queue        list of waiter ids, oldest first
-- KEYS[5] waiters      hash: waiter id -> "<token> <deadline ms> <queued
--                      ms> <ttl ms> <permits> <limit> <request id or ->
--                      <owner>" (the token first, 32 characters, so that a
--                      reader can cut it off); TTL of both = the longest
--                      wait queued + 1 s
-- KEYS[6] request record of the call's request_id (acquire: "...:sem:acq:
--                      <id>" -> the lease's token, TTL lease + 60 s;
--                      release: "...:sem:rel:<id>" -> the permits it gave
--                      back); unused without
-- ARGV[1..4] base.lua's (prefix, hand-off window, fence floor,
--         "semaphore:<name>")      ARGV[5...] the script's own
--
-- Waiter ids, liveness (here of KEYS[4], the queue) and the "g <waiter id>"
-- / "w <name> <ms>" messages: base.lua.
--
-- Invariants: the permits held never exceed the limit in force, and every
-- holder agreed to that limit; every grant is its own lease, with its own
-- expiry; the queue is strictly FIFO (its head blocks it: nobody behind a
-- waiter that does not fit is served before it); fences strictly increase
-- per name and stay below 2^53 (max(last + 1, Redis TIME in µs, floor +
-- 1)); a waiter is in the queue from its refusal until it is granted, its
-- wait ends, it leaves, or its instance is found dead.
local function next_fence()
    return fence_after(KEYS[3])
end

-- The lease stored as raw (a holders hash value) for token, with limit
-- the limit in force; nil when raw is not one.
local function parse_holder(token, raw, limit)
    if not raw then
        return nil
    end
    local p, f, t, g, x, rid, w, o = string.match(raw,
        "^(%d+) (%d+) (%d+) (%d+) (%d+) (%S+) (%S+) (.*)$")
    if not p then
        return nil
    end
    return {token = token, permits = tonumber(p), fence = tonumber(f),
        ttl = tonumber(t), granted = tonumber(g), expires = tonumber(x),
        rid = rid, waiter = w ~= "-" and w or nil, owner = o,
        limit = tonumber(limit or "0")}
end

-- The lease of token (with the limit in force), or nil; ended or not.
local function holder_of(token)
    local v = redis.call("HMGET", KEYS[1], token, "limit")
    return parse_holder(token, v[1], v[2])
end

-- The leases of tokens (a list), in order (nil where there is none), with
-- one HMGET per 100 of them.
local function holders_of(tokens)
    local out = {}
    for first = 1, #tokens, 100 do
        local last = math.min(first + 99, #tokens)
        local v = redis.call("HMGET", KEYS[1], "limit",
            unpack(tokens, first, last))
        for i = first, last do
            out[i] = parse_holder(tokens[i], v[i - first + 2], v[1])
        end
    end
    return out
end

-- The lease of token while it runs, or nil.
local function live_holder(token)
    local h = holder_of(token)
    if h and h.expires > now_ms then
        return h
    end
    return nil
end

-- Stores lease h (and, when given, more fields of the holders hash), to
-- end at h.expires. The caller sees to the keys' TTLs.
local function put_holder(h, ...)
    redis.call("HSET", KEYS[1], h.token, int(h.permits) .. " " ..
        int(h.fence) .. " " .. int(h.ttl) .. " " .. int(h.granted) .. " " ..
        int(h.expires) .. " " .. h.rid .. " " .. (h.waiter or "-") .. " " ..
        h.owner, ...)
    redis.call("ZADD", KEYS[2], h.expires, h.token)
end

-- Ends lease h: its permits come back. Returns the permits still held.
local function drop_holder(h)
    redis.call("HDEL", KEYS[1], h.token)
    redis.call("ZREM", KEYS[2], h.token)
    return redis.call("HINCRBY", KEYS[1], "used", -h.permits)
end

-- The permits held and the limit in force (0, 0 when nobody holds any).
local function used_and_limit()
    local v = redis.call("HMGET", KEYS[1], "used", "limit")
    return tonumber(v[1] or "0"), tonumber(v[2] or "0")
end

-- Ms until the earliest lease (or hand-off window) ends, or nil for none.
local function earliest_pttl()
    local first = redis.call("ZRANGE", KEYS[2], 0, 0, "WITHSCORES")
    if not first[1] then
        return nil
    end
    local ms = tonumber(first[2]) - now_ms
    return ms > 0 and ms or 0
end

-- Gives back the permits of leases that have ended.
local function reap()
    local ended = redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", now_ms,
        "LIMIT", 0, REAP_MAX)
    local hs = holders_of(ended)
    for i, token in ipairs(ended) do
        if hs[i] then
            drop_holder(hs[i])
        else
            redis.call("ZREM", KEYS[2], token)
        end
    end
end

-- After a lease ending at at (ms) was stored: the holder keys live at
-- least that long (the sorted set goes when its last member does; the
-- hash never does, so the set's TTL is the one to trust); alone: it is the
-- only lease. Returns the latest expiry of any lease.
local function keep_until(at, alone)
    local cur = alone and -1 or redis.call("PTTL", KEYS[2])
    if cur >= 0 and now_ms + cur >= at then
        return now_ms + cur
    end
    redis.call("PEXPIREAT", KEYS[1], at)
    redis.call("PEXPIREAT", KEYS[2], at)
    return at
end

-- After leases were only ended: with none left, the holder keys go (the
-- limit in force with them).
local function tidy()
    if redis.call("EXISTS", KEYS[2]) == 0 then
        redis.call("DEL", KEYS[1])
    end
end

-- After a lease was shortened: the holder keys live exactly as long as
-- their latest lease, the fence key 60 s more.
local function settle()
    local last = redis.call("ZRANGE", KEYS[2], -1, -1, "WITHSCORES")
    if not last[1] then
        redis.call("DEL", KEYS[1])
        return
    end
    local at = tonumber(last[2])
    redis.call("PEXPIREAT", KEYS[1], at)
    redis.call("PEXPIREAT", KEYS[2], at)
    redis.call("PEXPIREAT", KEYS[3], at + 60000)
end

-- The queued entry stored as raw (a waiters hash value), or nil.
local function parse_entry(raw)
    if not raw then
        return nil
    end
    local k, d, q, t, p, l, rid, o = string.match(raw,
        "^(%x+) (%d+) (%d+) (%d+) (%d+) (%d+) (%S+) (.*)$")
    if not d then
        return nil
    end
    return {deadline = tonumber(d), queued = tonumber(q), ttl = tonumber(t),
        token = k, permits = tonumber(p), limit = tonumber(l), rid = rid,
        owner = o}
end

-- The queued entry of id, or nil.
local function entry_of(id)
    return parse_entry(redis.call("HGET", KEYS[5], id))
end

local function alive(id, e)
    return waits(KEYS[4], id, e)
end

-- Queues id (base.lua's queue_up) with entry e.
local function enqueue(id, e, behind_head)
    queue_up(KEYS[4], KEYS[5], id, e.token .. " " .. int(e.deadline) ..
        " " .. int(e.queued) .. " " .. int(e.ttl) .. " " .. int(e.permits) ..
        " " .. int(e.limit) .. " " .. e.rid .. " " .. e.owner, e.deadline,
        behind_head)
end

-- Whether e fits with used permits held under limit: nobody holds any
-- (e's limit comes into force), or e agrees with the limit and its permits
-- are free.
local function fits(e, used, limit)
    return used == 0 or (e.limit == limit and used + e.permits <= limit)
end

-- Records what a lease of token keeps beside it: its request record.
local function record(rid, token, ttl)
    if rid ~= "-" then
        redis.call("SET", string.sub(KEYS[1], 1, -4) .. "sem:acq:" .. rid,
            token, "PX", ttl + 60000)
    end
end

-- A new lease of e's permits, used permits being held before it; waiter:
-- the queued waiter it is handed to (it holds them for the hand-off
-- window), or nil. Returns the lease.
local function add_holder(e, waiter, used)
    local fence = next_fence()
    local hold = e.ttl
    if waiter and handoff_ms > 0 then
        hold = handoff_ms
    end
    local h = {token = e.token, permits = e.permits, fence = fence,
        ttl = e.ttl, granted = now_ms, expires = now_ms + hold, rid = e.rid,
        waiter = waiter, owner = e.owner, limit = e.limit}
    put_holder(h, "limit", e.limit, "used", used + e.permits)
    local latest = keep_until(h.expires, used == 0)
    redis.call("SET", KEYS[3], fence, "PXAT", latest + 60000)
    if not waiter then
        record(e.rid, e.token, e.ttl)
    end
    return h
end

-- Tells the instance of the queue's head (the first live waiter) to look
-- again when the earliest lease may end: that expiry publishes nothing.
-- Drops dead waiters on the way.
local function watch_head()
    tell_first(KEYS[4], KEYS[5], entry_of, function()
        return "w " .. name .. " " .. int(earliest_pttl() or 0)
    end)
end

-- Hands permits to as many waiters at the head of the queue as fit, in
-- order, each its own hand-off ("g <id>" on its instance's channel), and
-- drops dead waiters on the way; stops at the first live waiter that does
-- not fit. used and limit: what is held and in force, when the caller
-- knows. Returns the first waiter id served and its fence (or nil),
-- whether live waiters are left, and the permits held and the limit in
-- force afterwards.
local function serve(used, limit)
    local first, first_fence
    if not used then
        used, limit = used_and_limit()
    end
    local id = redis.call("LINDEX", KEYS[4], 0)
    while id do
        local e = entry_of(id)
        local live = alive(id, e)
        if live and not fits(e, used, limit) then
            break
        end
        redis.call("LPOP", KEYS[4])
        redis.call("HDEL", KEYS[5], id)
        if live then
            local h = add_holder(e, id, used)
            redis.call("PUBLISH", prefix .. "notify:" .. instance_of(id),
                "g " .. id)
            used, limit = used + e.permits, e.limit
            if not first then
                first, first_fence = id, h.fence
            end
        end
        id = redis.call("LINDEX", KEYS[4], 0)
    end
    if first then
        watch_head()
    end
    -- (LINDEX of an empty list is false in Lua, not nil)
    return first, first_fence, id and true or false, used, limit
end

-- {1, fence, permits, ttl, owner, limit, replayed, token}: h as it was
-- loaded or made (a lease of 1 ms may be gone from Redis by the reply).
local function lease_reply(h, replayed)
    return {1, h.fence, h.permits, h.ttl, h.owner, h.limit,
        replayed and 1 or 0, replayed and h.token or ""}
end

-- A claimed hand-off's lease now runs for its TTL.
local function claim(h)
    h.waiter = nil
    h.expires = now_ms + h.ttl
    put_holder(h)
    local latest = keep_until(h.expires)
    redis.call("PEXPIREAT", KEYS[3], latest + 60000)
    record(h.rid, h.token, h.ttl)
    return lease_reply(h, false)
end
