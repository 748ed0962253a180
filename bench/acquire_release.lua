-- acquire_release.lua: uncontended acquire + release on random names.
-- One operation = one acquire (200) followed by the release of its lease.
-- wrk args (after --): the collection ("locks", the default, or
-- "semaphores") and members added to every acquire body (e.g.
-- '"mode":"shared"' or '"limit":64').
local B = dofile((os.getenv("BENCH_DIR") or "bench") .. "/common.lua")
local H = B.json_headers
local kind, extra = "locks", ""

function setup(thread) B.setup(thread) end
function init(args)
    B.seed()
    if args[1] and args[1] ~= "" then kind = args[1] end
    if args[2] and args[2] ~= "" then extra = "," .. args[2] end
end

function request()
    local lease = B.pop()
    if lease then
        return wrk.format("POST", "/v1/" .. kind .. "/" .. lease[1] .. "/release", H,
                          '{"token":"' .. lease[2] .. '"}')
    end
    local name = string.format("bench-u-%d-%d", thread_id or 0, math.random(1, 2147483647))
    return wrk.format("POST", "/v1/" .. kind .. "/" .. name .. "/acquire", H,
                      '{"ttl_ms":30000,"owner":"' .. B.now_us() .. '"' .. extra .. '}')
end

function response(status, headers, body)
    B.lock_response(status, body, "acquired", function(token, body) return { body:match('"name"%s*:%s*"([^"]+)"'), token } end)
end

function done(summary, latency, requests)
    B.summary(summary, latency, "released", true)
end
