-- take_stock.lua: the first step of moving units between two buckets of a sharded sale (the
-- rebalancer's): takes up to the wanted units from this bucket's stock and notes the
-- transfer as owed to the receiver. The second step (give_stock.lua) runs on the receiver's
-- slot; no script can touch both. Safe to run twice: a transfer id is taken once.
-- Units lent stay in this bucket's stock_total, counted as `lent`, so that
--   stock_left + reserved + confirmed + lent - borrowed == stock_total
-- holds in every bucket at every step, and the sale's sum with it.
--
-- KEYS[1] the donor bucket's sale hash  KEYS[2] its transfers hash (id -> "receiver|units")
-- ARGV[1] the transfer id  ARGV[2] the receiving bucket's id  ARGV[3] units wanted (>= 1)
--
-- Returns the units taken (0 when the bucket has none; the same number again for an id
-- already taken).

local owed = redis.call('HGET', KEYS[2], ARGV[1])
if owed then
  return tonumber(string.match(owed, '|(%d+)$'))
end
local left = tonumber(redis.call('HGET', KEYS[1], 'stock_left') or '0')
local units = math.min(left, tonumber(ARGV[3]))
if units <= 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'stock_left', -units)
redis.call('HINCRBY', KEYS[1], 'lent', units)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. units)
return units
