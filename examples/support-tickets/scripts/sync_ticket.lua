-- sync_ticket.lua: ticket.updated keeps our copy current (subject, priority,
-- tags) and follows a manual reassignment made in the helpdesk: when the
-- ticket's assignee_id names another known agent, the load moves to them.
local schema = require("schema")

local t = args.ticket
if type(t) ~= "table" or t.id == nil then
  error("ticket.updated without ticket.id", 0)
end
local id = tostring(t.id)
local now = event.received_at

return db.tx(function()
  schema.ensure()
  local row = db.one("SELECT status, agent_id FROM tickets WHERE id = ?", id)
  if not row then
    return { ticket = id, changed = false, reason = "unknown ticket" }
  end
  db.exec([[UPDATE tickets SET subject = COALESCE(?, subject),
              priority = COALESCE(?, priority), tags = ?, updated_at = ?
            WHERE id = ?]],
          t.subject, t.priority, json.encode(schema.tags(t)), now, id)
  local out = { ticket = id, changed = true }
  local new = tonumber(t.assignee_id)
  if row.status ~= "solved" and new and new ~= row.agent_id
     and db.one("SELECT id FROM agents WHERE id = ?", new) then
    if row.agent_id then
      db.exec("UPDATE agents SET load = MAX(load - 1, 0) WHERE id = ?", row.agent_id)
    end
    db.exec("UPDATE agents SET load = load + 1 WHERE id = ?", new)
    db.exec("UPDATE tickets SET agent_id = ?, status = 'assigned' WHERE id = ?", new, id)
    db.exec("INSERT INTO assignments(ticket_id, agent_id, at, reason) VALUES (?, ?, ?, 'manual')",
            id, new, now)
    out.reassigned = { from = row.agent_id, to = new }
    log.info("ticket", id, "reassigned by hand from", row.agent_id, "to", new)
  end
  return out
end)
