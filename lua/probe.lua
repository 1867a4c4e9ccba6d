-- probe.lua: a script round trip for readiness checks; writes nothing.
--
-- No KEYS, no ARGV.
-- Returns the Redis server's time in milliseconds.

local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
