/* store_sqlite_recover.c - the SQLite backend's recovery and repair: the
 * clean-stop marker, loading the unfinished runs at start-up (each with the
 * workflow version it was stored with) and those the CLI queued since,
 * retrying a failed run or a delivery, pruning old rows, and the newest
 * stored version of each workflow (hookflow replay).
 *
 * Not here: the writer thread (store_writer.c), its transaction
 * (store_sqlite.c) and the writes it applies (store_sqlite_apply.c), the
 * admin API's reads (store_sqlite_query.c).
 *
 * Threading: hf_sqlite_load_pending reads on a pooled connection and claims on
 * the writer's connection under wlock, as do hf_sqlite_changed and
 * hf_sqlite_retry_run; hf_sqlite_retry_delivery and hf_sqlite_prune run
 * inside an HF_W_CALL write, on the thread applying it (asserted). The
 * clean-stop marker is read at open, before the writer thread starts, and
 * written at close, after it stopped.
 *
 * Neighbours: store_sqlite.c, store_sqlite_query.c (hf_sqlite_load_event),
 * workflow.c (hf_workflow_parse_stored). */
#include "hf_limits.h"
#include "store_sqlite.h"

#include <assert.h>
#include <stdarg.h>
#include <string.h>

void hf_sqlite_clean_stop_begin(struct hf_sqlite_store *q)
{
	/* Remember whether the last server stopped cleanly (after a crash, any
	 * step may have been in flight), and that this one has not yet. */
	sqlite3_stmt *st = hf_sqlite_stmt(
	    q->wdb, "SELECT value FROM meta WHERE key = 'clean_stop'", "");
	if (st && sqlite3_step(st) == SQLITE_ROW)
		q->unclean = sqlite3_column_int(st, 0) == 0;
	sqlite3_finalize(st);
	/* The disk backlog's runs taken up to this mark may have been in
	 * flight (store_sqlite_backlog.c). */
	st = hf_sqlite_stmt(
	    q->wdb, "SELECT value FROM meta WHERE key = 'backlog_mark'", "");
	if (q->unclean && st && sqlite3_step(st) == SQLITE_ROW)
		hf_sqlite_bl_unclean(q, sqlite3_column_int64(st, 0));
	sqlite3_finalize(st);
	sqlite3_exec(q->wdb,
		     "INSERT OR REPLACE INTO meta(key, value) VALUES"
		     " ('clean_stop', 0)",
		     NULL, NULL, NULL);
}

void hf_sqlite_clean_stop_end(struct hf_sqlite_store *q)
{
	/* Nothing was in flight: no run taken from the disk backlog is. */
	sqlite3_exec(q->wdb, "DELETE FROM meta WHERE key = 'backlog_mark'",
		     NULL, NULL, NULL);
	sqlite3_exec(q->wdb,
		     "INSERT OR REPLACE INTO meta(key, value)"
		     " VALUES ('clean_stop', 1)",
		     NULL, NULL, NULL);
}

bool hf_sqlite_changed(struct hf_store *s)
{
	struct hf_sqlite_store *q = sq(s);
	bool changed = false;
	/* data_version counts commits by other connections, so ask the writer's
	 * connection: its own commits do not change it. */
	pthread_mutex_lock(&q->wr.wlock);
	sqlite3_stmt *st = hf_sqlite_stmt(q->wdb, "PRAGMA data_version", "");
	if (st && sqlite3_step(st) == SQLITE_ROW) {
		int v = sqlite3_column_int(st, 0);
		changed = q->data_version && v != q->data_version;
		q->data_version = v;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->wr.wlock);
	return changed;
}

/* Parses a stored version again; NULL when it is not stored or no longer
 * loads (say, a ${NAME} it reads is gone from the environment). */
static struct hf_workflow *parse_version(void *ctx, const char *version)
{
	sqlite3 *db = ctx;
	struct hf_workflow *wf = NULL;
	json_t *scripts = NULL;
	sqlite3_stmt *st =
	    hf_sqlite_stmt(db,
			   "SELECT file, yaml, scripts FROM"
			   " workflow_versions WHERE version = ?1",
			   "t", version);
	if (!st || sqlite3_step(st) != SQLITE_ROW ||
	    sqlite3_column_type(st, 1) == SQLITE_NULL)
		goto done; /* not stored, or by its hash alone */
	scripts = col_json(st, 2);
	wf = hf_pickup_version((const char *)sqlite3_column_text(st, 0),
			       (const char *)sqlite3_column_text(st, 1),
			       (size_t)sqlite3_column_bytes(st, 1), scripts,
			       version);
done:
	json_decref(scripts);
	sqlite3_finalize(st);
	return wf;
}

