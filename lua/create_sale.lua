--! include _time.lua
-- create_sale.lua: create a sale unless its id is taken. Safe to run twice: a retry of the
-- same creation (a lost reply, resent by the client) finds its own creation id and answers
-- ok again instead of sale_exists.
--
-- KEYS[1]  sale hash      fs:{sale}:sale
-- KEYS[2]  events stream  fs:{sale}:events (created here with the order store's group)
--
-- ARGV[1] sku  ARGV[2] name  ARGV[3] ref (short id embedded in order ids)
-- ARGV[4] stock (>= 1)  ARGV[5] starts_at ms  ARGV[6] ends_at ms
-- ARGV[7] per_user_limit (>= 1)  ARGV[8] hold_seconds (>= 1)
-- ARGV[9] the consumer group that hands events to the order store
-- ARGV[10] the creation's id (named by the app before the call)
-- ARGV[11] holds_per_address: the most unpaid units one client address may hold (0: no cap)
-- ARGV[12] waiting room on ("1"/"0")  ARGV[13] its admit_per_second (0: the engine's pace)
-- ARGV[14] its purchase tokens' lifetime (s)  ARGV[15] how long before the start it opens (ms)
-- ARGV[16] shards: 1 for a sale that holds its own stock (also each bucket of a sharded
--          sale); K > 1 for a sharded sale's own hash, which holds the total and no units
--          (stock_left 0: a purchase sent to it, never to a bucket, finds it sold out)
-- ARGV[17] the buckets' ids, comma-separated ("" for a sale that is not sharded)
--
-- Returns {outcome, now_ms}: outcome "ok" or "sale_exists".

local now = redis_now_ms()
local created_by = redis.call('HGET', KEYS[1], 'created_by')
if created_by then
  if created_by == ARGV[10] then
    return {'ok', now}
  end
  return {'sale_exists', now}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'sale_exists', now}  -- made before creations had ids
end
-- The group exists before the first event, so the order store never misses one. A worker
-- that saw the sale's id in the index a moment before this script ran may have created it
-- already (BUSYGROUP): that is the same group, and not a reason to fail.
local created = redis.pcall('XGROUP', 'CREATE', KEYS[2], ARGV[9], '0', 'MKSTREAM')
if type(created) == 'table' and created.err and not string.find(created.err, '^BUSYGROUP') then
  return redis.error_reply(created.err)
end
redis.call('HSET', KEYS[1],
  'sku', ARGV[1], 'name', ARGV[2], 'ref', ARGV[3],
  'stock_total', ARGV[4], 'stock_left', tonumber(ARGV[16]) > 1 and 0 or ARGV[4],
  'shards', ARGV[16], 'buckets', ARGV[17],
  'starts_at', ARGV[5], 'ends_at', ARGV[6], 'ended_at', 0, 'paused', 0,
  'per_user_limit', ARGV[7], 'peak_per_user_limit', ARGV[7], 'hold_seconds', ARGV[8],
  'holds_per_address', ARGV[11],
  'wr_enabled', ARGV[12], 'wr_rate', ARGV[13], 'wr_token_ttl', ARGV[14], 'wr_opens_ms', ARGV[15],
  'created_at', now, 'created_by', ARGV[10],
  'attempts', 0, 'rejected', 0, 'shed', 0,
  'u_reserved', 0, 'u_confirmed', 0, 'u_cancelled', 0, 'u_expired', 0,
  'o_reserved', 0, 'o_confirmed', 0, 'o_cancelled', 0, 'o_expired', 0)
return {'ok', now}
