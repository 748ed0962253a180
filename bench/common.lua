-- common.lua: helpers shared by the wrk scripts in bench/ (loaded with dofile).
--
-- wrk runs one Lua state per thread and gives response() no connection
-- identity, so the scripts pair requests through a per-thread queue of
-- granted leases: a grant pushes (name, token), and the next request() of any
-- connection of that thread pops it and releases it. Any connection may
-- release any lease: the token is the capability.
--
-- Time from request to grant is measured exactly by sending the send time
-- (CLOCK_MONOTONIC, microseconds) as the acquire's "owner" label, which the
-- service echoes in its 200 answer. Latencies go into a log histogram with 1%
-- buckets so threads can hand them to done() cheaply.
local ffi = require("ffi")
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]])
local ts = ffi.new("bench_timespec")
local LOG_STEP = math.log(1.01)

local M = {}

function M.now_us()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

-- Per-thread state; wrk copies these globals out with thread:get().
counts = {}
hist = {}

function M.count(k, n)
    counts[k] = (counts[k] or 0) + (n or 1)
end

function M.record(us)
    if us < 1 then us = 1 end
    local b = math.floor(math.log(us) / LOG_STEP)
    hist[b] = (hist[b] or 0) + 1
end

-- Queue of leases to release (FIFO).
local q, qh, qt = {}, 1, 0
function M.push(item) qt = qt + 1; q[qt] = item end
function M.pop()
    if qh > qt then return nil end
    local item = q[qh]; q[qh] = nil; qh = qh + 1
    return item
end

-- BENCH_ADDRS ("host:port host:port ..."; empty or unset: the URL's own):
-- thread i connects to the i-th address, round robin, so that one wrk
-- spreads its connections over several service instances (wrk gives every
-- connection of a thread the thread's address).
local threads = {}
local addrs
function M.setup(thread)
    if addrs == nil then
        addrs = {}
        for hostport in (os.getenv("BENCH_ADDRS") or ""):gmatch("%S+") do
            local host, port = hostport:match("^(.+):(%d+)$")
            local found = host and wrk.lookup(host, port)
            if not found or #found == 0 then error("BENCH_ADDRS: cannot resolve " .. hostport) end
            table.insert(addrs, found[1])
        end
    end
    if #addrs > 0 then thread.addr = addrs[#threads % #addrs + 1] end
    thread:set("thread_id", #threads + 1)
    table.insert(threads, thread)
end

function M.seed()
    math.randomseed(M.now_us() + 7919 * (thread_id or 0))
end

-- Merges the threads' counters and histograms; returns counts, percentile fn.
function M.collect()
    local c, h, total = {}, {}, 0
    for _, t in ipairs(threads) do
        for k, v in pairs(t:get("counts") or {}) do c[k] = (c[k] or 0) + v end
        for b, n in pairs(t:get("hist") or {}) do
            h[b] = (h[b] or 0) + n
            total = total + n
        end
    end
    local keys = {}
    for b in pairs(h) do table.insert(keys, b) end
    table.sort(keys)
    local function pct(p)
        if total == 0 then return 0 end
        local want, seen = total * p / 100, 0
        for _, b in ipairs(keys) do
            seen = seen + h[b]
            if seen >= want then return math.exp((b + 0.5) * LOG_STEP) end
        end
        return 0
    end
    return c, pct, total
end

-- One "BENCH key=value" line per result, parsed by bench/run.
function M.emit(k, v)
    if type(v) == "number" then
        io.write(string.format("BENCH %s=%.3f\n", k, v))
    else
        io.write(string.format("BENCH %s=%s\n", k, tostring(v)))
    end
end

-- Standard summary: wrk's own request stats plus our counters.
function M.summary(summary, latency, opkey, grant_latency)
    local secs = summary.duration / 1e6
    local c, pct, n = M.collect()
    local errs = summary.errors
    M.emit("duration_s", secs)
    M.emit("requests", summary.requests)
    M.emit("rps", summary.requests / secs)
    M.emit("ops", c[opkey] or 0)
    M.emit("ops_per_s", (c[opkey] or 0) / secs)
    M.emit("p50_ms", latency:percentile(50) / 1000)
    M.emit("p99_ms", latency:percentile(99) / 1000)
    M.emit("p999_ms", latency:percentile(99.9) / 1000)
    M.emit("socket_errors", errs.connect + errs.read + errs.write + errs.timeout)
    M.emit("non2xx", errs.status)
    if grant_latency and n > 0 then
        M.emit("grant_p50_ms", pct(50) / 1000)
        M.emit("grant_p99_ms", pct(99) / 1000)
    end
    for k, v in pairs(c) do M.emit("count_" .. k, v) end
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function M.base64(s)
    return ((s:gsub(".", function(x)
        local r, b = "", x:byte()
        for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
        return r
    end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
        if #x < 6 then return "" end
        local c = 0
        for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
        return B64:sub(c + 1, c + 1)
    end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

M.json_headers = { ["Content-Type"] = "application/json" }

-- Counts a lock API answer: a grant (its send time comes back in "owner",
-- so the request-to-grant latency is recorded) is counted as `granted` and
-- keep(token, body) is queued for release; a release counts as "released".
function M.lock_response(status, body, granted, keep)
    if status ~= 200 then
        M.count("status_" .. status)
        return
    end
    local token = body:match('"token"%s*:%s*"(%x+)"')
    if token then
        M.record(M.now_us() - tonumber(body:match('"owner"%s*:%s*"(%d+)"') or 0))
        M.push(keep(token, body))
        M.count(granted)
    elseif body:find('"released"%s*:%s*true') then
        M.count("released")
    else
        M.count("other_200")
    end
end

return M
