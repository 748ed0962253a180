#!lua flags=allow-oom
-- release.lua: drop one hold of a lease, exclusive or shared; at zero the
-- lease ends (an exclusive one's lock-delay with it) and the queue is
-- served. Runs at maxmemory (allow-oom): releasing frees memory.
-- KEYS and ARGV[1..5]: see prelude.lua.
-- ARGV[6] token      ARGV[7] request_id, or "-"
--
-- Returns {1, count, fence, held_ms}
--                            released; count holds remain; fence is the
--                            fence of the first hand-off it made, or 0;
--                            held_ms: since the lease was granted (-1 for
--                            a repeated request_id)
--         {0}                nobody holds the lock (not_held), or a force
--                            release ended the token's lease
--         {-1}               another token holds it (not_owner)
--
-- Invariant: only the holder's token changes its lease; a release with
-- nobody queued publishes nothing; a request_id drops at most one hold.
local token, rid = ARGV[6], ARGV[7]
if rid ~= "-" then
    -- "<token> <count left>": only the same token's repeat is a replay.
    local done = redis.call("GET", KEYS[6])
    local tok, left = string.match(done or "", "^(%x+) (%d+)$")
    if tok == token then
        return {1, tonumber(left), 0, -1}
    end
end
local h = lease_of()
local count, fence, ttl, granted = 0, 0, 0, now_ms
if h and h.token == token and not h.waiter then
    count = tonumber(h.count) - 1
    ttl = tonumber(h.ttl)
    granted = tonumber(h.granted)
    if count > 0 then
        redis.call("HSET", KEYS[1], "count", count)
    else
        redis.call("DEL", KEYS[1], KEYS[5])
        local _, f = grant_head()
        fence = f or 0
    end
else
    local s = not h and live_shared(token)
    if not s or s.waiter then
        return not_holder(h, token)
    end
    count = s.count - 1
    ttl = s.ttl
    granted = s.granted
    if count > 0 then
        s.count = count
        put_shared(s)
    else
        drop_shared(s)
        local _, f = grant_head()
        fence = f or 0
    end
end
if rid ~= "-" then
    redis.call("SET", KEYS[6], token .. " " .. count, "PX", ttl + 60000)
end
return with_direct({1, count, fence, now_ms - granted})
