-- add_counts.lua: adds what a process answered on its own (sold-out flag, shed, rate-limited)
-- to a sale's counters, once per batch: a retry of the same batch (after a lost reply) finds
-- its id remembered and adds nothing. Does nothing for a sale that does not exist.
--
-- KEYS[1]  sale hash                   fs:{sale}:sale
-- KEYS[2]  the batch's applied marker  fs:{sale}:counted:<batch id>
-- ARGV[1] attempts  ARGV[2] rejected  ARGV[3] shed   (increments, integers >= 0)
-- ARGV[4] how long the marker is kept, in ms (longer than any retry of the batch)
-- ARGV[5..] pairs: a shed reason and how many of the shed were for it (field shed:<reason>)
--
-- Returns 1 when the counters were added, 2 when this batch was added before, 0 when there is
-- no such sale.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if not redis.call('SET', KEYS[2], 1, 'NX', 'PX', ARGV[4]) then
  return 2
end
redis.call('HINCRBY', KEYS[1], 'attempts', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'rejected', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'shed', ARGV[3])
for i = 5, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], 'shed:' .. ARGV[i], ARGV[i + 1])
end
return 1
