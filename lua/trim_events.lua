-- trim_events.lua: drops a sale's events that the order store has acknowledged, and only
-- those: everything at or after the oldest pending entry, and everything not yet delivered
-- to the group, stays.
--
-- KEYS[1]  events stream  fs:{sale}:events
-- ARGV[1]  the order store's consumer group
--
-- Returns the number of entries removed (0 when the stream or group does not exist).

if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local last_delivered = nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local fields = {}
  for i = 1, #group, 2 do
    fields[group[i]] = group[i + 1]
  end
  if fields['name'] == ARGV[1] then
    last_delivered = fields['last-delivered-id']
  end
end
if not last_delivered or last_delivered == '0-0' then
  return 0
end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
local keep_from
if pending[1] > 0 then
  keep_from = pending[2]
else
  -- Nothing pending: keep from the first id after the last one delivered.
  local ms, seq = string.match(last_delivered, '^(%d+)-(%d+)$')
  keep_from = ms .. '-' .. tostring(tonumber(seq) + 1)
end
return redis.call('XTRIM', KEYS[1], 'MINID', keep_from)
