-- acquire.lua: grant, re-enter, or refuse (and queue) an exclusive lease.
-- KEYS and ARGV[1..5]: see prelude.lua.
-- ARGV[6] token: freshly minted, or the client's to re-enter
-- ARGV[7] "1" when re-entering      ARGV[8] ttl_ms     ARGV[9] owner
-- ARGV[10] wait_ms (0: no wait)       ARGV[11] max hold count
-- ARGV[12] waiter id when the caller waits, else ""
-- ARGV[13] lock_delay_ms             ARGV[14] request_id, or "-"
--
-- Returns {1, fence, count, ttl_ms, owner[, 1, token]}  granted (new or
--                                           re-entered); then 1 and the
--                                           lease's token when it replays the
--                                           lease an earlier try of
--                                           request_id got
--         {0, pttl, queued}                 held (or handed to the queue, or
--                                           in its lock-delay); queued 1
--                                           when the caller now waits
--         {-1}                              the re-entry token holds nothing
--         {-2}                              re-entry would pass the limit
--         {-4}                              request_id's lease has ended
--
-- Invariant: at most one holder; an acquire never jumps a non-empty queue
-- (a free lock with live waiters goes to the first of them); a request_id
-- gets at most one lease (or hold).
local token, ttl, owner = ARGV[6], tonumber(ARGV[8]), ARGV[9]
local wait, id = tonumber(ARGV[10]), ARGV[12]
local delay, rid = tonumber(ARGV[13]), ARGV[14]

if rid ~= "-" then
    local got = redis.call("GET", KEYS[6])
    if got then
        local h = lease_of()
        if h and h.token == got and not h.waiter then
            local r = lease_reply(h)
            r[6] = 1
            r[7] = got
            return r
        end
        return {-4}
    end
end

if ARGV[7] == "1" then
    local h = lease_of()
    if not h or h.token ~= token or h.waiter then
        return {-1}
    end
    if tonumber(h.count) >= tonumber(ARGV[11]) then
        return {-2}
    end
    h.count = redis.call("HINCRBY", KEYS[1], "count", 1)
    h.ttl = ttl
    redis.call("HSET", KEYS[1], "ttl", ttl)
    redis.call("PEXPIRE", KEYS[1], ttl)
    redis.call("PEXPIRE", KEYS[2], ttl + 60000)
    lease_runs(ttl, h.delay, rid ~= "-" and KEYS[6] or nil, token)
    return lease_reply(h)
end

local function refuse()
    local pttl = redis.call("PTTL", KEYS[1])
    if pttl < 0 then
        pttl = redis.call("PTTL", KEYS[5])
    end
    if wait > 0 and id ~= "" then
        enqueue(id, {deadline = now_ms + wait, queued = now_ms, ttl = ttl,
            token = token, delay = delay, rid = rid, owner = owner}, false)
        return {0, pttl, 1}
    end
    return {0, pttl, 0}
end

if not free() then
    return refuse()
end
if redis.call("LLEN", KEYS[3]) > 0 and grant_head() then
    return with_direct(refuse())
end
return grant(token, ttl, owner, delay, rid)
