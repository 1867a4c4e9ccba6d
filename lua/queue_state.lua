--! include _time.lua
-- queue_state.lua: what a process keeps of a sale's waiting room to answer polls itself
-- (read only).
--
-- KEYS[1] sale hash  KEYS[2] pre-queue zset  KEYS[3] queue zset
--
-- Returns {now_ms, fields..., pre-queue length, queue length}, fields as named in
-- flashsale/room/state.py's ROOM_FIELDS (the same order), nil when a field is unset.

local fields = redis.call('HMGET', KEYS[1], unpack(ARGV))
local result = {redis_now_ms()}
for i = 1, #ARGV do
  result[#result + 1] = fields[i] or ''
end
result[#result + 1] = redis.call('ZCARD', KEYS[2])
result[#result + 1] = redis.call('ZCARD', KEYS[3])
return result
