-- add_counts.lua: adds what a process answered on its own (sold-out flag, shed, rate-limited)
-- to a sale's counters; does nothing for a sale that does not exist.
--
-- KEYS[1]  sale hash  fs:{sale}:sale
-- ARGV[1] attempts  ARGV[2] rejected  ARGV[3] shed   (increments, integers >= 0)
--
-- Returns 1 when the counters were added, 0 when there is no such sale.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'attempts', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'rejected', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'shed', ARGV[3])
return 1
