-- wrk script for bench/landing: a GET of a landing page, with or without a referral cookie.
--
--   wrk -s visit.lua http://127.0.0.1:PORT/healthz -- healthz <tag>
--   wrk -s visit.lua http://127.0.0.1:PORT/c/demo -- visit <tag> [<cookie>]
--
-- The counting (response) and the report (done: one "BENCH-RESULT {json}" line) are
-- bench/forward's post.lua, loaded here: the baseline and the page pay for the same callbacks.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "../forward/post.lua")

local forward_init = init

function init(args)
   -- A person's browser: a request without a user agent is taken for a machine (engine/visitors.py),
   -- and its view is not counted. The baseline sends the same header.
   wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
   if args[1] ~= "visit" then
      return forward_init(args)
   end
   mode = "visit"
   tag = args[2]
   sent = 0
   ok = 0
   bad = 0
   bad_statuses = {}
   expected = 200
   if args[3] and args[3] ~= "" then
      wrk.headers["Cookie"] = args[3]
   end
   -- Built once: every visit is the same request.
   fixed_request = wrk.format("GET")
end

function request()
   sent = sent + 1
   return fixed_request
end
