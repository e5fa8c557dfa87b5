-- POST /v1/user/property: 40% set, 40% increase (+1 counter, +5 points), 20% add.
local plans = {"free", "basic", "gold", "platinum"}
local cities = {"Paris", "Berlin", "Lagos", "Lima", "Osaka", "Austin", "Pune", "Oslo"}

function request()
   if phantom() then return wrk.format(nil, "/healthz") end
   local euid = math.random(lo, hi)
   local r = math.random(10)
   local body
   if r <= 4 then
      sent_set = sent_set + 1
      body = string.format(
         '{"euid":%d,"type":"set","properties":{"plan":"%s","city":"%s","age":%d,' ..
         '"last_seen":"2026-11-29 12:%02d:%02d"}}',
         euid, plans[math.random(4)], cities[math.random(8)], math.random(18, 90),
         math.random(0, 59), math.random(0, 59))
   elseif r <= 8 then
      sent_increase = sent_increase + 1
      local units = 1
      if os.time() >= stop_at then units = 0 end
      increase_units = increase_units + units
      body = string.format(
         '{"euid":%d,"type":"increase","properties":{"counter":%d,"points":%d}}',
         euid, units, 5 * units)
   else
      sent_add = sent_add + 1
      body = string.format(
         '{"euid":%d,"type":"add","properties":{"tags":["t%d","t%d"]}}',
         euid, math.random(20), math.random(20))
   end
   return wrk.format("POST", "/v1/user/property", headers, body)
end
