-- wrk script: access-token checks with the prepared tokens, round-robin. Args: TOKENS_FILE MODE (getuser | me | verify).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

local requests = {} -- built once in init(): request() only picks the next one

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
  request = bench.round_robin(requests)
end

function response(status) bench.count_status(status) end

function done(summary, latency) bench.report(summary, latency) end
