--! include _order_state.lua
-- cancel.lua: the shopper gives a reserved order up; its units go back on sale at once.
--
-- KEYS[1] sale hash  KEYS[2] held hash  KEYS[3] order hash  KEYS[4] holds zset
-- KEYS[5] events stream  KEYS[6] the order's fence   (all fs:{sale}:…)
-- ARGV[1] order_id  ARGV[2] sale_id  ARGV[3] how long a fence is kept (ms)
--
-- Returns {outcome, status, replayed}:
--   {"ok", "cancelled", 0|1}            cancelled now, or already (1: an idempotent repeat)
--   {"order_not_pending", status, 0}    confirmed or expired (expired here if past its hold)
--   {"not_found", "", 0}                no such order; fenced, so that an attempt of that
--                                       id arriving late (its answer was 202) is refused

local order = redis.call('HMGET', KEYS[3], unpack(ORDER_FIELDS))
local now = redis_now_ms()
if not order[1] then
  redis.call('SET', KEYS[6], 1, 'PX', ARGV[3])
  return {'not_found', '', 0}
end
local settled = settle_if_not_pending(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5],
  ARGV[2], ARGV[1], order, 'cancelled', now)
if settled then
  return settled
end
finish_hold(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[2], ARGV[1], order,
  'cancelled', now)
return {'ok', 'cancelled', 0}
