-- wrk script for durability_bench.sh: every wrk thread (one connection each)
-- posts the reports of its own job ("<prefix>-<thread>", world_size 1,
-- created beforehand), steps 0, 1, 2, ... so no report conflicts with
-- another. Prints "non2xx N" (answers outside 200-299) at the end.
--
--   wrk -t64 -c64 -d10s -s durability_report.lua http://HOST:PORT -- PREFIX

local counter = 0
local threads = {}

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    step = 0
    bad = 0
    local prefix = args[1] or "bench"
    path = "/v1/jobs/" .. prefix .. "-" .. id .. "/reports"
    wrk.headers["Content-Type"] = "application/json"
end

function request()
    local body = string.format('{"rank":0,"step":%d,"losses":[0.%03d,1.%03d,2.5,0.75]}',
                               step, step % 997, step % 991)
    step = step + 1
    return wrk.format("POST", path, nil, body)
end

function response(status, headers, body)
    if status < 200 or status > 299 then
        bad = bad + 1
    end
end

function done(summary, latency, requests)
    local total = 0
    for _, t in ipairs(threads) do
        total = total + (t:get("bad") or 0)
    end
    io.write(string.format("non2xx %d\n", total))
end
