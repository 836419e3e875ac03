/* store_sqlite_apply.c - the SQLite backend's writes: the writer
 * connection's prepared statements and applying each kind of write
 * (hf_write_kind) with them, inside the transaction the writer opened.
 *
 * Not here: the transactions, batching and retries of a failed batch
 * (store_sqlite.c), maintenance run through HF_W_CALL
 * (store_sqlite_recover.c).
 *
 * Threading: only the thread applying a batch - the writer thread, or without
 * it the caller of hf_store_submit, under wlock (asserted: sq_applying).
 *
 * Emit signing secrets are stored sealed (hf_seal: AES-256-GCM, the
 * delivery's id as associated data) with the key of hf_sqlite_key; at the
 * server's start hf_sqlite_secrets_start seals what older versions stored in
 * plain text (the outbox still reads such values as they are).
 *
 * Neighbours: store_sqlite.c (calls hf_sqlite_apply), store_sqlite.h, run.c
 * and luart (the runs and step results it stores). */
#include "hf_crypto.h"
#include "hf_limits.h"
#include "store_sqlite.h"

#include <assert.h>
#include <string.h>

/* runs.spare (store_sqlite_schema.c): 22 zero bytes at insert, 15 once the
 * row has its first start time and status 'running' (7 bytes more), 9 once it
 * has its first step too (runs.steps: up to 6 more), none once it has its
 * finish time (6 more, and 'succeeded' 2 more than 'running').
 *
 * events and runs: rid is the next of the id's band (?9, ?10 for events,
 * ?12, ?13 for runs: bind_band), found by id in it (hf_sqlite_band); ?11 for
 * events, ?18 for runs: that rid when the writer knows it (bind_next_rid). */
