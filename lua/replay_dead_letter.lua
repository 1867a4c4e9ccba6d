-- replay_dead_letter.lua: puts one dead-lettered order event back on its sale's stream, for
-- the order store to take again, and removes it from the dead letters. Replaying it again
-- (a retry after a lost reply, or an operator running replay twice) finds nothing and
-- changes nothing; the order store applies the event idempotently in any case.
--
-- KEYS[1]  dead letters   fs:{sale}:dead
-- KEYS[2]  events stream  fs:{sale}:events
-- KEYS[3]  sale hash      fs:{sale}:sale (no longer retired: the worker has work there)
-- ARGV[1]  the dead letter's entry id (in KEYS[1])
--
-- Returns the new entry id on the events stream, or "" when there was no such dead letter.

local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then
  return ''
end
local fields = found[1][2]
local event = {}
for i = 1, #fields, 2 do
  local name = fields[i]
  if string.sub(name, 1, 6) == 'event.' then
    event[#event + 1] = string.sub(name, 7)
    event[#event + 1] = fields[i + 1]
  end
end
if #event == 0 then
  -- Nothing to replay (a dead letter written by hand?): keep it for a person to look at.
  return ''
end
local entry_id = redis.call('XADD', KEYS[2], '*', unpack(event))
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], 'retired')
return entry_id
