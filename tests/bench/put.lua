-- tests/bench/put.lua — wrk script for workload (b): member registrations, as an etcd member sends them.
-- PUT /v2/keys/discovery/<prefix>-<t>/<unique id>?prevExist=false, spread over BENCH_TOKENS tokens;
-- ids are unique per request (thread number + per-thread counter), so every PUT is a create (201).

local ntok = tonumber(os.getenv("BENCH_TOKENS") or "10000")
local prefix = os.getenv("BENCH_TOKEN_PREFIX") or "bench"
local nthreads = 0

-- Runs in the main Lua state once per wrk thread: give each thread its number.
function setup(thread)
   thread:set("tid", nthreads)
   nthreads = nthreads + 1
end

function init(args)
   counter = 0
   wrk.method = "PUT"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   wrk.body = "value=name%3Dhttp%3A%2F%2F127.0.0.1%3A2380"
end

function request()
   counter = counter + 1
   -- Each thread walks all tokens, starting at a different place, one registration per token
   -- per lap: registrations per token = total requests / BENCH_TOKENS.
   local t = (counter + tid * 4999) % ntok
   local path = string.format("/v2/keys/discovery/%s-%d/m%d-%d?prevExist=false", prefix, t, tid, counter)
   return wrk.format(nil, path)
end
