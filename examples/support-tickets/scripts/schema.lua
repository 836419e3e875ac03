-- schema.lua: the data tables of examples/support-tickets, created on first
-- use (seed.sql creates the same agent tables and fills them).
--
--   require("schema").ensure()
local M = {}

function M.ensure()
  db.exec([[
    CREATE TABLE IF NOT EXISTS agents(
      id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL,
      available INTEGER NOT NULL DEFAULT 1, max_load INTEGER NOT NULL DEFAULT 5,
      load INTEGER NOT NULL DEFAULT 0, last_assigned INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS agent_skills(
      agent_id INTEGER NOT NULL, skill TEXT NOT NULL, PRIMARY KEY (agent_id, skill));
    CREATE TABLE IF NOT EXISTS agent_languages(
      agent_id INTEGER NOT NULL, lang TEXT NOT NULL, PRIMARY KEY (agent_id, lang));
    CREATE TABLE IF NOT EXISTS tickets(
      id TEXT PRIMARY KEY,
      subject TEXT, priority TEXT, language TEXT, tags TEXT,
      status TEXT NOT NULL,          -- waiting | assigned | escalated | solved
      agent_id INTEGER,              -- who holds it (counted in agents.load)
      created_at TEXT, assigned_at TEXT, helpdesk_synced_at TEXT,
      solved_at TEXT, updated_at TEXT);
    CREATE TABLE IF NOT EXISTS assignments(
      ticket_id TEXT NOT NULL, agent_id INTEGER NOT NULL,
      at TEXT NOT NULL, reason TEXT NOT NULL);    -- auto | manual
  ]])
end

-- The ticket's language: the requester's locale ("de", "en-US"), two letters.
function M.language(ticket)
  local loc = ticket.requester and ticket.requester.locale or ticket.language
  if type(loc) == "string" and #loc >= 2 then
    return string.lower(string.sub(loc, 1, 2))
  end
  return nil
end

-- The ticket's tags, lower-cased, as an array of strings.
function M.tags(ticket)
  local out = {}
  if type(ticket.tags) == "table" then
    for _, tag in ipairs(ticket.tags) do out[#out + 1] = string.lower(tostring(tag)) end
  end
  return out
end

return M
