-- acquire.lua: grant, re-enter or refuse an exclusive lease.
--
-- KEYS[1] lock hash    {token, fence, count, owner, ttl}; PEXPIRE = lease TTL
-- KEYS[2] fence key    last fence handed out for this name; TTL = lease + 60 s
-- KEYS[3] waiter set   sorted set: the id of each waiting request, scored
--                      by the Redis time (ms) its wait ends; TTL = the
--                      longest wait entered
-- KEYS[4] handoff key  the ticket of the last release that woke a waiter;
--                      TTL = the hand-off window (release.lua sets it)
-- ARGV[1] token: a freshly minted token, or the client's token to re-enter
-- ARGV[2] "1" when ARGV[1] is the client's token (re-entry), else "0"
-- ARGV[3] ttl_ms      ARGV[4] owner label      ARGV[5] wait_ms (0: no wait)
-- ARGV[6] max hold count
-- ARGV[7] the hand-off ticket of a woken waiter, or ""
-- ARGV[8] the waiter's id when the caller waits, or ""
--
-- Returns {1, fence, count, ttl_ms, owner}   granted (new or re-entered)
--         {0, pttl}                          held by another lease, or
--                                            reserved for a woken waiter
--         {-1}                               re-entry token does not hold it
--         {-2}                               re-entry would pass the hold limit
--
-- Invariants: at most one holder per name; fences strictly increase per name
-- even after the fence key expired or Redis lost its data, because a new fence
-- is max(last + 1, Redis TIME in microseconds), and stays below 2^53. A lock
-- released to waiters goes to the waiter holding the ticket, not to whoever
-- asks first, for at most the hand-off window. A waiter is in the waiter set
-- from its first refusal until it is granted or its wait ends.
local ttl = tonumber(ARGV[3])
if ARGV[2] == "1" then
    if redis.call("HGET", KEYS[1], "token") ~= ARGV[1] then
        return {-1}
    end
    local count = tonumber(redis.call("HGET", KEYS[1], "count"))
    if count >= tonumber(ARGV[6]) then
        return {-2}
    end
    count = redis.call("HINCRBY", KEYS[1], "count", 1)
    redis.call("HSET", KEYS[1], "ttl", ttl)
    redis.call("PEXPIRE", KEYS[1], ttl)
    redis.call("PEXPIRE", KEYS[2], ttl + 60000)
    local f = redis.call("HMGET", KEYS[1], "fence", "owner")
    return {1, tonumber(f[1]), count, ttl, f[2]}
end

-- Refuses with how long until another try makes sense, and enters the
-- waiter (if it will wait) in the waiter set so that releases publish.
local function refuse(pttl)
    local wait = tonumber(ARGV[5])
    if wait > 0 and ARGV[8] ~= "" then
        local now = redis.call("TIME")
        local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
        redis.call("ZREMRANGEBYSCORE", KEYS[3], "-inf", now_ms)
        redis.call("ZADD", KEYS[3], now_ms + wait, ARGV[8])
        if redis.call("PTTL", KEYS[3]) < wait then
            redis.call("PEXPIRE", KEYS[3], wait)
        end
    end
    return {0, pttl}
end

local pttl = redis.call("PTTL", KEYS[1])
if pttl ~= -2 then
    return refuse(pttl)
end
local ticket = redis.call("GET", KEYS[4])
if ticket then
    if ticket ~= ARGV[7] then
        return refuse(redis.call("PTTL", KEYS[4]))
    end
    redis.call("DEL", KEYS[4])
end
local now = redis.call("TIME")
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local fence = tonumber(redis.call("GET", KEYS[2]) or "0") + 1
if fence < now_us then
    fence = now_us
end
redis.call("SET", KEYS[2], fence, "PX", ttl + 60000)
redis.call("HSET", KEYS[1], "token", ARGV[1], "fence", fence, "count", 1,
           "owner", ARGV[4], "ttl", ttl)
redis.call("PEXPIRE", KEYS[1], ttl)
if ARGV[8] ~= "" then
    redis.call("ZREM", KEYS[3], ARGV[8])
end
return {1, fence, 1, ttl, ARGV[4]}
