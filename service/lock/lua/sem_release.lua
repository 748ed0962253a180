#!lua flags=allow-oom
-- sem_release.lua: end one lease of a semaphore; its permits go to as many
-- waiters at the head of the queue as fit. Runs at maxmemory (allow-oom):
-- releasing frees memory.
-- KEYS and ARGV[1..4]: see sem_prelude.lua.
-- ARGV[5] token      ARGV[6] request_id, or "-"
--
-- Returns {1, permits, fence, held_ms}
--                               released: the permits it gave back; fence
--                               of the first hand-off it made, or 0;
--                               held_ms since the grant (-1 for a repeated
--                               request_id)
--         {0}                   the token holds no permits (not_held)
--
-- Invariant: only the holder's token ends its lease; a release with nobody
-- queued publishes nothing; a request_id releases at most once.
local token, rid = ARGV[5], ARGV[6]
if rid ~= "-" then
    local done = redis.call("GET", KEYS[6])
    if done then
        return {1, tonumber(done), 0, -1}
    end
end
local h = live_holder(token)
if not h or h.waiter then
    return {0}
end
local used = drop_holder(h)
local _, fence
if redis.call("LINDEX", KEYS[4], 0) then
    -- Waiters: the permits of ended leases come back too, and as many
    -- waiters at the head as fit are served.
    reap()
    _, fence = serve()
    tidy()
elseif used == 0 then
    redis.call("DEL", KEYS[1])
end
if rid ~= "-" then
    redis.call("SET", KEYS[6], h.permits, "PX", h.ttl + 60000)
end
return {1, h.permits, fence or 0, now_ms - h.granted}
