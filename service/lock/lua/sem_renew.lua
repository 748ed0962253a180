#!lua flags=allow-oom
-- sem_renew.lua: extend one lease of a semaphore. Runs at maxmemory
-- (allow-oom).
-- KEYS and ARGV[1..4]: see sem_prelude.lua.
-- ARGV[5] token      ARGV[6] ttl_ms, or 0 for the TTL last granted
--
-- Returns {1, fence, permits, ttl_ms, owner, limit, 0, ""}   renewed
--         {0}                       the token holds no permits (its lease
--                                   ended, was released or force-released)
--
-- Invariant: only the holder's token changes its lease; the other leases
-- and the queue are not touched; the keys live as long as the latest
-- lease (the fence key 60 s more). A lease that has ended is not renewed,
-- whether or not a script gave its permits back yet.
local token = ARGV[5]
local h = live_holder(token)
if not h or h.waiter then
    return {0}
end
local ttl = tonumber(ARGV[6])
if ttl == 0 then
    ttl = h.ttl
end
local was = h.expires
h.ttl, h.expires = ttl, now_ms + ttl
put_holder(h)
record(h.rid, token, ttl)
if h.expires >= was then
    redis.call("PEXPIREAT", KEYS[3], keep_until(h.expires) + 60000)
else
    -- Shorter: the keys may now go sooner, and the lease may end before
    -- the one the queue's head looks at.
    settle()
    if redis.call("LLEN", KEYS[4]) > 0 then
        watch_head()
    end
end
return lease_reply(h, false)
