--! include _constants.lua
-- give_stock.lua: the second step of a transfer between buckets (take_stock.lua took the
-- units from the donor): adds them to this bucket's stock, once per transfer id, and
-- announces them so that processes holding this bucket as sold out serve it again.
--
-- KEYS[1] the receiving bucket's sale hash  KEYS[2] the transfer's received marker
-- ARGV[1] units  ARGV[2] this bucket's id (announced on STOCK_BACK_CHANNEL)
-- ARGV[3] how long the marker is kept, in ms (far past any retry of the transfer)
--
-- Returns the units added by this call (0 when the transfer had arrived already).

if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local units = tonumber(ARGV[1])
redis.call('HINCRBY', KEYS[1], 'stock_left', units)
redis.call('HINCRBY', KEYS[1], 'borrowed', units)
redis.call('SET', KEYS[2], units, 'PX', ARGV[3])
redis.call('PUBLISH', STOCK_BACK_CHANNEL, ARGV[2])
return units
