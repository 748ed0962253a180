-- etcd_lock.lua: etcd v3 lock + unlock through the JSON gateway, on random
-- names. Leases are granted by bench/run before the run (one per connection)
-- and passed as arguments; requests take them round-robin.
-- One operation = one /v3/lock/lock answered with a key, then its unlock.
local B = dofile((os.getenv("BENCH_DIR") or "bench") .. "/common.lua")
local H = B.json_headers
local leases, next_lease = {}, 0

function setup(thread) B.setup(thread) end
function init(args)
    B.seed()
    for i = 1, #args do leases[#leases + 1] = args[i] end
end

function request()
    local key = B.pop()
    if key then
        return wrk.format("POST", "/v3/lock/unlock", H, '{"key":"' .. key .. '"}')
    end
    next_lease = next_lease % #leases + 1
    local name = B.base64(string.format("bench/e-%d-%d", thread_id or 0,
                                        math.random(1, 2147483647)))
    return wrk.format("POST", "/v3/lock/lock", H,
                      '{"name":"' .. name .. '","lease":"' .. leases[next_lease] .. '"}')
end

function response(status, headers, body)
    if status == 200 then
        local key = body:match('"key"%s*:%s*"([^"]+)"')
        if key then
            B.push(key)
            B.count("locked")
        else
            B.count("unlocked")
        end
    else
        B.count("status_" .. status)
    end
end

function done(summary, latency, requests)
    B.summary(summary, latency, "unlocked", false)
end
