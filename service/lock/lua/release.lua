#!lua flags=allow-oom
-- release.lua: drop one hold; at zero free the lock (and any lock-delay),
-- handing it to the first live waiter. Runs at maxmemory (allow-oom):
-- releasing frees memory.
-- KEYS and ARGV[1..5]: see prelude.lua.
-- ARGV[6] token      ARGV[7] request_id, or "-"
--
-- Returns {1, count, fence}  released; count holds remain; fence is the
--                            fence of the hand-off it made, or 0
--         {0}                nobody holds the lock (not_held), or a force
--                            release ended the token's lease
--         {-1}               another token holds it (not_owner)
--
-- Invariant: only the holder's token changes the lock; a release with
-- nobody queued publishes nothing; a request_id drops at most one hold.
local token, rid = ARGV[6], ARGV[7]
if rid ~= "-" then
    -- "<token> <count left>": only the same token's repeat is a replay.
    local done = redis.call("GET", KEYS[6])
    local tok, left = string.match(done or "", "^(%x+) (%d+)$")
    if tok == token then
        return {1, tonumber(left), 0}
    end
end
local h = lease_of()
if not h or h.token ~= token or h.waiter then
    return not_holder(h, token)
end
local count = tonumber(h.count) - 1
local fence = 0
if count > 0 then
    redis.call("HSET", KEYS[1], "count", count)
else
    redis.call("DEL", KEYS[1], KEYS[5])
    local _, f = grant_head()
    fence = f or 0
end
if rid ~= "-" then
    redis.call("SET", KEYS[6], token .. " " .. count, "PX",
        tonumber(h.ttl) + 60000)
end
return with_direct({1, count, fence})
