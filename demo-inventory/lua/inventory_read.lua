-- inventory_read.lua: read the stock of a SKU, optionally as a fenced read.
--
-- KEYS[1] SKU hash
-- ARGV[1] fence of the reader's lease, or 0 for a plain read
--
-- Returns {1, stock}   read
--         {-1}         no such SKU
--         {-2}         stale fence: a newer lease has already used the SKU
--
-- Invariant (fenced): the SKU remembers the newest fence that touched it and
-- refuses any older one, on reads as on writes. Checking the read too is
-- what closes the gap where an old holder read before the new holder and
-- writes after it.
local h = redis.call("HMGET", KEYS[1], "stock", "last_fence")
if not h[1] then
    return {-1}
end
local fence = tonumber(ARGV[1])
if fence > 0 then
    local last = tonumber(h[2])
    if fence < last then
        return {-2}
    end
    if fence > last then
        redis.call("HSET", KEYS[1], "last_fence", fence)
    end
end
return {1, tonumber(h[1])}
