-- wrk script: sign-in (POST /auth/token) as the prepared users, round-robin. Args: USERS_FILE PASSWORD.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

local requests = {}

function setup(thread) bench.setup(thread) end

function init(args)
  for _, username in ipairs(bench.read_lines(args[1])) do
    local body = bench.json({{"username", username}, {"password", args[2]}})
    table.insert(requests, bench.post_json("/auth/token", body))
  end
  request = bench.round_robin(requests)
end

function response(status) bench.count_status(status) end

function done(summary, latency) bench.report(summary, latency) end
