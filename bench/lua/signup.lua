-- wrk script: sign-up (POST /auth/register) with a new username every request. Args: PREFIX PASSWORD.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

local prefix, password
local sent = 0

function setup(thread) bench.setup(thread) end

function init(args)
  prefix, password = args[1], args[2]
end

-- Unique across threads and runs: the runner's prefix, the thread id and a counter.
function request()
  sent = sent + 1
  local username = string.format("%s%dn%d", prefix, thread_id, sent)
  local body = bench.json({{"username", username}, {"password", password}})
  return bench.post_json("/auth/register", body)
end

function response(status) bench.count_status(status) end

function done(summary, latency) bench.report(summary, latency) end
