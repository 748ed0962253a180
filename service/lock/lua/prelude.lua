-- prelude.lua: what every script of the exclusive lock shares. It is put in
-- front of each script (after the script's own #! line) when the service
-- loads them, so it is not a script of its own.
--
-- KEYS[1] lock hash    {token, fence, count, owner, ttl[, waiter]}; TTL = the
--                      lease, or the hand-off window while "waiter" is set
--                      (the lock was handed to that queued waiter, which has
--                      not claimed it yet)
-- KEYS[2] fence key    last fence handed out; TTL = lease + 60 s
-- KEYS[3] queue        list of waiter ids, oldest first
-- KEYS[4] waiters      hash: waiter id -> "<deadline ms> <ttl ms> <token>
--                      <owner>"; TTL of both = the longest wait queued + 1 s
-- ARGV[1] key prefix   ARGV[2] hand-off window in ms (0: none)
-- ARGV[3] fence floor: the highest fence the calling instance has seen
-- ARGV[4] the name qualified by its kind ("lock:<name>"), as the instances'
--         registries know it       ARGV[5...] the script's own
--
-- A waiter id is "<instance>:<worker>:<n>". An instance is alive while its
-- key <prefix>instance:<instance> exists; hand-offs to it are published on
-- <prefix>notify:<instance> as "g <waiter id>", and "w <name> <ms>" asks it
-- to look at the lock again in that many ms (its waiter may be next, and
-- the hand-off in front of it may lapse).
--
-- Invariants: fences strictly increase per name and stay below 2^53, since
-- a new fence is max(last + 1, Redis TIME in µs, floor + 1); a waiter is in
-- the queue from its refusal until it is granted, its wait ends, it leaves,
-- or its instance is found dead.
local prefix, handoff_ms, floor = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local name = ARGV[4]
local now = redis.call("TIME")
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])

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

-- The queued entry of id as {deadline, ttl, token, owner}, or nil.
local function entry_of(id)
    local raw = redis.call("HGET", KEYS[4], id)
    if not raw then
        return nil
    end
    local d, t, k, o = string.match(raw, "^(%d+) (%d+) (%x+) (.*)$")
    return {tonumber(d), tonumber(t), k, o}
end

local function alive(id, e)
    return e ~= nil and e[1] > now_ms and
        redis.call("EXISTS", prefix .. "instance:" .. instance_of(id)) == 1
end

-- Queues id at the tail (or right behind the head when behind_head); a
-- waiter queued already (an acquire retried after a lost connection) keeps
-- its place.
local function enqueue(id, deadline, ttl, token, owner, behind_head)
    if redis.call("HEXISTS", KEYS[4], id) == 1 then
        return
    end
    local head = behind_head and redis.call("LINDEX", KEYS[3], 0)
    if head then
        redis.call("LINSERT", KEYS[3], "AFTER", head, id)
    else
        redis.call("RPUSH", KEYS[3], id)
    end
    redis.call("HSET", KEYS[4], id, deadline .. " " .. ttl .. " " .. token ..
        " " .. owner)
    local keep = deadline - now_ms + 1000
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

-- Hands the free lock to the first live waiter: it holds it for the
-- hand-off window, to be claimed. Returns the waiter id and the fence, or
-- nil when nobody live waits.
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
            local hold = handoff_ms > 0 and handoff_ms or e[2]
            redis.call("SET", KEYS[2], fence, "PX", e[2] + 60000)
            redis.call("HSET", KEYS[1], "token", e[3], "fence", fence, "count",
                1, "owner", e[4], "ttl", e[2], "waiter", id)
            redis.call("PEXPIRE", KEYS[1], hold)
            redis.call("PUBLISH", prefix .. "notify:" .. instance_of(id),
                "g " .. id)
            watch_next(hold)
            return id, fence
        end
    end
end

-- Grants the free lock to the caller: {1, fence, count, ttl, owner}.
local function grant(token, ttl, owner)
    local fence = next_fence()
    redis.call("SET", KEYS[2], fence, "PX", ttl + 60000)
    redis.call("HSET", KEYS[1], "token", token, "fence", fence, "count", 1,
        "owner", owner, "ttl", ttl)
    redis.call("PEXPIRE", KEYS[1], ttl)
    return {1, fence, 1, ttl, owner}
end

-- Makes the lease of a claimed hand-off (or a re-entry) run for its TTL.
local function lease_reply(h)
    return {1, tonumber(h.fence), tonumber(h.count), tonumber(h.ttl), h.owner}
end

local function lease_of()
    local v = redis.call("HMGET", KEYS[1], "token", "fence", "count", "owner",
        "ttl", "waiter")
    if not v[1] then
        return nil
    end
    return {token = v[1], fence = v[2], count = v[3], owner = v[4],
        ttl = v[5], waiter = v[6]}
end
