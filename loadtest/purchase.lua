-- wrk script: POSTs purchase attempts with a fresh user id each, so no per-user cap or
-- idempotency record is hit; the sale id is in the URL given to wrk.
local counter = 0

setup = function(thread)
  thread:set("id", math.random(1, 1000000))
end

request = function()
  counter = counter + 1
  local body = string.format('{"user_id":"bench-%d-%d","quantity":1}', id, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
