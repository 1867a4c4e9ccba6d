--! include _time.lua
-- queue_seen.lua: the waiters a process saw polling since its last call (polls are answered
-- in the process, so this is how Redis learns who is still there), stamped by Redis's clock.
--
-- KEYS[1] last-seen zset  KEYS[2] queue zset  KEYS[3] pre-queue zset
-- KEYS[4] unspent zset (admitted, token not used yet)          (all fs:{sale}:…)
-- ARGV the users
--
-- Returns how many were still waiting or admitted with a token not used yet (the others had
-- bought, or lost their place).

local now = redis_now_ms()
local waiting = 0
for _, user in ipairs(ARGV) do
  if redis.call('ZSCORE', KEYS[2], user) or redis.call('ZSCORE', KEYS[3], user)
      or redis.call('ZSCORE', KEYS[4], user) then
    redis.call('ZADD', KEYS[1], now, user)
    waiting = waiting + 1
  end
end
return waiting
