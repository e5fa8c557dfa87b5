-- POST /v1/user/property/batch: 100 updates per request, spread over the users: half
-- `increase` (bcount +1, verified afterwards like the write scenario's counter), half
-- `set` of two attributes.
local BATCH = 100
local plans = {"free", "basic", "gold", "platinum"}

function request()
   if phantom() then return wrk.format(nil, "/healthz") end
   sent_other = sent_other + 1
   local units = 1
   if os.time() >= stop_at then units = 0 end
   local updates = {}
   for i = 1, BATCH do
      local euid = math.random(lo, hi)
      if i % 2 == 0 then
         increase_units = increase_units + units
         updates[i] = string.format(
            '{"euid":%d,"type":"increase","properties":{"bcount":%d}}', euid, units)
      else
         updates[i] = string.format(
            '{"euid":%d,"type":"set","properties":{"bplan":"%s","bscore":%d}}',
            euid, plans[math.random(4)], math.random(1000))
      end
   end
   local body = '{"updates":[' .. table.concat(updates, ",") .. ']}'
   return wrk.format("POST", "/v1/user/property/batch", headers, body)
end
