-- wrk script for `make soak`: mixed traffic on one Latch — token checks, refresh with rotation, sign-in and logout.
-- Args: ACCESS_FILE REFRESH_FILE EMAILS_FILE PASSWORD THREADS
--
-- Tokens are kept apart so that no request can fail by design: refresh tokens rotate in a
-- queue (as in refresh.lua); token checks use the access tokens those rotations answer, so
-- they stay fresh however short their lifetime, and their sessions are never logged out;
-- logout spends only the access tokens that sign-in answers (picflux, "access_token"), whose
-- sessions nothing else uses.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("bench")

-- One cycle of operations; a sign-in costs an argon2id hash. No sign-ups: each adds a user
-- for good, and the soak is there to show that everything that expires goes (`make bench`
-- measures sign-ups).
local SCHEDULE = {"getuser", "refresh", "me", "verify", "getuser", "signin", "me", "refresh",
                  "getuser", "logout", "verify", "signin", "getuser", "refresh", "me", "logout"}
local RING_SIZE = 64      -- access tokens kept for checks
local MAX_LOGOUTS = 1000  -- signed-in sessions waiting to be logged out

local ring, ring_read, ring_write = {}, 0, 0
local rotation, logouts
local emails, email_next = {}, 0
local password
local slot = 0

local function ring_put(token)
  ring_write = ring_write % RING_SIZE + 1
  ring[ring_write] = token
end

local function ring_get()
  ring_read = ring_read % #ring + 1
  return ring[ring_read]
end

local function bearer(token) return {Authorization = "Bearer " .. token} end

local BUILD = {
  getuser = function() return bench.get("/auth/getuser", bearer(ring_get())) end,
  me = function() return bench.get("/api/v1/authorized/me", bearer(ring_get())) end,
  verify = function()
    return bench.post_json("/auth/token/verify", bench.json({{"token", ring_get()}}))
  end,
  refresh = function()
    return bench.post_json("/auth/token/refresh", bench.json({{"refresh", bench.pop(rotation)}}))
  end,
  signin = function()
    email_next = email_next % #emails + 1
    local body = bench.json({{"email", emails[email_next]}, {"password", password}})
    return bench.post_json("/api/auth/signin", body)
  end,
  logout = function() return bench.post_json("/api/v1/logout", "{}", bearer(bench.pop(logouts))) end,
}

function setup(thread) bench.setup(thread) end

function init(args)
  local nthreads = tonumber(args[5])
  for _, token in ipairs(bench.my_slice(bench.read_lines(args[1]), nthreads)) do
    ring_put(token)
  end
  rotation, logouts = bench.new_queue(), bench.new_queue()
  for _, token in ipairs(bench.my_slice(bench.read_lines(args[2]), nthreads)) do
    bench.push(rotation, token)
  end
  emails = bench.my_slice(bench.read_lines(args[3]), nthreads)
  password = args[4]
end

-- The next operation of the cycle, or a stand-in when its tokens have run out.
local function next_operation()
  slot = slot % #SCHEDULE + 1
  local op = SCHEDULE[slot]
  if op == "logout" and bench.size(logouts) == 0 then return "signin" end
  if op == "refresh" and bench.size(rotation) == 0 then
    bench.count("starved")
    return "getuser"
  end
  return op
end

function request()
  local op = next_operation()
  bench.count(op)
  return BUILD[op]()
end

function response(status, headers, body)
  bench.count_status(status)
  local refresh = body:match('"refresh"%s*:%s*"([^"]+)"')
  if refresh then
    bench.push(rotation, refresh)
    local access = body:match('"access"%s*:%s*"([^"]+)"')
    if access then ring_put(access) end
    return
  end
  local signed_in = body:match('"access_token"%s*:%s*"([^"]+)"')
  if signed_in then
    bench.push(logouts, signed_in)
    if bench.size(logouts) > MAX_LOGOUTS then bench.pop(logouts) end
  end
end

function done(summary, latency) bench.report(summary, latency) end
