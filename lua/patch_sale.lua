--! include _time.lua
--! include _constants.lua
-- patch_sale.lua: an operator's change to a sale; every given field or none is applied, and
-- each change once: the change's id is remembered with the fingerprint of its body, so a
-- retry (a lost reply resent by the client, or an operator repeating an Idempotency-Key)
-- applies nothing twice - add_stock above all.
--
-- KEYS[1]  sale hash  fs:{sale}:sale
-- KEYS[2]  the change's applied marker  fs:{sale}:patch:<change id>
--
-- ARGV[1] add_stock (on a sharded sale's own hash: its total only; each bucket gets its
--         share through a patch of its own)
-- ARGV[2] starts_at ms  ARGV[3] ends_at ms  ARGV[4] paused ("1"/"0")
-- ARGV[5] per_user_limit        -- each "" when the operator did not send it
-- ARGV[6] sale_id, announced on STOCK_BACK_CHANNEL when stock is added
-- ARGV[7] fingerprint of the change  ARGV[8] how long the marker is kept, in ms
-- ARGV[9] holds_per_address ("" unchanged, "0" no cap); holds taken before a cap was set
--         do not count against it (only holds taken under a cap are counted per address)
-- ARGV[10..13] the waiting room, all four or all "" (unchanged): on ("1"/"0"),
--         admit_per_second (0: the engine's pace), token lifetime (s), opens before (ms)
--
-- Returns {outcome, now_ms}: outcome "ok" (also for a change applied before),
-- "not_found", "sale_ended" (ended by an operator: final), "invalid_window" (ends_at would
-- not be after starts_at) or "idempotency_conflict" (the id was used for another change).
-- A change may give a retired sale work again (a window reopened): it is no longer retired.

local now = redis_now_ms()
local sale = redis.call('HMGET', KEYS[1], 'starts_at', 'ends_at', 'ended_at', 'shards')
if not sale[1] then
  return {'not_found', now}
end
local applied = redis.call('GET', KEYS[2])
if applied then
  if applied ~= ARGV[7] then
    return {'idempotency_conflict', now}
  end
  return {'ok', now}
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
  -- A sharded sale's own hash holds no units (its buckets do): only its total grows.
  if tonumber(sale[4] or '1') <= 1 then
    redis.call('HINCRBY', KEYS[1], 'stock_left', ARGV[1])
    redis.call('PUBLISH', STOCK_BACK_CHANNEL, ARGV[6])
  end
end
redis.call('HSET', KEYS[1], 'starts_at', starts_at, 'ends_at', ends_at)
redis.call('HDEL', KEYS[1], 'retired')
redis.call('SET', KEYS[2], ARGV[7], 'PX', ARGV[8])
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
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[1], 'holds_per_address', ARGV[9])
end
if ARGV[10] ~= '' then
  redis.call('HSET', KEYS[1], 'wr_enabled', ARGV[10], 'wr_rate', ARGV[11],
    'wr_token_ttl', ARGV[12], 'wr_opens_ms', ARGV[13])
end
return {'ok', now}
