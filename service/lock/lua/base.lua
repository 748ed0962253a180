-- base.lua: what the preludes of every lock kind share. It is put in front
-- of each script (after the script's own #! line, before the kind's
-- prelude: prelude.lua, sem_prelude.lua) when the service loads them, so
-- it is not a script of its own.
--
-- ARGV[1] key prefix   ARGV[2] hand-off window in ms (0: none)
-- ARGV[3] fence floor: the highest fence the calling instance has seen
-- ARGV[4] the name qualified by its kind ("lock:<name>"), as the instances'
--         registries know it; the kind's prelude says what follows.
--
-- A waiter id is "<instance>:<worker>:<n>". An instance is alive for a
-- name while the key "<queue key>:alive:<instance>" exists (in the name's
-- slot, so that a Redis Cluster runs the script on one node): queueing a
-- waiter sets it and the instance refreshes it every second for each name
-- it has waiters parked on (TTL 3 s). Hand-offs to it are published on
-- <prefix>notify:<instance> as "g <waiter id>", and "w <name> <ms>" asks it
-- to look at the name again in that many ms.
local prefix, handoff_ms, floor = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local name = ARGV[4]
local now = redis.call("TIME")
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
-- Ended leases reaped per script; what is left waits for the next.
local REAP_MAX = 1000

-- n in decimal digits: ".." would write a fence (16 digits) as 1.7e+15.
local function int(n)
    return string.format("%.0f", n)
end

local function instance_of(id)
    return string.match(id, "^([^:]+):")
end

-- A new fence after the last one in fence_key: max(last + 1, Redis TIME in
-- µs, floor + 1), so fences strictly increase and stay below 2^53.
local function fence_after(fence_key)
    local f = tonumber(redis.call("GET", fence_key) or "0") + 1
    if f < now_us then
        f = now_us
    end
    if f <= floor then
        f = floor + 1
    end
    return f
end

-- Whether queued waiter id, whose entry is e (nil: none), still waits on
-- queue: its wait runs and its instance is alive for the name.
local function waits(queue, id, e)
    return e ~= nil and e.deadline > now_ms and
        redis.call("EXISTS", queue .. ":alive:" .. instance_of(id)) == 1
end

-- Queues id at the tail of queue (or right behind the head when
-- behind_head), its entry stored in waiters as record, its wait ending at
-- deadline; a waiter queued already (an acquire retried after a lost
-- connection) keeps its place.
local function queue_up(queue, waiters, id, record, deadline, behind_head)
    if redis.call("HEXISTS", waiters, id) == 1 then
        return
    end
    local head = behind_head and redis.call("LINDEX", queue, 0)
    if head then
        redis.call("LINSERT", queue, "AFTER", head, id)
    else
        redis.call("RPUSH", queue, id)
    end
    redis.call("HSET", waiters, id, record)
    local keep = deadline - now_ms + 1000
    for _, key in ipairs({queue, waiters}) do
        if redis.call("PTTL", key) < keep then
            redis.call("PEXPIRE", key, keep)
        end
    end
    -- The caller is alive now, whatever its heartbeat says.
    redis.call("SET", queue .. ":alive:" .. instance_of(id), "1", "PX", 3000)
end

-- Publishes message() to the instance of the first waiter of queue that
-- still waits (entry_of reads an entry from waiters); drops the others on
-- the way.
local function tell_first(queue, waiters, entry_of, message)
    while true do
        local id = redis.call("LINDEX", queue, 0)
        if not id then
            return
        end
        if waits(queue, id, entry_of(id)) then
            redis.call("PUBLISH", prefix .. "notify:" .. instance_of(id),
                message())
            return
        end
        redis.call("LPOP", queue)
        redis.call("HDEL", waiters, id)
    end
end
