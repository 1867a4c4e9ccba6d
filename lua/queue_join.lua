--! include _time.lua
--! include _queue.lua
-- queue_join.lua: a shopper joins a sale's waiting room (or finds their place again).
--
-- KEYS[1] sale hash  KEYS[2] pre-queue zset  KEYS[3] queue zset  KEYS[4] admitted hash
-- KEYS[5] expired set  KEYS[6] last-seen zset              (all fs:{sale}:…)
-- ARGV[1] user_id  ARGV[2] the user's random key in [0, 1), drawn by the app (used only when
--         the user joins before the open)
--
-- Returns {outcome, status, place, joined_now}:
--   outcome "ok" | "not_found" | "room_off" (no waiting room) | "queue_not_open" (it opens
--           queue_opens before the start) | "sale_ended"
--   status  "waiting" | "admitted"
--   place   the user's place in the queue, -1 before the open (drawn at the open)
--   joined_now 1 when this call put the user in the queue (a first join, or a return after
--           the place was lost), 0 when they were in it already

local now = redis_now_ms()
local sale = redis.call('HMGET', KEYS[1], 'starts_at', 'ends_at', 'ended_at', 'wr_enabled',
  'wr_opens_ms')
if not sale[1] then
  return {'not_found', '', -1, 0}
end
if sale[4] ~= '1' then
  return {'room_off', '', -1, 0}
end
local starts_at, ends_at, ended_at = tonumber(sale[1]), tonumber(sale[2]), tonumber(sale[3])
if ended_at > 0 or now >= ends_at then
  return {'sale_ended', '', -1, 0}
end
if now < starts_at - tonumber(sale[5]) then
  return {'queue_not_open', '', -1, 0}
end
open_room_if_due(KEYS[1], KEYS[2], KEYS[3], now, starts_at)

local user = ARGV[1]
redis.call('ZADD', KEYS[6], now, user)
if redis.call('HEXISTS', KEYS[4], user) == 1 then
  return {'ok', 'admitted', -1, 0}
end
local place = redis.call('ZSCORE', KEYS[3], user)
if place then
  return {'ok', 'waiting', tonumber(place), 0}
end
if redis.call('ZSCORE', KEYS[2], user) then
  return {'ok', 'waiting', -1, 0}
end
-- New, or back after losing the place by not polling: at the back.
redis.call('SREM', KEYS[5], user)
redis.call('HINCRBY', KEYS[1], 'wr_joined', 1)
if now < starts_at then
  redis.call('ZADD', KEYS[2], ARGV[2], user)
  return {'ok', 'waiting', -1, 1}
end
place = redis.call('HINCRBY', KEYS[1], 'wr_next_place', 1) - 1
redis.call('ZADD', KEYS[3], place, user)
return {'ok', 'waiting', place, 1}
