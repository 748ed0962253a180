-- sem_acquire.lua: grant a lease of some permits of a semaphore, or refuse
-- (and queue) the caller.
-- KEYS and ARGV[1..4]: see sem_prelude.lua.
-- ARGV[5] token: freshly minted     ARGV[6] ttl_ms     ARGV[7] owner
-- ARGV[8] wait_ms (0: no wait)      ARGV[9] waiter id when the caller
-- waits, else ""                    ARGV[10] permits   ARGV[11] limit
-- ARGV[12] request_id, or "-"
--
-- Returns {1, fence, permits, ttl_ms, owner, limit, replayed, token}
--                                   granted; replayed 1 (and the lease's
--                                   token) when it answers the lease an
--                                   earlier try of request_id got, else 0
--                                   and ""
--         {0, pttl, queued}         not enough permits free (or waiters
--                                   queued before the caller); pttl: until
--                                   the earliest lease ends; queued 1 when
--                                   the caller now waits
--         {-4}                      request_id's lease has ended
--         {-5, limit}               another limit is in force
--
-- Invariant: the permits held never exceed the limit; an acquire never
-- jumps a non-empty queue (waiters that fit are served first, and a head
-- that does not fit blocks everybody behind it); a request_id gets at most
-- one lease.
local token, ttl, owner = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local wait, id = tonumber(ARGV[8]), ARGV[9]
local permits, limit, rid = tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12]

if rid ~= "-" then
    local got = redis.call("GET", KEYS[6])
    if got then
        local h = live_holder(got)
        if h and not h.waiter then
            return lease_reply(h, true)
        end
        return {-4}
    end
end

-- A waiter that acquires again (its connection to Redis broke, or its
-- queue looked lost) may have been handed its permits meanwhile.
if id ~= "" then
    local h = live_holder(token)
    if h and h.waiter == id then
        return claim(h)
    end
end

local e = {deadline = now_ms + wait, queued = now_ms, ttl = ttl,
    token = token, permits = permits, limit = limit, rid = rid,
    owner = owner}
-- Nobody queued and the permits free (counting ended leases as used):
-- granted without looking further.
local used, in_force = used_and_limit()
if not redis.call("LINDEX", KEYS[4], 0) and fits(e, used, in_force) then
    return lease_reply(add_holder(e, nil, used), false)
end
-- Else the permits of ended leases come back, the queue is served, and the
-- caller is granted if it fits behind it.
reap()
local _, _, blocked
_, _, blocked, used, in_force = serve()
if id ~= "" then
    -- A retried acquire whose entry was still queued: serve may just have
    -- handed the permits to it.
    local h = live_holder(token)
    if h and h.waiter == id then
        return claim(h)
    end
end
if used > 0 and in_force ~= limit then
    tidy()
    return {-5, in_force}
end
if not blocked and fits(e, used, in_force) then
    return lease_reply(add_holder(e, nil, used), false)
end
local queued = 0
if wait > 0 and id ~= "" then
    enqueue(id, e, false)
    queued = 1
end
tidy()
return {0, earliest_pttl() or 0, queued}
