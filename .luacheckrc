-- luacheck configuration for lua/: scripts that Redis runs (Lua 5.1 with Redis' globals).
std = "lua51"
max_line_length = 100

-- What Redis gives every script.
read_globals = { "redis", "KEYS", "ARGV", "cjson", "cmsgpack", "bit", "struct" }

-- `--! include _x.lua` pastes a library into a script when flashsale loads it, so a script
-- uses names that luacheck, reading one file at a time, cannot see defined. They are listed
-- here, each with the library that defines it; _constants.lua is written from keys.py.
files["lua/*.lua"] = {
  read_globals = {
    "redis_now_ms",                  -- _time.lua
    "STOCK_BACK_CHANNEL",            -- _constants.lua
    "append_event", "finish_hold", "settle_if_not_pending", "ORDER_FIELDS",  -- _order_state.lua
    "purchase_one",                  -- _purchase.lua
    "open_room_if_due",              -- _queue.lua
  },
}
-- A library's functions are used by the scripts that include it, not by the library.
files["lua/_*.lua"] = { ignore = { "211" } }