static const char *stmt_sql[ST_COUNT] = {
    [ST_INSERT_EVENT] = "INSERT INTO events(rid, id, path, method, query,"
			" headers, body, received_at, skipped, body_size)"
			" VALUES(COALESCE(?11, (SELECT max(rid) + 1 FROM events"
			" WHERE rid BETWEEN ?9 AND ?10), ?9), ?1, ?2, ?3,"
			" ?4, ?5, ?6, ?7, ?8, ?12)",
    [ST_INSERT_RUN] =
	"INSERT INTO runs(rid, id, event, workflow, vid, status, attempt,"
	" created_at, next_step, step_attempt, due_at, lane, claimed, wake_at,"
	" waiting, wait_path, spare) VALUES(COALESCE(?18, (SELECT max(rid) + 1"
	" FROM runs WHERE rid BETWEEN ?12 AND ?13), ?12), ?1, ?2, ?3, ?4, ?14,"
	" ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?15, ?16, ?17, zeroblob(22))",
    [ST_DEDUPE_INSERT] = "INSERT OR IGNORE INTO dedupe(workflow, key,"
			 " event_id, created_at) VALUES(?1, ?2, ?3, ?4)",
    [ST_DEDUPE_GET] = "SELECT event_id FROM dedupe WHERE workflow = ?1 AND"
		      " key = ?2",
    [ST_RUN_STARTED] = "UPDATE runs SET status = 'running', started_at ="
		       " ?2, claimed = 1, spare = CASE WHEN started_at IS"
		       " NULL THEN zeroblob(15) ELSE spare END WHERE rid"
		       " BETWEEN ?3 AND ?4 AND id = ?1 AND status <>"
		       " 'cancelled'",
    /* A step's row, appended to its run's chain (store_sqlite_schema.c):
     * the run's rid and last row found by ?1 in ?11..?12 (bind_run_row);
     * ST_UPDATE_RUN then makes it the run's last (?14). */
    [ST_INSERT_STEP] = "INSERT INTO steps(run, prev, idx, step_id, status,"
		       " output, error, logs, attempts, started_at,"
		       " finished_at) SELECT rid, steps, ?2, ?3, ?4, ?5, ?6,"
		       " ?7, ?8, ?9, ?10 FROM runs WHERE rid BETWEEN ?11 AND"
		       " ?12 AND id = ?1",
    /* The run's last step row when ST_UPDATE_RUN left the run as it was
     * (cancelled meanwhile): the step is shown all the same. */
    [ST_RUN_STEPS] = "UPDATE runs SET steps = ?2 WHERE rid BETWEEN ?3 AND"
		     " ?4 AND id = ?1",
    [ST_UPDATE_RUN] = "UPDATE runs SET status = ?2, next_step = ?3,"
		      " step_attempt = ?4, due_at = ?5, error = ?6,"
		      " finished_at = ?7, started_at = COALESCE(started_at,"
		      " ?8), wake_at = ?11, waiting = ?12, wait_path = ?13,"
		      " claimed = 1, spare = CASE WHEN ?7 IS NULL THEN"
		      " zeroblob(9) END, steps = COALESCE(?14, steps) WHERE"
		      " rid BETWEEN ?9 AND ?10 AND id = ?1 AND status <>"
		      " 'cancelled'",
    [ST_EVENT_RID] = "SELECT rid FROM events WHERE rid BETWEEN ?1 AND ?2"
		     " AND id = ?3",
    [ST_VERSION_ID] = "SELECT vid FROM workflow_versions WHERE version = ?1",
    [ST_INSERT_DELIVERY] = "INSERT OR IGNORE INTO deliveries(id, run_id,"
			   " step_id, url, payload, headers, secret, status,"
			   " attempts, max_attempts, backoff_ms, next_at,"
			   " created_at, updated_at, timeout_ms) VALUES(?1,"
			   " ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?8, ?9,"
			   " ?10, ?10, ?10, ?11)",
    [ST_DELIVERY_ATTEMPT] = "INSERT OR REPLACE INTO delivery_attempts("
			    "delivery_id, n, at, status, error,"
			    " duration_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    /* A version known by its hash only (yaml NULL) gets its text when a
     * later store can. */
    [ST_INSERT_VERSION] = "INSERT INTO workflow_versions(version,"
			  " name, file, yaml, scripts, created_at)"
			  " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(version)"
			  " DO UPDATE SET yaml = excluded.yaml, scripts ="
			  " excluded.scripts, file = excluded.file WHERE yaml"
			  " IS NULL AND excluded.yaml IS NOT NULL",
    /* A retry asked for (API, CLI) while this attempt was in flight has
     * updated the row after the attempt began (?3): the attempt is counted,
     * but unless it delivered, the retry's status and due time stand. ?1-?5
     * as in ST_DELIVERY_ATTEMPT (bind_attempt). */
    [ST_DELIVERY_UPDATE] = "UPDATE deliveries SET attempts = ?2,"
			   " last_status = ?4, last_error = ?5,"
			   " status = CASE WHEN ?6 = 'delivered' OR updated_at"
			   " <= ?3 THEN ?6 ELSE status END,"
			   " next_at = CASE WHEN ?6 = 'delivered' OR updated_at"
			   " <= ?3 THEN ?7 ELSE next_at END,"
			   " updated_at = ?8 WHERE id = ?1",
};

int hf_sqlite_prepare(struct hf_sqlite_store *q, struct hf_error *err)
{
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(q->wdb, stmt_sql[i], -1,
				       SQLITE_PREPARE_PERSISTENT, &q->stmts[i],
				       NULL) != SQLITE_OK) {
			hf_error_set(err, q->path, 0, 0, "cannot prepare: %s",
				     sqlite3_errmsg(q->wdb));
			return -1;
		}
	}
	return 0;
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
 * copy of the YAML for every run); *vid is its row (0: wf has no version). A
 * version whose scripts are not UTF-8 (or without its text) is stored by its
 * hash alone: a run of it resumes with the workflow of the same name. */
