--! include _time.lua
--! include _constants.lua
-- _order_state.lua: shared by the scripts that change an order (not a script on its own).
-- A script that starts with the line `--! include _order_state.lua` gets these functions
-- prepended when it is loaded, so the bookkeeping of a state change is written once.
-- STOCK_BACK_CHANNEL (from _constants.lua, written from keys.py): processes that answer
-- sold_out from a local flag listen there, to clear it at once.

-- What finish_hold and settle_if_not_pending need of an order, read with HMGET.
local ORDER_FIELDS = {'status', 'user_id', 'quantity', 'created_at', 'expires_at', 'address'}

-- Appends one order event; every event carries the whole order so that the order store can
-- apply it even when it arrives before the events that preceded it.
local function append_event(events_key, sale_id, order_id, user_id, quantity, status,
                            created_at, expires_at, now)
  redis.call('XADD', events_key, '*', 'type', status, 'order_id', order_id, 'sale_id', sale_id,
    'user_id', user_id, 'quantity', quantity, 'status', status,
    'created_at', created_at, 'expires_at', expires_at, 'at', now)
end

-- Moves a reserved order to a final state: confirmed keeps its units sold; cancelled and
-- expired give them back to the sale and to the user's allowance.
-- order = {status, user_id, quantity, created_at, expires_at, address} as read by HMGET
-- (ORDER_FIELDS); address is set when the hold counts against its client address's cap.
local function finish_hold(sale_key, held_key, order_key, holds_key, events_key,
                           sale_id, order_id, order, new_status, now)
  local user_id, quantity = order[2], tonumber(order[3])
  redis.call('HSET', order_key, 'status', new_status, 'updated_at', now)
  redis.call('ZREM', holds_key, order_id)
  redis.call('HINCRBY', sale_key, 'u_reserved', -quantity)
  redis.call('HINCRBY', sale_key, 'o_reserved', -1)
  redis.call('HINCRBY', sale_key, 'u_' .. new_status, quantity)
  redis.call('HINCRBY', sale_key, 'o_' .. new_status, 1)
  -- Paid or given back, the units are no longer unpaid ones of the address.
  if order[6] then
    local address_field = '@' .. order[6]
    if redis.call('HINCRBY', held_key, address_field, -quantity) <= 0 then
      redis.call('HDEL', held_key, address_field)
    end
  end
  if new_status ~= 'confirmed' then
    redis.call('HINCRBY', sale_key, 'stock_left', quantity)
    if redis.call('HINCRBY', held_key, user_id, -quantity) <= 0 then
      redis.call('HDEL', held_key, user_id)
    end
    redis.call('PUBLISH', STOCK_BACK_CHANNEL, sale_id)
  end
  append_event(events_key, sale_id, order_id, user_id, quantity, new_status,
    order[4], order[5], now)
end

-- Confirm and cancel share this: the answer for an order that is not (or no longer) pending.
-- A hold past its expiry is expired here and now, so that a confirm racing the sweeper has
-- exactly one winner whoever runs first.
-- Returns nil when the order is reserved and still within its hold.
local function settle_if_not_pending(sale_key, held_key, order_key, holds_key, events_key,
                                     sale_id, order_id, order, wanted, now)
  local status = order[1]
  if not status then
    return {'not_found', '', 0}
  end
  if status == wanted then
    return {'ok', status, 1}
  end
  if status ~= 'reserved' then
    return {'order_not_pending', status, 0}
  end
  if now >= tonumber(order[5]) then
    finish_hold(sale_key, held_key, order_key, holds_key, events_key,
      sale_id, order_id, order, 'expired', now)
    return {'order_not_pending', 'expired', 0}
  end
  return nil
end
