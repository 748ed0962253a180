#!lua flags=allow-oom
-- sem_poke.lua: look at a semaphore that instances have waiters for, when
-- its earliest lease (or hand-off window) should have ended: an expiry
-- publishes nothing. The permits of ended leases go to as many waiters at
-- the head of the queue as fit. Never reorders the queue.
-- KEYS and ARGV[1..4]: see sem_prelude.lua.
--
-- Returns {1, pttl, waiter}   waiters remain or hand-offs are pending; pttl
--                             until the earliest lease ends (look again
--                             then); waiter: the first one it handed
--                             permits to, or ""
--         {0}                 nobody live is queued
reap()
local first, _, blocked = serve()
tidy()
if not first and not blocked then
    return {0}
end
return {1, earliest_pttl() or 1000, first or ""}