static int store_version(struct hf_sqlite_store *q,
			 const struct hf_workflow *wf, int64_t *vid)
{
	*vid = 0;
	if (!wf || !wf->version)
		return 0;
	for (unsigned i = 0; i < HF_STATE_VERSION_CACHE && i < q->nversions;
	     i++)
		if (strcmp(q->versions[i], wf->version) == 0) {
			*vid = q->version_ids[i];
			return 0;
		}
	json_t *scripts = json_object();
	bool text = wf->source != NULL;
	for (size_t i = 0; text && i < hf_workflow_nall(wf); i++) {
		const struct hf_step *step = &wf->steps[i];
		json_t *code;
		if (!step->script)
			continue;
		code = json_stringn(step->code, strlen(step->code));
		if (!code) {
			text = false;
			break;
		}
		json_object_set_new(scripts, step->script, code);
	}
	sqlite3_stmt *st = q->stmts[ST_INSERT_VERSION];
	bind_kept(st, 1, wf->version);
	bind_kept(st, 2, wf->name);
	bind_kept(st, 3, wf->file);
	if (text) {
		sqlite3_bind_text(st, 4, wf->source, (int)wf->source_len,
				  SQLITE_STATIC);
		bind_json(st, 5, scripts);
	}
	sqlite3_bind_int64(st, 6, hf_now_ms());
	json_decref(scripts);
	if (step_done(st) < 0)
		return -1;
	st = q->stmts[ST_VERSION_ID];
	bind_kept(st, 1, wf->version);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*vid = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_ROW)
		return -1;
	/* Cached before the commit: a rolled-back batch forgets the row, so
	 * the cache is cleared then (transact). Only versions with their
	 * text: one known by its hash alone is looked up again. */
	if (!text)
		return 0;
	unsigned slot = q->nversions++ % HF_STATE_VERSION_CACHE;
	snprintf(q->versions[slot], sizeof q->versions[0], "%s", wf->version);
	q->version_ids[slot] = *vid;
	return 0;
}

/* The rid of the stored event id (0 when there is none), or -1. */
static int64_t event_rid(struct hf_sqlite_store *q, const char *id)
{
	sqlite3_stmt *st = q->stmts[ST_EVENT_RID];
	bind_band(st, 1, id);
	bind_kept(st, 3, id);
	int rc = sqlite3_step(st);
	int64_t rid = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? rid : -1;
}

/* Binds ?i to the rid after the last row of id's band that this writer
 * inserted into table t (0 events, 1 runs), when it did (else NULL: the
 * statement looks the band's last rid up). Another process inserting into the
 * same band meanwhile (the CLI) makes the insert fail: the batch is rolled
 * back, which forgets these, and its writes are applied again. */
static void bind_next_rid(struct hf_sqlite_store *q, sqlite3_stmt *st, int i,
			  int t, const char *id)
{
	if (q->last_band[t] && q->last_band[t] == hf_sqlite_band(id))
		sqlite3_bind_int64(st, i, q->next_rid[t]);
}

/* After an insert into table t (as bind_next_rid): whether the row landed in
 * its id's band (a band holds 1 << HF_BAND_BITS rows: one millisecond's). */
static int in_band(struct hf_sqlite_store *q, int t, const char *id)
{
	int64_t rid = sqlite3_last_insert_rowid(q->wdb);
	int64_t band = hf_sqlite_band(id);
	if (rid - band >= (1 << HF_BAND_BITS))
		return -1;
	q->last_band[t] = band;
	q->next_rid[t] = rid + 1;
	return 0;
}

/* ev_rid: the run's event's rid, or -1 to look it up. */
static int insert_run(struct hf_sqlite_store *q, struct hf_run *run,
		      bool claimed, int64_t ev_rid)
{
	int64_t vid;
	if (store_version(q, run->wf, &vid) < 0)
		return -1;
	if (ev_rid < 0 && (ev_rid = event_rid(q, run->event->id)) < 0)
		return -1;
	sqlite3_stmt *st = q->stmts[ST_INSERT_RUN];
	bind_kept(st, 1, run->id);
	sqlite3_bind_int64(st, 2, ev_rid);
	bind_kept(st, 3, run->wf->name);
	bind_int_or_null(st, 4, vid);
	sqlite3_bind_int(st, 5, run->attempt);
	sqlite3_bind_int64(st, 6, run->created_at);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)run->next_step);
	sqlite3_bind_int(st, 8, run->step_attempt);
	sqlite3_bind_int64(st, 9, run->due_at);
	bind_kept(st, 10, run->lane);
	sqlite3_bind_int(st, 11, claimed);
	bind_band(st, 12, run->id);
	/* Stored parked when it is (hf_park.h: debounce, throttle...). */
	bind_kept(st, 14, run->status == HF_RUN_WAITING ? "waiting" : "queued");
	bind_int_or_null(st, 15, run->wake_at);
	bind_kept(st, 16, run->waiting);
	bind_kept(st, 17, run->wait_path);
	bind_next_rid(q, st, 18, 1, run->id);
	if (step_done(st) < 0 || in_band(q, 1, run->id) < 0)
		return -1;
	run->rid = sqlite3_last_insert_rowid(q->wdb);
	if (!claimed) /* the disk backlog's (store_sqlite_backlog.c) */
		hf_sqlite_bl_unclaimed(q, run->rid);
	return 0;
}

