-- wrk script for bench/ingest.py: POST /events, a distinct event on every request.
--
--   wrk -t1 -c64 -d10s -s bench/post_events.lua http://127.0.0.1:PORT -- <bearer> <run-tag>
--
-- Every request carries a unique eid ("tx-<run-tag>-<thread>-<counter>"), so every request is a
-- real insert on the XTRACKER side and never a duplicate, also across several wrk runs on the
-- same database (the run tag differs). When done, one machine-readable line is printed:
--   XTRACKER_BENCH {"requests":..,"non2xx":..,"connect":..,...,"p50_us":..,"p99_us":..}
-- No response() callback is defined on purpose: it would make wrk slower.

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads + 1)
   table.insert(threads, thread)
end

local counter = 0
local run_tag = "0"

function init(args)
   local bearer = args[1] or ""
   run_tag = args[2] or "0"
   wrk.method = "POST"
   wrk.path = "/events"
   wrk.headers["Content-Type"] = "application/json"
   if bearer ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. bearer
   end
end

function request()
   counter = counter + 1
   local body = string.format(
      '{"uid":"u%d","event":"deposit","value":"25.00","currency":"USD","eid":"tx-%s-%d-%d"}',
      counter % 10000, run_tag, thread_id, counter)
   return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'XTRACKER_BENCH {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,' ..
      '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
