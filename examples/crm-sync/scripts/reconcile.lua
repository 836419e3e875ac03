-- reconcile.lua: the nightly catch-up of examples/crm-sync. Every contact
-- whose ledger `version` is ahead of `synced_version` and that has an email
-- goes on to /crm/contact as one webhook with no events, through the outbox
-- (committed with this step, retried until delivered). The delivery id names
-- the contact and the version, so the same gap is sent once however often
-- the reconcile runs; crm-contact's `concurrency` keeps it in line with the
-- contact's other runs.
--
-- Output: { behind = N, deliveries = {ids} }
local ledger = require("ledger")
local self_url = env("SELF_URL") or error("SELF_URL is not set (this server's own base URL)", 0)
local secret = env("SYNC_SECRET") or error("SYNC_SECRET is not set", 0)

ledger.ensure()
local ids = {}
local rows = db.query([[SELECT crm_id, version FROM sync_ledger
                        WHERE version > synced_version ORDER BY crm_id]])
for _, row in ipairs(rows) do
  if ledger.desired_member(row.crm_id) then
    local id = "crm_rc_" .. string.sub(crypto.sha256(row.crm_id .. ":" .. row.version), 1, 24)
    ids[#ids + 1] = webhook.emit(self_url .. "/crm/contact",
      { objectId = row.crm_id, events = {}, reconcile = true },
      { secret = secret, id = id })
  end
end
log.info(#ids, "contacts behind the marketing tool, sent again")
return { behind = #ids, deliveries = ids }