/* Returns 1 when key was already seen for the workflow (dup_of filled), 0 when
 * it is new (now recorded), -1 on error. */
static int dedupe_check(void *ctx, const struct hf_run *run,
			char dup_of[HF_ID_SIZE])
{
	struct hf_sqlite_store *q = ctx;
	sqlite3_stmt *st = q->stmts[ST_DEDUPE_INSERT];
	bind_kept(st, 1, run->wf->name);
	bind_kept(st, 2, run->dedupe_key);
	bind_kept(st, 3, run->event->id);
	sqlite3_bind_int64(st, 4, run->event->received_at);
	if (step_done(st) < 0)
		return -1;
	if (sqlite3_changes(q->wdb) > 0)
		return 0;
	st = q->stmts[ST_DEDUPE_GET];
	bind_kept(st, 1, run->wf->name);
	bind_kept(st, 2, run->dedupe_key);
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

static int apply_ingest(struct hf_sqlite_store *q, struct hf_write *w)
{
	struct hf_event *ev = w->event;
	int dd = hf_writer_dedupe(w, dedupe_check, q);
	if (dd != 0)
		return dd < 0 ? -1 : 0; /* a pure duplicate: nothing to store */

	sqlite3_stmt *st = q->stmts[ST_INSERT_EVENT];
	bind_kept(st, 1, ev->id);
	bind_kept(st, 2, ev->path);
	bind_kept(st, 3, ev->method);
	bind_json_text(st, 4, ev->query_text, ev->query);
	bind_json_text(st, 5, ev->headers_text, ev->headers);
	size_t packed = 0;
	const void *block = hf_sqlite_pack(q, ev->body, ev->body_len, &packed);
	if (block) {
		sqlite3_bind_blob(st, 6, block, (int)packed, SQLITE_STATIC);
		sqlite3_bind_int64(st, 12, (sqlite3_int64)ev->body_len);
	} else {
		sqlite3_bind_blob(st, 6, ev->body ? ev->body : "",
				  (int)ev->body_len, SQLITE_STATIC);
		sqlite3_bind_null(st, 12);
	}
	sqlite3_bind_int64(st, 7, ev->received_at);
	if (json_array_size(ev->skipped))
		bind_json(st, 8, ev->skipped);
	else /* none: NULL, or an empty list */
		sqlite3_bind_text(st, 8, "[]", 2, SQLITE_STATIC);
	bind_band(st, 9, ev->id);
	bind_next_rid(q, st, 11, 0, ev->id);
	int rc = step_done(st);
	hf_sqlite_pack_trim(q);
	if (rc < 0 || in_band(q, 0, ev->id) < 0)
		return -1;
	int64_t ev_rid = sqlite3_last_insert_rowid(q->wdb);
	for (size_t i = 0; i < w->nruns; i++)
		if (!w->dropped[i] &&
		    insert_run(q, w->runs[i], !w->unclaimed, ev_rid) < 0)
			return -1;
	return 0;
}

static int apply_runs(struct hf_sqlite_store *q, struct hf_write *w)
{
	for (size_t i = 0; i < w->nruns; i++)
		if (insert_run(q, w->runs[i], !w->unclaimed, -1) < 0)
			return -1;
	return 0;
}

/* ?i, ?i+1: the rid range a run's row is found in: its rid when this process
 * stored it (one seek, not a scan of its id's band), else its id's band
 * (by_id). A statement that changed no row by rid is tried again by id
 * (a row the rid no longer names, or one the WHERE refused: cancelled). */
static void bind_run_row(sqlite3_stmt *st, int i, const struct hf_run *run,
			 int by_id)
{
	if (by_id) {
		bind_band(st, i, run->id);
		return;
	}
	sqlite3_bind_int64(st, i, run->rid);
	sqlite3_bind_int64(st, i + 1, run->rid);
}

static int apply_run_started(struct hf_sqlite_store *q, struct hf_write *w)
{
	/* The step already finished: its write (behind this one) records the
	 * start too. Only long steps show up as "running" in between. */
	if (atomic_load(&w->run->step_pending))
		return 0;
	sqlite3_stmt *st = q->stmts[ST_RUN_STARTED];
	hf_sqlite_bl_written(q, w->run->id); /* claimed = 1 */
	for (int by_id = w->run->rid == 0;; by_id = 1) {
		bind_kept(st, 1, w->run->id);
		sqlite3_bind_int64(st, 2, w->run->started_at);
		bind_run_row(st, 3, w->run, by_id);
		if (step_done(st) < 0)
			return -1;
		if (by_id || sqlite3_changes(q->wdb) > 0)
			return 0;
	}
}

/* --- secrets at rest --- */

int hf_sqlite_key(struct hf_sqlite_store *q, struct hf_error *err)
{
	pthread_mutex_lock(&q->key_lock);
	int rc = 0;
	if (!q->have_key) {
		rc = hf_secret_key_load(q->path, q->key, err);
		q->have_key = rc == 0;
	}
	pthread_mutex_unlock(&q->key_lock);
	return rc;
}

/* secret sealed for the delivery id, or NULL when there is none or it
 * cannot be (no key: logged). */
static char *seal(struct hf_sqlite_store *q, const char *id, const char *secret)
{
	struct hf_error err = {0};
	if (!secret)
		return NULL;
	if (hf_sqlite_key(q, &err) < 0) {
		hf_log(HF_LOG_ERROR, "delivery %s: cannot seal its secret: %s",
		       id, err.msg);
		return NULL;
	}
	return hf_seal(q->key, id, strlen(id), secret, strlen(secret));
}

/* Plain-text secrets read in one batch (seal_batch). */
struct plain {
	int64_t rowid[HF_SECRETS_BATCH];
	char *id[HF_SECRETS_BATCH];
	char *secret[HF_SECRETS_BATCH];
	int n;
};

static int plain_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	struct plain *p = arg;
	p->rowid[p->n] = sqlite3_column_int64(st, 0);
	p->id[p->n] = hf_xstrdup((const char *)sqlite3_column_text(st, 1));
	p->secret[p->n] = hf_xstrdup((const char *)sqlite3_column_text(st, 2));
	return ++p->n == HF_SECRETS_BATCH;
}

