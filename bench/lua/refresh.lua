-- POST /api/v1/auth/refresh, each request spending a fresh, unspent refresh token.
--
-- Every thread starts with its share of the tokens in $BENCH_TOKENS_FILE (one per line, one
-- login each, dealt round robin over $BENCH_WRK_THREADS threads) and keeps them in a queue.
-- wrk calls response() before it asks request() for that connection's next request, so each
-- 200 puts its successor token back in the queue: the chains never spend a token twice. A
-- refused refresh (or a lost response) ends its chain; should the queue ever run dry, an
-- invalid token is sent and counted as a non-2xx response, never hidden.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local tokens = common.token_queue()

function init(args)
  tokens.load()
end

function request()
  local token = tokens.pop() or "agr_exhausted"
  return wrk.format(nil, nil, nil, "{\"refresh_token\": " .. common.quote(token) .. "}")
end

function response(status, headers, body)
  if status == 200 then
    local token = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if token then
      tokens.push(token)
    end
  end
end

setup = common.setup
done = common.done