/* One step's output into the object arg. */
static int output_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	(void)db;
	json_object_set_new(arg, (const char *)sqlite3_column_text(st, 0),
			    col_json(st, 1));
	return 0;
}

/* Rebuilds the in-memory run for a row of runs, or NULL when its event is gone.
 * The run gets the workflow version it was stored with when that version is in
 * workflow_versions, else the current workflow of the same name. */
static struct hf_run *load_run(struct hf_store *s, sqlite3 *db,
			       sqlite3_stmt *st,
			       const struct hf_workflow_set *set,
			       struct hf_version_cache *vc)
{
	const char *id = (const char *)sqlite3_column_text(st, 0);
	const char *wf_name = (const char *)sqlite3_column_text(st, 2);
	struct hf_workflow *wf = hf_pickup_workflow(
	    set, id, wf_name, (const char *)sqlite3_column_text(st, 11), vc,
	    parse_version, db);
	/* The event's columns come with the run's (a LEFT JOIN): no query
	 * per run. A NULL body is a damaged one (hf_body): the run fails,
	 * as one whose workflow is gone does. */
	bool damaged = sqlite3_column_type(st, 1) != SQLITE_NULL &&
		       sqlite3_column_type(st, 16) == SQLITE_NULL;
	struct hf_event *ev = hf_sqlite_event_row_text(st, 1, 12);
	if (!ev)
		return NULL;
	struct hf_run *run =
	    hf_pickup_run(ev, damaged ? NULL : wf, wf_name, id);
	if (damaged) {
		free(run->error);
		run->error = hf_xasprintf(
		    "the stored body of event %s is damaged: the run cannot go "
		    "on",
		    run->event->id);
	}
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
	/* Parked (hf_park.h): woken from the wait at next_step when it still
	 * says what it waited for but is no longer waiting. */
	run->wake_at = sqlite3_column_int64(st, 18);
	run->woken = (int)run->status != HF_RUN_WAITING &&
		     sqlite3_column_int(st, 19) != 0;
	if (run->woken)
		run->woken_from =
		    (enum hf_woken_from)(sqlite3_column_int(st, 19) - 1);
	/* Outputs of the steps already done (none before the first: most
	 * runs of the disk backlog), a signal's body for a woken wait. */
	if (run->next_step > 0 || run->woken)
		hf_sqlite_each(NULL, db, output_row, run->outputs,
			       "SELECT step_id, output FROM " HF_STEPS_OF_P1
			       " WHERE status = 'succeeded'",
			       "I", sqlite3_column_int64(st, 21));
	return run;
}

/* Runs picked up by hf_sqlite_load_pending, in order. */
struct pickup {
	struct hf_store *s;
	const struct hf_workflow_set *set;
	bool unclean; /* recovery after a stop that was not clean */
	struct hf_version_cache vc;
	struct hf_run *list, **tail;
	int n;
	/* hf_sqlite_load_where: rows at or below it as after an unclean stop;
	 * each run handed to fn_rid at once, with its rid. */
	int64_t unclean_below;
	void (*fn_rid)(struct hf_run *run, int64_t rid, void *arg);
	void *arg;
};

static int pickup_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	struct pickup *p = arg;
	struct hf_run *run = load_run(p->s, db, st, p->set, &p->vc);
	if (!run)
		return 0;
	/* After a crash (or a drain that timed out), the next step of a run
	 * not waiting for a retry may have been in flight, committed or not:
	 * it runs again as a later try, so that run.attempt > 1 tells the
	 * script it may be a repeat (a run waiting for a retry is at attempt
	 * > 1 already). After a clean stop nothing was in flight. */
	int64_t rid = sqlite3_column_int64(st, 20);
	if ((p->unclean || rid <= p->unclean_below) && run->due_at == 0)
		run->step_attempt++;
	/* Its writes find the row by rid, not by id in the id's band (a
	 * band of a busy millisecond holds tens of runs). */
	run->rid = rid;
	p->n++;
	if (p->fn_rid) {
		p->fn_rid(run, rid, p->arg);
		return 0;
	}
	*p->tail = run;
	p->tail = &run->next;
	return 0;
}

