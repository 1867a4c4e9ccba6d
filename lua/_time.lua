-- _time.lua: the Redis server's clock (not a script on its own). Every script takes its time
-- from here, never from the caller, so that all decisions share one clock.

local function redis_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
