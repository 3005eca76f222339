-- wrk script: refresh with rotation; every request spends an unused refresh token and the answer's new one goes back in the queue. Args: REFRESH_FILE THREADS.
--
-- Each thread owns its slice of the prepared tokens, so no token is ever sent twice: a token
-- leaves the queue when sent and only the token a 200 answers with comes back. wrk keeps one
-- request in flight per connection, so a thread needs more tokens than its connections; the
-- runner prepares at least twice the connection count. An empty queue (tokens lost to errors)
-- sends an empty token, which the server refuses, so it shows as non-2xx and as "starved".
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

local queue

function setup(thread) bench.setup(thread) end

function init(args)
  queue = bench.new_queue()
  for _, token in ipairs(bench.my_slice(bench.read_lines(args[1]), tonumber(args[2]))) do
    bench.push(queue, token)
  end
end

function request()
  local token = bench.pop(queue)
  if not token then
    bench.count("starved")
    token = ""
  end
  return bench.post_json("/auth/token/refresh", bench.json({{"refresh", token}}))
end

function response(status, headers, body)
  bench.count_status(status)
  local token = body:match('"refresh"%s*:%s*"([^"]+)"')
  if token then bench.push(queue, token) end
end

function done(summary, latency) bench.report(summary, latency) end