/* What a run's "waiting" was for: 0 nothing, else 1 + hf_woken_from (its
 * step's own wait: sleep, until, a signal; a throttle; a debounce's burst).
 * Read only where waiting is set. */
#define HF_WAITING_KIND                                                        \
	"CASE WHEN r.waiting IS NULL THEN 0 WHEN json_extract(r.waiting,"      \
	" '$.for') IN ('sleep', 'until', 'signal') THEN 1 WHEN"                \
	" json_extract(r.waiting, '$.for') = 'throttle' THEN 2 ELSE 3 END"

/* A run of the store as loaded by pickup_row: the columns it reads, in its
 * order, with the run's event and workflow version joined. */
#define RUN_SELECT                                                             \
	"SELECT r.id, e.id, r.workflow, r.status, r.attempt, r.created_at,"    \
	" r.started_at, r.next_step, r.step_attempt, r.due_at, r.lane,"        \
	" v.version, e.path, e.method, e.query, e.headers,"                    \
	" hf_body(e.body, e.body_size),"                                       \
	" e.received_at, r.wake_at, " HF_WAITING_KIND ", r.rid, r.steps"       \
	" FROM runs r"                                                         \
	" LEFT JOIN events e ON e.rid = r.event"                               \
	" LEFT JOIN workflow_versions v ON v.vid = r.vid"

/* Hands the runs on (store_pickup.c). */
static int pickup_end(struct pickup *p, int rc,
		      void (*fn)(struct hf_run *run, void *arg), void *arg)
{
	return hf_pickup_end(&p->vc, p->list, p->n, rc, fn, arg);
}

int hf_sqlite_load_pending(struct hf_store *s,
			   const struct hf_workflow_set *set,
			   bool only_unclaimed,
			   void (*fn)(struct hf_run *run, void *arg), void *arg)
{
	struct hf_sqlite_store *q = sq(s);
	struct pickup p = {.s = s,
			   .set = set,
			   .unclean = !only_unclaimed && q->unclean,
			   .unclean_below = -1};
	p.tail = &p.list;
	/* In the order of their ids (rid: the millisecond each was made, then
	 * insertion), which is arrival order: the lanes of `concurrency:` fill
	 * up again as they were. */
	if (hf_sqlite_each(q, NULL, pickup_row, &p,
			   RUN_SELECT " WHERE r.status IN ('queued','running')"
				      " AND r.claimed = ?1 ORDER BY r.rid",
			   "i", only_unclaimed ? 0 : 1) < 0)
		return -1;
	for (size_t i = 0; i < p.vc.n; i++)
		hf_workflow_unref(p.vc.items[i].wf);
	if (only_unclaimed && p.list) {
		pthread_mutex_lock(&q->wr.wlock);
		for (struct hf_run *r = p.list; r; r = r->next) {
			int64_t lo = hf_sqlite_band(r->id);
			hf_sqlite_exec(q->wdb,
				       "UPDATE runs SET claimed = 1 WHERE rid"
				       " BETWEEN ?1 AND ?2 AND id = ?3",
				       "IIt", lo,
				       lo + ((1 << HF_BAND_BITS) - 1), r->id);
		}
		pthread_mutex_unlock(&q->wr.wlock);
	}
	for (struct hf_run *r = p.list, *next; r; r = next) {
		next = r->next;
		r->next = NULL;
		fn(r, arg);
	}
	return p.n;
}

/* --- the disk backlog (store_sqlite_backlog.c) --- */

