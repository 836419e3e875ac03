-- pick_agent.lua: chooses the agent for a new ticket and books them, in one
-- transaction (db.tx is BEGIN IMMEDIATE: two tickets arriving at once are
-- picked one after the other, each on up-to-date loads).
--
-- The rule:
--   1. required skills = the ticket's tags that are some agent's skill
--      (other tags, like "vip", do not restrict anything);
--   2. eligible = available, below max_load, speaks the ticket's language
--      (any language when the ticket has none) and has every required skill;
--   3. the least-loaded eligible agent wins; ties go round-robin: the one
--      whose last assignment is oldest.
--
-- Output: { ticket, priority, urgent, language, skills, agent = {id, name,
-- email} or absent, status = "assigned" | "waiting" | "escalated" | "solved",
-- repeated = true when the ticket was already assigned (a replay) }.
local schema = require("schema")

local t = args.ticket
if type(t) ~= "table" or t.id == nil then
  error("ticket.created without ticket.id", 0)
end
local id = tostring(t.id)
local lang = schema.language(t)
local tags = schema.tags(t)
local urgent = t.priority == "urgent"
local now = event.received_at

return db.tx(function()
  schema.ensure()
  local out = { ticket = id, priority = t.priority, urgent = urgent, language = lang }

  local known = db.one("SELECT status, agent_id FROM tickets WHERE id = ?", id)
  if known and known.agent_id then
    -- Already assigned (the event replayed, or the step re-run after a
    -- crash): keep the first assignment, book nothing twice.
    out.agent = db.one("SELECT id, name, email FROM agents WHERE id = ?", known.agent_id)
    out.status, out.repeated = known.status, true
    return out
  end
  if known and known.status == "solved" then
    out.status = "solved"            -- solved before we got to it
    return out
  end

  local skills = {}
  for _, row in ipairs(db.query([[
      SELECT DISTINCT skill FROM agent_skills
      WHERE skill IN (SELECT value FROM json_each(?)) ORDER BY skill]],
      json.encode(tags))) do
    skills[#skills + 1] = row.skill
  end
  out.skills = skills

  local agent = db.one([[
      SELECT a.id, a.name, a.email, a.load FROM agents a
      WHERE a.available = 1 AND a.load < a.max_load
        AND (?1 = '' OR EXISTS (SELECT 1 FROM agent_languages l
                                WHERE l.agent_id = a.id AND l.lang = ?1))
        AND (SELECT COUNT(*) FROM agent_skills s
             WHERE s.agent_id = a.id
               AND s.skill IN (SELECT value FROM json_each(?2))) = ?3
      ORDER BY a.load, a.last_assigned, a.id
      LIMIT 1]], lang or "", json.encode(skills), #skills)

  local status = agent and "assigned" or (urgent and "escalated" or "waiting")
  db.exec([[INSERT INTO tickets(id, subject, priority, language, tags, status,
                                agent_id, created_at, assigned_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET status = excluded.status,
              agent_id = excluded.agent_id, assigned_at = excluded.assigned_at,
              updated_at = excluded.updated_at]],
          id, t.subject, t.priority, lang, json.encode(tags), status,
          agent and agent.id, now, agent and now, now)
  out.status = status

  if agent then
    local turn = db.one("SELECT COALESCE(MAX(last_assigned), 0) + 1 AS n FROM agents").n
    db.exec("UPDATE agents SET load = load + 1, last_assigned = ? WHERE id = ?",
            turn, agent.id)
    db.exec("INSERT INTO assignments(ticket_id, agent_id, at, reason) VALUES (?, ?, ?, 'auto')",
            id, agent.id, now)
    out.agent = { id = agent.id, name = agent.name, email = agent.email }
    log.info("ticket", id, "->", agent.name, "(load was", agent.load .. ")")
  else
    log.warn("ticket", id, "has no available agent", "language:", lang or "any",
             "skills:", table.concat(skills, ","))
  end
  return out
end)
