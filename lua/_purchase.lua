--! include _order_state.lua
-- _purchase.lua: one purchase attempt, shared by purchase.lua (one attempt per call) and
-- purchase_batch.lua (many attempts on one sale per call); not a script on its own.
--
-- sale    = {sale_key, held_key, holds_key, events_key, orders_key, sale_id, idem_ttl_ms,
--            max_backlog}
-- attempt = {order_key, idem_key, order_id, user_id, quantity, fingerprint, idempotency_key,
--            replay_only, fence_key, address, queue_pass}
--           (fingerprint "" when the attempt carries no idempotency key; replay_only true:
--            answer only from what is stored, and write nothing - the app's sold-out flag
--            is up, so an attempt not seen before is sold_out without reaching the stock;
--            address: the client's, for the sale's holds_per_address cap, "" when unknown;
--            queue_pass: true when the app verified the attempt's Purchase-Token)
--
-- Returns {outcome, order_id, created_at_ms, expires_at_ms, replayed, stock_left}:
--   outcome "ok"                                   the units are held (or were, for a replay)
--   outcome "not_found"                            no such sale
--   outcome "sale_ended" | "sale_paused" | "sale_not_started" | "sold_out" | "user_limit_reached"
--           | "hold_limit_reached"                 (the client address's unpaid units)
--   outcome "queue_required"                       the sale's waiting room is on and the
--                                                  attempt carries no valid token
--   outcome "idempotency_conflict"                 the key was used with another body
--   outcome "overloaded"                           the order store is behind by max_backlog;
--                                                  nothing is taken or remembered
--   outcome "sharded"                              the sale's units are in its buckets: send
--                                                  the attempt to the user's bucket instead
--   outcome "fenced"                               the engine settled this attempt as never
--                                                  made (its answer was 202 pending and it
--                                                  arrived late): nothing is taken
--   replayed is 1 when the answer is another request's, stored under the same idempotency
--   key (the same attempt sent again gets its own outcome, replayed 0);
--   stock_left is the sale's stock after this attempt (-1 when the answer is a replay or
--   replay_only found nothing stored).
-- Unpaid units per client address live in the held hash under "@<address>" (no user id can
-- contain "@"), counted only while the sale has a holds_per_address cap; the order keeps
-- the address it was counted under, so that finish_hold gives the units back to it.
-- An idempotency record of a reservation lives idem_ttl_ms past the end of its hold (a retry
-- while the units are held always finds it); one of a refusal lives idem_ttl_ms.
-- Everything is checked before anything is written: Redis does not roll back a script
-- that fails half-way.

local function purchase_one(sale, attempt)
  local sale_key, held_key, holds_key, events_key, orders_key = sale[1], sale[2], sale[3],
    sale[4], sale[5]
  local sale_id, idem_ttl_ms, max_backlog = sale[6], sale[7], sale[8]
  local order_key, idem_key, order_id, user_id = attempt[1], attempt[2], attempt[3], attempt[4]
  local quantity, fingerprint, idempotency_key = attempt[5], attempt[6], attempt[7]
  local replay_only, fence_key, address, queue_pass = attempt[8], attempt[9], attempt[10],
    attempt[11]

  -- A retried call (the client's retry after a lost reply) carries the same order id: it
  -- gets this attempt's own outcome, which is no replay of another request's.
  local stored = redis.call('HMGET', order_key, 'created_at', 'expires_at')
  if stored[1] then
    return {'ok', order_id, tonumber(stored[1]), tonumber(stored[2]), 0, -1}
  end
  if redis.call('EXISTS', fence_key) == 1 then
    return {'fenced', '', 0, 0, 0, -1}
  end

  if fingerprint ~= '' then
    local first = redis.call('HMGET', idem_key, 'fingerprint', 'outcome', 'order_id',
      'created_at', 'expires_at', 'attempt')
    if first[1] then
      if first[1] ~= fingerprint then
        return {'idempotency_conflict', '', 0, 0, 1, -1}
      end
      local replayed = 1
      if first[6] == order_id then
        replayed = 0  -- this very attempt, sent again: its own (refused) outcome
      end
      return {first[2], first[3] or '', tonumber(first[4] or '0'), tonumber(first[5] or '0'),
        replayed, -1}
    end
  end
  if replay_only then
    return {'sold_out', '', 0, 0, 0, -1}
  end

  local fields = redis.call('HMGET', sale_key,
    'stock_left', 'starts_at', 'ends_at', 'ended_at', 'paused', 'per_user_limit', 'hold_seconds',
    'holds_per_address', 'wr_enabled', 'buckets')
  if not fields[1] then
    return {'not_found', '', 0, 0, 0, -1}
  end
  if fields[10] and fields[10] ~= '' then
    -- A sale of several shards holds no units itself: the caller did not know, and sends the
    -- attempt again to the user's bucket. Nothing counted: it never was an attempt here.
    return {'sharded', '', 0, 0, 0, -1}
  end
  if fields[9] == '1' and not queue_pass then
    return {'queue_required', '', 0, 0, 0, -1}  -- nothing counted: it never was an attempt
  end
  local stock_left = tonumber(fields[1])
  local starts_at, ends_at, ended_at = tonumber(fields[2]), tonumber(fields[3]),
    tonumber(fields[4])
  local paused, per_user_limit, hold_seconds = fields[5] == '1', tonumber(fields[6]),
    tonumber(fields[7])
  local per_address = tonumber(fields[8] or '0')
  local address_field = ''
  if per_address > 0 and address ~= '' then
    address_field = '@' .. address
  end

  local now = redis_now_ms()

  local outcome = 'ok'
  if ended_at > 0 or now >= ends_at then
    outcome = 'sale_ended'
  elseif paused then
    outcome = 'sale_paused'
  elseif now < starts_at then
    outcome = 'sale_not_started'
  elseif stock_left == 0 then
    -- Checked before the user's cap so that this answer agrees with the app's sold-out flag.
    outcome = 'sold_out'
  else
    local held = tonumber(redis.call('HGET', held_key, user_id) or '0')
    if held + quantity > per_user_limit then
      outcome = 'user_limit_reached'
    elseif address_field ~= '' and
        tonumber(redis.call('HGET', held_key, address_field) or '0') + quantity > per_address then
      outcome = 'hold_limit_reached'
    elseif quantity > stock_left then
      outcome = 'sold_out'
    end
  end

  -- Backpressure: a sale whose stream the order store has not caught up with takes no new
  -- orders. Only attempts that would succeed are turned away, and they are not remembered
  -- under their idempotency key, so a retry later is a fresh attempt.
  if outcome == 'ok' and max_backlog > 0 and redis.call('XLEN', events_key) >= max_backlog then
    redis.call('HINCRBY', sale_key, 'attempts', 1)
    redis.call('HINCRBY', sale_key, 'shed', 1)
    return {'overloaded', '', 0, 0, 0, stock_left}
  end

  -- Writes start here.
  redis.call('HINCRBY', sale_key, 'attempts', 1)
  local created_at, expires_at = 0, 0
  if outcome == 'ok' then
    created_at = now
    expires_at = now + hold_seconds * 1000
    stock_left = redis.call('HINCRBY', sale_key, 'stock_left', -quantity)
    redis.call('HINCRBY', sale_key, 'u_reserved', quantity)
    redis.call('HINCRBY', sale_key, 'o_reserved', 1)
    redis.call('HINCRBY', held_key, user_id, quantity)
    redis.call('HSET', order_key, 'user_id', user_id, 'quantity', quantity, 'status', 'reserved',
      'created_at', created_at, 'expires_at', expires_at, 'updated_at', created_at,
      'idempotency_key', idempotency_key)
    if address_field ~= '' then
      redis.call('HINCRBY', held_key, address_field, quantity)
      redis.call('HSET', order_key, 'address', address)
    end
    redis.call('ZADD', holds_key, expires_at, order_id)
    redis.call('SADD', orders_key, order_id)
    append_event(events_key, sale_id, order_id, user_id, quantity, 'reserved',
      created_at, expires_at, now)
  else
    redis.call('HINCRBY', sale_key, 'rejected', 1)
  end
  local attempt_id = order_id
  if outcome ~= 'ok' then
    order_id = ''
  end
  if fingerprint ~= '' then
    redis.call('HSET', idem_key, 'fingerprint', fingerprint, 'outcome', outcome,
      'order_id', order_id, 'created_at', created_at, 'expires_at', expires_at,
      'attempt', attempt_id)
    local ttl = idem_ttl_ms
    if outcome == 'ok' then
      ttl = idem_ttl_ms + hold_seconds * 1000
    end
    redis.call('PEXPIRE', idem_key, ttl)
  end
  return {outcome, order_id, created_at, expires_at, 0, stock_left}
end
