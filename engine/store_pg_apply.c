/* store_pg_apply.c - the PostgreSQL backend's writes: applying each kind of
 * write (hf_write_kind) inside the transaction the writer opened, with the
 * SQLite backend's semantics (store_sqlite_apply.c): INSERT OR IGNORE is ON
 * CONFLICT DO NOTHING, INSERT OR REPLACE an upsert.
 *
 * Group commit's rows: the events and runs of a batch's ingests and replays
 * are not inserted one by one but gathered (struct hf_pg_rows: one binary
 * array per column) and sent as one multi-row INSERT … SELECT FROM unnest(…)
 * each when the batch ends (hf_pg_flush_rows, before the COMMIT), or before
 * a write of another kind. A run's queue row (node_id: this server, or NULL
 * when the CLI wrote it for a server to pick up) goes in the same statement
 * as the run. Dedupe keys are checked and recorded at once, in order, so that
 * the first event of a batch with a key wins, as in SQLite.
 *
 * Fencing: a write of a claimed run (its start, each step, its end, the
 * deliveries its steps emit) and a delivery's attempt record commit only
 * while this node holds the run (or delivery) under its current epoch
 * (store_pg_node.c); else the write writes nothing and is marked
 * w->fenced, and the run is dropped here.
 *
 * Emit signing secrets are sealed (hf_seal) with the key of hf_pg_key:
 * HOOKFLOW_SECRET_KEY, or else one made at the first start and kept in the
 * database's meta table (shared by every server of the database; with it the
 * seal protects against less: set HOOKFLOW_SECRET_KEY to keep it apart).
 *
 * Threading: only the thread applying a batch (asserted: pq_applying).
 *
 * Neighbours: store_pg.c (calls hf_pg_apply, hf_pg_flush_rows), store_pg.h. */
#include "hf_crypto.h"
#include "hf_limits.h"
#include "store_pg.h"

#include <assert.h>
#include <string.h>

/* --- the batch's rows --- */

#define NEV 8
#define NRUN 15

void hf_pg_rows_init(struct hf_pg_store *q)
{
	static const unsigned ev_oid[NEV] = {
	    HF_PG_TEXT_OID, HF_PG_TEXT_OID,  HF_PG_TEXT_OID, HF_PG_TEXT_OID,
	    HF_PG_TEXT_OID, HF_PG_BYTEA_OID, HF_PG_INT8_OID, HF_PG_TEXT_OID};
	static const unsigned run_oid[NRUN] = {
	    HF_PG_TEXT_OID, HF_PG_TEXT_OID, HF_PG_TEXT_OID, HF_PG_TEXT_OID,
	    HF_PG_INT8_OID, HF_PG_INT8_OID, HF_PG_INT8_OID, HF_PG_INT8_OID,
	    HF_PG_INT8_OID, HF_PG_TEXT_OID, HF_PG_INT8_OID,
	    /* a run stored parked (hf_park.h) */
	    HF_PG_TEXT_OID, HF_PG_INT8_OID, HF_PG_TEXT_OID, HF_PG_TEXT_OID};
	for (int i = 0; i < NEV; i++)
		hf_pg_arr_init(&q->rows.ev[i], ev_oid[i]);
	for (int i = 0; i < NRUN; i++)
		hf_pg_arr_init(&q->rows.run[i], run_oid[i]);
}

void hf_pg_rows_reset(struct hf_pg_store *q)
{
	for (int i = 0; i < NEV; i++)
		hf_pg_arr_reset(&q->rows.ev[i]);
	for (int i = 0; i < NRUN; i++)
		hf_pg_arr_reset(&q->rows.run[i]);
	q->rows.nevents = q->rows.nruns = 0;
}

void hf_pg_rows_free(struct hf_pg_store *q)
{
	for (int i = 0; i < NEV; i++)
		hf_pg_arr_free(&q->rows.ev[i]);
	for (int i = 0; i < NRUN; i++)
		hf_pg_arr_free(&q->rows.run[i]);
}

