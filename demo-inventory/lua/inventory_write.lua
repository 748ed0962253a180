-- inventory_write.lua: record a purchase computed from an earlier read.
--
-- KEYS[1] SKU hash
-- ARGV[1] new stock (what the buyer read minus the quantity)
-- ARGV[2] quantity   ARGV[3] fence of the writer's lease, or 0 (unfenced)
--
-- Returns {1, order_id, stock}   written
--         {-1}                   no such SKU
--         {-2}                   stale fence: refused, nothing changed
--
-- Invariant: a fenced write applies only when no newer fence has touched the
-- SKU. An unfenced write applies blindly: the read-then-write race is the
-- point of the demo.
local last = redis.call("HGET", KEYS[1], "last_fence")
if not last then
    return {-1}
end
local fence = tonumber(ARGV[3])
if fence > 0 then
    if fence < tonumber(last) then
        return {-2}
    end
    redis.call("HSET", KEYS[1], "last_fence", fence)
end
redis.call("HSET", KEYS[1], "stock", ARGV[1])
redis.call("HINCRBY", KEYS[1], "orders", tonumber(ARGV[2]))
local id = redis.call("HINCRBY", KEYS[1], "order_seq", 1)
return {1, id, tonumber(ARGV[1])}
