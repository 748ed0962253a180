#!lua flags=allow-oom
-- renew.lua: extend the holder's lease, exclusive or shared. Runs at
-- maxmemory (allow-oom).
-- KEYS and ARGV[1..5]: see prelude.lua.
-- ARGV[6] token      ARGV[7] ttl_ms, or 0 for the TTL last granted
--
-- Returns {1, fence, count, ttl_ms, owner}   renewed (exclusive)
--         {1, fence, count, ttl_ms, owner, 0, "", 1}   renewed (shared)
--         {0}                                nobody holds it (not_held),
--                                            or a force release ended it
--         {-1}                               another token holds it
--
-- Invariant: only the holder's token changes the lease; the fence key,
-- the lock-delay marker and the request record live at least as long as
-- the lease; the queue is not touched.
local token = ARGV[6]
local ttl = tonumber(ARGV[7])
local h = lease_of()
if not h or h.token ~= token or h.waiter then
    local s = not h and live_shared(token)
    if not s or s.waiter then
        return not_holder(h, token)
    end
    if ttl == 0 then
        ttl = s.ttl
    end
    s.ttl = ttl
    s.expires = now_ms + ttl
    put_shared(s)
    if s.rid ~= "-" then
        redis.call("SET", base .. "acq:" .. s.rid, token, "PX", ttl + 60000)
    end
    return shared_reply(s, false)
end
if ttl == 0 then
    ttl = tonumber(h.ttl)
end
h.ttl = ttl
redis.call("HSET", KEYS[1], "ttl", ttl)
redis.call("PEXPIRE", KEYS[1], ttl)
redis.call("PEXPIRE", KEYS[2], ttl + 60000)
lease_runs(ttl, h.delay, h.rid ~= "-" and (base .. "acq:" .. h.rid) or nil,
    token)
return lease_reply(h)
