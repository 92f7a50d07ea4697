-- POST /api/v1/auth/refresh by cookie, as a browser in cookie mode sends it: no token in the
-- body, the refresh token in the `authgate_refresh` cookie and the service's own Origin (the CSRF
-- rule). Each 200 sets the successor in a new cookie, which goes back in the queue: the chains
-- never spend a token twice (see refresh.lua, which this mirrors for body tokens).
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "POST"
local origin = os.getenv("BENCH_ORIGIN")

local tokens = common.token_queue()

function init(args)
  tokens.load()
end

function request()
  local token = tokens.pop() or "agr_exhausted"
  -- wrk.format uses these headers instead of wrk.headers, not in addition to them.
  local headers = {
    ["Content-Type"] = "application/json",
    ["Origin"] = origin,
    ["Cookie"] = "authgate_refresh=" .. token,
  }
  return wrk.format(nil, nil, headers, "{}")
end

function response(status, headers, body)
  if status == 200 then
    for name, value in pairs(headers) do
      if string.lower(name) == "set-cookie" then
        local token = string.match(value, "authgate_refresh=([^;]+)")
        if token then
          tokens.push(token)
        end
      end
    end
  end
end

setup = common.setup
done = common.done
