-- wrk script: access-token checks with the prepared tokens, round-robin. Args: TOKENS_FILE MODE (getuser | me | verify).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

local requests = {} -- built once in init(): request() only picks the next one
local next_index = 0

local function build(mode, token)
  if mode == "getuser" then
    return bench.get("/auth/getuser", {Authorization = "Bearer " .. token})
  elseif mode == "me" then
    return bench.get("/api/v1/authorized/me", {Authorization = "Bearer " .. token})
  elseif mode == "verify" then
    return bench.post_json("/auth/token/verify", bench.json({{"token", token}}))
  end
  error("unknown mode " .. tostring(mode))
end

function setup(thread) bench.setup(thread) end

function init(args)
  for _, token in ipairs(bench.read_lines(args[1])) do
    table.insert(requests, build(args[2], token))
  end
  next_index = thread_id * 7 -- threads start at different tokens
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

function response(status) bench.count_status(status) end

function done(summary, latency) bench.report(summary, latency) end
