-- push_member.lua: upserts the member at the marketing tool (Mailchimp-shaped:
-- PUT /3.0/lists/LIST/members/SUBSCRIBER_HASH), then records in the ledger
-- what the tool now has. A deleted contact is pushed as status
-- "unsubscribed" (kept, so it is never mailed again, unlike a DELETE).
--
-- Failure (network, 5xx, 429) fails the step and its retry: tries again; on
-- a 429 the next attempt waits for the response's Retry-After (retry.after,
-- see api.lua), at most the step's retry.max_delay.
--
-- Environment: MARKETING_URL (e.g. https://us21.api.mailchimp.com),
-- MARKETING_LIST (the audience id), MARKETING_API_KEY (optional, sent as
-- HTTP Basic auth the way Mailchimp wants it).
local api = require("api")

local plan = steps.plan
local base = env("MARKETING_URL") or error("MARKETING_URL is not set", 0)
local list = env("MARKETING_LIST") or error("MARKETING_LIST is not set", 0)
local headers = { Accept = "application/json" }
if env("MARKETING_API_KEY") then
  headers.Authorization = "Basic " .. crypto.base64_encode("hookflow:" .. env("MARKETING_API_KEY"))
end

local res = api.call("marketing", {
  method = "PUT",
  url = string.format("%s/3.0/lists/%s/members/%s", base, list, plan.member_id),
  headers = headers,
  json = plan.member,
  timeout = "15s",
})
local member_id = (res.json and res.json.id) or plan.member_id
db.exec([[UPDATE sync_ledger SET member_id = ?, email = ?, status = ?,
            synced_version = MAX(synced_version, ?), synced_at = ?
          WHERE crm_id = ?]],
        member_id, plan.member.email_address, plan.member.status, plan.version,
        os.date("!%Y-%m-%dT%H:%M:%SZ"), plan.crm_id)
return { status = res.status, member_id = member_id, member_status = plan.member.status,
         synced_version = plan.version }
