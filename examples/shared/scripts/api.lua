-- api.lua: one call to a third-party REST API, with the outcome a step wants:
-- the response on 2xx, a step error otherwise (the step's `retry:` tries again).
--
-- 429 Too Many Requests: the step asks for its next attempt no sooner than
-- the response's Retry-After (delta-seconds or an HTTP date, passed to
-- retry.after as it is; 1 s when the header is missing), capped by the
-- step's retry.max_delay. It uses one of the step's attempts. (A script does
-- not sleep: waiting is the scheduler's job, between attempts.)
--
-- Any other 4xx but 408 and 425 (the request itself is wrong: 400, 401,
-- 403, 404, 409, 422, ...) fails the step at once with retry.never: trying
-- the same request again would get the same answer. 5xx, 408, 425 and
-- network errors fail the attempt, and the step's `retry:` tries again.
--
--   local api = require("api")
--   local res = api.call("helpdesk", { method = "PUT", url = ..., json = {...} })
--
-- Shared by the examples: support-tickets/scripts/api.lua and
-- crm-sync/scripts/api.lua are symbolic links to this file.
local M = {}

function M.call(name, req)
  local res = http.request(req)
  if res.status == 429 then
    local wait = res.headers["retry-after"]
    if wait == nil or wait == "" then wait = 1 end
    log.warn(name, "answered 429, Retry-After", wait)
    retry.after(wait, string.format("%s: 429 Too Many Requests (Retry-After %s)",
                                    name, tostring(wait)))
  end
  if res.status < 200 or res.status > 299 then
    local msg = string.format("%s: %s answered %d: %s", name, req.method or "GET",
                              res.status, string.sub(res.body or "", 1, 200))
    if res.status >= 400 and res.status < 500 and res.status ~= 408 and res.status ~= 425 then
      retry.never(msg)
    end
    error(msg, 0)
  end
  return res
end

return M