/* Seals up to HF_SECRETS_BATCH plain-text secrets with a rowid past *last
 * (moved past them); returns how many, or -1. */
static int seal_batch(struct hf_sqlite_store *q, int64_t *last)
{
	struct plain p = {.n = 0};
	int rc = hf_sqlite_each(
	    q, q->wdb, plain_row, &p,
	    "SELECT rowid, id, secret FROM deliveries WHERE rowid > ?1 AND"
	    " id IS NOT NULL AND secret IS NOT NULL AND"
	    " substr(secret, 1, 3) <> 'v1:'"
	    " ORDER BY rowid LIMIT ?2",
	    "Ii", *last, HF_SECRETS_BATCH);
	for (int i = 0; i < p.n; i++) {
		char *sealed = seal(q, p.id[i], p.secret[i]);
		if (!sealed ||
		    hf_sqlite_exec(q->wdb,
				   "UPDATE deliveries SET secret = ?2"
				   " WHERE rowid = ?1",
				   "It", p.rowid[i], sealed) != SQLITE_DONE)
			rc = -1;
		*last = p.rowid[i];
		hf_secret_free(p.secret[i]);
		free(p.id[i]);
		free(sealed);
	}
	return rc < 0 ? -1 : p.n;
}

/* hf_sqlite_secrets_start's check: the first pending delivery whose secret
 * does not open with the key. */
struct check {
	struct hf_sqlite_store *q;
	char bad[HF_ID_SIZE];
};

static int check_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	struct check *c = arg;
	const char *id = (const char *)sqlite3_column_text(st, 0);
	const char *secret = (const char *)sqlite3_column_text(st, 1);
	if (!id || !hf_is_sealed(secret))
		return 0;
	char *plain = hf_unseal(c->q->key, id, strlen(id), secret);
	if (plain) {
		hf_secret_free(plain);
		return 0;
	}
	snprintf(c->bad, sizeof c->bad, "%s", id);
	return 1;
}

