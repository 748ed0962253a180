-- acquire.lua: grant, re-enter, or refuse (and queue) a lease, exclusive
-- or shared.
-- KEYS and ARGV[1..5]: see prelude.lua.
-- ARGV[6] token: freshly minted, or the client's to re-enter
-- ARGV[7] "1" when re-entering      ARGV[8] ttl_ms     ARGV[9] owner
-- ARGV[10] wait_ms (0: no wait)       ARGV[11] max hold count
-- ARGV[12] waiter id when the caller waits, else ""
-- ARGV[13] lock_delay_ms             ARGV[14] request_id, or "-"
-- ARGV[15] "shared" or "exclusive"
--
-- Returns {1, fence, count, ttl_ms, owner[, replayed, token[, 1]]}
--                                           granted (new or re-entered);
--                                           replayed 1 and the lease's
--                                           token when it replays the lease
--                                           an earlier try of request_id
--                                           got; a final 1 for a shared
--                                           lease
--         {0, pttl, queued}                 held (or handed to the queue, or
--                                           in its lock-delay, or behind
--                                           the queue); queued 1 when the
--                                           caller now waits
--         {-1}                              the re-entry token holds nothing
--         {-2}                              re-entry would pass the limit
--         {-4}                              request_id's lease has ended
--         {-5}                              re-entry in the other mode
--
-- Invariant: an exclusive lease excludes every other, shared leases
-- coexist; an acquire never jumps a non-empty queue (a free lock with live
-- waiters goes to the first of them, and a shared one to the shared
-- waiters at its head); a request_id gets at most one lease (or hold).
local token, ttl, owner = ARGV[6], tonumber(ARGV[8]), ARGV[9]
local wait, id = tonumber(ARGV[10]), ARGV[12]
local delay, rid = tonumber(ARGV[13]), ARGV[14]
local shared = ARGV[15] == "shared"

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
        local s = live_shared(got)
        if s and not s.waiter then
            return shared_reply(s, true)
        end
        return {-4}
    end
end

if ARGV[7] == "1" then
    local h = lease_of()
    if h and h.token == token and not h.waiter then
        if shared then
            return {-5}
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
    local s = live_shared(token)
    if not s or s.waiter then
        return {-1}
    end
    if not shared then
        return {-5}
    end
    if s.count >= tonumber(ARGV[11]) then
        return {-2}
    end
    s.count = s.count + 1
    s.ttl = ttl
    s.expires = now_ms + ttl
    put_shared(s)
    if rid ~= "-" then
        redis.call("SET", KEYS[6], token, "PX", ttl + 60000)
    end
    return shared_reply(s, false)
end

local function refuse()
    local pttl = blocked_ms()
    if wait > 0 and id ~= "" then
        enqueue(id, {deadline = now_ms + wait, queued = now_ms, ttl = ttl,
            token = token, delay = delay, rid = rid, shared = shared,
            owner = owner}, false)
        return {0, pttl, 1}
    end
    return {0, pttl, 0}
end

if redis.call("EXISTS", KEYS[1]) == 1 then
    return refuse()
end
local n = shared_live()
if redis.call("EXISTS", KEYS[5]) == 1 then
    return refuse()
end
if redis.call("LLEN", KEYS[3]) > 0 then
    -- The queue goes first; the caller may only join what it was granted
    -- (shared waiters) once nobody is left waiting.
    grant_head()
    if redis.call("LLEN", KEYS[3]) > 0 or
        redis.call("EXISTS", KEYS[1]) == 1 then
        return with_direct(refuse())
    end
    n = redis.call("ZCARD", KEYS[8])
end
if shared then
    local s = add_shared({token = token, ttl = ttl, delay = delay, rid = rid,
        owner = owner}, nil)
    return with_direct(shared_reply(s, false))
end
if n > 0 then
    return with_direct(refuse())
end
return with_direct(grant(token, ttl, owner, delay, rid))
