--! include _order_state.lua
--! include _purchase.lua
-- purchase_batch.lua: many purchase attempts on one sale in one call (group commit: one
-- round trip and one AOF fsync for the lot). Each attempt is decided exactly as
-- purchase.lua decides it, in the order given, seeing the effects of those before it.
--
-- KEYS[1] sale hash  KEYS[2] held hash  KEYS[3] holds zset  KEYS[4] events stream
-- KEYS[5] order-id set                              (all fs:{sale}:…)
-- KEYS[3 + 3i] order hash of attempt i  KEYS[4 + 3i] idempotency record of attempt i
-- KEYS[5 + 3i] fence of attempt i                   (i = 1 .. n; same slot as the sale)
--
-- ARGV[1] sale_id  ARGV[2] idempotency record lifetime (ms)  ARGV[3] max backlog (0: none)
-- ARGV[4] the attempts, msgpack-packed: an array of
--         [order_id, user_id, quantity, fingerprint ("" without a key), idempotency_key,
--          address ("" when unknown), queue_pass (true: a verified Purchase-Token)]
--
-- Returns an array with one result per attempt, in order, each as purchase.lua returns it:
-- {outcome, order_id, created_at_ms, expires_at_ms, replayed, stock_left}.

local sale = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], tonumber(ARGV[2]),
  tonumber(ARGV[3])}
local attempts = cmsgpack.unpack(ARGV[4])
local results = {}
for i, a in ipairs(attempts) do
  results[i] = purchase_one(sale, {KEYS[3 + 3 * i], KEYS[4 + 3 * i], a[1], a[2], a[3], a[4],
    a[5], false, KEYS[5 + 3 * i], a[6], a[7]})
end
return results
