-- wrk script: one fixed GET (the HTTP ceiling's route), counting statuses. Args: PATH.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

local req

function setup(thread) bench.setup(thread) end

function init(args)
  req = bench.get(args[1])
end

function request() return req end

function response(status) bench.count_status(status) end

function done(summary, latency) bench.report(summary, latency) end
