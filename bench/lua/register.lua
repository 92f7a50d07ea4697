-- POST /api/v1/auth/register with a unique email per request (thread id, counter, random).
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local password = os.getenv("BENCH_PASSWORD")
local run = os.getenv("BENCH_RUN_ID") or tostring(os.time())

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local counter = 0
local thread_id = 0

function init(args)
  thread_id = tid or 0
  math.randomseed(os.time() * 1000 + thread_id)
end

function request()
  counter = counter + 1
  local email = string.format(
    "reg-%s-%d-%d-%06d@example.com", run, thread_id, counter, math.random(0, 999999)
  )
  local body = "{\"email\": " .. common.quote(email) .. ", \"password\": "
    .. common.quote(password) .. ", \"name\": \"Bench User\"}"
  return wrk.format(nil, nil, nil, body)
end

setup = common.setup
done = common.done
