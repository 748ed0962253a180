-- webdis_pairs.lua: acquire + release on random lock names through webdis's
-- URL interface (GET /EVALSHA/<sha>/<numkeys>/<keys and args>), the HTTP
-- gateway baseline of issue 9. One operation = one acquire answered as
-- granted, then the release of that name.
-- Args: the acquire and release URL paths, "@NAME@" standing for the lock
-- name (bench/layout.py writes them: the service's own scripts, or the
-- minimal ones), and a tag for this run's names ([a-z0-9]).
--
-- wrk gives response() no connection identity, so each request names its
-- lock in webdis's JSONP callback (?jsonp=a_<name> / r_<name>): the answer
-- comes back as a_<name>({"EVALSHA":...}) and says which lock it is about.
-- webdis may hand a new connection an answer to a request of a connection
-- that closed before (at the end of an earlier run, on the same fd): an
-- answer naming a lock without this run's tag is counted as "stale".
-- An answer is "done" like in bench/tools/redis_pairs.c: an integer > 0, an
-- array led by one, a status or a string; [false,"ERR ..."] is an error.
local B = dofile((os.getenv("BENCH_DIR") or "bench") .. "/common.lua")
local acquire_path, release_path, prefix

function setup(thread) B.setup(thread) end
function init(args)
    B.seed()
    acquire_path, release_path = args[1], args[2]
    prefix = "bw" .. (args[3] or "") .. "x"
end

function request()
    local name = B.pop()
    if name then
        return wrk.format("GET", release_path:gsub("@NAME@", name) .. "?jsonp=r_" .. name)
    end
    name = string.format("%s%d_%d", prefix, thread_id or 0, math.random(1, 2147483647))
    return wrk.format("GET", acquire_path:gsub("@NAME@", name) .. "?jsonp=a_" .. name)
end

-- "done" (true), "no" (false) or "error" for a webdis JSON value.
local function verdict(v)
    if v:match("^%[false,") then return "error" end
    if v:match("^%[true,") or v:match('^%[?"') then return true end
    local n = tonumber(v:match("^%[?(%-?%d+)"))
    return n ~= nil and n > 0
end

function response(status, headers, body)
    if status ~= 200 then
        B.count("status_" .. status)
        return
    end
    local op, name, value = body:match('^([ar])_([%w_]+)%({"EVALSHA":(.*)}%);?%s*$')
    if not op then
        B.count("unparsed")
        return
    end
    if name:sub(1, #prefix) ~= prefix then
        B.count("stale")
        return
    end
    local v = verdict(value)
    if v == "error" then
        B.count("errors")
    elseif op == "a" then
        if v then
            B.count("acquired")
            B.push(name)
        else
            B.count("refused")
        end
    else
        B.count(v and "released" or "not_released")
    end
end

function done(summary, latency, requests)
    B.summary(summary, latency, "released", false)
end
