--! include _time.lua
-- retire_sale.lua: marks a sale that needs no more background work as retired, so that the
-- worker and the sweeper stop visiting it: its window is over (by the Redis clock, or ended
-- by an operator), no hold is pending, and the order store has taken every event. A change
-- that could give it work again (patch_sale, a replayed dead letter) clears the mark.
--
-- KEYS[1]  sale hash      fs:{sale}:sale
-- KEYS[2]  pending holds  fs:{sale}:holds
-- KEYS[3]  events stream  fs:{sale}:events
--
-- Returns 1 when the sale is (now) retired, 0 when it still needs the worker or does not exist.

local sale = redis.call('HMGET', KEYS[1], 'ends_at', 'ended_at')
if not sale[1] then
  return 0
end
local now = redis_now_ms()
local over = tonumber(sale[2]) > 0 or now >= tonumber(sale[1])
if not over or redis.call('ZCARD', KEYS[2]) > 0 or redis.call('XLEN', KEYS[3]) > 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'retired', 1)
return 1
