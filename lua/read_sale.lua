--! include _time.lua
-- read_sale.lua: a sale's hash with the time of the Redis that holds it, in one round trip
-- (a cluster pipeline cannot carry TIME, and another node's clock is not this one's).
-- Writes nothing.
--
-- KEYS[1] sale hash
-- No ARGV.
-- Returns {now_ms, field1, value1, field2, value2, ...}; just {now_ms} when there is no sale.

local reply = { redis_now_ms() }
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields do
  reply[i + 1] = fields[i]
end
return reply