static const char insert_events_sql[] =
    "INSERT INTO events(id, path, method, query, headers, body, received_at,"
    " skipped) SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
    " $4::text[], $5::text[], $6::bytea[], $7::int8[], $8::text[])";

/* The runs in arrival order (seq), each with its queue row. */
/* A run stored parked (status 'waiting', hf_park.h) gets no queue row. */
static const char insert_runs_sql[] =
    "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
    " $4::text[], $5::int8[], $6::int8[], $7::int8[], $8::int8[],"
    " $9::int8[], $10::text[], $11::int8[], $14::text[], $15::int8[],"
    " $16::text[], $17::text[]) WITH ORDINALITY AS u(id,"
    " event_id, workflow, version, attempt, created_at, next_step,"
    " step_attempt, due_at, lane, node, status, wake_at, waiting,"
    " wait_path, ord)),"
    " r AS (INSERT INTO runs(id, event_id, workflow, version, status,"
    " attempt, created_at, next_step, step_attempt, due_at, lane, wake_at,"
    " waiting, wait_path)"
    " SELECT id, event_id, workflow, version, status, attempt, created_at,"
    " next_step, step_attempt, due_at, lane, wake_at, waiting, wait_path"
    " FROM u ORDER BY ord RETURNING id, seq, status)"
    " INSERT INTO queue(run_id, seq, node_id, epoch, claimed_at, lane)"
    " SELECT r.id, r.seq, u.node, CASE WHEN u.node IS NULL THEN 0 ELSE"
    " $12::int8 END, CASE WHEN u.node IS NULL THEN NULL ELSE $13::int8 END,"
    " u.workflow || chr(10) || u.lane"
    " FROM r JOIN u ON u.id = r.id WHERE r.status <> 'waiting'";

int hf_pg_flush_rows(struct hf_pg_store *q)
{
	struct hf_pg_rows *r = &q->rows;
	int rc = 0;
	if (r->nevents > 0) {
		struct hf_pg_arr *e = r->ev;
		rc =
		    hf_pg_run(q, q->wconn, insert_events_sql, "aaaaaaaa", &e[0],
			      &e[1], &e[2], &e[3], &e[4], &e[5], &e[6], &e[7]);
	}
	if (rc >= 0 && r->nruns > 0) {
		struct hf_pg_arr *u = r->run;
		rc =
		    hf_pg_run(q, q->wconn, insert_runs_sql, "aaaaaaaaaaaIIaaaa",
			      &u[0], &u[1], &u[2], &u[3], &u[4], &u[5], &u[6],
			      &u[7], &u[8], &u[9], &u[10], q->epoch,
			      hf_now_ms(), &u[11], &u[12], &u[13], &u[14]);
	}
	hf_pg_rows_reset(q);
	return rc < 0 ? -1 : 0;
}

/* --- applying writes --- */

