-- report.lua -- wrk script for tests/bench/http_bench.sh: POST reports to
-- lossweightd so that no request conflicts with another.
--
--   wrk -t N -c N -s report.lua URL -- PREFIX jobs   thread k is job PREFIXk, rank 0
--   wrk -t N -c N -s report.lua URL -- JOB ranks     thread k is rank k of job JOB
--
-- With -t equal to -c every thread has one keep-alive connection, so its
-- requests go one at a time and its step increases by one per answer (not
-- per request(): wrk calls thread 1's request() once more, to inspect it,
-- and a request re-sent after a reconnect must be the same retry): in
-- "jobs" mode each request decides a step of the thread's own job (world_size
-- 1); in "ranks" mode all threads post the same step sequence to one barrier
-- job, and a round is decided when all ranks posted it. Losses vary a little
-- per step so the method (uw) sees new numbers. Every thread counts the
-- answers that are not 2xx; done() prints the total as "NON2XX n" (and the
-- first few statuses), which must be 0.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   local name, mode = args[1], args[2]
   if mode == "ranks" then
      job, rank = name, id
   else
      job, rank = name .. id, 0
   end
   path = "/v1/jobs/" .. job .. "/reports"
   step = 0
   non2xx = 0
   statuses = ""
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   local x = (step % 97) / 97.0
   local body = string.format('{"rank":%d,"step":%d,"losses":[%.6f,%.6f,%.6f]}',
                              rank, step, 1.0 + x, 0.5 + x / 2, 2.0 - x)
   return wrk.format(nil, path, nil, body)
end

function response(status, headers, body)
   step = step + 1
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if #statuses < 200 then
         statuses = statuses .. " " .. status .. ":" .. string.sub(body, 1, 120)
      end
   end
end

function done(summary, latency, requests)
   local total, seen = 0, ""
   for _, t in ipairs(threads) do
      total = total + t:get("non2xx")
      local s = t:get("statuses")
      if s and #s > 0 and #seen < 400 then seen = seen .. s end
   end
   io.write(string.format("NON2XX %d%s\n", total, seen))
end
