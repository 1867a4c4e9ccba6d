--! include _order_state.lua
-- expire_holds.lua: releases the given holds that are past their expiry (the sweeper's step).
-- The caller names candidate orders (from the holds zset); each is judged here by Redis
-- time, so a candidate confirmed or cancelled meanwhile, or not yet due, is left alone.
--
-- KEYS[1] sale hash  KEYS[2] held hash  KEYS[3] holds zset  KEYS[4] events stream
-- KEYS[5..] the candidates' order hashes (fs:{sale}:order:<id>)
-- ARGV[1] sale_id  ARGV[2..] the candidates' order ids, in the same order as KEYS[5..]
--
-- Returns the number of holds expired by this call.

local now = redis_now_ms()
local expired = 0
for i = 5, #KEYS do
  local order_id = ARGV[i - 3]
  local order = redis.call('HMGET', KEYS[i], unpack(ORDER_FIELDS))
  if order[1] == 'reserved' then
    if now >= tonumber(order[5]) then
      finish_hold(KEYS[1], KEYS[2], KEYS[i], KEYS[3], KEYS[4], ARGV[1], order_id, order,
        'expired', now)
      expired = expired + 1
    end
  else
    -- Not pending any more (or unknown): it has no business in the holds set.
    redis.call('ZREM', KEYS[3], order_id)
  end
end
return expired
