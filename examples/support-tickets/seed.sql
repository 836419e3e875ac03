-- seed.sql: the support team, for examples/support-tickets.
--
--   sqlite3 data.db < examples/support-tickets/seed.sql
--
-- Safe to run again: it creates the tables if needed (the workflows create
-- them too, see scripts/schema.lua) and replaces the agents and their skills.
-- `id` is the agent's user id in the helpdesk (the assignee_id sent to its API).

CREATE TABLE IF NOT EXISTS agents(
  id            INTEGER PRIMARY KEY,
  name          TEXT NOT NULL,
  email         TEXT NOT NULL,
  available     INTEGER NOT NULL DEFAULT 1,   -- 0: away, never picked
  max_load      INTEGER NOT NULL DEFAULT 5,   -- open tickets at most
  load          INTEGER NOT NULL DEFAULT 0,   -- open tickets now
  last_assigned INTEGER NOT NULL DEFAULT 0    -- round-robin turn (higher = more recent)
);
CREATE TABLE IF NOT EXISTS agent_skills(
  agent_id INTEGER NOT NULL REFERENCES agents(id),
  skill    TEXT NOT NULL,                     -- matched against ticket tags
  PRIMARY KEY (agent_id, skill)
);
CREATE TABLE IF NOT EXISTS agent_languages(
  agent_id INTEGER NOT NULL REFERENCES agents(id),
  lang     TEXT NOT NULL,                     -- two letters: en, de, fr, ...
  PRIMARY KEY (agent_id, lang)
);

DELETE FROM agent_skills;
DELETE FROM agent_languages;
INSERT INTO agents(id, name, email, available, max_load) VALUES
  (101, 'Alice',  'alice@example.com',  1, 5),
  (102, 'Bob',    'bob@example.com',    1, 5),
  (103, 'Carol',  'carol@example.com',  1, 5),
  (104, 'Dmitri', 'dmitri@example.com', 1, 5),
  (105, 'Eve',    'eve@example.com',    0, 5)
ON CONFLICT(id) DO UPDATE SET name = excluded.name, email = excluded.email,
  available = excluded.available, max_load = excluded.max_load;
INSERT INTO agent_skills(agent_id, skill) VALUES
  (101, 'billing'), (101, 'refunds'),
  (102, 'technical'), (102, 'api'),
  (103, 'billing'), (103, 'technical'),
  (104, 'technical'),
  (105, 'billing'), (105, 'refunds');
INSERT INTO agent_languages(agent_id, lang) VALUES
  (101, 'en'), (101, 'de'),
  (102, 'en'),
  (103, 'en'), (103, 'fr'),
  (104, 'en'), (104, 'de'),
  (105, 'en'), (105, 'es');
