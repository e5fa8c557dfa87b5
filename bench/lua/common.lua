-- Shared by every scenario: per-thread counters, answer checks, and a JSON summary.
-- Arguments (after `--`): lo hi stop_at auth tag
--   lo, hi   the EUID range requests spread over
--   stop_at  epoch second from which increases send 0 (so nothing in flight at the end
--            of the run changes the verified sum)
--   auth     base64(api_key:api_secret)
--   tag      a string unique to this run (register makes new identity values with it)
local threads = {}
local next_id = 1

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   lo = tonumber(args[1])
   hi = tonumber(args[2])
   stop_at = tonumber(args[3])
   tag = args[5]
   n = 0
   sent_set, sent_increase, sent_add, sent_other, increase_units = 0, 0, 0, 0, 0
   ok, bad = 0, 0
   headers = {["Authorization"] = "Basic " .. args[4], ["Content-Type"] = "application/json"}
   math.randomseed(os.time() * 1000 + tid)
end

-- wrk calls request() once on the first thread to check the script, and never sends
-- that request: it must not be counted.
function phantom()
   if checked then return false end
   checked = true
   return tid == 1
end

function response(status, hdrs, body)
   -- Success is HTTP 2xx with code 0 (full or partial success).
   if status >= 200 and status < 300 and string.sub(body, 1, 10) == '{"code":0,' then
      ok = ok + 1
   else
      bad = bad + 1
   end
end

local counters = {"sent_set", "sent_increase", "sent_add", "sent_other", "increase_units",
                  "ok", "bad"}

function done(summary, latency, requests)
   local total = {}
   for _, name in ipairs(counters) do total[name] = 0 end
   for _, thread in ipairs(threads) do
      for _, name in ipairs(counters) do total[name] = total[name] + thread:get(name) end
   end
   local e = summary.errors
   local parts = {
      string.format('"requests":%d', summary.requests),
      string.format('"duration_us":%d', summary.duration),
      string.format('"errors_connect":%d', e.connect),
      string.format('"errors_read":%d', e.read),
      string.format('"errors_write":%d', e.write),
      string.format('"errors_status":%d', e.status),
      string.format('"errors_timeout":%d', e.timeout),
      string.format('"latency_mean_us":%.1f', latency.mean),
      string.format('"latency_max_us":%d', latency.max),
      string.format('"p50_us":%d', latency:percentile(50)),
      string.format('"p90_us":%d', latency:percentile(90)),
      string.format('"p99_us":%d', latency:percentile(99)),
      string.format('"p999_us":%d', latency:percentile(99.9)),
   }
   for _, name in ipairs(counters) do
      table.insert(parts, string.format('"%s":%d', name, total[name]))
   end
   io.write("BENCH_RESULT {" .. table.concat(parts, ",") .. "}\n")
end
