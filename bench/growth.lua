-- wrk script for bench/growth.py: POST /bind of click uids, or a GET with the space's bearer.
--
--   wrk -t1 -c64 -d10s -s bench/growth.lua URL -- bind <bearer> <uid file> <offset> <threads>
--   wrk -t1 -c8 -d10s -s bench/growth.lua URL -- get <bearer> <path>
--
-- bind: each request binds the next uid of the file (one a line: clicks nobody has bound yet),
-- from line <offset> + 1 on (a run goes on where the runs before it stopped), to a Telegram id
-- of its own, as a bot does when a user arrives through /start. Past the end
-- of the file, uids of no click are bound instead (the same write; the answer says
-- "matched": false): bench/growth.py makes the file long enough and says when it was not.
-- setup() and done() (the XTRACKER_BENCH line) are bench/post_events.lua's.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "post_events.lua")

local mode = "get"
local uids = {}
local offset = 0
local stride = 1
local sent = 0

function init(args)
   mode = args[1] or "get"
   wrk.headers["Authorization"] = "Bearer " .. (args[2] or "")
   if mode == "bind" then
      wrk.method = "POST"
      wrk.path = "/bind"
      wrk.headers["Content-Type"] = "application/json"
      for line in io.lines(args[3]) do
         uids[#uids + 1] = line
      end
      offset = tonumber(args[4]) or 0
      stride = tonumber(args[5]) or 1
   else
      wrk.method = "GET"
      wrk.path = args[3] or "/"
   end
end

function request()
   if mode ~= "bind" then
      return wrk.format()
   end
   local n = offset + sent * stride + thread_id  -- the threads take turns through the file
   sent = sent + 1
   local uid = uids[n] or string.format("nx%d", n)
   local body = string.format('{"uid":"%s","tg_id":%d}', uid, 6000000000 + n)
   return wrk.format(nil, nil, nil, body)
end
