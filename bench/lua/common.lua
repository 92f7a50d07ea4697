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

-- A FIFO of refresh tokens for one thread, filled with this thread's share of the lines of
-- $BENCH_TOKENS_FILE (dealt round robin over $BENCH_WRK_THREADS threads). Used by the refresh
-- scenarios, whose answers put each successor token back.
function common.token_queue()
  local queue, head, tail = {}, 1, 0
  local q = {}
  function q.push(token)
    tail = tail + 1
    queue[tail] = token
  end
  function q.pop()
    if head > tail then
      return nil
    end
    local token = queue[head]
    queue[head] = nil
    head = head + 1
    return token
  end
  function q.load()
    for _, line in ipairs(common.my_lines(os.getenv("BENCH_TOKENS_FILE"))) do
      q.push(line)
    end
  end
  return q
end

-- This thread's share of the non-empty lines of a file: dealt round robin over
-- $BENCH_WRK_THREADS threads, so no line is used by two threads.
function common.my_lines(path)
  local threads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
  local me = tid or 0
  local mine, index = {}, 0
  for line in io.lines(path) do
    if line ~= "" then
      if index % threads == me then
        mine[#mine + 1] = line
      end
      index = index + 1
    end
  end
  return mine
end

return common
