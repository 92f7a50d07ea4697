-- GET wrk.path, with "Authorization: Bearer $BENCH_ACCESS_TOKEN" when that variable is set.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local token = os.getenv("BENCH_ACCESS_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

setup = common.setup
done = common.done