int hf_sqlite_load_where(struct hf_store *s, const struct hf_workflow_set *set,
			 int64_t unclean_below,
			 void (*fn)(struct hf_run *run, int64_t rid, void *arg),
			 void *arg, const char *where, const char *types, ...)
{
	struct pickup p = {.s = s,
			   .set = set,
			   .unclean_below = unclean_below,
			   .fn_rid = fn,
			   .arg = arg};
	p.tail = &p.list;
	char sql[1024];
	if (snprintf(sql, sizeof sql, "%s %s", RUN_SELECT, where) >=
	    (int)sizeof sql)
		return -1;
	va_list ap;
	va_start(ap, types);
	int rc = hf_sqlite_veach(sq(s), NULL, pickup_row, &p, sql, types, ap);
	va_end(ap);
	for (size_t i = 0; i < p.vc.n; i++)
		hf_workflow_unref(p.vc.items[i].wf);
	return rc < 0 ? -1 : p.n;
}

/* --- parked runs (hf_park.h) --- */

int hf_sqlite_load_waiting(struct hf_store *s,
			   const struct hf_workflow_set *set, const char *path,
			   const char *after, int limit,
			   void (*fn)(struct hf_run *run, void *arg), void *arg)
{
	struct hf_sqlite_store *q = sq(s);
	struct pickup p = {.s = s, .set = set, .unclean_below = -1};
	p.tail = &p.list;
	/* runs_wait_path: the runs waiting on path, a page in id order. */
	int rc = hf_sqlite_each(
	    q, NULL, pickup_row, &p,
	    RUN_SELECT " WHERE r.status = 'waiting' AND r.wait_path = ?1"
		       " AND r.id > ?3 ORDER BY r.id LIMIT ?2",
	    "tit", path, limit, after);
	return pickup_end(&p, rc, fn, arg);
}

/* --- the stored versions as a set (hookflow replay) --- */

struct stored_set {
	struct hf_workflow_set *set;
	size_t cap;
};

static bool file_taken(const struct hf_workflow_set *set, const char *file)
{
	for (size_t i = 0; file && i < set->n; i++)
		if (set->items[i]->file &&
		    strcmp(set->items[i]->file, file) == 0)
			return true;
	return false;
}

/* One stored version, newest first: kept unless a newer one of the same name
 * or file (a workflow renamed in its file) is kept already. */
static int stored_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	struct stored_set *ss = arg;
	const char *name = (const char *)sqlite3_column_text(st, 0);
	const char *version = (const char *)sqlite3_column_text(st, 1);
	const char *file = (const char *)sqlite3_column_text(st, 2);
	if (!name || !version || hf_workflow_set_find(ss->set, name) ||
	    file_taken(ss->set, file))
		return 0;
	if (ss->set->n == HF_MAX_WORKFLOWS)
		return 1;
	struct hf_workflow *wf = parse_version(db, version);
	if (!wf)
		return 0; /* no longer parses: an older version may */
	if (hf_workflow_set_find(ss->set, wf->name)) {
		hf_workflow_unref(wf);
		return 0;
	}
	if (ss->set->n == ss->cap) {
		ss->cap = ss->cap ? 2 * ss->cap : 16;
		ss->set->items = hf_xrealloc(ss->set->items,
					     ss->cap * sizeof *ss->set->items);
	}
	ss->set->items[ss->set->n++] = wf;
	return 0;
}

/* Each version of set stored, its created_at the time of this load, which
 * meta's versions_loaded_at remembers: the versions in force are those
 * stored since. */
int hf_sqlite_save_versions(struct hf_store *s,
			    const struct hf_workflow_set *set)
{
	struct hf_sqlite_store *q = sq(s);
	assert(sq_applying(q)); /* through HF_W_CALL */
	int64_t now = hf_now_ms();
	for (size_t i = 0; i < set->n; i++) {
		const struct hf_workflow *wf = set->items[i];
		if (hf_sqlite_store_version(q, wf) < 0)
			return -1;
		if (wf->version &&
		    hf_sqlite_exec(q->wdb,
				   "UPDATE workflow_versions SET created_at ="
				   " ?1 WHERE version = ?2",
				   "It", now, wf->version) != SQLITE_DONE)
			return -1;
	}
	return hf_sqlite_exec(q->wdb,
			      "INSERT OR REPLACE INTO meta(key, value)"
			      " VALUES ('versions_loaded_at', ?1)",
			      "I", now) == SQLITE_DONE
		   ? 0
		   : -1;
}

