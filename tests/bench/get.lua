-- get.lua -- wrk script for tests/bench/http_bench.sh: the client half of
-- report.lua against nginx's static file, so that both servers are driven
-- by the same client work.
--
--   wrk -t N -c N -s get.lua URL/file
--
-- report.lua makes wrk call into Lua twice per request: request() formats
-- a body, response() hands every answer (status, headers, body) back to
-- Lua. At 64 threads on one client CPU that work, not the server, sets the
-- latency tail: nginx measured p99 1.9-2.1 ms with plain wrk and 4.5-5.5 ms
-- with this script, on the same run. This script does the same work
-- (formats the same body, counts non-2xx answers, prints "NON2XX n") but
-- sends a GET of the file.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   step = 0
   non2xx = 0
   wrk.method = "GET"
end

function request()
   local x = (step % 97) / 97.0
   local body = string.format('{"rank":%d,"step":%d,"losses":[%.6f,%.6f,%.6f]}',
                              0, step, 1.0 + x, 0.5 + x / 2, 2.0 - x)
   last_len = #body -- the work is done; a GET carries no body
   return wrk.format(nil, nil, nil, nil)
end

function response(status, headers, body)
   step = step + 1
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end

function done(summary, latency, requests)
   local total = 0
   for _, t in ipairs(threads) do
      total = total + t:get("non2xx")
   end
   io.write(string.format("NON2XX %d\n", total))
end