int hf_sqlite_secrets_start(struct hf_sqlite_store *q, struct hf_error *err)
{
	if (hf_sqlite_key(q, err) < 0)
		return -1;
	int64_t last = 0;
	int n = 0, total = 0;
	hf_sqlite_exec(q->wdb, "BEGIN IMMEDIATE", "");
	while ((n = seal_batch(q, &last)) > 0)
		total += n;
	if (hf_sqlite_exec(q->wdb, n < 0 ? "ROLLBACK" : "COMMIT", "") !=
		SQLITE_DONE ||
	    n < 0)
		hf_log(HF_LOG_WARN,
		       "%s: cannot seal the signing secrets "
		       "stored in plain text; they stay so",
		       q->path);
	else if (total)
		hf_log(HF_LOG_INFO,
		       "sealed %d signing secret%s stored in "
		       "plain text",
		       total, total == 1 ? "" : "s");
	struct check c = {q, ""};
	hf_sqlite_each(q, q->wdb, check_row, &c,
		       "SELECT id, secret FROM deliveries WHERE status ="
		       " 'pending' AND secret IS NOT NULL",
		       "");
	if (!c.bad[0])
		return 0;
	hf_error_set(err, q->path, 0, 0,
		     "delivery %s: its signing secret does not open with this "
		     "key (HOOKFLOW_SECRET_KEY, else %s.key): start with the "
		     "key it was stored with",
		     c.bad, q->path);
	return -1;
}

/* --- applying writes --- */

static int insert_emit(struct hf_sqlite_store *q, const struct hf_run *run,
		       const char *step_id, const struct hf_emit *e)
{
	char *sealed = seal(q, e->id, e->secret);
	if (e->secret && !sealed)
		return -1;
	sqlite3_stmt *st = q->stmts[ST_INSERT_DELIVERY];
	bind_kept(st, 1, e->id);
	bind_kept(st, 2, run->id);
	bind_kept(st, 3, step_id);
	bind_kept(st, 4, e->url);
	sqlite3_bind_blob(st, 5, e->payload, (int)strlen(e->payload),
			  SQLITE_STATIC);
	bind_json(st, 6, e->headers);
	if (sealed)
		sqlite3_bind_text(st, 7, sealed, -1, free);
	else
		sqlite3_bind_null(st, 7);
	sqlite3_bind_int(st, 8, e->attempts);
	sqlite3_bind_int64(st, 9, e->backoff_ms);
	sqlite3_bind_int64(st, 10, hf_now_ms());
	sqlite3_bind_int64(
	    st, 11, e->timeout_ms > 0 ? e->timeout_ms : HF_DELIVERY_TIMEOUT_MS);
	return step_done(st);
}

/* The step's row (store_sqlite_schema.c: appended to the run's chain), the
 * run's row found by rid or by_id (bind_run_row). */
static int insert_step(struct hf_sqlite_store *q, const struct hf_write *w,
		       int by_id)
{
	const struct hf_run *run = w->run;
	const struct hf_step_result *res = w->result;
	sqlite3_stmt *st = q->stmts[ST_INSERT_STEP];
	bind_kept(st, 1, run->id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)w->step_index);
	bind_kept(st, 3, run->wf->steps[w->step_index].id);
	bind_kept(st, 4, hf_step_status_name(res->status));
	bind_json_text(st, 5, res->output_text, res->output);
	bind_kept(st, 6, res->error);
	bind_json_text(st, 7, res->logs_text, res->logs);
	sqlite3_bind_int(st, 8, w->step_attempts);
	sqlite3_bind_int64(st, 9, res->started_at);
	sqlite3_bind_int64(st, 10, res->finished_at);
	bind_run_row(st, 11, run, by_id);
	return step_done(st);
}

/* The run's row after a step (res; NULL: none ran; sid: the step's row, 0
 * none): bind_run_row's by_id. */
