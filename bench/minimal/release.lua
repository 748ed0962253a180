-- minimal/release.lua: owner-checked release, the baseline counterpart of
-- minimal/acquire.lua ("GET == token -> DEL").
--
-- KEYS[1] lock key       ARGV[1] token
--
-- Returns 1 when the token held the lock and it is now free, else 0.
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
