-- plan_contact.lua: merges one contact's events into the sync ledger, in one
-- transaction, and says what the marketing tool needs.
--
-- crm-contact is debounced per contact: a burst of webhooks for one contact
-- (several batches touching it within the debounce period) makes one run,
-- whose `events` holds every webhook of the burst in arrival order. Their
-- `body.events` are merged here in that order; the versions below make the
-- order irrelevant anyway. (`events` is nil only where nothing was debounced:
-- then the run's own `event` is the one webhook.)
--
-- Each event is applied only if it is newer than what the ledger holds:
--   propertyChange  newer than that property's version (and than a deletion)
--   creation        newer than a deletion (a restore)
--   deletion        newer than an earlier deletion
-- An older event arriving late is recorded as "stale" and changes nothing.
--
-- Output: { crm_id, version, action = "upsert" | "none", member_id, member,
--           applied = {eventIds}, stale = {eventIds}, webhooks = N, reason }
local ledger = require("ledger")

local body = event.body
local crm_id = tostring(body.objectId)
local now = event.received_at

return db.tx(function()
  ledger.ensure()
  db.exec([[INSERT INTO sync_ledger(crm_id, updated_at) VALUES (?, ?)
            ON CONFLICT(crm_id) DO NOTHING]], crm_id, now)
  local applied, stale = {}, {}
  local changes = {}
  for _, hook in ipairs(events or { event }) do
    for _, e in ipairs((hook.body or {}).events or {}) do
      changes[#changes + 1] = e
    end
  end

  for _, e in ipairs(changes) do
    local t = math.tointeger(e.occurredAt) or 0
    local row = db.one("SELECT version, deleted_at FROM sync_ledger WHERE crm_id = ?", crm_id)
    local deleted = row.deleted_at
    local outcome = "applied"
    if db.one("SELECT 1 AS x FROM crm_events WHERE event_id = ?", e.eventId) then
      outcome = "duplicate"
    elseif e.subscriptionType == "contact.propertyChange" then
      local name = e.propertyName
      local p = name and db.one("SELECT version FROM crm_properties WHERE crm_id = ? AND name = ?",
                                crm_id, name)
      if not name then
        outcome = "ignored"
      elseif (p and t <= p.version) or (deleted and t <= deleted) then
        outcome = "stale"
      else
        local v = e.propertyValue
        if v ~= nil and v ~= json.null then v = tostring(v) else v = nil end
        db.exec([[INSERT INTO crm_properties(crm_id, name, value, version) VALUES (?, ?, ?, ?)
                  ON CONFLICT(crm_id, name) DO UPDATE SET value = excluded.value,
                    version = excluded.version]], crm_id, name, v, t)
      end
    elseif e.subscriptionType == "contact.creation" then
      if deleted and t <= deleted then
        outcome = "stale"
      elseif deleted then
        db.exec("UPDATE sync_ledger SET deleted_at = NULL WHERE crm_id = ?", crm_id)
      end
    elseif e.subscriptionType == "contact.deletion" then
      if deleted and t <= deleted then
        outcome = "stale"
      else
        db.exec("UPDATE sync_ledger SET deleted_at = ? WHERE crm_id = ?", t, crm_id)
      end
    else
      outcome = "ignored"
    end
    if outcome == "applied" then
      db.exec([[UPDATE sync_ledger SET version = MAX(version, ?), updated_at = ?
                WHERE crm_id = ?]], t, now, crm_id)
      applied[#applied + 1] = e.eventId
    elseif outcome == "stale" then
      stale[#stale + 1] = e.eventId
      log.info("stale", e.subscriptionType, e.propertyName or "", "at", t,
               "(ledger is newer): not applied")
    end
    if outcome ~= "duplicate" then
      db.exec([[INSERT INTO crm_events(event_id, crm_id, type, property, value,
                                       occurred_at, outcome, run_id, at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)]],
              e.eventId, crm_id, e.subscriptionType, e.propertyName,
              e.propertyValue ~= nil and e.propertyValue ~= json.null
                and tostring(e.propertyValue) or nil,
              t, outcome, run.id, now)
    end
  end

  local row = db.one("SELECT * FROM sync_ledger WHERE crm_id = ?", crm_id)
  local out = { crm_id = crm_id, version = row.version, applied = applied, stale = stale,
                webhooks = #(events or { event }) }
  local member = ledger.desired_member(crm_id)
  if row.version <= row.synced_version then
    out.action, out.reason = "none", "the marketing tool is up to date"
  elseif not member then
    out.action, out.reason = "none", "no email address yet"
  else
    out.action = "upsert"
    out.member = member
    -- The member keeps the id it was created with, even if the email changes.
    out.member_id = row.member_id or ledger.subscriber_hash(member.email_address)
  end
  return out
end)
