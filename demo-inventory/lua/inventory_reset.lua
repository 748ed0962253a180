-- inventory_reset.lua: create or reset a demo SKU.
--
-- KEYS[1] SKU hash {initial_stock, stock, orders, order_seq, last_fence}
-- ARGV[1] stock      ARGV[2] TTL of the SKU in milliseconds
--
-- Returns {initial_stock, stock, orders}
--
-- Invariant: a reset forgets the fences that wrote the SKU before.
redis.call("DEL", KEYS[1])
redis.call("HSET", KEYS[1], "initial_stock", ARGV[1], "stock", ARGV[1],
           "orders", 0, "order_seq", 0, "last_fence", 0)
redis.call("PEXPIRE", KEYS[1], ARGV[2])
return {tonumber(ARGV[1]), tonumber(ARGV[1]), 0}
