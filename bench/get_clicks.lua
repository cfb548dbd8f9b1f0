-- wrk script for bench/clicks.py: GET /r/<slug> or /l/<slug> as a phone browser, every request
-- a new visitor.
--
--   wrk -t1 -c64 -d10s -s bench/get_clicks.lua http://127.0.0.1:PORT -- <path> <user-agent>
--
-- wrk keeps no cookies, so no request carries the per-link visit cookie or _fbp: every request
-- is a first visit and records a click on the XTRACKER side. The User-Agent is a browser's (an
-- iPhone Safari by default) so that it is not taken for a link-preview crawler. The request is
-- the same every time, so no request() callback is needed (wrk then sends a prebuilt request,
-- its fastest mode); no response() callback either. When done, one machine-readable line:
--   XTRACKER_BENCH {"requests":..,"non2xx":..,"connect":..,...,"p50_us":..,"p99_us":..}
-- ("non2xx" is wrk's "non-2xx or 3xx" counter: a 302 is a success.)

local IPHONE_SAFARI = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) " ..
   "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"

function init(args)
   wrk.method = "GET"
   wrk.path = args[1] or "/r/hot"
   wrk.headers["User-Agent"] = (args[2] ~= nil and args[2] ~= "") and args[2] or IPHONE_SAFARI
   wrk.headers["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
   wrk.headers["Accept-Language"] = "en-US,en;q=0.9"
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'XTRACKER_BENCH {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,' ..
      '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
