-- api.lua: one call to a third-party REST API, with the outcome a step wants:
-- the response on 2xx, a step error otherwise (the step's `retry:` tries again).
--
-- 429 Too Many Requests is honoured across runs: the Retry-After (seconds) is
-- written to the api_throttle table, and every call to the same API checks it
-- first and fails without calling while it lasts. With a step `retry:` whose
-- backoff grows past the Retry-After, the step goes through once the API
-- allows it, and no other run hammers the API meanwhile. (Steps cannot sleep:
-- waiting is the scheduler's job, between retries.) Calls already in flight
-- when a 429 arrives are not held back.
--
--   local api = require("api")
--   local res = api.call("helpdesk", { method = "PUT", url = ..., json = {...} })
--
-- Shared by the examples: support-tickets/scripts/api.lua and
-- crm-sync/scripts/api.lua are symbolic links to this file.
local M = {}

local function ensure()
  db.exec([[CREATE TABLE IF NOT EXISTS api_throttle(
              api TEXT PRIMARY KEY, until_epoch INTEGER NOT NULL, status INTEGER)]])
end

-- Seconds from a Retry-After header: delta-seconds, else 1 (an HTTP-date is
-- rare from APIs; 1 s then a retry is a safe reading).
local function retry_after(value)
  local n = tonumber(value)
  if n and n >= 0 then return math.ceil(n) end
  return 1
end

function M.call(name, req)
  ensure()
  local now = os.time()
  local gate = db.one("SELECT until_epoch FROM api_throttle WHERE api = ?", name)
  if gate and now < gate.until_epoch then
    error(string.format("%s: throttled by a 429, not calling for another %d s",
                        name, gate.until_epoch - now), 0)
  end
  local res = http.request(req)
  if res.status == 429 then
    local wait = retry_after(res.headers["retry-after"])
    -- +1: os.time() has whole seconds; never call before the API said.
    db.exec([[INSERT INTO api_throttle(api, until_epoch, status) VALUES (?, ?, 429)
              ON CONFLICT(api) DO UPDATE
              SET until_epoch = MAX(until_epoch, excluded.until_epoch), status = 429]],
            name, now + wait + 1)
    log.warn(name, "answered 429, Retry-After", wait)
    error(string.format("%s: 429 Too Many Requests (Retry-After %d s)", name, wait), 0)
  end
  if res.status < 200 or res.status > 299 then
    error(string.format("%s: %s answered %d: %s", name, req.method or "GET",
                        res.status, string.sub(res.body or "", 1, 200)), 0)
  end
  return res
end

return M
