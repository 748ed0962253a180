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
--                      TTL of both = the longest wait queued + 1 s
-- KEYS[5] delay key    exists while a lease that expired keeps the name
--                      unavailable (lock_delay_ms); TTL = lease + delay
-- KEYS[6] request record of the call's request_id (acquire: "...:acq:<id>"
--                      -> the lease's token, TTL lease + 60 s; release:
--                      "...:rel:<id>" -> "<token> <count it left>"); unused without
-- ARGV[1] key prefix   ARGV[2] hand-off window in ms (0: none)
-- ARGV[3] fence floor: the highest fence the calling instance has seen
-- ARGV[4] the name qualified by its kind ("lock:<name>"), as the instances'
--         registries know it
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
-- A waiter id is "<instance>:<worker>:<n>". An instance is alive while its
-- key <prefix>instance:<instance> exists; hand-offs to it are published on
-- <prefix>notify:<instance> as "g <waiter id>", and "w <name> <ms>" asks it
-- to look at the lock again in that many ms (its waiter may be next, and
-- the hand-off in front of it may lapse).
--
-- Invariants: at most one holder; fences strictly increase per name and
-- stay below 2^53, since a new fence is max(last + 1, Redis TIME in µs,
-- floor + 1); a waiter is in the queue from its refusal until it is
-- granted, its wait ends, it leaves, or its instance is found dead.
local prefix, handoff_ms, floor = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local name, me = ARGV[4], ARGV[5]
local now = redis.call("TIME")
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
-- "<prefix>{<name>}:", for the keys only a lease knows (its forced marker).
local base = string.sub(KEYS[1], 1, -5)

local function instance_of(id)
    return string.match(id, "^([^:]+):")
end

local function next_fence()
    local f = tonumber(redis.call("GET", KEYS[2]) or "0") + 1
    if f < now_us then
        f = now_us
    end
    if f <= floor then
        f = floor + 1
    end
    return f
end

-- The queued entry of id, or nil.
local function entry_of(id)
    local raw = redis.call("HGET", KEYS[4], id)
    if not raw then
        return nil
    end
    local d, q, t, k, delay, rid, o = string.match(raw,
        "^(%d+) (%d+) (%d+) (%x+) (%d+) (%S+) (.*)$")
    if not d then
        return nil
    end
    return {deadline = tonumber(d), queued = tonumber(q), ttl = tonumber(t),
        token = k, delay = tonumber(delay), rid = rid, owner = o}
end

local function alive(id, e)
    return e ~= nil and e.deadline > now_ms and
        redis.call("EXISTS", prefix .. "instance:" .. instance_of(id)) == 1
end

-- Queues id at the tail (or right behind the head when behind_head); a
-- waiter queued already (an acquire retried after a lost connection) keeps
-- its place.
local function enqueue(id, e, behind_head)
    if redis.call("HEXISTS", KEYS[4], id) == 1 then
        return
    end
    local head = behind_head and redis.call("LINDEX", KEYS[3], 0)
    if head then
        redis.call("LINSERT", KEYS[3], "AFTER", head, id)
    else
        redis.call("RPUSH", KEYS[3], id)
    end
    redis.call("HSET", KEYS[4], id, e.deadline .. " " .. e.queued .. " " ..
        e.ttl .. " " .. e.token .. " " .. e.delay .. " " .. e.rid .. " " ..
        e.owner)
    local keep = e.deadline - now_ms + 1000
    for i = 3, 4 do
        if redis.call("PTTL", KEYS[i]) < keep then
            redis.call("PEXPIRE", KEYS[i], keep)
        end
    end
    -- The caller is alive now, whatever its heartbeat says.
    redis.call("SET", prefix .. "instance:" .. instance_of(id), "1", "PX", 3000)
end

-- Tells the instance of the first live waiter to look again when the
-- hand-off now pending may lapse; drops dead waiters on the way.
local function watch_next(ms)
    while true do
        local id = redis.call("LINDEX", KEYS[3], 0)
        if not id then
            return
        end
        if alive(id, entry_of(id)) then
            redis.call("PUBLISH", prefix .. "notify:" .. instance_of(id),
                "w " .. name .. " " .. ms)
            return
        end
        redis.call("LPOP", KEYS[3])
        redis.call("HDEL", KEYS[4], id)
    end
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

-- The lock granted outright to a waiter of the calling instance, if any:
-- the reply ends with it (with_direct).
local direct

-- Hands the free lock to the first live waiter: outright to one of the
-- calling instance's, else for the hand-off window, to be claimed.
-- Returns the waiter id and the fence, or nil when nobody live waits.
local function grant_head()
    while true do
        local id = redis.call("LPOP", KEYS[3])
        if not id then
            return nil
        end
        local e = entry_of(id)
        redis.call("HDEL", KEYS[4], id)
        if alive(id, e) then
            local fence = next_fence()
            local local_waiter = instance_of(id) == me
            redis.call("SET", KEYS[2], fence, "PX", e.ttl + 60000)
            redis.call("HSET", KEYS[1], "token", e.token, "fence", fence,
                "count", 1, "owner", e.owner, "ttl", e.ttl, "granted", now_ms,
                "delay", e.delay, "rid", e.rid)
            if local_waiter then
                redis.call("PEXPIRE", KEYS[1], e.ttl)
                lease_runs(e.ttl, e.delay,
                    e.rid ~= "-" and (base .. "acq:" .. e.rid) or nil, e.token)
                direct = {id, fence}
            else
                local hold = handoff_ms > 0 and handoff_ms or e.ttl
                redis.call("HSET", KEYS[1], "waiter", id)
                redis.call("PEXPIRE", KEYS[1], hold)
                redis.call("PUBLISH", prefix .. "notify:" .. instance_of(id),
                    "g " .. id)
                watch_next(hold)
            end
            return id, fence
        end
    end
end

-- r, ended with the outright grant this script made, if it made one.
local function with_direct(r)
    if direct then
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

-- Whether the name is free: no lease, and no lock-delay running.
local function free()
    return redis.call("EXISTS", KEYS[1]) == 0 and
        redis.call("EXISTS", KEYS[5]) == 0
end

-- The refusal of a token that is not the lease's: not_held (-1 ... 0) when
-- its lease ended by a force release or nobody holds the lock, else
-- not_owner.
local function not_holder(h, token)
    if not h or redis.call("EXISTS", base .. "forced:" .. token) == 1 then
        return {0}
    end
    return {-1}
end
