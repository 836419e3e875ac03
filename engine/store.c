/* store.c - the state database: schema, the writer thread with group commit,
 * and the read queries behind the admin API and the CLI.
 *
 * Threading: one writer thread owns the write connection and every prepared
 * statement on it; hf_store_submit() only appends to a queue. Readers borrow a
 * connection from a small pool (WAL lets them read during a write). Without a
 * writer thread (the CLI), writes are applied synchronously under a mutex.
 *
 * This is the only file that includes <sqlite3.h> for the state database. */
#include "hf_body.h"
#include "hf_limits.h"
#include "hf_store.h"
#include "hf_verify.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 1

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS events("
    " id TEXT PRIMARY KEY, path TEXT NOT NULL, method TEXT NOT NULL,"
    " query TEXT, headers TEXT NOT NULL, body BLOB NOT NULL,"
    " received_at INTEGER NOT NULL, skipped TEXT);"
    "CREATE TABLE IF NOT EXISTS runs("
    " id TEXT PRIMARY KEY, event_id TEXT NOT NULL, workflow TEXT NOT NULL,"
    " version TEXT, status TEXT NOT NULL, attempt INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,"
    " error TEXT, next_step INTEGER NOT NULL DEFAULT 0,"
    " step_attempt INTEGER NOT NULL DEFAULT 1, due_at INTEGER NOT NULL"
    " DEFAULT 0, lane TEXT, claimed INTEGER NOT NULL DEFAULT 1);"
    "CREATE INDEX IF NOT EXISTS runs_event ON runs(event_id);"
    "CREATE INDEX IF NOT EXISTS runs_workflow ON runs(workflow, id);"
    "CREATE INDEX IF NOT EXISTS runs_pending ON runs(status)"
    " WHERE status IN ('queued','running');"
    "CREATE TABLE IF NOT EXISTS steps("
    " run_id TEXT NOT NULL, idx INTEGER NOT NULL, step_id TEXT NOT NULL,"
    " status TEXT NOT NULL, output TEXT, error TEXT, logs TEXT,"
    " attempts INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,"
    " PRIMARY KEY(run_id, idx)) WITHOUT ROWID;"
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
    /* Every workflow version a run was stored with: the YAML and the
     * `script:` files ({"name": "code"}), so that a run resumed after a
     * restart keeps the version it started with (hf_store_load_pending). */
    "CREATE TABLE IF NOT EXISTS workflow_versions("
    " version TEXT PRIMARY KEY, name TEXT NOT NULL, file TEXT,"
    " yaml TEXT NOT NULL, scripts TEXT, created_at INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS delivery_attempts("
    " delivery_id TEXT NOT NULL, n INTEGER NOT NULL, at INTEGER NOT NULL,"
    " status INTEGER, error TEXT, duration_ms INTEGER,"
    " PRIMARY KEY(delivery_id, n)) WITHOUT ROWID;";

enum stmt_id {
	ST_INSERT_EVENT,
	ST_INSERT_RUN,
	ST_DEDUPE_INSERT,
	ST_DEDUPE_GET,
	ST_RUN_STARTED,
	ST_UPSERT_STEP,
	ST_UPDATE_RUN,
	ST_INSERT_DELIVERY,
	ST_DELIVERY_ATTEMPT,
	ST_DELIVERY_UPDATE,
	ST_INSERT_VERSION,
	ST_COUNT,
};

static const char *stmt_sql[ST_COUNT] = {
    [ST_INSERT_EVENT] = "INSERT INTO events(id, path, method, query, headers,"
			" body, received_at, skipped)"
			" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_INSERT_RUN] = "INSERT INTO runs(id, event_id, workflow, version,"
		      " status, attempt, created_at, next_step, step_attempt,"
		      " due_at, lane, claimed)"
		      " VALUES(?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?8, ?9,"
		      " ?10, ?11)",
    [ST_DEDUPE_INSERT] = "INSERT OR IGNORE INTO dedupe(workflow, key,"
			 " event_id, created_at) VALUES(?1, ?2, ?3, ?4)",
    [ST_DEDUPE_GET] = "SELECT event_id FROM dedupe WHERE workflow = ?1 AND"
		      " key = ?2",
    [ST_RUN_STARTED] = "UPDATE runs SET status = 'running', started_at ="
		       " ?2 WHERE id = ?1",
    [ST_UPSERT_STEP] = "INSERT OR REPLACE INTO steps(run_id, idx, step_id,"
		       " status, output, error, logs, attempts, started_at,"
		       " finished_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
		       " ?9, ?10)",
    [ST_UPDATE_RUN] = "UPDATE runs SET status = ?2, next_step = ?3,"
		      " step_attempt = ?4, due_at = ?5, error = ?6,"
		      " finished_at = ?7, started_at = COALESCE(started_at,"
		      " ?8) WHERE id = ?1",
    /* OR IGNORE: an emit's id is an idempotency key (a step run again
     * after a crash emits the same id: it is sent once). */
    [ST_INSERT_DELIVERY] = "INSERT OR IGNORE INTO deliveries(id, run_id,"
			   " step_id, url, payload, headers, secret, status,"
			   " attempts, max_attempts, backoff_ms, next_at,"
			   " created_at, updated_at, timeout_ms) VALUES(?1,"
			   " ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?8, ?9,"
			   " ?10, ?10, ?10, ?11)",
    [ST_DELIVERY_ATTEMPT] = "INSERT OR REPLACE INTO delivery_attempts("
			    "delivery_id, n, at, status, error,"
			    " duration_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_INSERT_VERSION] = "INSERT OR IGNORE INTO workflow_versions(version,"
			  " name, file, yaml, scripts, created_at)"
			  " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    /* A retry asked for (API, CLI) while this attempt was in flight has
     * updated the row after the attempt began (?8): the attempt is counted,
     * but unless it delivered, the retry's status and due time stand. */
    [ST_DELIVERY_UPDATE] = "UPDATE deliveries SET attempts = ?3,"
			   " last_status = ?5, last_error = ?6,"
			   " status = CASE WHEN ?2 = 'delivered' OR updated_at"
			   " <= ?8 THEN ?2 ELSE status END,"
			   " next_at = CASE WHEN ?2 = 'delivered' OR updated_at"
			   " <= ?8 THEN ?4 ELSE next_at END,"
			   " updated_at = ?7 WHERE id = ?1",
};

#define READER_POOL 8
/* Workflow versions known to be in workflow_versions (writer's, under wlock).
 */
#define VERSION_CACHE 32

struct hf_store {
	char *path;
	bool sync_full;
	sqlite3 *wdb; /* the writer's connection */
	sqlite3_stmt *stmts[ST_COUNT];

	pthread_mutex_t lock; /* guards the queue */
	/* Guards wdb: the connection is opened NOMUTEX, so the writer thread
	 * and the few callers that use wdb directly (hf_store_changed, the
	 * claim in hf_store_load_pending, hf_store_retry_run) must never use it
	 * at the same time. */
	pthread_mutex_t wlock;
	pthread_cond_t cond;
	struct hf_write *head, *tail;
	bool stopping;
	bool threaded;
	pthread_t thread;

	pthread_mutex_t pool_lock;
	sqlite3 *readers[READER_POOL];
	int nreaders;
	int data_version;

	struct hf_store_stats stats;

	char versions[VERSION_CACHE][72];
	unsigned nversions; /* ring: next slot = nversions % VERSION_CACHE */
	/* The previous server did not stop cleanly (read at open). */
	bool unclean;
	/* This one did: every step finished (set by hf_store_set_clean_stop).
	 */
	bool clean_stop;
};

void hf_store_set_clean_stop(struct hf_store *s)
{
	s->clean_stop = true;
}

/* --- connections --- */

static sqlite3 *open_conn(const char *path, bool sync_full, bool readonly,
			  struct hf_error *err)
{
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_NOMUTEX |
		    (readonly ? SQLITE_OPEN_READONLY
			      : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	if (strcmp(path, ":memory:") == 0)
		flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			SQLITE_OPEN_SHAREDCACHE | SQLITE_OPEN_URI;
	const char *name =
	    strcmp(path, ":memory:") == 0 ? "file:hfstate?mode=memory" : path;
	if (sqlite3_open_v2(name, &db, flags, NULL) != SQLITE_OK) {
		hf_error_set(err, path, 0, 0, "cannot open database: %s",
			     db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	char sql[256];
	snprintf(sql, sizeof sql,
		 "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
		 " PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;",
		 sync_full ? "FULL" : "NORMAL");
	char *msg = NULL;
	if (!readonly && sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		hf_error_set(err, path, 0, 0, "cannot set up database: %s",
			     msg);
		sqlite3_free(msg);
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

static sqlite3 *reader_take(struct hf_store *s)
{
	sqlite3 *db = NULL;
	pthread_mutex_lock(&s->pool_lock);
	if (s->nreaders > 0)
		db = s->readers[--s->nreaders];
	pthread_mutex_unlock(&s->pool_lock);
	if (!db)
		db = open_conn(s->path, s->sync_full,
			       strcmp(s->path, ":memory:") != 0, NULL);
	return db;
}

static void reader_give(struct hf_store *s, sqlite3 *db)
{
	if (!db)
		return;
	pthread_mutex_lock(&s->pool_lock);
	if (s->nreaders < READER_POOL) {
		s->readers[s->nreaders++] = db;
		db = NULL;
	}
	pthread_mutex_unlock(&s->pool_lock);
	sqlite3_close(db);
}

/* --- binding helpers --- */

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* Binds v as compact JSON text (NULL binds SQL NULL). */
static void bind_json(sqlite3_stmt *st, int i, const json_t *v)
{
	if (!v) {
		sqlite3_bind_null(st, i);
		return;
	}
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (s)
		sqlite3_bind_text(st, i, s, -1, free);
	else
		sqlite3_bind_null(st, i);
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

/* --- applying writes (writer connection, inside a transaction) --- */

/* Stores wf's text under its version once (the cache spares the lookup and the
 * copy of the YAML for every run). A version whose scripts are not UTF-8 is
 * not stored: a run of it resumes with the workflow of the same name. */
static int store_version(struct hf_store *s, const struct hf_workflow *wf)
{
	if (!wf->version || !wf->source)
		return 0;
	for (unsigned i = 0; i < VERSION_CACHE && i < s->nversions; i++)
		if (strcmp(s->versions[i], wf->version) == 0)
			return 0;
	json_t *scripts = json_object();
	for (size_t i = 0; i < wf->nsteps; i++) {
		const struct hf_step *step = &wf->steps[i];
		json_t *code;
		if (!step->script)
			continue;
		code = json_stringn(step->code, strlen(step->code));
		if (!code) {
			json_decref(scripts);
			return 0;
		}
		json_object_set_new(scripts, step->script, code);
	}
	sqlite3_stmt *st = s->stmts[ST_INSERT_VERSION];
	bind_text(st, 1, wf->version);
	bind_text(st, 2, wf->name);
	bind_text(st, 3, wf->file);
	sqlite3_bind_text(st, 4, wf->source, (int)wf->source_len,
			  SQLITE_STATIC);
	bind_json(st, 5, scripts);
	sqlite3_bind_int64(st, 6, hf_now_ms());
	json_decref(scripts);
	if (step_done(st) < 0)
		return -1;
	/* Cached before the commit: a rolled-back batch forgets the row, so
	 * the cache is cleared then (apply_batch). */
	snprintf(s->versions[s->nversions++ % VERSION_CACHE],
		 sizeof s->versions[0], "%s", wf->version);
	return 0;
}

static int insert_run(struct hf_store *s, struct hf_run *run, bool claimed)
{
	if (store_version(s, run->wf) < 0)
		return -1;
	sqlite3_stmt *st = s->stmts[ST_INSERT_RUN];
	bind_text(st, 1, run->id);
	bind_text(st, 2, run->event->id);
	bind_text(st, 3, run->wf->name);
	bind_text(st, 4, run->wf->version);
	sqlite3_bind_int(st, 5, run->attempt);
	sqlite3_bind_int64(st, 6, run->created_at);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)run->next_step);
	sqlite3_bind_int(st, 8, run->step_attempt);
	sqlite3_bind_int64(st, 9, run->due_at);
	bind_text(st, 10, run->lane);
	sqlite3_bind_int(st, 11, claimed);
	return step_done(st);
}

/* Returns 1 when key was already seen for the workflow (dup_of filled), 0 when
 * it is new (now recorded), -1 on error. */
static int dedupe_check(struct hf_store *s, const struct hf_run *run,
			char dup_of[HF_ID_SIZE])
{
	sqlite3_stmt *st = s->stmts[ST_DEDUPE_INSERT];
	bind_text(st, 1, run->wf->name);
	bind_text(st, 2, run->dedupe_key);
	bind_text(st, 3, run->event->id);
	sqlite3_bind_int64(st, 4, run->event->received_at);
	if (step_done(st) < 0)
		return -1;
	if (sqlite3_changes(s->wdb) > 0)
		return 0;
	st = s->stmts[ST_DEDUPE_GET];
	bind_text(st, 1, run->wf->name);
	bind_text(st, 2, run->dedupe_key);
	int rc = -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(dup_of, HF_ID_SIZE, "%s",
			 (const char *)sqlite3_column_text(st, 0));
		rc = 1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static int apply_ingest(struct hf_store *s, struct hf_write *w)
{
	struct hf_event *ev = w->event;
	size_t kept = 0, dups = 0;
	/* A batch that failed is applied again write by write: take back the
	 * skip reasons the rolled-back attempt added. */
	if (!w->skip_base_set) {
		w->skip_base = json_array_size(ev->skipped);
		w->skip_base_set = true;
	}
	while (json_array_size(ev->skipped) > w->skip_base)
		json_array_remove(ev->skipped,
				  json_array_size(ev->skipped) - 1);
	w->dup_of[0] = '\0';
	for (size_t i = 0; i < w->nruns; i++) {
		w->dropped[i] = false;
		if (!w->runs[i]->dedupe_key) {
			kept++;
			continue;
		}
		char dup[HF_ID_SIZE];
		int rc = dedupe_check(s, w->runs[i], dup);
		if (rc < 0)
			return -1;
		if (rc == 1) {
			w->dropped[i] = true;
			dups++;
			memcpy(w->dup_of, dup, HF_ID_SIZE);
			json_t *skip = json_object();
			json_object_set_new(skip, "workflow",
					    json_string(w->runs[i]->wf->name));
			json_object_set_new(
			    skip, "reason",
			    json_sprintf("duplicate of event %s", dup));
			json_array_append_new(ev->skipped, skip);
		} else {
			kept++;
		}
	}
	if (kept == 0 && dups > 0)
		return 0; /* a pure duplicate: nothing to store */
	w->dup_of[0] = '\0';

	sqlite3_stmt *st = s->stmts[ST_INSERT_EVENT];
	bind_text(st, 1, ev->id);
	bind_text(st, 2, ev->path);
	bind_text(st, 3, ev->method);
	if (ev->query_text)
		sqlite3_bind_text(st, 4, ev->query_text, -1, SQLITE_STATIC);
	else
		bind_json(st, 4, ev->query);
	if (ev->headers_text)
		sqlite3_bind_text(st, 5, ev->headers_text, -1, SQLITE_STATIC);
	else
		bind_json(st, 5, ev->headers);
	sqlite3_bind_blob(st, 6, ev->body ? ev->body : "", (int)ev->body_len,
			  SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, ev->received_at);
	bind_json(st, 8, ev->skipped);
	if (step_done(st) < 0)
		return -1;
	for (size_t i = 0; i < w->nruns; i++)
		if (!w->dropped[i] && insert_run(s, w->runs[i], true) < 0)
			return -1;
	return 0;
}

static int apply_runs(struct hf_store *s, struct hf_write *w)
{
	for (size_t i = 0; i < w->nruns; i++)
		if (insert_run(s, w->runs[i], !w->unclaimed) < 0)
			return -1;
	return 0;
}

static int apply_run_started(struct hf_store *s, struct hf_write *w)
{
	/* The step already finished: its write (behind this one) records the
	 * start too. Only long steps show up as "running" in between. */
	if (atomic_load(&w->run->step_pending))
		return 0;
	sqlite3_stmt *st = s->stmts[ST_RUN_STARTED];
	bind_text(st, 1, w->run->id);
	sqlite3_bind_int64(st, 2, w->run->started_at);
	return step_done(st);
}

static int insert_emit(struct hf_store *s, const struct hf_run *run,
		       const char *step_id, const struct hf_emit *e)
{
	sqlite3_stmt *st = s->stmts[ST_INSERT_DELIVERY];
	bind_text(st, 1, e->id);
	bind_text(st, 2, run->id);
	bind_text(st, 3, step_id);
	bind_text(st, 4, e->url);
	sqlite3_bind_blob(st, 5, e->payload, (int)strlen(e->payload),
			  SQLITE_STATIC);
	bind_json(st, 6, e->headers);
	bind_text(st, 7, e->secret);
	sqlite3_bind_int(st, 8, e->attempts);
	sqlite3_bind_int64(st, 9, e->backoff_ms);
	sqlite3_bind_int64(st, 10, hf_now_ms());
	sqlite3_bind_int64(
	    st, 11, e->timeout_ms > 0 ? e->timeout_ms : HF_DELIVERY_TIMEOUT_MS);
	return step_done(st);
}

static int apply_step(struct hf_store *s, struct hf_write *w)
{
	struct hf_run *run = w->run;
	struct hf_step_result *res = w->result;
	sqlite3_stmt *st;
	if (!res) /* the run ends without a step (timeout, workflow gone) */
		goto run;
	const struct hf_step *step = &run->wf->steps[w->step_index];
	st = s->stmts[ST_UPSERT_STEP];
	bind_text(st, 1, run->id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)w->step_index);
	bind_text(st, 3, step->id);
	bind_text(st, 4, hf_step_status_name(res->status));
	if (res->output_text)
		sqlite3_bind_text(st, 5, res->output_text, -1, SQLITE_STATIC);
	else
		bind_json(st, 5, res->output);
	bind_text(st, 6, res->error);
	if (res->logs_text)
		sqlite3_bind_text(st, 7, res->logs_text, -1, SQLITE_STATIC);
	else
		bind_json(st, 7, res->logs);
	sqlite3_bind_int(st, 8, w->step_attempts);
	sqlite3_bind_int64(st, 9, res->started_at);
	sqlite3_bind_int64(st, 10, res->finished_at);
	if (step_done(st) < 0)
		return -1;
	if (res->status == HF_STEP_SUCCEEDED)
		for (size_t i = 0; i < res->nemits; i++)
			if (insert_emit(s, run, step->id, &res->emits[i]) < 0)
				return -1;
run:
	st = s->stmts[ST_UPDATE_RUN];
	bind_text(st, 1, run->id);
	bind_text(st, 2, hf_run_status_name(run->status));
	sqlite3_bind_int64(st, 3, (sqlite3_int64)run->next_step);
	sqlite3_bind_int(st, 4, run->step_attempt);
	sqlite3_bind_int64(st, 5, run->due_at);
	bind_text(st, 6, run->error);
	if (run->status == HF_RUN_SUCCEEDED || run->status == HF_RUN_FAILED)
		sqlite3_bind_int64(st, 7, res ? res->finished_at : hf_now_ms());
	else
		sqlite3_bind_null(st, 7);
	if (run->started_at)
		sqlite3_bind_int64(st, 8, run->started_at);
	else
		sqlite3_bind_null(st, 8);
	return step_done(st);
}

static int apply_delivery(struct hf_store *s, struct hf_write *w)
{
	sqlite3_stmt *st = s->stmts[ST_DELIVERY_ATTEMPT];
	bind_text(st, 1, w->delivery_id);
	sqlite3_bind_int(st, 2, w->attempts);
	sqlite3_bind_int64(st, 3, w->attempt_at);
	if (w->http_status)
		sqlite3_bind_int(st, 4, w->http_status);
	else
		sqlite3_bind_null(st, 4);
	bind_text(st, 5, w->delivery_error);
	sqlite3_bind_int64(st, 6, w->duration_ms);
	if (step_done(st) < 0)
		return -1;
	st = s->stmts[ST_DELIVERY_UPDATE];
	bind_text(st, 1, w->delivery_id);
	bind_text(st, 2, w->delivery_status);
	sqlite3_bind_int(st, 3, w->attempts);
	sqlite3_bind_int64(st, 4, w->next_at);
	if (w->http_status)
		sqlite3_bind_int(st, 5, w->http_status);
	else
		sqlite3_bind_null(st, 5);
	bind_text(st, 6, w->delivery_error);
	sqlite3_bind_int64(st, 7, hf_now_ms());
	sqlite3_bind_int64(st, 8, w->attempt_at);
	return step_done(st);
}

static int apply(struct hf_store *s, struct hf_write *w)
{
	switch (w->kind) {
	case HF_W_INGEST:
		return apply_ingest(s, w);
	case HF_W_RUNS:
		return apply_runs(s, w);
	case HF_W_RUN_STARTED:
		return apply_run_started(s, w);
	case HF_W_STEP:
		return apply_step(s, w);
	case HF_W_DELIVERY:
		return apply_delivery(s, w);
	case HF_W_CALL:
		return w->call(s, w->call_arg);
	}
	return -1;
}

static int exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Applies a batch in one transaction. When anything fails, the batch is rolled
 * back and each write is retried in a transaction of its own, so one bad write
 * fails alone. */
static void apply_batch(struct hf_store *s, struct hf_write *batch, size_t n)
{
	int rc = exec(s->wdb, "BEGIN IMMEDIATE");
	for (struct hf_write *w = batch; rc == 0 && w; w = w->next)
		rc = apply(s, w);
	if (rc == 0)
		rc = exec(s->wdb, "COMMIT");
	if (rc == 0) {
		for (struct hf_write *w = batch; w; w = w->next)
			w->rc = 0;
		s->stats.commits++;
		s->stats.writes += n;
		return;
	}
	/* A maintenance call (HF_W_CALL) can fail without an SQLite error. */
	hf_log(HF_LOG_WARN,
	       "state database: batch failed (%s); applying its writes one by "
	       "one",
	       sqlite3_errcode(s->wdb) != SQLITE_OK ? sqlite3_errmsg(s->wdb)
						    : "a write refused");
	exec(s->wdb, "ROLLBACK");
	s->nversions = 0; /* rows the rollback removed may be cached */
	for (struct hf_write *w = batch; w; w = w->next) {
		w->rc = exec(s->wdb, "BEGIN IMMEDIATE");
		if (w->rc == 0)
			w->rc = apply(s, w);
		if (w->rc == 0)
			w->rc = exec(s->wdb, "COMMIT");
		if (w->rc != 0) {
			hf_log(HF_LOG_ERROR, "state database: write failed: %s",
			       sqlite3_errmsg(s->wdb));
			exec(s->wdb, "ROLLBACK");
			s->nversions = 0;
			s->stats.write_errors++;
		} else {
			s->stats.commits++;
			s->stats.writes++;
		}
	}
}

static void finish_batch(struct hf_write *batch)
{
	while (batch) {
		struct hf_write *next = batch->next;
		batch->next = NULL;
		if (batch->done)
			batch->done(batch);
		batch = next;
	}
}

static void *writer_main(void *arg)
{
	struct hf_store *s = arg;
	/* Named for top -H, perf and gdb. */
	pthread_setname_np(pthread_self(), "hf-writer");
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->head && !s->stopping)
			pthread_cond_wait(&s->cond, &s->lock);
		if (!s->head && s->stopping)
			break;
		/* Take up to HF_WRITER_BATCH waiting writes. */
		struct hf_write *batch = s->head, *last = s->head;
		size_t n = 1;
		while (last->next && n < HF_WRITER_BATCH) {
			last = last->next;
			n++;
		}
		s->head = last->next;
		if (!s->head)
			s->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&s->lock);

		pthread_mutex_lock(&s->wlock);
		apply_batch(s, batch, n);
		pthread_mutex_unlock(&s->wlock);
		finish_batch(batch);

		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

void hf_store_submit(struct hf_store *s, struct hf_write *w)
{
	w->next = NULL;
	w->rc = 0;
	if (!s->threaded) {
		pthread_mutex_lock(&s->wlock);
		apply_batch(s, w, 1);
		pthread_mutex_unlock(&s->wlock);
		finish_batch(w);
		return;
	}
	pthread_mutex_lock(&s->lock);
	if (s->tail)
		s->tail->next = w;
	else
		s->head = w;
	s->tail = w;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

struct hf_store *hf_store_open(const char *path, bool sync_full,
			       bool start_writer, struct hf_error *err)
{
	struct hf_store *s = hf_xcalloc(1, sizeof *s);
	s->path = hf_xstrdup(path);
	s->sync_full = sync_full;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->wlock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_mutex_init(&s->pool_lock, NULL);
	s->wdb = open_conn(path, sync_full, false, err);
	if (!s->wdb)
		goto fail;
	char *msg = NULL;
	if (sqlite3_exec(s->wdb, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
		hf_error_set(err, path, 0, 0, "cannot create schema: %s", msg);
		sqlite3_free(msg);
		goto fail;
	}
	exec(s->wdb, "INSERT OR IGNORE INTO meta(key, value) VALUES"
		     " ('schema_version', '1')");
	/* Added after version 1 was first written: older files lack it. */
	if (exec(s->wdb, "SELECT timeout_ms FROM deliveries LIMIT 0") < 0)
		exec(s->wdb, "ALTER TABLE deliveries ADD COLUMN timeout_ms"
			     " INTEGER NOT NULL DEFAULT 30000");
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->wdb, stmt_sql[i], -1,
				       SQLITE_PREPARE_PERSISTENT, &s->stmts[i],
				       NULL) != SQLITE_OK) {
			hf_error_set(err, path, 0, 0, "cannot prepare: %s",
				     sqlite3_errmsg(s->wdb));
			goto fail;
		}
	}
	if (start_writer) {
		/* The server owns the database now: remember whether the last
		 * one stopped cleanly (after a crash, any step may have been in
		 * flight), and that this one has not yet. */
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(s->wdb,
				       "SELECT value FROM meta WHERE key ="
				       " 'clean_stop'",
				       -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			s->unclean = sqlite3_column_int(st, 0) == 0;
		sqlite3_finalize(st);
		exec(s->wdb, "INSERT OR REPLACE INTO meta(key, value) VALUES"
			     " ('clean_stop', 0)");
		s->threaded = true;
		if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
			s->threaded = false;
			hf_error_set(err, path, 0, 0,
				     "cannot start the writer thread");
			goto fail;
		}
	}
	return s;
fail:
	hf_store_close(s);
	return NULL;
}

void hf_store_close(struct hf_store *s)
{
	if (!s)
		return;
	if (s->threaded) {
		pthread_mutex_lock(&s->lock);
		s->stopping = true;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		if (s->clean_stop)
			exec(s->wdb, "INSERT OR REPLACE INTO meta(key, value)"
				     " VALUES ('clean_stop', 1)");
	}
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmts[i]);
	for (int i = 0; i < s->nreaders; i++)
		sqlite3_close(s->readers[i]);
	sqlite3_close(s->wdb);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->wlock);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->pool_lock);
	free(s->path);
	free(s);
}

void hf_store_stats(struct hf_store *s, struct hf_store_stats *out)
{
	/* The writer updates them under wlock, in apply_batch. */
	pthread_mutex_lock(&s->wlock);
	*out = s->stats;
	pthread_mutex_unlock(&s->wlock);
}

/* --- reads --- */

static json_t *col_json(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	const char *text = (const char *)sqlite3_column_text(st, i);
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
	return v ? v : json_string(text);
}

static json_t *col_text(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	return json_string((const char *)sqlite3_column_text(st, i));
}

static json_t *col_time(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	char at[32];
	hf_time_iso(sqlite3_column_int64(st, i), at);
	return json_string(at);
}

static json_t *steps_of(sqlite3 *db, const char *run_id)
{
	json_t *steps = json_array();
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db,
			       "SELECT step_id, status, output, error, logs,"
			       " attempts, started_at, finished_at FROM steps"
			       " WHERE run_id = ?1 ORDER BY idx",
			       -1, &st, NULL) != SQLITE_OK)
		return steps;
	bind_text(st, 1, run_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_t *o = json_object();
		json_object_set_new(o, "id", col_text(st, 0));
		json_object_set_new(o, "status", col_text(st, 1));
		json_object_set_new(o, "output", col_json(st, 2));
		json_object_set_new(o, "error", col_text(st, 3));
		json_t *logs = col_json(st, 4);
		json_object_set_new(o, "logs",
				    json_is_array(logs) ? logs : json_array());
		if (!json_is_array(logs))
			json_decref(logs);
		json_object_set_new(o, "attempts",
				    json_integer(sqlite3_column_int(st, 5)));
		json_object_set_new(o, "started_at", col_time(st, 6));
		json_object_set_new(o, "finished_at", col_time(st, 7));
		json_array_append_new(steps, o);
	}
	sqlite3_finalize(st);
	return steps;
}

