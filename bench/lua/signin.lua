-- wrk script: sign-in (POST /auth/token) as the prepared users, round-robin. Args: USERS_FILE PASSWORD.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

local requests = {}
local next_index = 0

function setup(thread) bench.setup(thread) end

function init(args)
  for _, username in ipairs(bench.read_lines(args[1])) do
    local body = bench.json({{"username", username}, {"password", args[2]}})
    table.insert(requests, bench.post_json("/auth/token", body))
  end
  next_index = thread_id * 7 -- threads start at different users
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

function response(status) bench.count_status(status) end

function done(summary, latency) bench.report(summary, latency) end
