--! include _order_state.lua
-- restore_order.lua: brings Redis level with the order store for one order, after a failover
-- lost writes Redis had acknowledged (asynchronous replication): the repair step of
-- `flashsale audit --repair`. An order the store has and Redis lost is put back; one Redis
-- has as reserved while the store has it paid, cancelled or expired is moved to that state.
-- Stock first: an order put back as held or paid takes its units from stock_left, and is
-- refused if that would oversell or take its user past the cap (units lost with the write
-- may have been sold again since).
--
-- KEYS[1] sale hash  KEYS[2] held hash  KEYS[3] order hash  KEYS[4] holds zset
-- KEYS[5] events stream  KEYS[6] orders set  KEYS[7] the order's fence
-- ARGV[1] order_id  ARGV[2] user_id  ARGV[3] quantity  ARGV[4] status in the order store
-- ARGV[5] created_at (ms)  ARGV[6] expires_at (ms)  ARGV[7] sale_id
--
-- Returns {outcome, status}, status being the order's in Redis afterwards:
--   "present"    Redis has it as the store does, or further on: nothing written
--   "advanced"   Redis had it reserved: moved to the store's final state
--   "restored"   put back (a reserved one past its expiry comes back expired, its units free)
--   "fenced"     its attempt was settled as never made, so its shopper was told 404: left
--                to a person (refund if paid), nothing written
--   "no_sale" | "no_stock" | "over_cap"   refused, nothing written

local order_id, user_id, quantity = ARGV[1], ARGV[2], tonumber(ARGV[3])
local stored_status, created_at, expires_at = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local sale_id = ARGV[7]
local now = redis_now_ms()

local sale = redis.call('HMGET', KEYS[1], 'stock_left', 'per_user_limit', 'peak_per_user_limit')
if not sale[1] then
  return {'no_sale', ''}
end
local order = redis.call('HMGET', KEYS[3], unpack(ORDER_FIELDS))
if order[1] then
  if order[1] == 'reserved' and stored_status ~= 'reserved' then
    finish_hold(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], sale_id, order_id, order,
      stored_status, now)
    return {'advanced', stored_status}
  end
  return {'present', order[1]}
end
if redis.call('EXISTS', KEYS[7]) == 1 then
  return {'fenced', ''}
end

local status = stored_status
if status == 'reserved' and now >= expires_at then
  status = 'expired'
end
local takes_units = status == 'reserved' or status == 'confirmed'
if takes_units then
  if tonumber(sale[1]) < quantity then
    return {'no_stock', ''}
  end
  local cap = tonumber(sale[3] or sale[2])
  if tonumber(redis.call('HGET', KEYS[2], user_id) or '0') + quantity > cap then
    return {'over_cap', ''}
  end
end

-- Writes start here.
if takes_units then
  redis.call('HINCRBY', KEYS[1], 'stock_left', -quantity)
  redis.call('HINCRBY', KEYS[2], user_id, quantity)
end
redis.call('HINCRBY', KEYS[1], 'u_' .. status, quantity)
redis.call('HINCRBY', KEYS[1], 'o_' .. status, 1)
redis.call('HSET', KEYS[3], 'user_id', user_id, 'quantity', quantity, 'status', status,
  'created_at', created_at, 'expires_at', expires_at, 'updated_at', now,
  'idempotency_key', '', 'restored_at', now)
redis.call('SADD', KEYS[6], order_id)
if status == 'reserved' then
  redis.call('ZADD', KEYS[4], expires_at, order_id)
end
-- The store has the order already; the event carries a state it may not have (expired).
append_event(KEYS[5], sale_id, order_id, user_id, quantity, status, created_at, expires_at, now)
return {'restored', status}
