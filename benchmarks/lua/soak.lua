-- Mixed load for the "soak" scenario: every wrk thread cycles through 20 pre-built requests,
-- 8 x GET / (hello), 6 x GET /json, 5 x POST /echo with a 1 KiB body, 1 x GET /stream
-- (100 x 1 KiB chunks). No response() callback, so wrk does not parse bodies in Lua.
local requests = {}
local count = 0
local index = 0

function init(args)
  local hello = wrk.format("GET", "/")
  local json = wrk.format("GET", "/json")
  local echo = wrk.format(
    "POST", "/echo", { ["Content-Type"] = "application/octet-stream" }, string.rep("x", 1024)
  )
  local stream = wrk.format("GET", "/stream")
  requests = {
    hello, json, echo, hello, json, hello, echo, json, hello, stream,
    hello, json, echo, hello, json, hello, echo, json, hello, echo,
  }
  count = #requests
end

function request()
  index = index % count + 1
  return requests[index]
end
