-- GET /v1/user/property: a random user of the range.
function request()
   if phantom() then return wrk.format(nil, "/healthz") end
   sent_other = sent_other + 1
   return wrk.format("GET", "/v1/user/property?euid=" .. math.random(lo, hi), headers)
end
