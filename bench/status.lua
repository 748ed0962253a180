-- status.lua: GET /v1/locks/{name} over 200 names, of which bench/run holds
-- the first 20 (so about 10% of reads see a held lock). wrk args (after
-- --): a path to read instead, every time (e.g. a name with 100 holders and
-- 100 waiters).
local B = dofile((os.getenv("BENCH_DIR") or "bench") .. "/common.lua")
local path

function setup(thread) B.setup(thread) end
function init(args)
    B.seed()
    if args[1] and args[1] ~= "" then path = args[1] end
end

function request()
    return wrk.format("GET", path or ("/v1/locks/bench-s-" .. math.random(1, 200)))
end

function response(status, headers, body)
    if status == 200 then
        B.count("reads")
        if body:find('"held"%s*:%s*true') or body:find('"holder_count"%s*:%s*[1-9]') then
            B.count("held")
        end
    else
        B.count("status_" .. status)
    end
end

function done(summary, latency, requests)
    B.summary(summary, latency, "reads", false)
end
