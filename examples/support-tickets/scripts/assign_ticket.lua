-- assign_ticket.lua: tells the helpdesk who the ticket's assignee is
-- (Zendesk-shaped: PUT /api/v2/tickets/ID {"ticket":{"assignee_id":N}}).
-- A non-2xx answer fails the step; the step's retry: tries again. PUT is
-- idempotent, so a retry after a lost answer does no harm.
--
-- Environment: HELPDESK_URL (e.g. https://acme.zendesk.com), HELPDESK_TOKEN
-- (optional: sent as "Authorization: Bearer TOKEN").
local api = require("api")

local pick = steps.pick
local base = env("HELPDESK_URL") or error("HELPDESK_URL is not set", 0)
local headers = { Accept = "application/json" }
if env("HELPDESK_TOKEN") then
  headers.Authorization = "Bearer " .. env("HELPDESK_TOKEN")
end

local res = api.call("helpdesk", {
  method = "PUT",
  url = base .. "/api/v2/tickets/" .. pick.ticket,
  headers = headers,
  json = { ticket = { assignee_id = pick.agent.id } },
  timeout = "10s",
})
db.exec("UPDATE tickets SET helpdesk_synced_at = ? WHERE id = ?",
        os.date("!%Y-%m-%dT%H:%M:%SZ"), pick.ticket)
return { status = res.status, ticket = pick.ticket, assignee_id = pick.agent.id }
