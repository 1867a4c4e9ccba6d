-- settle_attempt.lua: settles a purchase attempt whose outcome the engine never learnt (it
-- answered 202 pending): either the attempt took effect, and its order is there, or it did
-- not, and it never will - the fence set here makes a late arrival of it refuse itself.
--
-- KEYS[1]  the attempt's order hash  fs:{sale}:order:<order_id>
-- KEYS[2]  the attempt's fence       fs:{sale}:fence:<order_id>
-- ARGV[1]  how long the fence is kept, in ms (longer than any call can be delayed)
--
-- Returns {"found", status} when the order exists, {"fenced", ""} when it does not (now).

local status = redis.call('HGET', KEYS[1], 'status')
if status then
  return {'found', status}
end
redis.call('SET', KEYS[2], 1, 'PX', ARGV[1])
return {'fenced', ''}