struct hf_workflow_set *hf_sqlite_stored_workflows(struct hf_store *s)
{
	struct stored_set ss = {.set = hf_xcalloc(1, sizeof *ss.set)};
	ss.set->refs = 1;
	/* What the server loaded last; before any load, every version. */
	if (hf_sqlite_each(sq(s), NULL, stored_row, &ss,
			   "SELECT name, version, file FROM workflow_versions"
			   " WHERE created_at >= COALESCE((SELECT CAST(value AS"
			   " INTEGER) FROM meta WHERE key ="
			   " 'versions_loaded_at'), 0)"
			   " ORDER BY created_at DESC, version",
			   "") < 0) {
		hf_workflow_set_unref(ss.set);
		return NULL;
	}
	return ss.set;
}

/* Keeps the failed attempt in run_history, then queues the run again, in
 * one transaction. */
int hf_sqlite_retry_run(struct hf_store *s, const char *run_id,
			struct hf_error *err)
{
	struct hf_sqlite_store *q = sq(s);
	int rc = -1;
	int64_t lo = hf_sqlite_band(run_id);
	pthread_mutex_lock(&q->wr.wlock);
	if (hf_sqlite_exec(q->wdb, "BEGIN IMMEDIATE", "") != SQLITE_DONE) {
		hf_error_set(err, NULL, 0, 0, "cannot retry: %s",
			     sqlite3_errmsg(q->wdb));
		pthread_mutex_unlock(&q->wr.wlock);
		return -1;
	}
	json_t *steps = hf_sqlite_steps_json(q->wdb, run_id);
	char *steps_text = json_dumps(steps, JSON_COMPACT);
	json_decref(steps);
	int hrc = hf_sqlite_exec(
	    q->wdb,
	    "INSERT OR REPLACE INTO run_history(run_id, attempt, status,"
	    " error, steps, finished_at) SELECT id, attempt, status, error,"
	    " ?2, finished_at FROM runs WHERE rid BETWEEN ?3 AND ?4 AND"
	    " id = ?1 AND status = 'failed'",
	    "ttII", run_id, steps_text ? steps_text : "[]", lo,
	    lo + ((1 << HF_BAND_BITS) - 1));
	free(steps_text);
	sqlite3_stmt *st =
	    hrc != SQLITE_DONE
		? NULL
		: hf_sqlite_stmt(q->wdb,
				 "UPDATE runs SET status = 'queued', attempt ="
				 " attempt + 1, step_attempt = 1, due_at = 0,"
				 " error = NULL, finished_at = NULL, claimed ="
				 " 0, started_at = NULL WHERE rid BETWEEN"
				 " ?2 AND ?3 AND id = ?1 AND status ="
				 " 'failed'",
				 "tII", run_id, lo,
				 lo + ((1 << HF_BAND_BITS) - 1));
	if (!st || sqlite3_step(st) != SQLITE_DONE)
		hf_error_set(err, NULL, 0, 0, "cannot retry: %s",
			     sqlite3_errmsg(q->wdb));
	else if (sqlite3_changes(q->wdb) == 0)
		hf_error_set(err, NULL, 0, 0,
			     "run '%s' does not exist or has not failed",
			     run_id);
	else
		rc = 0;
	sqlite3_finalize(st);
	if (rc == 0 && hf_sqlite_exec(q->wdb, "COMMIT", "") != SQLITE_DONE) {
		hf_error_set(err, NULL, 0, 0, "cannot retry: %s",
			     sqlite3_errmsg(q->wdb));
		rc = -1;
	}
	if (rc != 0)
		hf_sqlite_exec(q->wdb, "ROLLBACK", "");
	else
		hf_sqlite_bl_rewind(q); /* behind the backlog's cursor */
	pthread_mutex_unlock(&q->wr.wlock);
	return rc;
}

