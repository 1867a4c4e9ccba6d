--! include _time.lua
-- probe.lua: a script round trip for readiness checks; writes nothing.
--
-- No KEYS, no ARGV.
-- Returns the Redis server's time in milliseconds.

return redis_now_ms()
