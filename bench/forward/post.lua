-- wrk script for bench/forward: the forward POST, and the hello-world baseline.
--
-- Both endpoints go through this one script on purpose: a wrk script with a
-- response() callback makes wrk parse every response into Lua, which costs the
-- load generator CPU on a machine it shares with the server. Giving the
-- baseline the same callback keeps that overhead equal on both sides of the ratio.
--
--   wrk -s post.lua http://127.0.0.1:PORT/healthz -- healthz <tag>
--   wrk -s post.lua http://127.0.0.1:PORT/c/demo/forward -- forward <tag> <cookie> <form> <friends> <stamps> <threads>
--
-- <form> is the url-encoded part of the body that is the same in every POST: the form's
-- hidden fields as the landing page rendered them (CSRF token, referral, ...).
-- <stamps> is a file of render stamps, one a line: the app spends a stamp on the forward it
-- sends, so each POST takes the next one (thread n of <threads> takes lines n, n + threads, ...).
-- A thread that runs out sends none, which the app refuses: the run fails rather than
-- measuring replays.
--
-- <tag> makes friend addresses unique across wrk runs against the same database;
-- the thread id and a per-thread counter make them unique within a run. A friend
-- already invited is skipped by the app without writing anything, so a repeated
-- address would measure a no-op.
--
-- done() prints one line, "BENCH-RESULT {json}", which bench/forward parses.

local threads = {}

function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   mode = args[1]
   tag = args[2]
   sent = 0
   ok = 0
   bad = 0
   bad_statuses = {}
   if mode == "forward" then
      expected = 303
      form = args[4]
      friends = tonumber(args[5])
      wrk.method = "POST"
      wrk.headers["Cookie"] = args[3]
      wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
      stamps = {}
      local every = tonumber(args[7])
      local line_number = 0
      for line in io.lines(args[6]) do
         if line_number % every == id - 1 then
            stamps[#stamps + 1] = line
         end
         line_number = line_number + 1
      end
   elseif mode == "healthz" then
      expected = 200
      -- Built once: the baseline request never changes.
      fixed_request = wrk.format("GET")
   else
      error("mode must be healthz or forward, not " .. tostring(mode))
   end
end

function request()
   sent = sent + 1
   if mode == "healthz" then
      return fixed_request
   end
   local prefix = "f-" .. tag .. "-" .. id .. "-" .. sent .. "-"
   local parts = { form, "sender_name=Bench", "rendered=" .. (stamps[sent] or "") }
   for i = 1, friends do
      parts[#parts + 1] = "friend=" .. prefix .. i .. "%40bench.example"
   end
   return wrk.format(nil, nil, nil, table.concat(parts, "&"))
end

function response(status, headers, body)
   if status == expected then
      ok = ok + 1
   else
      bad = bad + 1
      local key = tostring(status)
      bad_statuses[key] = (bad_statuses[key] or 0) + 1
   end
end

local function json_object(map)
   local items = {}
   for key, value in pairs(map) do
      items[#items + 1] = string.format("%q:%d", key, value)
   end
   return "{" .. table.concat(items, ",") .. "}"
end

function done(summary, latency, requests)
   local totals = { sent = 0, ok = 0, bad = 0 }
   local statuses = {}
   for _, thread in ipairs(threads) do
      totals.sent = totals.sent + thread:get("sent")
      totals.ok = totals.ok + thread:get("ok")
      totals.bad = totals.bad + thread:get("bad")
      for key, count in pairs(thread:get("bad_statuses")) do
         statuses[key] = (statuses[key] or 0) + count
      end
   end
   local errors = summary.errors
   -- Latencies are in microseconds, durations too.
   io.write(string.format(
      'BENCH-RESULT {"duration_us":%d,"requests":%d,"sent":%d,"ok":%d,"bad":%d,"bad_statuses":%s,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d}}\n',
      summary.duration, summary.requests, totals.sent, totals.ok, totals.bad, json_object(statuses),
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