int hf_sqlite_prune(struct hf_store *s, int64_t before, int limit)
{
	struct hf_sqlite_store *q = sq(s);
	assert(sq_applying(q)); /* through HF_W_CALL */
	/* The rows of one batch are picked once (steps go with their runs,
	 * attempts with their deliveries). Run and event rids begin with their
	 * id's creation time (hf_sqlite_band), so "created before" is a range
	 * of the key: a batch reads old rows, not the whole table. An event
	 * goes only once no run refers to it (a replay may still be queued). */
	static const char *sql[] = {
	    "CREATE TEMP TABLE IF NOT EXISTS prune_ids(id TEXT PRIMARY KEY)",
	    "CREATE TEMP TABLE IF NOT EXISTS prune_runs(rid INTEGER PRIMARY"
	    " KEY, id TEXT, steps INTEGER)",
	    "DELETE FROM prune_runs",
	    "INSERT INTO prune_runs SELECT rid, id, steps FROM runs WHERE"
	    " rid < ?3 AND finished_at < ?1 AND status IN"
	    " ('succeeded','failed') LIMIT ?2",
	    /* each run's chain of step rows (store_sqlite_schema.c) */
	    "DELETE FROM steps WHERE sid IN (WITH RECURSIVE chain(sid) AS"
	    " (SELECT steps FROM prune_runs WHERE steps IS NOT NULL UNION ALL"
	    " SELECT s.prev FROM steps s JOIN chain c ON s.sid = c.sid WHERE"
	    " s.prev IS NOT NULL) SELECT sid FROM chain)",
	    "DELETE FROM run_history WHERE run_id IN (SELECT id FROM"
	    " prune_runs)",
	    "DELETE FROM runs WHERE rid IN (SELECT rid FROM prune_runs)",
	    "DELETE FROM events WHERE rid IN (SELECT rid FROM events e WHERE"
	    " rid < ?3 AND received_at < ?1 AND NOT EXISTS (SELECT 1 FROM"
	    " runs r WHERE r.rid BETWEEN " HF_RUNS_NEAR_E " AND r.event ="
	    " e.rid) AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event ="
	    " e.rid AND " HF_RUNS_LATE ") LIMIT ?2)",
	    "DELETE FROM prune_ids",
	    "INSERT INTO prune_ids SELECT id FROM deliveries WHERE"
	    " updated_at < ?1 AND status IN ('delivered','failed') LIMIT ?2",
	    "DELETE FROM delivery_attempts WHERE delivery_id IN prune_ids",
	    "DELETE FROM deliveries WHERE id IN prune_ids",
	    "DELETE FROM dedupe WHERE (workflow, key) IN (SELECT workflow,"
	    " key FROM dedupe WHERE created_at < ?1 LIMIT ?2)",
	};
	/* The first rid of the millisecond `before` (ids hold 48 bits). */
	int64_t band =
	    (int64_t)((uint64_t)(before > 0 ? before : 0) & 0xffffffffffffULL)
	    << HF_BAND_BITS;
	int total = 0;
	for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(q->wdb, sql[i], -1, &st, NULL) !=
		    SQLITE_OK) {
			hf_log(HF_LOG_WARN, "prune: %s",
			       sqlite3_errmsg(q->wdb));
			return -1;
		}
		int np = sqlite3_bind_parameter_count(st);
		if (np >= 1)
			sqlite3_bind_int64(st, 1, before);
		if (np >= 2)
			sqlite3_bind_int(st, 2, limit);
		if (np >= 3)
			sqlite3_bind_int64(st, 3, band);
		int rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return -1;
		if (strncmp(sql[i], "DELETE FROM prune_", 18) != 0 &&
		    strncmp(sql[i], "DELETE", 6) == 0)
			total += sqlite3_changes(q->wdb);
	}
	return total;
}

int hf_sqlite_retry_delivery(struct hf_store *s, const char *id)
{
	struct hf_sqlite_store *q = sq(s);
	assert(sq_applying(q)); /* through HF_W_CALL */
	int rc = hf_sqlite_exec(q->wdb,
				"UPDATE deliveries SET status = 'pending',"
				" next_at = ?2, updated_at = ?2, max_attempts ="
				" MAX(max_attempts, attempts + 1) WHERE id = ?1"
				" AND status != 'delivered'",
				"tI", id, hf_now_ms());
	if (rc != SQLITE_DONE)
		return -1;
	if (sqlite3_changes(q->wdb) > 0)
		return 0;
	rc = hf_sqlite_exec(q->wdb, "SELECT 1 FROM deliveries WHERE id = ?1",
			    "t", id);
	if (rc < 0)
		return -1;
	return rc == SQLITE_ROW ? HF_STORE_CONFLICT : HF_STORE_NOT_FOUND;
}
