-- ledger.lua: the sync ledger of examples/crm-sync, and the mapping from CRM
-- contact properties (HubSpot-shaped) to a marketing list member
-- (Mailchimp-shaped).
--
-- sync_ledger      one row per CRM contact: crm_id <-> member_id (the
--                  subscriber hash at the marketing tool), the newest CRM
--                  version merged (`version`, an occurredAt in ms) and the
--                  version the marketing tool has (`synced_version`).
-- crm_properties   the contact's properties, each with the occurredAt of the
--                  change that set it: an older change never overwrites it.
-- crm_events       every event seen, with its outcome: applied | stale |
--                  duplicate | ignored.
local md5 = require("md5")
local M = {}

function M.ensure()
  db.exec([[
    CREATE TABLE IF NOT EXISTS sync_ledger(
      crm_id TEXT PRIMARY KEY,
      member_id TEXT,                          -- subscriber hash at the marketing tool
      email TEXT,                              -- as last synced
      status TEXT,                             -- subscribed | unsubscribed, as last synced
      version INTEGER NOT NULL DEFAULT 0,      -- newest occurredAt merged from the CRM
      synced_version INTEGER NOT NULL DEFAULT 0, -- occurredAt the marketing tool reflects
      deleted_at INTEGER,                      -- occurredAt of the deletion, if deleted
      synced_at TEXT, updated_at TEXT);
    CREATE TABLE IF NOT EXISTS crm_properties(
      crm_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT,
      version INTEGER NOT NULL, PRIMARY KEY (crm_id, name));
    CREATE TABLE IF NOT EXISTS crm_events(
      event_id TEXT PRIMARY KEY, crm_id TEXT NOT NULL, type TEXT,
      property TEXT, value TEXT, occurred_at INTEGER,
      outcome TEXT NOT NULL, run_id TEXT, at TEXT);
  ]])
end

-- CRM property -> Mailchimp merge field.
M.merge_fields = {
  firstname = "FNAME",
  lastname = "LNAME",
  phone = "PHONE",
  company = "COMPANY",
}

-- CRM properties that become tags "<prefix>:<value>".
M.tag_properties = {
  lifecyclestage = "lifecycle",
  hs_lead_status = "lead",
}

-- Mailchimp names a member by the MD5 of the lower-cased email address.
function M.subscriber_hash(email)
  return md5.hex(string.lower(email))
end

-- The member the marketing tool should hold for crm_id, from the ledger.
-- Returns nil when the contact has no email yet.
function M.desired_member(crm_id)
  local props = {}
  for _, p in ipairs(db.query("SELECT name, value FROM crm_properties WHERE crm_id = ?", crm_id)) do
    props[p.name] = p.value
  end
  local email = props.email
  if not email or email == "" then return nil end
  local row = db.one("SELECT deleted_at FROM sync_ledger WHERE crm_id = ?", crm_id)
  local status = "subscribed"
  if (row and row.deleted_at) or props.hs_email_optout == "true" then
    status = "unsubscribed"
  end
  local merge = {}
  for prop, field in pairs(M.merge_fields) do
    merge[field] = props[prop] or ""
  end
  local tags = { "crm" }
  for prop, prefix in pairs(M.tag_properties) do
    if props[prop] and props[prop] ~= "" then
      tags[#tags + 1] = prefix .. ":" .. props[prop]
    end
  end
  table.sort(tags)
  return {
    email_address = email,
    status_if_new = status,
    status = status,
    merge_fields = merge,
    tags = tags,
  }
end

return M
