-- dead_letter.lua: moves one order event the order store refuses to the sale's dead letters
-- and acknowledges it, together. Safe to run twice (a retry after a lost reply): an entry
-- no longer pending in the group was moved already, and nothing is written again.
--
-- KEYS[1]  events stream  fs:{sale}:events
-- KEYS[2]  dead letters   fs:{sale}:dead
-- ARGV[1]  the order store's consumer group  ARGV[2] the entry's id
-- ARGV[3]  why (error text)  ARGV[4] how often it was tried
-- ARGV[5..] the entry's fields and values, in pairs (kept as event.<field>)
--
-- Returns 1 when it was moved now, 0 when it was not pending (moved before).

if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then
  return 0
end
local letter = {'entry_id', ARGV[2], 'error', ARGV[3], 'deliveries', ARGV[4]}
for i = 5, #ARGV, 2 do
  letter[#letter + 1] = 'event.' .. ARGV[i]
  letter[#letter + 1] = ARGV[i + 1]
end
redis.call('XADD', KEYS[2], '*', unpack(letter))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
