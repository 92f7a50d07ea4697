-- POST wrk.path with one JSON body per line of $BENCH_BODIES_FILE, each sent once (dealt round
-- robin over the wrk threads): requests that can only succeed once, such as passkey assertions
-- (bench/seed.py: passkey_assertions). Should the lines run out, "{}" is sent and the answer is
-- counted as a non-2xx response, never hidden.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local bodies = {}
local next_body = 1

function init(args)
  local threads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
  local me = tid or 0
  local index = 0
  for line in io.lines(os.getenv("BENCH_BODIES_FILE")) do
    if line ~= "" then
      if index % threads == me then
        bodies[#bodies + 1] = line
      end
      index = index + 1
    end
  end
end

function request()
  local body = bodies[next_body] or "{}"
  next_body = next_body + 1
  return wrk.format(nil, nil, nil, body)
end

setup = common.setup
done = common.done
