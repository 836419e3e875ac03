-- release_agent.lua: a solved ticket frees its agent (load - 1), once: the
-- ticket's status moves to "solved" in the same transaction, so a second
-- ticket.solved (or a replay) releases nothing.
local schema = require("schema")

local t = args.ticket
if type(t) ~= "table" or t.id == nil then
  error("ticket.solved without ticket.id", 0)
end
local id = tostring(t.id)
local now = event.received_at

return db.tx(function()
  schema.ensure()
  local row = db.one("SELECT status, agent_id FROM tickets WHERE id = ?", id)
  if not row then
    -- Solved before ticket.created was processed: remember it, so that the
    -- late ticket.created assigns nobody.
    db.exec([[INSERT INTO tickets(id, subject, priority, status, created_at, solved_at, updated_at)
              VALUES (?, ?, ?, 'solved', ?, ?, ?)]],
            id, t.subject, t.priority, now, now, now)
    return { ticket = id, released = false, reason = "not known yet" }
  end
  if row.status == "solved" then
    return { ticket = id, released = false, reason = "already solved" }
  end
  db.exec("UPDATE tickets SET status = 'solved', solved_at = ?, updated_at = ? WHERE id = ?",
          now, now, id)
  if not row.agent_id then
    return { ticket = id, released = false, reason = "was not assigned" }
  end
  db.exec("UPDATE agents SET load = MAX(load - 1, 0) WHERE id = ?", row.agent_id)
  local a = db.one("SELECT id, name, load FROM agents WHERE id = ?", row.agent_id)
  log.info("ticket", id, "solved; released", a.name, "load now", a.load)
  return { ticket = id, released = true, agent = { id = a.id, name = a.name }, load = a.load }
end)
