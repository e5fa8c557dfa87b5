-- POST /v1/user/register: one new user_id per request.
function request()
   if phantom() then return wrk.format(nil, "/healthz") end
   n = n + 1
   sent_other = sent_other + 1
   local body = string.format(
      '{"identity_name":"user_id","identity_values":["%s-%d-%d"]}', tag, tid, n)
   return wrk.format("POST", "/v1/user/register", headers, body)
end
