-- contend.lua: every connection acquires the same lock with a wait, holds it
-- for no time and releases it. One operation = one grant. The acquire's owner
-- label carries its send time, so the grant answer gives the exact time from
-- request to grant (grant_p50_ms / grant_p99_ms).
-- Args: lock name (default bench-hot), wait_ms (default 5000, as issue 9's
-- contention target).
local B = dofile((os.getenv("BENCH_DIR") or "bench") .. "/common.lua")
local H = B.json_headers
local name = "bench-hot"
local acquire_body

function setup(thread) B.setup(thread) end
function init(args)
    B.seed()
    if args[1] then name = args[1] end
    acquire_body = '{"ttl_ms":10000,"wait_ms":' .. (tonumber(args[2]) or 5000) .. ',"owner":"'
end

function request()
    local lease = B.pop()
    if lease then
        return wrk.format("POST", "/v1/locks/" .. name .. "/release", H,
                          '{"token":"' .. lease .. '"}')
    end
    return wrk.format("POST", "/v1/locks/" .. name .. "/acquire", H,
                      acquire_body .. B.now_us() .. '"}')
end

function response(status, headers, body)
    B.lock_response(status, body, "granted", function(token) return token end)
end

function done(summary, latency, requests)
    B.summary(summary, latency, "granted", true)
end
