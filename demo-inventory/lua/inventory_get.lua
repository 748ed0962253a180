#!lua flags=no-writes
-- inventory_get.lua: read a demo SKU.
--
-- KEYS[1] SKU hash (see inventory_reset.lua)
--
-- Returns {1, initial_stock, stock, orders}   read
--         {-1}                                no such SKU
local h = redis.call("HMGET", KEYS[1], "initial_stock", "stock", "orders")
if not h[1] then
    return {-1}
end
return {1, tonumber(h[1]), tonumber(h[2]), tonumber(h[3])}
