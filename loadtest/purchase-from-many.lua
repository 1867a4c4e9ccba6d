-- wrk script: POSTs purchase attempts with a fresh user id each, each from an address of its
-- own (X-Forwarded-For, which an engine trusting this machine as a proxy believes), so that
-- neither the per-user nor the per-address limit is hit; the sale id is in the URL.
local counter = 0

setup = function(thread)
  thread:set("id", math.random(1, 1000000))
end

request = function()
  counter = counter + 1
  local body = string.format('{"user_id":"probe-%d-%d","quantity":1}', id, counter)
  local address = string.format("10.%d.%d.%d", counter % 250 + 1, math.floor(counter / 250) % 250,
    math.random(1, 250))
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
    ["X-Forwarded-For"] = address}, body)
end