static int update_run(struct hf_sqlite_store *q, const struct hf_run *run,
		      const struct hf_step_result *res, int64_t sid, int by_id)
{
	sqlite3_stmt *st = q->stmts[ST_UPDATE_RUN];
	bind_kept(st, 1, run->id);
	bind_kept(st, 2, hf_run_status_name(run->status));
	sqlite3_bind_int64(st, 3, (sqlite3_int64)run->next_step);
	sqlite3_bind_int(st, 4, run->step_attempt);
	sqlite3_bind_int64(st, 5, run->due_at);
	bind_kept(st, 6, run->error);
	if (run->status == HF_RUN_SUCCEEDED || run->status == HF_RUN_FAILED ||
	    run->status == HF_RUN_CANCELLED) /* debounced: hf_debounce.h */
		sqlite3_bind_int64(st, 7, res ? res->finished_at : hf_now_ms());
	else
		sqlite3_bind_null(st, 7);
	bind_int_or_null(st, 8, run->started_at);
	bind_run_row(st, 9, run, by_id);
	/* The parked run (hf_park.h): waiting, or when it last woke. */
	bind_int_or_null(st, 11, run->wake_at);
	bind_kept(st, 12, run->waiting);
	bind_kept(st, 13, run->wait_path);
	bind_int_or_null(st, 14, sid);
	hf_sqlite_bl_written(q, run->id); /* claimed = 1 */
	return step_done(st);
}

static int apply_step(struct hf_sqlite_store *q, struct hf_write *w)
{
	struct hf_run *run = w->run;
	struct hf_step_result *res = w->result;
	int64_t sid = 0;
	/* res NULL: the run ends without a step (timeout, workflow gone) */
	for (int by_id = run->rid == 0; res; by_id = 1) {
		if (insert_step(q, w, by_id) < 0)
			return -1;
		if (sqlite3_changes(q->wdb) > 0)
			sid = sqlite3_last_insert_rowid(q->wdb);
		if (by_id || sid)
			break;
	}
	if (res && res->status == HF_STEP_SUCCEEDED)
		for (size_t i = 0; i < res->nemits; i++)
			if (insert_emit(q, run,
					run->wf->steps[w->step_index].id,
					&res->emits[i]) < 0)
				return -1;
	for (int by_id = run->rid == 0;; by_id = 1) {
		if (update_run(q, run, res, sid, by_id) < 0)
			return -1;
		if (sqlite3_changes(q->wdb) > 0)
			return 0;
		if (by_id)
			break;
	}
	if (!sid)
		return 0;
	/* Cancelled meanwhile: the run stays as it is, its step is shown. */
	sqlite3_stmt *st = q->stmts[ST_RUN_STEPS];
	bind_kept(st, 1, run->id);
	sqlite3_bind_int64(st, 2, sid);
	bind_band(st, 3, run->id);
	return step_done(st);
}

/* The attempt as both delivery statements take it: ?1 the delivery, ?2 its
 * attempts, ?3 when this one began, ?4 its HTTP status, ?5 its error. */
static void bind_attempt(sqlite3_stmt *st, const struct hf_write *w)
{
	bind_kept(st, 1, w->delivery_id);
	sqlite3_bind_int(st, 2, w->attempts);
	sqlite3_bind_int64(st, 3, w->attempt_at);
	bind_int_or_null(st, 4, w->http_status);
	bind_kept(st, 5, w->delivery_error);
}

static int apply_delivery(struct hf_sqlite_store *q, struct hf_write *w)
{
	sqlite3_stmt *st = q->stmts[ST_DELIVERY_ATTEMPT];
	bind_attempt(st, w);
	sqlite3_bind_int64(st, 6, w->duration_ms);
	if (step_done(st) < 0)
		return -1;
	st = q->stmts[ST_DELIVERY_UPDATE];
	bind_attempt(st, w);
	bind_kept(st, 6, w->delivery_status);
	sqlite3_bind_int64(st, 7, w->next_at);
	sqlite3_bind_int64(st, 8, hf_now_ms());
	return step_done(st);
}

int hf_sqlite_apply(struct hf_sqlite_store *q, struct hf_write *w)
{
	assert(sq_applying(q));
	switch (w->kind) {
	case HF_W_INGEST:
		return apply_ingest(q, w);
	case HF_W_RUNS:
		return apply_runs(q, w);
	case HF_W_RUN_STARTED:
		return apply_run_started(q, w);
	case HF_W_STEP:
		return apply_step(q, w);
	case HF_W_DELIVERY:
		return apply_delivery(q, w);
	case HF_W_CALL:
		return w->call(&q->base, w->call_arg);
	}
	return -1;
}

int hf_sqlite_store_version(struct hf_sqlite_store *q,
			    const struct hf_workflow *wf)
{
	int64_t vid;
	return store_version(q, wf, &vid);
}
