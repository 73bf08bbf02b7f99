-- tests/bench/get.lua — wrk script for workload (a): the token-dir read every member sends twice
-- (GET /v2/keys/discovery/<tok>?quorum=false&recursive=false&sorted=false), with a member's headers.

function init(args)
   wrk.method = "GET"
   wrk.headers["User-Agent"] = "Go-http-client/1.1"
   wrk.headers["Accept-Encoding"] = "gzip"
end
