/* store_sqlite_schema.c - the SQLite state database's schema (version 6)
 * and its migration: a new file gets the schema, a version-1 file (made by
 * hookflow before the lean write path), version-2 file (before parked runs),
 * version-3 file (before packed bodies), version-4 file (before runs_late)
 * or version-5 file (before the steps' chains) is migrated to it in one
 * transaction on the writer's connection at open, before the writer thread
 * starts; a file from a newer hookflow is refused.
 *
 * Neighbours: store_sqlite.c (opens the connection and calls
 * hf_sqlite_migrate), store_sqlite.h (hf_sqlite_band, the rid of an id). */
#include "store_sqlite.h"

#include <stdio.h>

static int exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

#define SCHEMA_VERSION 6

/* The schema, version 6 (meta's schema_version). Only what a query needs is
 * indexed (measured: scripts/store_load.py, and issue 13's notes):
 * - events and runs are keyed by rid, derived from the public id
 *   (hf_sqlite_band: found by id through the band of its millisecond), the
 *   id stored once: no second b-tree for a TEXT key;
 * - runs_late: the runs of an event not made with it (a replay, ...); those
 *   made with it are found by rid (HF_RUNS_NEAR_OF): the event's page in the
 *   API, and prune (an event goes once no run refers to it);
 * - runs_pending: the unfinished runs (recovery at start, ?status=queued);
 * - runs_unclaimed: the disk backlog (hf_store_load_backlog), rid order;
 * - no index for the runs list by workflow: newest first by rid, filtered;
 * - a run refers to its workflow version by an integer (vid), the 64-digit
 *   hash stored once in workflow_versions.
 * - an event's body may be stored as an LZ4 block, body_size then its size
 *   as it came (store_sqlite_pack.c; read through hf_body).
 * - runs.spare: zero bytes a run's row gives back as it gains its start and
 *   finish times (store_sqlite_apply.c), so that the row does not grow in
 *   its page: a row that grows past its page's room splits it and rewrites
 *   its neighbours, at nearly every commit under load (measured: 1 of the 3
 *   pages of runs each commit rewrote, about 7% of the bytes per event).
 * - steps: rows appended, keyed by sid; a run's rows are a chain, newest
 *   first, from runs.steps through each row's prev (HF_STEPS_OF in
 *   store_sqlite.h); a step written again (a retry, a woken wait)
 *   appends a row that hides the older one of the same idx. No index: a
 *   table keyed by (run, idx) took appends in an index b-tree, which
 *   rebalanced its last leaves, 3-4 pages, at nearly every commit.
 * dedupe, deliveries and delivery_attempts keep version 1's shape. */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS events("
    " rid INTEGER PRIMARY KEY, id TEXT NOT NULL, path TEXT NOT NULL,"
    " method TEXT NOT NULL, query TEXT, headers TEXT NOT NULL,"
    " body BLOB NOT NULL, received_at INTEGER NOT NULL, skipped TEXT,"
    " body_size INTEGER);"
    "CREATE TABLE IF NOT EXISTS runs("
    " rid INTEGER PRIMARY KEY, id TEXT NOT NULL, event INTEGER NOT NULL,"
    " workflow TEXT NOT NULL, vid INTEGER, status TEXT NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,"
    " error TEXT, next_step INTEGER NOT NULL DEFAULT 0,"
    " step_attempt INTEGER NOT NULL DEFAULT 1, due_at INTEGER NOT NULL"
    " DEFAULT 0, lane TEXT, claimed INTEGER NOT NULL DEFAULT 1,"
    " wake_at INTEGER, waiting TEXT, wait_path TEXT, spare BLOB,"
    " steps INTEGER);"
    "CREATE INDEX IF NOT EXISTS runs_late ON runs(event) WHERE " HF_RUNS_LATE
    ";"
    /* Parked runs (version 3, hf_park.h): the next due time, and the runs
     * a signal to a wait_for path may resume. */
    "CREATE INDEX IF NOT EXISTS runs_wake ON runs(wake_at)"
    " WHERE status = 'waiting';"
    "CREATE INDEX IF NOT EXISTS runs_wait_path ON runs(wait_path, id)"
    " WHERE status = 'waiting';"
    "CREATE INDEX IF NOT EXISTS runs_pending ON runs(status)"
    " WHERE status IN ('queued','running');"
    /* The disk backlog (hf_store_load_backlog): unclaimed runs, in rowid
     * order. */
    "CREATE INDEX IF NOT EXISTS runs_unclaimed ON runs(claimed)"
    " WHERE claimed = 0;"
    "CREATE TABLE IF NOT EXISTS steps("
    " sid INTEGER PRIMARY KEY, run INTEGER NOT NULL, prev INTEGER,"
    " idx INTEGER NOT NULL, step_id TEXT NOT NULL,"
    " status TEXT NOT NULL, output TEXT, error TEXT, logs TEXT,"
    " attempts INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER);"
    "CREATE TABLE IF NOT EXISTS dedupe("
    " workflow TEXT NOT NULL, key TEXT NOT NULL, event_id TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, PRIMARY KEY(workflow, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS deliveries("
    " id TEXT PRIMARY KEY, run_id TEXT, step_id TEXT, url TEXT NOT NULL,"
    " payload BLOB NOT NULL, headers TEXT, secret TEXT,"
    " status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER NOT NULL, backoff_ms INTEGER NOT NULL,"
    " next_at INTEGER NOT NULL, last_status INTEGER, last_error TEXT,"
    " created_at INTEGER NOT NULL, updated_at INTEGER,"
    " timeout_ms INTEGER NOT NULL DEFAULT 30000);"
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(next_at)"
    " WHERE status = 'pending';"
    /* The list, newest first (hf_sqlite_deliveries_json). */
    "CREATE INDEX IF NOT EXISTS deliveries_created ON"
    " deliveries(created_at);"
    /* Every workflow version a run was stored with: the YAML and the
     * `script:` files ({"name": "code"}), so that a run resumed after a
     * restart keeps the version it started with (hf_store_load_pending).
     * yaml NULL: a version known by its hash only (not stored: its scripts
     * were not UTF-8). */
    "CREATE TABLE IF NOT EXISTS workflow_versions("
    " vid INTEGER PRIMARY KEY, version TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL, file TEXT, yaml TEXT, scripts TEXT,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS delivery_attempts("
    " delivery_id TEXT NOT NULL, n INTEGER NOT NULL, at INTEGER NOT NULL,"
    " status INTEGER, error TEXT, duration_ms INTEGER,"
    " PRIMARY KEY(delivery_id, n)) WITHOUT ROWID;"
    /* The earlier attempts of a retried run (hf_sqlite_retry_run), each
     * as it ended: its steps as the JSON array that RUN's "steps" is. */
    "CREATE TABLE IF NOT EXISTS run_history("
    " run_id TEXT NOT NULL, attempt INTEGER NOT NULL, status TEXT NOT NULL,"
    " error TEXT, steps TEXT, finished_at INTEGER,"
    " PRIMARY KEY(run_id, attempt)) WITHOUT ROWID;";

/* Version 1 to 2, inside one transaction, before schema_sql (which then adds
 * the indexes): events, runs and workflow_versions copied into their new
 * shape (hf_band: the band of an id, hf_sqlite_band; rows of one millisecond
 * numbered in the order they were inserted), the old tables dropped. */
static const char migrate_1_2_sql[] =
    "CREATE TABLE events_v2("
    " rid INTEGER PRIMARY KEY, id TEXT NOT NULL, path TEXT NOT NULL,"
    " method TEXT NOT NULL, query TEXT, headers TEXT NOT NULL,"
    " body BLOB NOT NULL, received_at INTEGER NOT NULL, skipped TEXT);"
    "INSERT INTO events_v2(rid, id, path, method, query, headers, body,"
    " received_at, skipped) SELECT hf_band(id) + row_number() OVER"
    " (PARTITION BY hf_band(id) ORDER BY rowid) - 1, id, path, method,"
    " query, headers, body, received_at, skipped FROM events;"
    "CREATE TABLE workflow_versions_v2("
    " vid INTEGER PRIMARY KEY, version TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL, file TEXT, yaml TEXT, scripts TEXT,"
    " created_at INTEGER NOT NULL);"
    "INSERT INTO workflow_versions_v2(version, name, file, yaml, scripts,"
    " created_at) SELECT version, name, file, yaml, scripts, created_at"
    " FROM workflow_versions ORDER BY created_at, version;"
    "INSERT OR IGNORE INTO workflow_versions_v2(version, name, created_at)"
    " SELECT version, min(workflow), 0 FROM runs WHERE version IS NOT NULL"
    " GROUP BY version;"
    "CREATE TABLE runs_v2("
    " rid INTEGER PRIMARY KEY, id TEXT NOT NULL, event INTEGER NOT NULL,"
    " workflow TEXT NOT NULL, vid INTEGER, status TEXT NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,"
    " error TEXT, next_step INTEGER NOT NULL DEFAULT 0,"
    " step_attempt INTEGER NOT NULL DEFAULT 1, due_at INTEGER NOT NULL"
    " DEFAULT 0, lane TEXT, claimed INTEGER NOT NULL DEFAULT 1);"
    "INSERT INTO runs_v2(rid, id, event, workflow, vid, status, attempt,"
    " created_at, started_at, finished_at, error, next_step, step_attempt,"
    " due_at, lane, claimed) SELECT hf_band(r.id) + row_number() OVER"
    " (PARTITION BY hf_band(r.id) ORDER BY r.rowid) - 1, r.id,"
    " COALESCE((SELECT e.rid FROM events_v2 e WHERE e.rid BETWEEN"
    " hf_band(r.event_id) AND hf_band(r.event_id) + 32767 AND"
    " e.id = r.event_id), 0), r.workflow,"
    " (SELECT v.vid FROM workflow_versions_v2 v WHERE v.version ="
    " r.version), r.status, r.attempt, r.created_at, r.started_at,"
    " r.finished_at, r.error, r.next_step, r.step_attempt, r.due_at,"
    " r.lane, r.claimed FROM runs r;"
    "DROP TABLE runs;"
    "DROP TABLE events;"
    "DROP TABLE workflow_versions;"
    "ALTER TABLE events_v2 RENAME TO events;"
    "ALTER TABLE runs_v2 RENAME TO runs;"
    "ALTER TABLE workflow_versions_v2 RENAME TO workflow_versions;";

/* Version 2 to 3 (after 1 to 2 when need be): the parked run's columns
 * (hf_park.h): when its wait ends (or it last woke), RUN's "waiting" as JSON,
 * a wait_for's path. schema_sql then adds their indexes. */
static const char migrate_2_3_sql[] =
    "ALTER TABLE runs ADD COLUMN wake_at INTEGER;"
    "ALTER TABLE runs ADD COLUMN waiting TEXT;"
    "ALTER TABLE runs ADD COLUMN wait_path TEXT;";

/* Version 3 to 4 (after the others when need be): a body stored as an LZ4
 * block (store_sqlite_pack.c) has its size as it came in body_size; the rows
 * of before keep NULL there, their bodies as they came. */
static const char migrate_3_4_sql[] =
    "ALTER TABLE events ADD COLUMN body_size INTEGER;";

/* Version 4 to 5: runs_late for runs_event (schema_sql creates it), and
 * runs.spare. */
static const char migrate_4_5_sql[] = "DROP INDEX IF EXISTS runs_event;"
				      "ALTER TABLE runs ADD COLUMN spare BLOB;";

/* Version 5 to 6: the steps' chains. Each run's rows are copied in idx
 * order, numbered across the table so that a run's are consecutive: prev is
 * the row before when it is the same run's; runs.steps is its last. Rows of
 * runs no longer there go. */
static const char migrate_5_6_sql[] =
    "CREATE TABLE steps_v6("
    " sid INTEGER PRIMARY KEY, run INTEGER NOT NULL, prev INTEGER,"
    " idx INTEGER NOT NULL, step_id TEXT NOT NULL,"
    " status TEXT NOT NULL, output TEXT, error TEXT, logs TEXT,"
    " attempts INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER);"
    "INSERT INTO steps_v6(sid, run, prev, idx, step_id, status, output,"
    " error, logs, attempts, started_at, finished_at) SELECT"
    " row_number() OVER w, r.rid, CASE WHEN row_number() OVER (PARTITION"
    " BY r.rid ORDER BY s.idx) > 1 THEN row_number() OVER w - 1 END,"
    " s.idx, s.step_id, s.status, s.output, s.error, s.logs, s.attempts,"
    " s.started_at, s.finished_at FROM steps s JOIN runs r ON r.rid"
    " BETWEEN hf_band(s.run_id) AND hf_band(s.run_id) + 32767 AND"
    " r.id = s.run_id WINDOW w AS (ORDER BY r.rid, s.idx);"
    "ALTER TABLE runs ADD COLUMN steps INTEGER;"
    "UPDATE runs SET steps = m.sid FROM (SELECT run, max(sid) AS sid FROM"
    " steps_v6 GROUP BY run) m WHERE runs.rid = m.run;"
    "DROP TABLE steps;"
    "ALTER TABLE steps_v6 RENAME TO steps;";

/* hf_band(id) in SQL: the first rid of id's band (migrate_1_2_sql,
 * migrate_5_6_sql). */
static void band_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	sqlite3_result_int64(
	    ctx, hf_sqlite_band((const char *)sqlite3_value_text(argv[0])));
}

