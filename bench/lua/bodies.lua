-- POST wrk.path with one JSON body per line of $BENCH_BODIES_FILE, each sent once (dealt round
-- robin over the wrk threads): requests that can succeed only once, such as a second factor's
-- code (bench/seed.py: mfa_challenges) or a passkey assertion (bench/seed.py:
-- passkey_assertions). Should the lines run out, "{}" is sent and the answer is counted as a
-- non-2xx response, never hidden.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local bodies = {}
local next_body = 1

function init(args)
  bodies = common.my_lines(os.getenv("BENCH_BODIES_FILE"))
end

function request()
  local body = bodies[next_body] or "{}"
  next_body = next_body + 1
  return wrk.format(nil, nil, nil, body)
end

setup = common.setup
done = common.done
