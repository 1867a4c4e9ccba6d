-- _queue.lua: the waiting room's step shared by queue_join.lua and queue_tick.lua (not a
-- script on its own). Keys of one sale's room: its sale hash, the pre-queue (a zset of the
-- users who joined before the open, scored by a random key the app drew for each), and the
-- queue (a zset of users scored by their place: 0, 1, 2, ... in the order they are served).

-- At the sale's start, once: the pre-queue, in the order of its random keys - a uniformly
-- random order, since the keys are independent, uniform and secret until now - takes the
-- first places of the queue; everyone who joins later queues behind it in arrival order.
local function open_room_if_due(sale_key, prequeue_key, queue_key, now, starts_at)
  if now < starts_at or redis.call('HGET', sale_key, 'wr_opened') == '1' then
    return
  end
  local joined = redis.call('ZRANGE', prequeue_key, 0, -1)
  local place = tonumber(redis.call('HGET', sale_key, 'wr_next_place') or '0')
  for first = 1, #joined, 500 do
    local args = {}
    for i = first, math.min(first + 499, #joined) do
      args[#args + 1] = place
      args[#args + 1] = joined[i]
      place = place + 1
    end
    redis.call('ZADD', queue_key, unpack(args))
  end
  redis.call('DEL', prequeue_key)
  redis.call('HSET', sale_key, 'wr_opened', 1, 'wr_next_place', place, 'wr_last_tick', now,
    'wr_credit', 0)
end
