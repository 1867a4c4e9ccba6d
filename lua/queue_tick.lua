--! include _time.lua
--! include _queue.lua
-- queue_tick.lua: the waiting room's clock: opens it at the start, admits waiters from the
-- front at the room's pace, and takes the place of waiters who stopped polling. Any number
-- of processes may call it, as often as they like: the pace is kept by Redis's clock and the
-- credit stored in the sale hash, so more calls admit nobody sooner.
--
-- KEYS[1] sale hash  KEYS[2] pre-queue zset  KEYS[3] queue zset  KEYS[4] admitted hash
-- KEYS[5] expired set  KEYS[6] last-seen zset  KEYS[7] held hash (units per user)
-- KEYS[8] unspent zset (admitted users by token expiry)      (all fs:{sale}:…)
-- ARGV[1] ms after which a waiter who has not polled loses the place (3 x poll_after)
-- ARGV[2] where the engine's own pace starts (shoppers a second), for a room whose
--         admit_per_second is null
-- ARGV[3] the most waiters one call looks at
-- ARGV[4] "1" when the calling process shed work for its own sake since its last call
--
-- Nobody is admitted beyond the units there are: a shopper is admitted only while the stock
-- left exceeds the tokens admitted shoppers have not used yet (an admitted shopper who holds
-- units, whose token expired, or who stopped polling as a waiter would, no longer counts -
-- so tokens nobody means to use cannot hold the room up). So an admitted shopper finds a
-- unit, and when units sit in holds the waiters keep their places until the holds are paid
-- (then they hear sold_out) or come back (then the next are admitted) - never sold_out while
-- a unit can still come back to them.
--
-- The engine's own pace (admit_per_second null) follows what the engine can serve: it grows
-- by a fifth a second while shoppers wait for the pace (not for stock) and no process sheds,
-- and falls by 30% (at most once a second) when one does: a probe for capacity steered by
-- the engine's own overload signal, as TCP's congestion window is by loss. It lives in the
-- sale hash (wr_auto_rate), shared by every process.
--
-- Returns {admitted, expired}: what this call did.

local now = redis_now_ms()
local sale = redis.call('HMGET', KEYS[1], 'starts_at', 'wr_enabled', 'wr_rate', 'wr_credit',
  'wr_last_tick', 'stock_left', 'ended_at', 'ends_at', 'wr_auto_rate', 'wr_auto_cut_at',
  'wr_token_ttl')
if not sale[1] or sale[2] ~= '1' then
  return {0, 0}
end
local starts_at = tonumber(sale[1])
open_room_if_due(KEYS[1], KEYS[2], KEYS[3], now, starts_at)

-- Waiters who stopped polling lose their place, wherever they are in the queue.
local stale_before = now - tonumber(ARGV[1])
local budget = tonumber(ARGV[3])
local expired = 0
local stale = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', '(' .. stale_before, 'LIMIT', 0,
  budget)
for _, user in ipairs(stale) do
  redis.call('ZREM', KEYS[6], user)
  if redis.call('ZREM', KEYS[3], user) + redis.call('ZREM', KEYS[2], user) > 0 then
    redis.call('SADD', KEYS[5], user)
    expired = expired + 1
  end
end

-- Units free for the next waiters: the stock left, less the tokens not used yet.
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
local unspent = 0
for _, user in ipairs(redis.call('ZRANGE', KEYS[8], 0, -1)) do
  if redis.call('HEXISTS', KEYS[7], user) == 1 then
    redis.call('ZREM', KEYS[8], user)  -- bought: the token did its job
  elseif not redis.call('ZSCORE', KEYS[6], user) then
    -- Stopped polling: the token may still buy, if a unit is left when it tries.
    redis.call('ZREM', KEYS[8], user)
  else
    unspent = unspent + 1
  end
end
local free = tonumber(sale[6]) - unspent

local admitted = 0
local over = tonumber(sale[7]) > 0 or now >= tonumber(sale[8])
if now >= starts_at and not over then
  local rate = tonumber(sale[3])
  local last = tonumber(sale[5] or now)
  local waiting = redis.call('ZCARD', KEYS[3]) > 0
  if rate <= 0 then
    rate = tonumber(sale[9] or ARGV[2])
    if ARGV[4] == '1' then
      if now - tonumber(sale[10] or '0') >= 1000 then
        rate = rate * 0.7
        redis.call('HSET', KEYS[1], 'wr_auto_cut_at', now)
      end
    elseif waiting and free > 0 then
      rate = rate * (1 + 0.2 * math.max(0, now - last) / 1000)
    end
    rate = math.min(math.max(rate, 1), 1000000)
    redis.call('HSET', KEYS[1], 'wr_auto_rate', rate)
  end
  local credit = tonumber(sale[4] or '0') + math.max(0, now - last) * rate / 1000
  -- No bursts after a quiet spell: at most a second's worth (and one shopper) banked; and
  -- nothing banked while no unit is free.
  credit = math.min(credit, math.max(1, rate))
  if free <= 0 then
    credit = 0
  end
  local token_ttl_ms = tonumber(sale[11] or '120') * 1000
  while credit >= 1 and admitted < budget and admitted < free do
    local head = redis.call('ZPOPMIN', KEYS[3])
    if #head == 0 then
      credit = 0  -- nobody waiting: nothing is banked for later arrivals
      break
    end
    redis.call('HSET', KEYS[4], head[1], now)
    redis.call('ZADD', KEYS[8], now + token_ttl_ms, head[1])
    redis.call('ZADD', KEYS[6], now, head[1])  -- from now on, seen as an admitted shopper
    redis.call('HSET', KEYS[1], 'wr_serving', tonumber(head[2]) + 1)
    admitted = admitted + 1
    credit = credit - 1
  end
  redis.call('HSET', KEYS[1], 'wr_credit', credit, 'wr_last_tick', now)
end
if admitted > 0 then
  redis.call('HINCRBY', KEYS[1], 'wr_admitted', admitted)
end
if expired > 0 then
  redis.call('HINCRBY', KEYS[1], 'wr_expired', expired)
end
return {admitted, expired}
