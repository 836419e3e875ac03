-- split_batch.lua: the CRM sends batches of events for many contacts. Each
-- contact's events go on as one webhook to our own per-contact path
-- (SELF_URL/crm/contact), where `concurrency` runs one contact at a time, in
-- order. webhook.emit goes through the durable outbox: the emits are
-- committed with this step's result, delivered with retries, signed with
-- SYNC_SECRET, and the delivery id (derived from the events) makes a
-- re-executed step send nothing twice.
--
-- Output: { events = N, contacts = N, ignored = N, deliveries = {ids} }
local self_url = env("SELF_URL") or error("SELF_URL is not set (this server's own base URL)", 0)
local secret = env("SYNC_SECRET") or error("SYNC_SECRET is not set", 0)
local known = {
  ["contact.creation"] = true,
  ["contact.propertyChange"] = true,
  ["contact.deletion"] = true,
}

local batch = event.body
if type(batch) ~= "table" then error("expected a JSON array of events", 0) end

local groups, order, ignored = {}, {}, 0
for _, ev in ipairs(batch) do
  if type(ev) == "table" and ev.objectId ~= nil and ev.eventId ~= nil
     and known[ev.subscriptionType] and tonumber(ev.occurredAt) then
    local key = tostring(ev.objectId)
    if not groups[key] then
      groups[key] = { portalId = ev.portalId }
      order[#order + 1] = key
    end
    local g = groups[key]
    g[#g + 1] = {
      eventId = tostring(ev.eventId),
      subscriptionType = ev.subscriptionType,
      occurredAt = math.tointeger(tonumber(ev.occurredAt)) or tonumber(ev.occurredAt),
      propertyName = ev.propertyName,
      propertyValue = ev.propertyValue,
    }
  else
    ignored = ignored + 1
    log.warn("ignored an event:", json.encode(ev))
  end
end

local ids = {}
for _, key in ipairs(order) do
  local g = groups[key]
  table.sort(g, function(a, b)
    if a.occurredAt ~= b.occurredAt then return a.occurredAt < b.occurredAt end
    return a.eventId < b.eventId
  end)
  local evids = {}
  for i, e in ipairs(g) do evids[i] = e.eventId end
  local id = "crm_" .. string.sub(crypto.sha256(key .. ":" .. table.concat(evids, ",")), 1, 27)
  ids[#ids + 1] = webhook.emit(self_url .. "/crm/contact",
    { objectId = key, portalId = g.portalId, events = table.move(g, 1, #g, 1, {}) },
    { secret = secret, id = id })
end
log.info(#batch, "events for", #order, "contacts")
return { events = #batch, contacts = #order, ignored = ignored, deliveries = ids }
