-- Shared by the wrk scripts: thread ids, status counting, reading data files, JSON bodies, and the result line done() prints.
--
-- Each script starts with the same two lines to find this file next to it:
--   local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
--   package.path = dir .. "?.lua;" .. package.path
-- In a thread's Lua state the globals `thread_id` (1-based), `statuses` (status -> count) and
-- `counters` (name -> count) exist; done() gathers them from every thread.
local M = {}

local threads = {}

-- setup(): runs in wrk's main state once per thread, before that thread's init().
function M.setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
  thread:set("statuses", {})
  thread:set("counters", {})
end

function M.count_status(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function M.count(name)
  counters[name] = (counters[name] or 0) + 1
end

-- A request() that cycles through prepared requests, each thread starting at another one.
function M.round_robin(requests)
  local i = thread_id * 7
  return function()
    i = i % #requests + 1
    return requests[i]
  end
end

-- Every non-empty line of a file, in order.
function M.read_lines(path)
  local lines = {}
  local f = assert(io.open(path, "r"), "cannot open " .. path)
  for line in f:lines() do
    if line ~= "" then table.insert(lines, line) end
  end
  f:close()
  return lines
end

-- The lines whose position belongs to this thread: line i goes to thread ((i - 1) % n) + 1.
function M.my_slice(lines, nthreads)
  local mine = {}
  for i, line in ipairs(lines) do
    if (i - 1) % nthreads == thread_id - 1 then table.insert(mine, line) end
  end
  return mine
end

-- A JSON object of string fields; the values here never need escaping (tokens, generated names).
function M.json(fields)
  local parts = {}
  for _, kv in ipairs(fields) do
    table.insert(parts, string.format('"%s":"%s"', kv[1], kv[2]))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function M.post_json(path, body, headers)
  headers = headers or {}
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", path, headers, body)
end

function M.get(path, headers)
  return wrk.format("GET", path, headers or {})
end

-- A FIFO queue: push at the tail, pop at the head.
function M.new_queue()
  return {first = 1, last = 0, items = {}}
end

function M.push(q, value)
  q.last = q.last + 1
  q.items[q.last] = value
end

function M.pop(q)
  if q.first > q.last then return nil end
  local value = q.items[q.first]
  q.items[q.first] = nil
  q.first = q.first + 1
  return value
end

function M.size(q)
  return q.last - q.first + 1
end

local function encode_counts(counts)
  local parts = {}
  for k, v in pairs(counts) do
    table.insert(parts, string.format('"%s":%d', tostring(k), v))
  end
  table.sort(parts)
  return "{" .. table.concat(parts, ",") .. "}"
end

local function add_into(total, counts)
  for k, v in pairs(counts or {}) do
    total[k] = (total[k] or 0) + v
  end
end

-- done(): one line "BENCH_RESULT {json}" that bench/run reads. Latencies in microseconds.
function M.report(summary, latency)
  local all_statuses, all_counters = {}, {}
  for _, thread in ipairs(threads) do
    add_into(all_statuses, thread:get("statuses"))
    add_into(all_counters, thread:get("counters"))
  end
  local non2xx = 0
  for status, n in pairs(all_statuses) do
    if status < 200 or status > 299 then non2xx = non2xx + n end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"non2xx":%d,"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"statuses":%s,"counters":%s}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, non2xx, e.connect, e.read, e.write, e.timeout,
    encode_counts(all_statuses), encode_counts(all_counters)))
end

return M