/* Stores wf's text under its version once (cached as in SQLite). */
static int store_version(struct hf_pg_store *q, const struct hf_workflow *wf)
{
	if (!wf->version || !wf->source)
		return 0;
	for (unsigned i = 0; i < HF_STATE_VERSION_CACHE && i < q->nversions;
	     i++)
		if (strcmp(q->versions[i], wf->version) == 0)
			return 0;
	json_t *scripts = json_object();
	for (size_t i = 0; i < hf_workflow_nall(wf); i++) {
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
	char *text = json_dumps(scripts, JSON_COMPACT);
	char *yaml = hf_xstrndup(wf->source, wf->source_len);
	int rc = hf_pg_run(q, q->wconn,
			   "INSERT INTO workflow_versions(version, name, file,"
			   " yaml, scripts, created_at) VALUES($1, $2, $3, $4,"
			   " $5, $6) ON CONFLICT DO NOTHING",
			   "tttttI", wf->version, wf->name, wf->file, yaml,
			   text, hf_now_ms());
	free(yaml);
	free(text);
	json_decref(scripts);
	if (rc < 0)
		return -1;
	snprintf(q->versions[q->nversions++ % HF_STATE_VERSION_CACHE],
		 sizeof q->versions[0], "%s", wf->version);
	return 0;
}

int hf_pg_store_version(struct hf_pg_store *q, const struct hf_workflow *wf)
{
	return store_version(q, wf);
}

static int add_run(struct hf_pg_store *q, struct hf_run *run, bool claimed)
{
	if (store_version(q, run->wf) < 0)
		return -1;
	struct hf_pg_arr *u = q->rows.run;
	hf_pg_arr_text(&u[0], run->id);
	hf_pg_arr_text(&u[1], run->event->id);
	hf_pg_arr_text(&u[2], run->wf->name);
	hf_pg_arr_text(&u[3], run->wf->version);
	hf_pg_arr_int8(&u[4], run->attempt);
	hf_pg_arr_int8(&u[5], run->created_at);
	hf_pg_arr_int8(&u[6], (int64_t)run->next_step);
	hf_pg_arr_int8(&u[7], run->step_attempt);
	hf_pg_arr_int8(&u[8], run->due_at);
	hf_pg_arr_text(&u[9], run->lane);
	/* Without a node (the CLI) a run is unclaimed in any case. */
	hf_pg_arr_int8_or_null(&u[10], claimed ? q->node_id : 0);
	/* Stored parked when it is (hf_park.h: debounce, throttle...). */
	hf_pg_arr_text(&u[11], hf_run_status_name(run->status == HF_RUN_WAITING
						      ? HF_RUN_WAITING
						      : HF_RUN_QUEUED));
	hf_pg_arr_int8_or_null(&u[12], run->wake_at);
	hf_pg_arr_text(&u[13], run->waiting);
	hf_pg_arr_text(&u[14], run->wait_path);
	if (claimed && q->node_id)
		run->epoch = atomic_load(&q->epoch);
	else
		q->notify_pending = true; /* claimable by any node */
	q->rows.nruns++;
	return 0;
}

/* Returns 1 when key was already seen for the workflow (dup_of filled), 0
 * when it is new (now recorded), -1 on error. One statement: the insert's
 * snapshot does not see its own row, so the SELECT finds the older one. */
static int dedupe_check(void *ctx, const struct hf_run *run,
			char dup_of[HF_ID_SIZE])
{
	struct hf_pg_store *q = ctx;
	PGresult *r = hf_pg_exec(
	    q, q->wconn,
	    "WITH ins AS (INSERT INTO dedupe(workflow, key, event_id,"
	    " created_at) VALUES($1, $2, $3, $4) ON CONFLICT DO NOTHING"
	    " RETURNING event_id) SELECT (SELECT event_id FROM ins),"
	    " (SELECT event_id FROM dedupe WHERE workflow = $1 AND key = $2)",
	    "tttI", run->wf->name, run->dedupe_key, run->event->id,
	    run->event->received_at);
	int rc = -1;
	if (hf_pg_ok(r) && PQntuples(r) == 1) {
		if (!PQgetisnull(r, 0, 0))
			rc = 0;
		else if (!PQgetisnull(r, 0, 1)) {
			snprintf(dup_of, HF_ID_SIZE, "%s", PQgetvalue(r, 0, 1));
			rc = 1;
		}
	}
	PQclear(r);
	if (rc != -1)
		return rc;
	/* Neither: another node committed the key after this statement's
	 * snapshot (the insert waited for it). A new statement sees it. */
	r = hf_pg_exec(q, q->wconn,
		       "SELECT event_id FROM dedupe WHERE workflow = $1 AND"
		       " key = $2",
		       "tt", run->wf->name, run->dedupe_key);
	if (hf_pg_ok(r) && PQntuples(r) == 1) {
		snprintf(dup_of, HF_ID_SIZE, "%s", PQgetvalue(r, 0, 0));
		rc = 1;
	}
	PQclear(r);
	return rc;
}

static char *json_text(const json_t *v)
{
	return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

static int apply_ingest(struct hf_pg_store *q, struct hf_write *w)
{
	struct hf_event *ev = w->event;
	int dd = hf_writer_dedupe(w, dedupe_check, q);
	if (dd != 0)
		return dd < 0 ? -1 : 0; /* a pure duplicate: nothing to store */

	struct hf_pg_arr *e = q->rows.ev;
	hf_pg_arr_text(&e[0], ev->id);
	hf_pg_arr_text(&e[1], ev->path);
	hf_pg_arr_text(&e[2], ev->method);
	char *t = ev->query_text ? NULL : json_text(ev->query);
	hf_pg_arr_text(&e[3], ev->query_text ? ev->query_text : t);
	free(t);
	t = ev->headers_text ? NULL : json_text(ev->headers);
	hf_pg_arr_text(&e[4], ev->headers_text ? ev->headers_text : t);
	free(t);
	hf_pg_arr_bytes(&e[5], ev->body, ev->body_len);
	hf_pg_arr_int8(&e[6], ev->received_at);
	t = json_array_size(ev->skipped) ? json_text(ev->skipped) : NULL;
	hf_pg_arr_text(&e[7], t ? t : "[]");
	free(t);
	q->rows.nevents++;
	/* w->unclaimed: the runs wait in the disk backlog (no node). */
	for (size_t i = 0; i < w->nruns; i++)
		if (!w->dropped[i] && add_run(q, w->runs[i], !w->unclaimed) < 0)
			return -1;
	return 0;
}

static int apply_runs(struct hf_pg_store *q, struct hf_write *w)
{
	for (size_t i = 0; i < w->nruns; i++)
		if (add_run(q, w->runs[i], !w->unclaimed) < 0)
			return -1;
	return 0;
}

static int apply_run_started(struct hf_pg_store *q, struct hf_write *w)
{
	if (atomic_load(&w->run->step_pending))
		return 0;
	/* Fenced as a step's write (apply_step); a cancelled run stays so, and
	 * is dropped as a fenced one. */
	int n = 0;
	if (!q->batch_fenced)
		n = hf_pg_run(q, q->wconn,
			      "UPDATE runs SET status = 'running', started_at ="
			      " $2 WHERE id = $1 AND status <> 'cancelled' AND"
			      " ($3::int8 = 0 OR EXISTS (SELECT 1 FROM queue"
			      " WHERE run_id = $1 AND node_id = $3 AND epoch ="
			      " $4))",
			      "tIII", w->run->id, w->run->started_at,
			      q->node_id, (int64_t)atomic_load(&q->epoch));
	if (n == 0 && q->node_id)
		w->fenced = true;
	return n < 0 ? -1 : 0;
}

/* --- secrets at rest --- */

/* The key kept in the database (made on first use): 0 or -1. */
static int key_from_db(struct hf_pg_store *q, struct hf_error *err)
{
	unsigned char fresh[32];
	char hex[65];
	if (hf_random_bytes(fresh, sizeof fresh) < 0) {
		hf_error_set(err, NULL, 0, 0, "no random bytes for a key");
		return -1;
	}
	hf_hex_encode(fresh, sizeof fresh, hex);
	hf_secret_wipe(fresh, sizeof fresh);
	PGconn *c = hf_pg_reader_take(q);
	PGresult *r = hf_pg_exec(
	    q, c,
	    "WITH ins AS (INSERT INTO meta(key, value) VALUES ('secret_key',"
	    " $1) ON CONFLICT DO NOTHING RETURNING value)"
	    " SELECT COALESCE((SELECT value FROM ins), (SELECT value FROM meta"
	    " WHERE key = 'secret_key'))",
	    "t", hex);
	hf_secret_wipe(hex, sizeof hex);
	int rc = -1;
	const char *v =
	    hf_pg_ok(r) && PQntuples(r) == 1 ? pg_text(r, 0, 0) : NULL;
	if (v && hf_secret_key_parse(v, strlen(v), q->key) == 0)
		rc = 0;
	else
		hf_error_set(err, NULL, 0, 0,
			     "cannot read the key for secrets at rest from the "
			     "state database");
	PQclear(r);
	hf_pg_reader_give(q, c);
	return rc;
}

int hf_pg_key(struct hf_pg_store *q, struct hf_error *err)
{
	pthread_mutex_lock(&q->key_lock);
	int rc = 0;
	if (!q->have_key) {
		const char *env = getenv("HOOKFLOW_SECRET_KEY");
		rc = env && *env ? hf_secret_key_load(NULL, q->key, err)
				 : key_from_db(q, err);
		q->have_key = rc == 0;
	}
	pthread_mutex_unlock(&q->key_lock);
	return rc;
}

static char *seal(struct hf_pg_store *q, const char *id, const char *secret)
{
	struct hf_error err = {0};
	if (!secret)
		return NULL;
	if (hf_pg_key(q, &err) < 0) {
		hf_log(HF_LOG_ERROR, "delivery %s: cannot seal its secret: %s",
		       id, err.msg);
		return NULL;
	}
	return hf_seal(q->key, id, strlen(id), secret, strlen(secret));
}

struct check {
	struct hf_pg_store *q;
	char bad[HF_ID_SIZE];
};

static int check_row(PGconn *c, PGresult *r, int i, void *arg)
{
	(void)c;
	struct check *k = arg;
	const char *id = pg_text(r, i, 0);
	const char *secret = pg_text(r, i, 1);
	if (!id || !hf_is_sealed(secret))
		return 0;
	char *plain = hf_unseal(k->q->key, id, strlen(id), secret);
	if (plain) {
		hf_secret_free(plain);
		return 0;
	}
	snprintf(k->bad, sizeof k->bad, "%s", id);
	return 1;
}

int hf_pg_secrets_start(struct hf_pg_store *q, struct hf_error *err)
{
	if (hf_pg_key(q, err) < 0)
		return -1;
	struct check k = {q, ""};
	hf_pg_each(q, NULL, check_row, &k,
		   "SELECT id, secret FROM deliveries WHERE status ="
		   " 'pending' AND secret IS NOT NULL",
		   "");
	if (!k.bad[0])
		return 0;
	hf_error_set(err, NULL, 0, 0,
		     "delivery %s: its signing secret does not open with this "
		     "key (HOOKFLOW_SECRET_KEY, else the one kept in the state "
		     "database): start with the key it was stored with",
		     k.bad);
	return -1;
}

/* --- steps and deliveries --- */

static int insert_emit(struct hf_pg_store *q, const struct hf_run *run,
		       const char *step_id, const struct hf_emit *e)
{
	char *sealed = seal(q, e->id, e->secret);
	if (e->secret && !sealed)
		return -1;
	char *headers = json_text(e->headers);
	int64_t now = hf_now_ms();
	int rc = hf_pg_run(
	    q, q->wconn,
	    "INSERT INTO deliveries(id, run_id, step_id, url, payload, headers,"
	    " secret, status, attempts, max_attempts, backoff_ms, next_at,"
	    " created_at, updated_at, timeout_ms) VALUES($1, $2, $3, $4, $5,"
	    " $6, $7, 'pending', 0, $8, $9, $10, $10, $10, $11)"
	    " ON CONFLICT DO NOTHING",
	    "ttttbttiIII", e->id, run->id, step_id, e->url, e->payload,
	    strlen(e->payload), headers, sealed, e->attempts,
	    (int64_t)e->backoff_ms, now,
	    (int64_t)(e->timeout_ms > 0 ? e->timeout_ms
					: HF_DELIVERY_TIMEOUT_MS));
	free(headers);
	free(sealed);
	return rc < 0 ? -1 : 0;
}

int hf_pg_fence(struct hf_pg_store *q, const struct hf_write *w,
		const struct hf_write *end)
{
	if (!q->node_id || q->fence_held)
		return 0;
	for (; w != end; w = w->next)
		if (w->kind == HF_W_STEP || w->kind == HF_W_RUN_STARTED)
			break;
	if (w == end)
		return 0;
	/* A reaper locks its victim's row FOR UPDATE (SKIP LOCKED): it
	 * either waits for this batch's commit, or reaped before it, and
	 * then the epoch differs here. One statement per batch, not per
	 * step. */
	int n = hf_pg_run(q, q->wconn,
			  "SELECT 1 FROM nodes WHERE id = $1 AND epoch = $2"
			  " FOR KEY SHARE",
			  "II", q->node_id, (int64_t)atomic_load(&q->epoch));
	q->fence_held = n >= 0;
	q->batch_fenced = n == 0;
	return n < 0 ? -1 : 0;
}

/* The run's progress, first: only while this node holds the run under its
 * epoch (fencing; no node reaps this one during the batch: hf_pg_fence).
 * A run stored parked already and parked again keeps its stored wait: a
 * debounce's new leader is stored parked by its decision, and the bursts's
 * later events may have joined it since (store_pg_shared.c).
 * Returns 1 written, 0 fenced, -1 on error. */
static int update_run(struct hf_pg_store *q, const struct hf_run *run,
		      int64_t finished)
{
	if (q->batch_fenced)
		return 0;
	return hf_pg_run(
	    q, q->wconn,
	    "UPDATE runs SET status = $2, next_step = $3,"
	    " step_attempt = $4, due_at = $5, error = $6,"
	    " finished_at = $7, started_at = COALESCE(started_at,"
	    " $8), wake_at = CASE WHEN status = 'waiting' AND $2 ="
	    " 'waiting' THEN wake_at ELSE $11 END, waiting = CASE WHEN"
	    " status = 'waiting' AND $2 = 'waiting' THEN waiting ELSE $12"
	    " END, wait_path = $13"
	    " WHERE id = $1 AND status <> 'cancelled' AND ($9::int8 = 0 OR"
	    " EXISTS (SELECT 1 FROM queue WHERE run_id = $1 AND node_id = $9"
	    " AND epoch = $10))",
	    "ttIiItJJIIJtt", run->id, hf_run_status_name(run->status),
	    (int64_t)run->next_step, run->step_attempt, run->due_at, run->error,
	    finished, run->started_at, q->node_id,
	    (int64_t)atomic_load(&q->epoch), run->wake_at, run->waiting,
	    run->wait_path);
}

/* 1 when run_id was cancelled (hf_cancel.h), 0 when not, -1 on error. */
static int run_cancelled(struct hf_pg_store *q, const char *run_id)
{
	return hf_pg_run(q, q->wconn,
			 "SELECT 1 FROM runs WHERE id = $1 AND status ="
			 " 'cancelled'",
			 "t", run_id);
}

static int insert_step(struct hf_pg_store *q, struct hf_write *w)
{
	struct hf_run *run = w->run;
	struct hf_step_result *res = w->result;
	const struct hf_step *step = &run->wf->steps[w->step_index];
	char *out = res->output_text ? NULL : json_text(res->output);
	char *logs = res->logs_text ? NULL : json_text(res->logs);
	int rc = hf_pg_run(
	    q, q->wconn,
	    "INSERT INTO steps(run_id, idx, step_id, status, output,"
	    " error, logs, attempts, started_at, finished_at, node)"
	    " VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
	    " ON CONFLICT (run_id, idx) DO UPDATE SET step_id ="
	    " EXCLUDED.step_id, status = EXCLUDED.status, output ="
	    " EXCLUDED.output, error = EXCLUDED.error, logs ="
	    " EXCLUDED.logs, attempts = EXCLUDED.attempts, started_at"
	    " = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,"
	    " node = EXCLUDED.node",
	    "tItttttiIIt", run->id, (int64_t)w->step_index, step->id,
	    hf_step_status_name(res->status),
	    res->output_text ? res->output_text : out, res->error,
	    res->logs_text ? res->logs_text : logs, w->step_attempts,
	    res->started_at, res->finished_at,
	    q->node_name[0] ? q->node_name : NULL);
	free(out);
	free(logs);
	if (rc < 0)
		return -1;
	if (res->status == HF_STEP_SUCCEEDED)
		for (size_t i = 0; i < res->nemits; i++)
			if (insert_emit(q, run, step->id, &res->emits[i]) < 0)
				return -1;
	return 0;
}

static int apply_step(struct hf_pg_store *q, struct hf_write *w)
{
	struct hf_run *run = w->run;
	struct hf_step_result *res = w->result;
	bool ended = run->status == HF_RUN_SUCCEEDED ||
		     run->status == HF_RUN_FAILED ||
		     run->status == HF_RUN_CANCELLED; /* hf_debounce.h */
	int64_t finished = ended ? (res ? res->finished_at : hf_now_ms()) : 0;
	int n = update_run(q, run, finished);
	if (n < 0)
		return -1;
	if (n == 0 && !q->batch_fenced && run_cancelled(q, run->id) == 1) {
		/* Cancelled meanwhile (hf_cancel.h): the step that ran still
		 * commits, its emits included, and no later step runs. */
		if (res && insert_step(q, w) < 0)
			return -1;
		run->status = HF_RUN_CANCELLED; /* the worker drops it */
		w->fenced = true;
		return 0;
	}
	if (n == 0) {
		/* Another node holds the run now (or it is gone): this late
		 * commit writes nothing, its emits included. */
		w->fenced = q->node_id != 0;
		return 0;
	}
	if (res && insert_step(q, w) < 0)
		return -1;
	/* A parked run (hf_park.h) leaves the queue until it wakes. */
	if ((ended || run->status == HF_RUN_WAITING) &&
	    hf_pg_run(q, q->wconn, "DELETE FROM queue WHERE run_id = $1", "t",
		      run->id) < 0)
		return -1;
	return 0;
}

static int apply_delivery(struct hf_pg_store *q, struct hf_write *w)
{
	/* A retry asked for while this attempt was in flight stands (see
	 * store_sqlite_apply.c's ST_DELIVERY_UPDATE): due at once. Fenced: a
	 * delivery this node leased under an older epoch may be another
	 * node's now, and then this attempt's record is refused. The record
	 * ends the lease (node_id NULL). */
	int n =
	    hf_pg_run(q, q->wconn,
		      "UPDATE deliveries SET attempts = $2,"
		      " last_status = $4, last_error = $5,"
		      " status = CASE WHEN $6::text = 'delivered' OR"
		      " updated_at <= $3 THEN $6::text ELSE status END,"
		      " next_at = CASE WHEN $6::text = 'delivered' OR"
		      " updated_at <= $3 THEN $7 ELSE LEAST(next_at, $8) END,"
		      " updated_at = $8, node_id = NULL, epoch = 0"
		      " WHERE id = $1 AND ($9::int8 = 0 OR"
		      " node_id IS NULL OR (node_id = $9 AND epoch = $10))",
		      "tiIJttIIII", w->delivery_id, w->attempts, w->attempt_at,
		      (int64_t)w->http_status, w->delivery_error,
		      w->delivery_status, w->next_at, hf_now_ms(), q->node_id,
		      (int64_t)atomic_load(&q->epoch));
	if (n < 0)
		return -1;
	if (n == 0) {
		w->fenced = q->node_id != 0;
		return 0;
	}
	return hf_pg_run(q, q->wconn,
			 "INSERT INTO delivery_attempts(delivery_id, n, at,"
			 " status, error, duration_ms) VALUES($1, $2, $3, $4,"
			 " $5, $6) ON CONFLICT (delivery_id, n) DO UPDATE SET"
			 " at = EXCLUDED.at, status = EXCLUDED.status, error ="
			 " EXCLUDED.error, duration_ms = EXCLUDED.duration_ms",
			 "tiIJtI", w->delivery_id, w->attempts, w->attempt_at,
			 (int64_t)w->http_status, w->delivery_error,
			 w->duration_ms) < 0
		   ? -1
		   : 0;
}

int hf_pg_apply(struct hf_pg_store *q, struct hf_write *w)
{
	assert(pq_applying(q));
	if (w->kind != HF_W_INGEST && w->kind != HF_W_RUNS &&
	    (q->rows.nevents || q->rows.nruns) && hf_pg_flush_rows(q) < 0)
		return -1;
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
