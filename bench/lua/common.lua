-- Shared by every bench script: thread numbering and a machine-readable summary.
-- Loaded with dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua"); returns a table.
local common = {}

local thread_counter = 0

-- setup() runs in the main Lua state once per thread, before the thread's init().
function common.setup(thread)
  thread:set("tid", thread_counter)
  thread_counter = thread_counter + 1
end

-- One line "BENCHJSON {...}" that bench/run.py parses (latencies in microseconds).
function common.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean
  ))
end

-- A JSON string literal for plain ASCII values (emails, tokens, passwords we generate).
function common.quote(value)
  return '"' .. value:gsub('[%c"\\]', "") .. '"'
end

return common