/* The file's schema version: 0 for a new file. */
static int schema_version(sqlite3 *db)
{
	int v = 0;
	sqlite3_stmt *st = hf_sqlite_stmt(
	    db, "SELECT value FROM meta WHERE key = 'schema_version'", "");
	if (st && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (v == 0 && hf_sqlite_exec(db, "SELECT 1 FROM events LIMIT 0", "") ==
			  SQLITE_DONE)
		v = 1; /* the earliest files wrote no version */
	return v;
}

/* Creates the schema, or migrates an older file to it: one transaction on
 * the writer's connection, before the writer thread starts. */
int hf_sqlite_migrate(struct hf_sqlite_store *q, struct hf_error *err)
{
	char *msg = NULL;
	char sql[128];
	int from = schema_version(q->wdb);
	if (from > SCHEMA_VERSION) {
		hf_error_set(err, q->path, 0, 0,
			     "schema version %d is newer than this hookflow's "
			     "(%d): start the version that made it",
			     from, SCHEMA_VERSION);
		return -1;
	}
	if (exec(q->wdb, "BEGIN IMMEDIATE") < 0) {
		hf_error_set(err, q->path, 0, 0, "cannot open schema: %s",
			     sqlite3_errmsg(q->wdb));
		return -1;
	}
	/* Added after version 1 was first written: older files lack it. */
	if (from == 1 &&
	    exec(q->wdb, "SELECT timeout_ms FROM deliveries LIMIT 0") < 0)
		exec(q->wdb, "ALTER TABLE deliveries ADD COLUMN timeout_ms"
			     " INTEGER NOT NULL DEFAULT 30000");
	int rc = SQLITE_OK;
	if (from >= 1 && from < 6)
		sqlite3_create_function(q->wdb, "hf_band", 1,
					SQLITE_UTF8 | SQLITE_DETERMINISTIC,
					NULL, band_fn, NULL, NULL);
	if (from == 1)
		rc = sqlite3_exec(q->wdb, migrate_1_2_sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK && from >= 1 && from < 3)
		rc = sqlite3_exec(q->wdb, migrate_2_3_sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK && from >= 1 && from < 4)
		rc = sqlite3_exec(q->wdb, migrate_3_4_sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK && from >= 1 && from < 5)
		rc = sqlite3_exec(q->wdb, migrate_4_5_sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK && from >= 1 && from < 6)
		rc = sqlite3_exec(q->wdb, migrate_5_6_sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(q->wdb, schema_sql, NULL, NULL, &msg);
	snprintf(sql, sizeof sql,
		 "INSERT OR REPLACE INTO meta(key, value) VALUES"
		 " ('schema_version', '%d')",
		 SCHEMA_VERSION);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(q->wdb, sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(q->wdb, "COMMIT", NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		const char *why = msg ? msg : sqlite3_errmsg(q->wdb);
		if (from && from < SCHEMA_VERSION)
			hf_error_set(err, q->path, 0, 0,
				     "cannot migrate the schema from version "
				     "%d: %s",
				     from, why);
		else
			hf_error_set(err, q->path, 0, 0,
				     "cannot create schema: %s", why);
		sqlite3_free(msg);
		exec(q->wdb, "ROLLBACK");
		return -1;
	}
	if (from && from < SCHEMA_VERSION)
		hf_log(HF_LOG_INFO,
		       "%s: state database migrated from schema version %d "
		       "to %d",
		       q->path, from, SCHEMA_VERSION);
	return 0;
}
