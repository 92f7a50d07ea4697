-- POST /api/v1/auth/login with the fixed credentials of a few seeded users, round robin.
-- $BENCH_USERS: comma-separated emails; $BENCH_PASSWORD: their common password.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local bodies = {}
local password = os.getenv("BENCH_PASSWORD")
for email in string.gmatch(os.getenv("BENCH_USERS") or "", "[^,]+") do
  bodies[#bodies + 1] = "{\"email\": " .. common.quote(email)
    .. ", \"password\": " .. common.quote(password) .. "}"
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local counter = 0

function init(args)
  counter = tid or 0
end

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])
end

setup = common.setup
done = common.done
