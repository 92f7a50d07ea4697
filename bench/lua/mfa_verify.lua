-- POST /api/v1/auth/mfa/verify: each request completes one pending sign-in with its TOTP code.
-- $BENCH_MFA_FILE: one "agm_token code" per line (bench/seed.py: mfa_challenges), one user
-- each, dealt round robin over the wrk threads. Each line is used once; should they run out, an
-- invalid token is sent and counted as a non-2xx response, never hidden.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local bodies = {}
local next_body = 1

function init(args)
  local threads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
  local me = tid or 0
  local index = 0
  for line in io.lines(os.getenv("BENCH_MFA_FILE")) do
    local token, code = string.match(line, "^(%S+) (%S+)$")
    if token then
      if index % threads == me then
        bodies[#bodies + 1] = "{\"mfa_token\": " .. common.quote(token)
          .. ", \"method\": \"totp\", \"code\": " .. common.quote(code) .. "}"
      end
      index = index + 1
    end
  end
end

function request()
  local body = bodies[next_body]
    or "{\"mfa_token\": \"agm_exhausted\", \"method\": \"totp\", \"code\": \"000000\"}"
  next_body = next_body + 1
  return wrk.format(nil, nil, nil, body)
end

setup = common.setup
done = common.done
