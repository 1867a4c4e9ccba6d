--! include _order_state.lua
--! include _purchase.lua
-- purchase.lua: one purchase attempt, decided and recorded atomically (the logic and its
-- return value are in _purchase.lua).
--
-- KEYS[1]  sale hash            fs:{sale}:sale
-- KEYS[2]  units held per user  fs:{sale}:held         (hash user_id -> units)
-- KEYS[3]  this attempt's order fs:{sale}:order:<order_id>
-- KEYS[4]  pending holds        fs:{sale}:holds        (zset order_id -> expires_at ms)
-- KEYS[5]  order events         fs:{sale}:events       (stream)
-- KEYS[6]  idempotency record   fs:{sale}:idem:<len>:<user>:<key> (ignored when ARGV[4] is "")
-- KEYS[7]  every order id       fs:{sale}:orders       (set, for the audit)
-- KEYS[8]  this attempt's fence fs:{sale}:fence:<order_id> (set when settled as never made)
--
-- ARGV[1]  order_id   named by the app before the call, so a retried call is recognised
-- ARGV[2]  user_id
-- ARGV[3]  quantity   integer >= 1
-- ARGV[4]  fingerprint of the request body under the idempotency key, "" without a key
-- ARGV[5]  idempotency record lifetime in milliseconds
-- ARGV[6]  the idempotency key itself ("" without one), kept on the order for the audit
-- ARGV[7]  most events the sale's stream may hold unprocessed (0: no bound)
-- ARGV[8]  sale_id, for the event
-- ARGV[9]  "1": replay only - answer a stored attempt, else sold_out with nothing written
-- ARGV[10] the client's address, for the sale's holds_per_address cap ("" when unknown)
-- ARGV[11] "1": the app verified the attempt's Purchase-Token (needed while the sale's
--          waiting room is on)
--
-- Returns {outcome, order_id, created_at_ms, expires_at_ms, replayed, stock_left}.

return purchase_one(
  {KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[7], ARGV[8], tonumber(ARGV[5]), tonumber(ARGV[7])},
  {KEYS[3], KEYS[6], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[6], ARGV[9] == '1',
   KEYS[8], ARGV[10], ARGV[11] == '1'})