#define RUN_COLUMNS                                                            \
	"id, workflow, event_id, status, attempt, created_at, started_at,"     \
	" finished_at, error, version"

static json_t *run_row(sqlite3 *db, sqlite3_stmt *st)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", col_text(st, 0));
	json_object_set_new(o, "workflow", col_text(st, 1));
	json_object_set_new(o, "event", col_text(st, 2));
	json_object_set_new(o, "status", col_text(st, 3));
	json_object_set_new(o, "attempt",
			    json_integer(sqlite3_column_int(st, 4)));
	json_object_set_new(o, "created_at", col_time(st, 5));
	json_object_set_new(o, "started_at", col_time(st, 6));
	json_object_set_new(o, "finished_at", col_time(st, 7));
	json_object_set_new(o, "error", col_text(st, 8));
	json_object_set_new(o, "version", col_text(st, 9));
	json_object_set_new(
	    o, "steps", steps_of(db, (const char *)sqlite3_column_text(st, 0)));
	return o;
}

json_t *hf_store_run_json(struct hf_store *s, const char *run_id)
{
	sqlite3 *db = reader_take(s);
	sqlite3_stmt *st = NULL;
	json_t *out = NULL;
	if (!db || sqlite3_prepare_v2(
		       db, "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1", -1,
		       &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, run_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		out = run_row(db, st);
done:
	sqlite3_finalize(st);
	reader_give(s, db);
	return out;
}

json_t *hf_store_runs_json(struct hf_store *s, const char *workflow,
			   const char *status, int limit)
{
	sqlite3 *db = reader_take(s);
	sqlite3_stmt *st = NULL;
	json_t *runs = json_array();
	if (!db || sqlite3_prepare_v2(db,
				      "SELECT " RUN_COLUMNS " FROM runs"
				      " WHERE (?1 IS NULL OR workflow = ?1)"
				      " AND (?2 IS NULL OR status = ?2)"
				      " ORDER BY id DESC LIMIT ?3",
				      -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, workflow);
	bind_text(st, 2, status);
	sqlite3_bind_int(st, 3, limit > 0 ? limit : 50);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(runs, run_row(db, st));
done:
	sqlite3_finalize(st);
	reader_give(s, db);
	return json_pack("{s:o}", "runs", runs);
}

json_t *hf_store_event_json(struct hf_store *s, const char *event_id)
{
	sqlite3 *db = reader_take(s);
	sqlite3_stmt *st = NULL;
	json_t *o = NULL;
	if (!db || sqlite3_prepare_v2(db,
				      "SELECT id, path, method, query, headers,"
				      " body, received_at, skipped FROM events"
				      " WHERE id = ?1",
				      -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, event_id);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto done;
	o = json_object();
	json_object_set_new(o, "id", col_text(st, 0));
	json_object_set_new(o, "path", col_text(st, 1));
	json_object_set_new(o, "method", col_text(st, 2));
	json_object_set_new(o, "query", col_json(st, 3));
	json_object_set_new(o, "headers", col_json(st, 4));
	const char *body = sqlite3_column_blob(st, 5);
	int blen = sqlite3_column_bytes(st, 5);
	json_t *b = json_stringn(body ? body : "", (size_t)blen);
	if (!b) { /* not UTF-8: show it base64-encoded, and say so */
		char *enc = hf_base64_encode(body ? body : "", (size_t)blen);
		b = json_string(enc);
		free(enc);
		json_object_set_new(o, "body_encoding", json_string("base64"));
	}
	json_object_set_new(o, "body", b);
	json_object_set_new(o, "received_at", col_time(st, 6));
	json_t *skipped = col_json(st, 7);
	json_object_set_new(o, "skipped",
			    json_is_array(skipped) ? skipped : json_array());
	if (!json_is_array(skipped))
		json_decref(skipped);
	sqlite3_finalize(st);
	st = NULL;
	json_t *runs = json_array();
	if (sqlite3_prepare_v2(db,
			       "SELECT id FROM runs WHERE event_id = ?1"
			       " ORDER BY id",
			       -1, &st, NULL) == SQLITE_OK) {
		bind_text(st, 1, event_id);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(runs, col_text(st, 0));
	}
	json_object_set_new(o, "runs", runs);
done:
	sqlite3_finalize(st);
	reader_give(s, db);
	return o;
}

static json_t *delivery_row(sqlite3_stmt *st)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", col_text(st, 0));
	json_object_set_new(o, "url", col_text(st, 1));
	json_object_set_new(o, "status", col_text(st, 2));
	json_object_set_new(o, "attempts",
			    json_integer(sqlite3_column_int(st, 3)));
	json_object_set_new(o, "max_attempts",
			    json_integer(sqlite3_column_int(st, 4)));
	if (sqlite3_column_type(st, 5) == SQLITE_NULL)
		json_object_set_new(o, "last_status", json_null());
	else
		json_object_set_new(o, "last_status",
				    json_integer(sqlite3_column_int(st, 5)));
	json_object_set_new(o, "last_error", col_text(st, 6));
	json_object_set_new(o, "run", col_text(st, 7));
	json_object_set_new(o, "step", col_text(st, 8));
	json_object_set_new(o, "next_at", col_time(st, 9));
	json_object_set_new(o, "created_at", col_time(st, 10));
	json_object_set_new(o, "updated_at", col_time(st, 11));
	return o;
}

#define DELIVERY_COLUMNS                                                       \
	"id, url, status, attempts, max_attempts, last_status, last_error,"    \
	" run_id, step_id, next_at, created_at, updated_at"

json_t *hf_store_deliveries_json(struct hf_store *s, const char *status,
				 int limit)
{
	sqlite3 *db = reader_take(s);
	sqlite3_stmt *st = NULL;
	json_t *list = json_array();
	if (!db || sqlite3_prepare_v2(db,
				      "SELECT " DELIVERY_COLUMNS
				      " FROM deliveries WHERE (?1 IS NULL OR"
				      " status = ?1) ORDER BY id DESC LIMIT ?2",
				      -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, status);
	sqlite3_bind_int(st, 2, limit > 0 ? limit : 100);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(list, delivery_row(st));
done:
	sqlite3_finalize(st);
	reader_give(s, db);
	return json_pack("{s:o}", "deliveries", list);
}

json_t *hf_store_delivery_json(struct hf_store *s, const char *id)
{
	sqlite3 *db = reader_take(s);
	sqlite3_stmt *st = NULL;
	json_t *o = NULL;
	if (!db || sqlite3_prepare_v2(db,
				      "SELECT " DELIVERY_COLUMNS
				      ", payload FROM deliveries WHERE id = ?1",
				      -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto done;
	o = delivery_row(st);
	json_object_set_new(o, "payload", col_text(st, 12));
	sqlite3_finalize(st);
	st = NULL;
	json_t *attempts = json_array();
	if (sqlite3_prepare_v2(db,
			       "SELECT n, at, status, error, duration_ms FROM"
			       " delivery_attempts WHERE delivery_id = ?1"
			       " ORDER BY n",
			       -1, &st, NULL) == SQLITE_OK) {
		bind_text(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			json_t *a = json_object();
			json_object_set_new(
			    a, "n", json_integer(sqlite3_column_int(st, 0)));
			json_object_set_new(a, "at", col_time(st, 1));
			if (sqlite3_column_type(st, 2) == SQLITE_NULL)
				json_object_set_new(a, "status", json_null());
			else
				json_object_set_new(
				    a, "status",
				    json_integer(sqlite3_column_int(st, 2)));
			json_object_set_new(a, "error", col_text(st, 3));
			json_object_set_new(
			    a, "duration_ms",
			    json_integer(sqlite3_column_int64(st, 4)));
			json_array_append_new(attempts, a);
		}
	}
	json_object_set_new(o, "attempts_log", attempts);
done:
	sqlite3_finalize(st);
	reader_give(s, db);
	return o;
}

int hf_store_pending_deliveries(struct hf_store *s, int limit,
				int (*fn)(const struct hf_delivery *d,
					  void *arg),
				void *arg)
{
	sqlite3 *db = reader_take(s);
	sqlite3_stmt *st = NULL;
	int n = -1;
	if (!db ||
	    sqlite3_prepare_v2(db,
			       "SELECT id, url, payload, headers, secret,"
			       " attempts, max_attempts, backoff_ms,"
			       " timeout_ms, next_at FROM deliveries"
			       " WHERE status = 'pending' ORDER BY"
			       " next_at LIMIT ?1",
			       -1, &st, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_int(st, 1, limit);
	n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct hf_delivery d = {
		    .id = (const char *)sqlite3_column_text(st, 0),
		    .url = (const char *)sqlite3_column_text(st, 1),
		    .payload = sqlite3_column_blob(st, 2),
		    .payload_len = (size_t)sqlite3_column_bytes(st, 2),
		    .headers = (const char *)sqlite3_column_text(st, 3),
		    .secret = (const char *)sqlite3_column_text(st, 4),
		    .attempts = sqlite3_column_int(st, 5),
		    .max_attempts = sqlite3_column_int(st, 6),
		    .backoff_ms = sqlite3_column_int64(st, 7),
		    .timeout_ms = sqlite3_column_int64(st, 8),
		    .next_at = sqlite3_column_int64(st, 9),
		};
		if (!d.id || !d.url)
			continue;
		if (!d.payload)
			d.payload = "";
		n++;
		if (fn(&d, arg) != 0)
			break;
	}
done:
	sqlite3_finalize(st);
	reader_give(s, db);
	return n;
}

int hf_store_retry_delivery(struct hf_store *s, const char *id)
{
	int rc = -1;
	sqlite3_stmt *st = NULL;
	int64_t now = hf_now_ms();
	if (sqlite3_prepare_v2(s->wdb,
			       "UPDATE deliveries SET status = 'pending',"
			       " next_at = ?2, updated_at = ?2, max_attempts ="
			       " MAX(max_attempts, attempts + 1) WHERE id = ?1"
			       " AND status != 'delivered'",
			       -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto done;
	if (sqlite3_changes(s->wdb) > 0) {
		rc = 0;
		goto done;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(s->wdb, "SELECT 1 FROM deliveries WHERE id = ?1",
			       -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, id);
	rc = sqlite3_step(st) == SQLITE_ROW ? HF_STORE_CONFLICT
					    : HF_STORE_NOT_FOUND;
done:
	sqlite3_finalize(st);
	return rc;
}

struct hf_event *hf_store_load_event(struct hf_store *s, const char *event_id)
{
	sqlite3 *db = reader_take(s);
	sqlite3_stmt *st = NULL;
	struct hf_event *ev = NULL;
	if (!db || sqlite3_prepare_v2(db,
				      "SELECT id, path, method, query, headers,"
				      " body, received_at FROM events WHERE"
				      " id = ?1",
				      -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, event_id);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto done;
	ev = hf_event_new();
	snprintf(ev->id, sizeof ev->id, "%s",
		 (const char *)sqlite3_column_text(st, 0));
	ev->path = hf_xstrdup((const char *)sqlite3_column_text(st, 1));
	ev->method = hf_xstrdup((const char *)sqlite3_column_text(st, 2));
	ev->query = col_json(st, 3);
	if (!json_is_object(ev->query)) {
		json_decref(ev->query);
		ev->query = json_object();
	}
	ev->headers = col_json(st, 4);
	if (!json_is_object(ev->headers)) {
		json_decref(ev->headers);
		ev->headers = json_object();
	}
	const char *body = sqlite3_column_blob(st, 5);
	ev->body_len = (size_t)sqlite3_column_bytes(st, 5);
	ev->body = hf_xstrndup(body ? body : "", ev->body_len);
	ev->received_at = sqlite3_column_int64(st, 6);
	ev->skipped = json_array();
	/* Decoded again as ingest did; it was valid then. */
	char err[256];
	hf_body_decode(hf_body_kind_of(json_string_value(
			   json_object_get(ev->headers, "content-type"))),
		       ev->body, ev->body_len, &ev->decoded, err, sizeof err);
done:
	sqlite3_finalize(st);
	reader_give(s, db);
	return ev;
}

bool hf_store_changed(struct hf_store *s)
{
	sqlite3_stmt *st = NULL;
	bool changed = false;
	/* data_version counts commits by other connections, so ask the writer's
	 * connection: its own commits do not change it. */
	sqlite3 *db = s->wdb;
	pthread_mutex_lock(&s->wlock);
	if (db &&
	    sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL) ==
		SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		int v = sqlite3_column_int(st, 0);
		changed = s->data_version && v != s->data_version;
		s->data_version = v;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->wlock);
	return changed;
}

/* Workflow versions rebuilt during one hf_store_load_pending (wf NULL: the
 * version cannot be rebuilt). */
struct version_cache {
	struct {
		char version[72];
		struct hf_workflow *wf;
	} items[16];
	size_t n;
};

/* Parses a stored version again; NULL when it is not stored or no longer
 * loads (say, a ${NAME} it reads is gone from the environment). */
static struct hf_workflow *parse_version(sqlite3 *db, const char *version)
{
	sqlite3_stmt *st = NULL;
	struct hf_workflow *wf = NULL;
	json_t *scripts = NULL;
	if (sqlite3_prepare_v2(db,
			       "SELECT file, yaml, scripts FROM"
			       " workflow_versions WHERE version = ?1",
			       -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, version);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto done;
	scripts = col_json(st, 2);
	struct hf_script_src src[64];
	size_t n = 0;
	const char *name;
	json_t *code;
	json_object_foreach(scripts, name, code)
	{
		if (n < sizeof src / sizeof src[0] && json_is_string(code))
			src[n++] = (struct hf_script_src){
			    name, json_string_value(code),
			    json_string_length(code)};
	}
	struct hf_diags diags = {0};
	wf = hf_workflow_parse_stored((const char *)sqlite3_column_text(st, 0),
				      (const char *)sqlite3_column_text(st, 1),
				      (size_t)sqlite3_column_bytes(st, 1), NULL,
				      src, n, &diags);
	hf_diags_release(&diags);
	if (wf && (!wf->version || strcmp(wf->version, version) != 0)) {
		hf_workflow_unref(wf);
		wf = NULL;
	}
done:
	json_decref(scripts);
	sqlite3_finalize(st);
	return wf;
}

static struct hf_workflow *find_version(sqlite3 *db, const char *version,
					struct version_cache *vc)
{
	for (size_t i = 0; i < vc->n; i++)
		if (strcmp(vc->items[i].version, version) == 0)
			return vc->items[i].wf;
	struct hf_workflow *wf = parse_version(db, version);
	if (vc->n < sizeof vc->items / sizeof vc->items[0] &&
	    strlen(version) < sizeof vc->items[0].version) {
		snprintf(vc->items[vc->n].version,
			 sizeof vc->items[vc->n].version, "%s", version);
		vc->items[vc->n++].wf = wf;
	} else {
		/* Not cached: the run takes the only reference. */
		hf_workflow_unref(wf);
		wf = NULL;
	}
	return wf;
}

/* Rebuilds the in-memory run for a row of runs, or NULL when its event is gone.
 * The run gets the workflow version it was stored with when that version is in
 * workflow_versions, else the current workflow of the same name. */
static struct hf_run *load_run(struct hf_store *s, sqlite3 *db,
			       sqlite3_stmt *st,
			       const struct hf_workflow_set *set,
			       struct version_cache *vc)
{
	const char *event_id = (const char *)sqlite3_column_text(st, 1);
	const char *wf_name = (const char *)sqlite3_column_text(st, 2);
	const char *version = (const char *)sqlite3_column_text(st, 11);
	struct hf_workflow *wf = hf_workflow_set_find(set, wf_name);
	if (version && (!wf || !wf->version || strcmp(wf->version, version))) {
		struct hf_workflow *old = find_version(db, version, vc);
		if (old)
			wf = old;
		else if (wf)
			hf_log(HF_LOG_WARN,
			       "run %s: workflow '%s' version %.12s is not "
			       "stored: it resumes with the current version",
			       (const char *)sqlite3_column_text(st, 0),
			       wf_name, version);
	}
	struct hf_event *ev = hf_store_load_event(s, event_id);
	if (!ev)
		return NULL;
	struct hf_run *run = NULL;
	if (wf) {
		run = hf_run_new(ev, wf);
	} else {
		/* The workflow is gone: the run is failed by the caller. */
		run = hf_xcalloc(1, sizeof *run);
		run->event = hf_event_ref(ev);
		run->outputs = json_object();
		run->error =
		    hf_xasprintf("workflow '%s' no longer exists", wf_name);
	}
	hf_event_unref(ev);
	snprintf(run->id, sizeof run->id, "%s",
		 (const char *)sqlite3_column_text(st, 0));
	run->status =
	    hf_run_status_parse((const char *)sqlite3_column_text(st, 3));
	run->attempt = sqlite3_column_int(st, 4);
	run->created_at = sqlite3_column_int64(st, 5);
	run->started_at = sqlite3_column_int64(st, 6);
	run->next_step = (size_t)sqlite3_column_int64(st, 7);
	run->step_attempt = sqlite3_column_int(st, 8);
	run->due_at = sqlite3_column_int64(st, 9);
	if (sqlite3_column_type(st, 10) != SQLITE_NULL)
		run->lane =
		    hf_xstrdup((const char *)sqlite3_column_text(st, 10));
	/* Outputs of the steps already done. */
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(db,
			       "SELECT step_id, output FROM steps WHERE"
			       " run_id = ?1 AND status = 'succeeded'",
			       -1, &q, NULL) == SQLITE_OK) {
		bind_text(q, 1, run->id);
		while (sqlite3_step(q) == SQLITE_ROW)
			json_object_set_new(
			    run->outputs,
			    (const char *)sqlite3_column_text(q, 0),
			    col_json(q, 1));
	}
	sqlite3_finalize(q);
	return run;
}

int hf_store_load_pending(struct hf_store *s, const struct hf_workflow_set *set,
			  bool only_unclaimed,
			  void (*fn)(struct hf_run *run, void *arg), void *arg)
{
	sqlite3 *db = reader_take(s);
	sqlite3_stmt *st = NULL;
	int n = 0;
	if (!db)
		return -1;
	/* In insertion order (rowid), which is arrival order: the lanes of
	 * `concurrency:` fill up again as they were. */
	const char *sql =
	    only_unclaimed
		? "SELECT id, event_id, workflow, status, attempt,"
		  " created_at, started_at, next_step, step_attempt,"
		  " due_at, lane, version FROM runs WHERE status IN"
		  " ('queued','running') AND claimed = 0 ORDER BY rowid"
		: "SELECT id, event_id, workflow, status, attempt,"
		  " created_at, started_at, next_step, step_attempt,"
		  " due_at, lane, version FROM runs WHERE status IN"
		  " ('queued','running') ORDER BY rowid";
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		reader_give(s, db);
		return -1;
	}
	struct hf_run *list = NULL, **tail = &list;
	struct version_cache vc = {0};
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct hf_run *run = load_run(s, db, st, set, &vc);
		if (!run)
			continue;
		/* After a crash (or a drain that timed out), the next step of a
		 * run not waiting for a retry may have been in flight,
		 * committed or not: it runs again as a later try, so that
		 * run.attempt > 1 tells the script it may be a repeat (a run
		 * waiting for a retry is at attempt > 1 already). After a clean
		 * stop nothing was in flight. */
		if (!only_unclaimed && s->unclean && run->due_at == 0)
			run->step_attempt++;
		*tail = run;
		tail = &run->next;
		n++;
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < vc.n; i++)
		hf_workflow_unref(vc.items[i].wf);
	reader_give(s, db);
	if (only_unclaimed && list) {
		pthread_mutex_lock(&s->wlock);
		for (struct hf_run *r = list; r; r = r->next) {
			sqlite3_stmt *u = NULL;
			if (sqlite3_prepare_v2(s->wdb,
					       "UPDATE runs SET claimed = 1"
					       " WHERE id = ?1",
					       -1, &u, NULL) == SQLITE_OK) {
				bind_text(u, 1, r->id);
				sqlite3_step(u);
			}
			sqlite3_finalize(u);
		}
		pthread_mutex_unlock(&s->wlock);
	}
	while (list) {
		struct hf_run *next = list->next;
		list->next = NULL;
		fn(list, arg);
		list = next;
	}
	return n;
}

int hf_store_retry_run(struct hf_store *s, const char *run_id,
		       struct hf_error *err)
{
	int rc = -1;
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&s->wlock);
	if (sqlite3_prepare_v2(s->wdb,
			       "UPDATE runs SET status = 'queued', attempt ="
			       " attempt + 1, step_attempt = 1, due_at = 0,"
			       " error = NULL, finished_at = NULL, claimed = 0,"
			       " started_at = NULL"
			       " WHERE id = ?1 AND status = 'failed'",
			       -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, run_id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		hf_error_set(err, NULL, 0, 0, "cannot retry: %s",
			     sqlite3_errmsg(s->wdb));
		goto done;
	}
	if (sqlite3_changes(s->wdb) == 0) {
		hf_error_set(err, NULL, 0, 0,
			     "run '%s' does not exist or has not failed",
			     run_id);
		goto done;
	}
	rc = 0;
done:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->wlock);
	return rc;
}

int hf_store_prune(struct hf_store *s, int64_t before, int limit)
{
	/* The rows of one batch are picked once (steps go with their runs,
	 * attempts with their deliveries). Run and event ids begin with their
	 * creation time (hf_id_new), so "created before" is a range of the
	 * primary key: a batch reads old rows, not the whole table. An event
	 * goes only once no run refers to it (a replay may still be queued). */
	static const char *sql[] = {
	    "CREATE TEMP TABLE IF NOT EXISTS prune_ids(id TEXT PRIMARY KEY)",
	    "DELETE FROM prune_ids",
	    "INSERT INTO prune_ids SELECT id FROM runs WHERE id < ?3 AND"
	    " finished_at < ?1 AND status IN ('succeeded','failed') LIMIT ?2",
	    "DELETE FROM steps WHERE run_id IN prune_ids",
	    "DELETE FROM runs WHERE id IN prune_ids",
	    "DELETE FROM events WHERE id IN (SELECT id FROM events e WHERE"
	    " id < ?4 AND received_at < ?1 AND NOT EXISTS (SELECT 1 FROM"
	    " runs r WHERE r.event_id = e.id) LIMIT ?2)",
	    "DELETE FROM prune_ids",
	    "INSERT INTO prune_ids SELECT id FROM deliveries WHERE"
	    " updated_at < ?1 AND status IN ('delivered','failed') LIMIT ?2",
	    "DELETE FROM delivery_attempts WHERE delivery_id IN prune_ids",
	    "DELETE FROM deliveries WHERE id IN prune_ids",
	    "DELETE FROM dedupe WHERE (workflow, key) IN (SELECT workflow,"
	    " key FROM dedupe WHERE created_at < ?1 LIMIT ?2)",
	};
	char run_max[32], ev_max[32];
	unsigned long long t = (unsigned long long)(before > 0 ? before : 0);
	snprintf(run_max, sizeof run_max, "run_%012llx", t & 0xffffffffffffULL);
	snprintf(ev_max, sizeof ev_max, "ev_%012llx", t & 0xffffffffffffULL);
	int total = 0;
	for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(s->wdb, sql[i], -1, &st, NULL) !=
		    SQLITE_OK) {
			hf_log(HF_LOG_WARN, "prune: %s",
			       sqlite3_errmsg(s->wdb));
			return -1;
		}
		int np = sqlite3_bind_parameter_count(st);
		if (np >= 1)
			sqlite3_bind_int64(st, 1, before);
		if (np >= 2)
			sqlite3_bind_int(st, 2, limit);
		if (np >= 3)
			bind_text(st, 3, run_max);
		if (np >= 4)
			bind_text(st, 4, ev_max);
		int rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return -1;
		if (strncmp(sql[i], "DELETE FROM prune_ids", 21) != 0 &&
		    strncmp(sql[i], "DELETE", 6) == 0)
			total += sqlite3_changes(s->wdb);
	}
	return total;
}
