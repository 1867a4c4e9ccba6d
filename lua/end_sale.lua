--! include _time.lua
-- end_sale.lua: an operator ends a sale now (idempotent: the first end time stays).
-- Holds still pending stay payable until they expire.
--
-- KEYS[1]  sale hash  fs:{sale}:sale
--
-- Returns {outcome, now_ms}: outcome "ok" or "not_found".

local now = redis_now_ms()
local ended_at = redis.call('HGET', KEYS[1], 'ended_at')
if not ended_at then
  return {'not_found', now}
end
if tonumber(ended_at) == 0 then
  redis.call('HSET', KEYS[1], 'ended_at', now)
end
return {'ok', now}
