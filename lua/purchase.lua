--! include _order_state.lua
-- purchase.lua: one purchase attempt, decided and recorded atomically.
--
-- KEYS[1]  sale hash            fs:{sale}:sale
-- KEYS[2]  units held per user  fs:{sale}:held         (hash user_id -> units)
-- KEYS[3]  this attempt's order fs:{sale}:order:<order_id>
-- KEYS[4]  pending holds        fs:{sale}:holds        (zset order_id -> expires_at ms)
-- KEYS[5]  order events         fs:{sale}:events       (stream)
-- KEYS[6]  idempotency record   fs:{sale}:idem:<len>:<user>:<key> (ignored when ARGV[4] is "")
-- KEYS[7]  every order id        fs:{sale}:orders       (set, for the audit)
--
-- ARGV[1]  order_id   named by the app before the call, so a retried call is recognised
-- ARGV[2]  user_id
-- ARGV[3]  quantity   integer >= 1
-- ARGV[4]  fingerprint of the request body under the idempotency key, "" without a key
-- ARGV[5]  idempotency record lifetime in milliseconds
-- ARGV[6]  the idempotency key itself ("" without one), kept on the order for the audit
-- ARGV[7]  most events the sale's stream may hold unprocessed (0: no bound)
-- ARGV[8]  sale_id, for the event
--
-- Returns {outcome, order_id, created_at_ms, expires_at_ms, replayed}:
--   outcome "ok"                                   the units are held (or were, for a replay)
--   outcome "not_found"                            no such sale
--   outcome "sale_ended" | "sale_paused" | "sale_not_started" | "sold_out" | "user_limit_reached"
--   outcome "idempotency_conflict"                 the key was used with another body
--   outcome "overloaded"                           the order store is behind by the bound in
--                                                  ARGV[7]; nothing is taken or remembered
--   replayed is 1 when the answer is a stored one (same attempt or same idempotency key).
-- Everything is checked before anything is written: Redis does not roll back a script
-- that fails half-way.

local sale_key, held_key, order_key, holds_key, events_key, idem_key, orders_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local order_id, user_id = ARGV[1], ARGV[2]
local quantity = tonumber(ARGV[3])
local fingerprint, idem_ttl_ms = ARGV[4], tonumber(ARGV[5])
local idempotency_key, max_backlog, sale_id = ARGV[6], tonumber(ARGV[7]), ARGV[8]

-- A retried call (client retry after a lost reply) carries the same order id.
local stored = redis.call('HMGET', order_key, 'created_at', 'expires_at')
if stored[1] then
  return {'ok', order_id, tonumber(stored[1]), tonumber(stored[2]), 1}
end

if fingerprint ~= '' then
  local first = redis.call('HMGET', idem_key, 'fingerprint', 'outcome', 'order_id', 'created_at', 'expires_at')
  if first[1] then
    if first[1] ~= fingerprint then
      return {'idempotency_conflict', '', 0, 0, 1}
    end
    return {first[2], first[3] or '', tonumber(first[4] or '0'), tonumber(first[5] or '0'), 1}
  end
end

local sale = redis.call('HMGET', sale_key,
  'stock_left', 'starts_at', 'ends_at', 'ended_at', 'paused', 'per_user_limit', 'hold_seconds')
if not sale[1] then
  return {'not_found', '', 0, 0, 0}
end
local stock_left = tonumber(sale[1])
local starts_at, ends_at, ended_at = tonumber(sale[2]), tonumber(sale[3]), tonumber(sale[4])
local paused, per_user_limit, hold_seconds = sale[5] == '1', tonumber(sale[6]), tonumber(sale[7])

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
  elseif quantity > stock_left then
    outcome = 'sold_out'
  end
end

-- Backpressure: a sale whose stream the order store has not caught up with takes no new
-- orders. Only attempts that would succeed are turned away, and they are not remembered
-- under their idempotency key, so a retry later is a fresh attempt.
if outcome == 'ok' and max_backlog > 0 and redis.call('XLEN', events_key) >= max_backlog then
  redis.call('HINCRBY', sale_key, 'shed', 1)
  return {'overloaded', '', 0, 0, 0}
end

-- Writes start here.
redis.call('HINCRBY', sale_key, 'attempts', 1)
local created_at, expires_at = 0, 0
if outcome == 'ok' then
  created_at = now
  expires_at = now + hold_seconds * 1000
  redis.call('HINCRBY', sale_key, 'stock_left', -quantity)
  redis.call('HINCRBY', sale_key, 'u_reserved', quantity)
  redis.call('HINCRBY', sale_key, 'o_reserved', 1)
  redis.call('HINCRBY', held_key, user_id, quantity)
  redis.call('HSET', order_key, 'user_id', user_id, 'quantity', quantity, 'status', 'reserved',
    'created_at', created_at, 'expires_at', expires_at, 'updated_at', created_at,
    'idempotency_key', idempotency_key)
  redis.call('ZADD', holds_key, expires_at, order_id)
  redis.call('SADD', orders_key, order_id)
  append_event(events_key, sale_id, order_id, user_id, quantity, 'reserved',
    created_at, expires_at, now)
else
  redis.call('HINCRBY', sale_key, 'rejected', 1)
  order_id = ''
end
if fingerprint ~= '' then
  redis.call('HSET', idem_key, 'fingerprint', fingerprint, 'outcome', outcome, 'order_id', order_id,
    'created_at', created_at, 'expires_at', expires_at)
  redis.call('PEXPIRE', idem_key, idem_ttl_ms)
end
return {outcome, order_id, created_at, expires_at, 0}
