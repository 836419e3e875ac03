-- assign_round_robin.lua: records a ticket in the data database and assigns it
-- to the agent whose turn it is. Everything happens in one transaction, so two
-- tickets arriving at once never pick the same turn.
--
-- args.agents: the agents' names (seeded into the agents table on first use)
-- args.ticket: the ticket object from the webhook ({id=, subject=, ...})

local ticket = args.ticket
if type(ticket) ~= "table" or ticket.id == nil then
  error("the event has no ticket.id")
end
local id = tostring(ticket.id)

return db.tx(function()
  db.exec([[CREATE TABLE IF NOT EXISTS agents(
              name TEXT PRIMARY KEY,
              assigned INTEGER NOT NULL DEFAULT 0,
              turn INTEGER NOT NULL DEFAULT 0)]])
  db.exec([[CREATE TABLE IF NOT EXISTS tickets(
              id TEXT PRIMARY KEY,
              subject TEXT,
              priority TEXT,
              agent TEXT NOT NULL,
              received_at TEXT NOT NULL)]])
  for i, name in ipairs(args.agents) do
    db.exec("INSERT OR IGNORE INTO agents(name, turn) VALUES (?, ?)", name, i)
  end

  -- The same ticket delivered twice keeps its first assignment.
  local known = db.one("SELECT agent FROM tickets WHERE id = ?", id)
  if known then
    return { ticket = id, agent = known.agent, repeated = true }
  end

  local next = db.one("SELECT name FROM agents ORDER BY turn, name LIMIT 1")
  local last = db.one("SELECT MAX(turn) AS turn FROM agents")
  db.exec("UPDATE agents SET assigned = assigned + 1, turn = ? WHERE name = ?",
          last.turn + 1, next.name)
  db.exec([[INSERT INTO tickets(id, subject, priority, agent, received_at)
            VALUES (?, ?, ?, ?, ?)]],
          id, ticket.subject, ticket.priority, next.name, event.received_at)
  return { ticket = id, agent = next.name }
end)
