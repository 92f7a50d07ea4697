-- POST /api/v1/auth/introspect as a resource server's RFC 7662 library sends it: form-encoded
-- "token=<access token>" with HTTP Basic of an introspection client ($BENCH_AUTHORIZATION, the
-- whole header value, made by bench/run.py) and $BENCH_ACCESS_TOKEN as the token, every request
-- the same.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")
wrk.body = "token=" .. os.getenv("BENCH_ACCESS_TOKEN")

setup = common.setup
done = common.done
