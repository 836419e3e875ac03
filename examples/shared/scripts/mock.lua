-- mock.lua: shared by the mock's workflows. Every request is recorded in
-- mock_requests; mock_control (set by POST /mock/control) makes the next
-- requests to a service fail (fail_next, with fail_status) or be throttled
-- (throttle_next: 429 with Retry-After: retry_after). The decision and the
-- record are one transaction, so concurrent requests consume the counters
-- exactly. Shared by both examples' mocks: their mock/scripts/mock.lua are
-- symbolic links to this file.
local M = {}

function M.ensure()
  db.exec([[
    CREATE TABLE IF NOT EXISTS mock_requests(
      id INTEGER PRIMARY KEY, service TEXT NOT NULL, method TEXT, path TEXT,
      headers TEXT, body TEXT, status INTEGER, at TEXT);
    CREATE TABLE IF NOT EXISTS mock_control(
      service TEXT PRIMARY KEY,
      fail_next INTEGER NOT NULL DEFAULT 0, fail_status INTEGER NOT NULL DEFAULT 503,
      throttle_next INTEGER NOT NULL DEFAULT 0, retry_after INTEGER NOT NULL DEFAULT 1);
  ]])
end

local function kept_headers()
  local h = {}
  for k, v in pairs(event.headers) do
    if k == "authorization" or k == "content-type" or k:sub(1, 8) == "webhook-" then
      h[k] = v
    end
  end
  return h
end

-- Answers one request to `service` at API path `path`. `ok(path)` runs when
-- the request is neither failed nor throttled and returns status, body.
function M.handle(service, path, ok)
  return db.tx(function()
    M.ensure()
    local status, headers, body
    local c = db.one("SELECT * FROM mock_control WHERE service = ?", service)
    if c and c.fail_next > 0 then
      db.exec("UPDATE mock_control SET fail_next = fail_next - 1 WHERE service = ?", service)
      status, body = c.fail_status, { error = "mock " .. service .. ": told to fail" }
    elseif c and c.throttle_next > 0 then
      db.exec("UPDATE mock_control SET throttle_next = throttle_next - 1 WHERE service = ?", service)
      status, body = 429, { error = "mock " .. service .. ": too many requests" }
      headers = { ["Retry-After"] = tostring(c.retry_after) }
    else
      status, body = ok(path)
    end
    db.exec([[INSERT INTO mock_requests(service, method, path, headers, body, status, at)
              VALUES (?, ?, ?, ?, ?, ?, ?)]],
            service, event.method, path, json.encode(kept_headers()), event.raw,
            status, event.received_at)
    headers = headers or {}
    headers["Content-Type"] = "application/json"
    return { status = status, headers = headers, body = body }
  end)
end

-- POST /mock/control {"service": S, "fail_next": N, "fail_status": 503,
-- "throttle_next": N, "retry_after": SECONDS}; {"reset": true} clears all.
function M.control(default_service)
  local b = event.body or {}
  return db.tx(function()
    M.ensure()
    if b.reset then
      db.exec("DELETE FROM mock_control; DELETE FROM mock_requests")
      return { status = 200, body = { reset = true } }
    end
    local service = b.service or default_service
    db.exec([[INSERT INTO mock_control(service, fail_next, fail_status, throttle_next, retry_after)
              VALUES (?, ?, ?, ?, ?)
              ON CONFLICT(service) DO UPDATE SET fail_next = excluded.fail_next,
                fail_status = excluded.fail_status, throttle_next = excluded.throttle_next,
                retry_after = excluded.retry_after]],
            service, b.fail_next or 0, b.fail_status or 503, b.throttle_next or 0,
            b.retry_after or 1)
    return { status = 200, body = db.one("SELECT * FROM mock_control WHERE service = ?", service) }
  end)
end

-- GET /mock/requests[?service=S]: what the mock received, oldest first.
function M.requests()
  M.ensure()
  local rows
  if event.query.service then
    rows = db.query("SELECT * FROM mock_requests WHERE service = ? ORDER BY id", event.query.service)
  else
    rows = db.query("SELECT * FROM mock_requests ORDER BY id")
  end
  for _, r in ipairs(rows) do
    r.headers = json.decode(r.headers)
  end
  return { status = 200, body = { requests = rows } }
end

return M
