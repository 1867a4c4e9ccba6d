--! include _time.lua
--! include _constants.lua
-- patch_sale.lua: an operator's change to a sale; every given field or none is applied.
--
-- KEYS[1]  sale hash  fs:{sale}:sale
--
-- ARGV[1] add_stock  ARGV[2] starts_at ms  ARGV[3] ends_at ms  ARGV[4] paused ("1"/"0")
-- ARGV[5] per_user_limit        -- each "" when the operator did not send it
-- ARGV[6] sale_id, announced on STOCK_BACK_CHANNEL when stock is added
--
-- Returns {outcome, now_ms}: outcome "ok", "not_found", "sale_ended" (ended by an
-- operator: final) or "invalid_window" (ends_at would not be after starts_at).
-- A change may give a retired sale work again (a window reopened): it is no longer retired.

local now = redis_now_ms()
local sale = redis.call('HMGET', KEYS[1], 'starts_at', 'ends_at', 'ended_at')
if not sale[1] then
  return {'not_found', now}
end
if tonumber(sale[3]) > 0 then
  return {'sale_ended', now}
end
local starts_at = ARGV[2] ~= '' and tonumber(ARGV[2]) or tonumber(sale[1])
local ends_at = ARGV[3] ~= '' and tonumber(ARGV[3]) or tonumber(sale[2])
if ends_at <= starts_at then
  return {'invalid_window', now}
end

if ARGV[1] ~= '' then
  redis.call('HINCRBY', KEYS[1], 'stock_total', ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'stock_left', ARGV[1])
  redis.call('PUBLISH', STOCK_BACK_CHANNEL, ARGV[6])
end
redis.call('HSET', KEYS[1], 'starts_at', starts_at, 'ends_at', ends_at)
redis.call('HDEL', KEYS[1], 'retired')
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'paused', ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'per_user_limit', ARGV[5])
  -- The audit judges holdings against the highest limit the sale ever had.
  local peak = tonumber(redis.call('HGET', KEYS[1], 'peak_per_user_limit') or '0')
  if tonumber(ARGV[5]) > peak then
    redis.call('HSET', KEYS[1], 'peak_per_user_limit', ARGV[5])
  end
end
return {'ok', now}
