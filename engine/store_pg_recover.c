/* store_pg_recover.c - the PostgreSQL backend's recovery and repair, as the
 * SQLite backend's (store_sqlite_recover.c): the clean-stop marker, loading
 * the unfinished runs at start-up (each with the workflow version it was
 * stored with) and those the CLI queued since, retrying a failed run or a
 * delivery, pruning old rows, and the newest stored version of each
 * workflow (hookflow replay).
 *
 * Runs are claimed through the queue table: at start-up a node resumes the
 * runs it inherited from the node of its name before it (store_pg_node.c),
 * later it claims unclaimed ones (node_id NULL: the disk backlog, the CLI's
 * replays and retries, the runs of a node that was reaped) with one
 * statement, SELECT … FOR UPDATE SKIP LOCKED in a CTE that marks the claim
 * (hf_pg_load_backlog), so that each run goes to one node. A clean stop
 * gives back what the node holds. Retention runs on one node at a time.
 *
 * Threading: load_pending, changed and stored_workflows on a pooled
 * connection; retry_run on the writer's connection under wlock (the CLI has
 * no writer thread); retry_delivery, save_versions and prune inside an
 * HF_W_CALL write (asserted). The clean-stop marker is read at open, before
 * the writer thread starts, and written at close, after it stopped.
 *
 * Neighbours: store_pg.c, store_pg_query.c (hf_pg_load_event_on), workflow.c
 * (hf_workflow_parse_stored). */
#include "hf_limits.h"
#include "store_pg.h"

#include <assert.h>
#include <string.h>

void hf_pg_clean_stop_begin(struct hf_pg_store *q)
{
	PGresult *r = hf_pg_exec(
	    q, q->wconn, "SELECT value FROM meta WHERE key = 'clean_stop'", "");
	if (hf_pg_ok(r) && PQntuples(r) == 1)
		q->unclean = pg_int(r, 0, 0) == 0;
	PQclear(r);
	hf_pg_run(q, q->wconn,
		  "INSERT INTO meta(key, value) VALUES ('clean_stop', '0')"
		  " ON CONFLICT (key) DO UPDATE SET value = '0'",
		  "");
}

void hf_pg_clean_stop_end(struct hf_pg_store *q)
{
	PGconn *c =
	    q->wconn && PQstatus(q->wconn) == CONNECTION_OK ? q->wconn : NULL;
	hf_pg_run(q, c,
		  "INSERT INTO meta(key, value) VALUES ('clean_stop', '1')"
		  " ON CONFLICT (key) DO UPDATE SET value = '1'",
		  "");
	if (!c || !q->node_id)
		return;
	/* Every step finished: what this node held goes back to the others
	 * at once, not after its lease, and not as a possible repeat; so do
	 * the deliveries it leased and did not send (the outbox stopped). */
	int n = hf_pg_run(q, c,
			  "UPDATE queue SET node_id = NULL, epoch = 0,"
			  " claimed_at = NULL WHERE node_id = $1",
			  "I", q->node_id);
	int d = hf_pg_run(q, c,
			  "UPDATE deliveries SET node_id = NULL, epoch = 0,"
			  " next_at = LEAST(next_at, $2) WHERE node_id = $1"
			  " AND status = 'pending'",
			  "II", q->node_id, hf_now_ms());
	if (d > 0)
		n += d;
	hf_pg_run(q, c,
		  "UPDATE nodes SET stopped_at = (extract(epoch from"
		  " clock_timestamp()) * 1000)::int8 WHERE id = $1",
		  "I", q->node_id);
	if (n > 0 && q->notify)
		hf_pg_run(q, c, "NOTIFY hookflow", "");
}

/* Runs left for a server to pick up (the CLI's): PostgreSQL has no
 * data_version, and this is what the server asks it for. */
bool hf_pg_changed(struct hf_store *s)
{
	struct hf_pg_store *q = pq(s);
	PGconn *c = hf_pg_reader_take(q);
	PGresult *r = hf_pg_exec(q, c,
				 "SELECT 1 FROM queue WHERE node_id IS NULL"
				 " LIMIT 1",
				 "");
	bool changed = hf_pg_ok(r) && PQntuples(r) > 0;
	PQclear(r);
	hf_pg_reader_give(q, c);
	return changed;
}

/* A version's store and connection, for parse_version. */
struct version_src {
	struct hf_pg_store *q;
	PGconn *c;
};

static struct hf_workflow *parse_version(void *ctx, const char *version)
{
	struct hf_pg_store *q = ((struct version_src *)ctx)->q;
	PGconn *c = ((struct version_src *)ctx)->c;
	struct hf_workflow *wf = NULL;
	json_t *scripts = NULL;
	PGresult *r = hf_pg_exec(q, c,
				 "SELECT file, yaml, scripts FROM"
				 " workflow_versions WHERE version = $1",
				 "t", version);
	if (!hf_pg_ok(r) || PQntuples(r) != 1)
		goto done;
	scripts = hf_pg_json(r, 0, 2);
	wf = hf_pickup_version(pg_text(r, 0, 0), PQgetvalue(r, 0, 1),
			       (size_t)PQgetlength(r, 0, 1), scripts, version);
done:
	json_decref(scripts);
	PQclear(r);
	return wf;
}

static int output_row(PGconn *c, PGresult *r, int i, void *arg)
{
	(void)c;
	json_object_set_new(arg, PQgetvalue(r, i, 0), hf_pg_json(r, i, 1));
	return 0;
}

/* What a run's "waiting" was for: 0 nothing, else 1 + hf_woken_from
 * (store_sqlite_recover.c's HF_WAITING_KIND). */
#define HF_PG_WAITING_KIND                                                     \
	"CASE WHEN r.waiting IS NULL THEN 0 WHEN (r.waiting::json)->>'for'"    \
	" IN ('sleep', 'until', 'signal') THEN 1 WHEN (r.waiting::json)->>"    \
	"'for' = 'throttle' THEN 2 ELSE 3 END"

/* Columns of the rows load_run reads. */
#define RUN_LOAD_COLUMNS                                                       \
	"r.id, r.event_id, r.workflow, r.status, r.attempt, r.created_at,"     \
	" r.started_at, r.next_step, r.step_attempt, r.due_at, r.lane,"        \
	" r.version, r.wake_at, " HF_PG_WAITING_KIND

/* Rebuilds the in-memory run for a row, or NULL when its event is gone (see
 * store_sqlite_recover.c's load_run). */
static struct hf_run *load_run(struct hf_pg_store *q, PGconn *c,
			       const PGresult *r, int i,
			       const struct hf_workflow_set *set,
			       struct hf_version_cache *vc)
{
	const char *wf_name = pg_text(r, i, 2);
	struct version_src src = {q, c};
	struct hf_workflow *wf =
	    hf_pickup_workflow(set, pg_text(r, i, 0), wf_name,
			       pg_text(r, i, 11), vc, parse_version, &src);
	struct hf_event *ev = hf_pg_load_event_on(q, c, pg_text(r, i, 1));
	if (!ev)
		return NULL;
	struct hf_run *run = hf_pickup_run(ev, wf, wf_name, pg_text(r, i, 0));
	run->status = hf_run_status_parse(pg_text(r, i, 3));
	run->attempt = (int)pg_int(r, i, 4);
	run->created_at = pg_int(r, i, 5);
	run->started_at = pg_int(r, i, 6);
	run->next_step = (size_t)pg_int(r, i, 7);
	run->step_attempt = (int)pg_int(r, i, 8);
	run->due_at = pg_int(r, i, 9);
	if (pg_text(r, i, 10))
		run->lane = hf_xstrdup(pg_text(r, i, 10));
	/* Parked (hf_park.h): woken from the wait at next_step when it still
	 * says what it waited for but is no longer waiting. */
	run->wake_at = pg_int(r, i, 12);
	const char *kind = pg_text(r, i, 13);
	run->woken =
	    (int)run->status != HF_RUN_WAITING && kind && kind[0] != '0';
	if (run->woken)
		run->woken_from = (enum hf_woken_from)(kind[0] - '1');
	hf_pg_each(q, c, output_row, run->outputs,
		   "SELECT step_id, output FROM steps WHERE"
		   " run_id = $1 AND status = 'succeeded'",
		   "t", run->id);
	return run;
}

struct pickup {
	struct hf_pg_store *q;
	const struct hf_workflow_set *set;
	bool unclean;
	int64_t epoch; /* the claim's */
	struct hf_version_cache vc;
	struct hf_run *list, **tail;
	int n;
};

static int pickup_row(PGconn *c, PGresult *r, int i, void *arg)
{
	struct pickup *p = arg;
	struct hf_run *run = load_run(p->q, c, r, i, p->set, &p->vc);
	if (!run)
		return 0;
	if (p->unclean && run->due_at == 0)
		run->step_attempt++;
	run->epoch = p->epoch;
	*p->tail = run;
	p->tail = &run->next;
	p->n++;
	return 0;
}

/* Hands the runs on (store_pickup.c). */
static int pickup_end(struct pickup *p, int rc,
		      void (*fn)(struct hf_run *run, void *arg), void *arg)
{
	return hf_pickup_end(&p->vc, p->list, p->n, rc, fn, arg);
}

int hf_pg_load_pending(struct hf_store *s, const struct hf_workflow_set *set,
		       bool only_unclaimed,
		       void (*fn)(struct hf_run *run, void *arg), void *arg)
{
	struct hf_pg_store *q = pq(s);
	struct pickup p = {.q = q, .set = set, .epoch = atomic_load(&q->epoch)};
	p.tail = &p.list;
	/* Claimed and read in one statement (committed at once), in arrival
	 * order (seq): the lanes of `concurrency:` fill up as they were. At
	 * start, only the runs this node holds (none: a node starts with a
	 * new id, and the runs of the node of its name before it, reaped at
	 * its registration, are unclaimed again, marked as possible repeats
	 * there); the rest, with no node, are the disk backlog, claimed page by
	 * page (hf_pg_load_backlog). */
	const char *sql =
	    only_unclaimed
		? "WITH c AS (UPDATE queue SET node_id = $1, epoch = $2,"
		  " claimed_at = $3 WHERE run_id IN (SELECT run_id FROM queue"
		  " WHERE node_id IS NULL ORDER BY seq FOR UPDATE SKIP LOCKED)"
		  " RETURNING run_id, seq) SELECT " RUN_LOAD_COLUMNS
		  " FROM c JOIN runs r ON r.id = c.run_id WHERE r.status IN"
		  " ('queued','running') ORDER BY c.seq"
		: "WITH c AS (UPDATE queue SET node_id = $1, epoch = $2,"
		  " claimed_at = $3 WHERE node_id = $1"
		  " RETURNING run_id, seq) "
		  "SELECT " RUN_LOAD_COLUMNS
		  " FROM c JOIN runs r ON r.id = c.run_id"
		  " WHERE r.status IN ('queued','running') ORDER BY c.seq";
	int rc = hf_pg_each(q, NULL, pickup_row, &p, sql, "JII", q->node_id,
			    p.epoch, hf_now_ms());
	for (size_t i = 0; i < p.vc.n; i++)
		hf_workflow_unref(p.vc.items[i].wf);
	for (struct hf_run *r = p.list, *next; r; r = next) {
		next = r->next;
		r->next = NULL;
		fn(r, arg);
	}
	return rc < 0 ? -1 : p.n;
}

/* --- the disk backlog: runs in the queue with no node --- */

int hf_pg_load_backlog(struct hf_store *s, const struct hf_workflow_set *set,
		       int limit, void (*fn)(struct hf_run *run, void *arg),
		       void *arg)
{
	struct hf_pg_store *q = pq(s);
	struct pickup p = {.q = q, .set = set, .epoch = atomic_load(&q->epoch)};
	p.tail = &p.list;
	int rc;
	if (q->node_id && !hf_pg_lease_fresh(q))
		return 0;
	/* A node claims as it reads: any node may be reading the same rows
	 * (SKIP LOCKED: each row goes to one of them), and the claim commits
	 * at once. queue_unclaimed holds seq where node_id IS NULL: arrival
	 * order. */
	if (q->node_id)
		rc = hf_pg_each(
		    q, NULL, pickup_row, &p,
		    "WITH c AS (SELECT run_id FROM queue WHERE node_id IS NULL"
		    " ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED),"
		    " u AS (UPDATE queue SET node_id = $2, epoch = $3,"
		    " claimed_at = $4 FROM c WHERE queue.run_id = c.run_id"
		    " RETURNING queue.run_id, queue.seq)"
		    " SELECT " RUN_LOAD_COLUMNS " FROM u JOIN runs r ON r.id ="
		    " u.run_id WHERE r.status IN ('queued','running')"
		    " ORDER BY u.seq",
		    "iIII", limit, q->node_id, p.epoch, hf_now_ms());
	else
		rc = hf_pg_each(q, NULL, pickup_row, &p,
				"SELECT " RUN_LOAD_COLUMNS " FROM queue c JOIN"
				" runs r ON r.id = c.run_id WHERE c.node_id IS"
				" NULL AND r.status IN ('queued','running')"
				" ORDER BY c.seq LIMIT $1",
				"i", limit);
	return pickup_end(&p, rc, fn, arg);
}

/* --- parked runs (hf_park.h; the rest in store_pg_park.c) --- */

int hf_pg_load_waiting(struct hf_store *s, const struct hf_workflow_set *set,
		       const char *path, const char *after, int limit,
		       void (*fn)(struct hf_run *run, void *arg), void *arg)
{
	struct hf_pg_store *q = pq(s);
	struct pickup p = {.q = q, .set = set};
	p.tail = &p.list;
	/* runs_wait_path: the runs waiting on path, a page in id order. */
	int rc = hf_pg_each(q, NULL, pickup_row, &p,
			    "SELECT " RUN_LOAD_COLUMNS " FROM runs r WHERE"
			    " r.status = 'waiting' AND r.wait_path = $1"
			    " AND r.id > $3 ORDER BY r.id LIMIT $2",
			    "tit", path, limit, after);
	return pickup_end(&p, rc, fn, arg);
}

int hf_pg_claim(struct hf_store *s, const struct hf_workflow_set *set,
		int limit, void (*fn)(struct hf_run *run, void *arg), void *arg)
{
	return pq(s)->node_id ? hf_pg_load_backlog(s, set, limit, fn, arg) : 0;
}

int hf_pg_claim_runs(struct hf_store *s, struct hf_run *const *runs, size_t n)
{
	struct hf_pg_store *q = pq(s);
	assert(pq_applying(q)); /* through HF_W_CALL */
	if (q->node_id)
		return 0; /* hf_pg_load_backlog claimed them */
	struct hf_pg_arr ids;
	hf_pg_arr_init(&ids, HF_PG_TEXT_OID);
	for (size_t i = 0; i < n; i++)
		hf_pg_arr_text(&ids, runs[i]->id);
	int rc = hf_pg_run(q, q->wconn,
			   "UPDATE queue SET node_id = $1, epoch = $2,"
			   " claimed_at = $3 WHERE run_id = ANY($4::text[])",
			   "JIIa", q->node_id, q->epoch, hf_now_ms(), &ids);
	hf_pg_arr_free(&ids);
	return rc < 0 ? -1 : 0;
}

int64_t hf_pg_count_backlog(struct hf_store *s)
{
	struct hf_pg_store *q = pq(s);
	/* Inside an HF_W_CALL: on the writer's connection, counting the open
	 * transaction's writes (the batch's rows sent first). */
	bool applying = pq_applying(q);
	if (applying && hf_pg_flush_rows(q) < 0)
		return -1;
	PGconn *c = applying ? q->wconn : hf_pg_reader_take(q);
	PGresult *r = hf_pg_exec(q, c,
				 "SELECT count(*) FROM queue c JOIN runs r ON"
				 " r.id = c.run_id WHERE c.node_id IS NULL AND"
				 " r.status IN ('queued','running')",
				 "");
	int64_t n = hf_pg_ok(r) && PQntuples(r) == 1 ? pg_int(r, 0, 0) : -1;
	PQclear(r);
	if (!applying)
		hf_pg_reader_give(q, c);
	return n;
}

/* --- the stored versions as a set (hookflow replay) --- */

struct stored_set {
	struct hf_pg_store *q;
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

static int stored_row(PGconn *c, PGresult *r, int i, void *arg)
{
	struct stored_set *ss = arg;
	const char *name = pg_text(r, i, 0);
	const char *version = pg_text(r, i, 1);
	const char *file = pg_text(r, i, 2);
	if (!name || !version || hf_workflow_set_find(ss->set, name) ||
	    file_taken(ss->set, file))
		return 0;
	if (ss->set->n == HF_MAX_WORKFLOWS)
		return 1;
	struct version_src src = {ss->q, c};
	struct hf_workflow *wf = parse_version(&src, version);
	if (!wf)
		return 0;
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

int hf_pg_save_versions(struct hf_store *s, const struct hf_workflow_set *set)
{
	struct hf_pg_store *q = pq(s);
	assert(pq_applying(q)); /* through HF_W_CALL */
	int64_t now = hf_now_ms();
	for (size_t i = 0; i < set->n; i++) {
		const struct hf_workflow *wf = set->items[i];
		if (hf_pg_store_version(q, wf) < 0)
			return -1;
		if (wf->version &&
		    hf_pg_run(q, q->wconn,
			      "UPDATE workflow_versions SET created_at = $1"
			      " WHERE version = $2",
			      "It", now, wf->version) < 0)
			return -1;
	}
	return hf_pg_run(q, q->wconn,
			 "INSERT INTO meta(key, value) VALUES"
			 " ('versions_loaded_at', $1) ON CONFLICT (key) DO"
			 " UPDATE SET value = EXCLUDED.value",
			 "I", now) < 0
		   ? -1
		   : 0;
}

struct hf_workflow_set *hf_pg_stored_workflows(struct hf_store *s)
{
	struct stored_set ss = {.q = pq(s),
				.set = hf_xcalloc(1, sizeof *ss.set)};
	ss.set->refs = 1;
	if (hf_pg_each(pq(s), NULL, stored_row, &ss,
		       "SELECT name, version, file FROM workflow_versions"
		       " WHERE created_at >= COALESCE((SELECT value::bigint"
		       " FROM meta WHERE key = 'versions_loaded_at'), 0)"
		       " ORDER BY created_at DESC, version",
		       "") < 0) {
		hf_workflow_set_unref(ss.set);
		return NULL;
	}
	return ss.set;
}

int hf_pg_retry_run(struct hf_store *s, const char *run_id,
		    struct hf_error *err)
{
	struct hf_pg_store *q = pq(s);
	pthread_mutex_lock(&q->wr.wlock);
	if (!q->wconn || PQstatus(q->wconn) != CONNECTION_OK) {
		PQfinish(q->wconn);
		q->nprepared = 0;
		q->wconn = hf_pg_connect(q, NULL);
	}
	/* The failed attempt kept in run_history, then queued again,
	 * unclaimed: a server picks it up (hf_pg_changed). One transaction. */
	int n = hf_pg_run(q, q->wconn, "BEGIN", "");
	json_t *steps = n < 0 ? NULL : hf_pg_steps_json(q->wconn, run_id);
	char *steps_text = steps ? json_dumps(steps, JSON_COMPACT) : NULL;
	json_decref(steps);
	if (n >= 0)
		n = hf_pg_run(
		    q, q->wconn,
		    "INSERT INTO run_history(run_id, attempt, status, error,"
		    " steps, finished_at) SELECT id, attempt, status, error, "
		    "$2,"
		    " finished_at FROM runs WHERE id = $1 AND status = 'failed'"
		    " ON CONFLICT (run_id, attempt) DO UPDATE SET status ="
		    " EXCLUDED.status, error = EXCLUDED.error, steps ="
		    " EXCLUDED.steps, finished_at = EXCLUDED.finished_at",
		    "tt", run_id, steps_text ? steps_text : "[]");
	free(steps_text);
	if (n >= 0)
		n = hf_pg_run(
		    q, q->wconn,
		    "WITH u AS (UPDATE runs SET status = 'queued', attempt ="
		    " attempt + 1, step_attempt = 1, due_at = 0, error = NULL,"
		    " finished_at = NULL, started_at = NULL WHERE id = $1 AND"
		    " status = 'failed' RETURNING id, seq, workflow, lane)"
		    " INSERT INTO queue(run_id, seq, node_id, epoch, lane)"
		    " SELECT id, seq, NULL, 0, workflow || chr(10) || lane"
		    " FROM u ON CONFLICT (run_id) DO UPDATE SET node_id = NULL,"
		    " epoch = 0, claimed_at = NULL",
		    "t", run_id);
	if (n > 0 && (hf_pg_run(q, q->wconn, "NOTIFY hookflow", "") < 0 ||
		      hf_pg_run(q, q->wconn, "COMMIT", "") < 0))
		n = -1;
	else if (n <= 0)
		hf_pg_run(q, q->wconn, "ROLLBACK", "");
	int rc = -1;
	if (n < 0) {
		char msg[200];
		snprintf(msg, sizeof msg, "%s",
			 q->wconn ? PQerrorMessage(q->wconn) : "no connection");
		msg[strcspn(msg, "\n")] = '\0';
		hf_error_set(err, NULL, 0, 0, "cannot retry: %s", msg);
	} else if (n == 0)
		hf_error_set(err, NULL, 0, 0,
			     "run '%s' does not exist or has not failed",
			     run_id);
	else
		rc = 0;
	pthread_mutex_unlock(&q->wr.wlock);
	return rc;
}

/* A DELETE … RETURNING 1 wrapped in a count: how many rows went, or -1. */
static int count_deleted(struct hf_pg_store *q, const char *sql, int64_t before,
			 int limit, const char *run_max, const char *ev_max)
{
	PGresult *r = hf_pg_exec(q, q->wconn, sql, "Iitt", before, limit,
				 run_max, ev_max);
	int n = hf_pg_ok(r) && PQntuples(r) == 1 ? (int)pg_int(r, 0, 0) : -1;
	if (n < 0)
		hf_log(HF_LOG_WARN, "prune: %s",
		       q->wconn ? PQerrorMessage(q->wconn) : "no connection");
	PQclear(r);
	return n;
}

int hf_pg_prune(struct hf_store *s, int64_t before, int limit)
{
	struct hf_pg_store *q = pq(s);
	assert(pq_applying(q)); /* through HF_W_CALL */
	/* As store_sqlite_recover.c's: ids begin with their creation time, so
	 * "created before" is a range of the primary key. Every statement
	 * takes the same four parameters ($3, $4 unused by some: cast so that
	 * their types are known). */
	static const char *sql[] = {
	    "WITH p AS (SELECT id FROM runs WHERE id < $3 AND finished_at < $1"
	    " AND status IN ('succeeded','failed') LIMIT $2),"
	    " ds AS (DELETE FROM steps WHERE run_id IN (SELECT id FROM p)"
	    " RETURNING 1), dh AS (DELETE FROM run_history WHERE run_id IN"
	    " (SELECT id FROM p) RETURNING 1), dr AS (DELETE FROM runs WHERE"
	    " id IN (SELECT id FROM p) RETURNING 1) SELECT (SELECT count(*)"
	    " FROM ds) + (SELECT count(*) FROM dh) + (SELECT count(*) FROM"
	    " dr) + 0 * length($4::text)",
	    "WITH de AS (DELETE FROM events WHERE id IN (SELECT id FROM events"
	    " e WHERE id < $4 AND received_at < $1 AND NOT EXISTS (SELECT 1"
	    " FROM runs r WHERE r.event_id = e.id) LIMIT $2) RETURNING 1)"
	    " SELECT count(*) + 0 * length($3::text) FROM de",
	    "WITH p AS (SELECT id FROM deliveries WHERE updated_at < $1 AND"
	    " status IN ('delivered','failed') LIMIT $2),"
	    " da AS (DELETE FROM delivery_attempts WHERE delivery_id IN"
	    " (SELECT id FROM p) RETURNING 1), dd AS (DELETE FROM deliveries"
	    " WHERE id IN (SELECT id FROM p) RETURNING 1) SELECT (SELECT"
	    " count(*) FROM da) + (SELECT count(*) FROM dd) + 0 *"
	    " length($3::text || $4::text)",
	    "WITH dk AS (DELETE FROM dedupe WHERE (workflow, key) IN (SELECT"
	    " workflow, key FROM dedupe WHERE created_at < $1 LIMIT $2)"
	    " RETURNING 1) SELECT count(*) + 0 * length($3::text || $4::text)"
	    " FROM dk",
	};
	/* One node prunes at a time: the others skip this round. */
	PGresult *lock = hf_pg_exec(
	    q, q->wconn, "SELECT pg_try_advisory_xact_lock(1752133485)", "");
	bool mine = hf_pg_ok(lock) && PQntuples(lock) == 1 &&
		    PQgetvalue(lock, 0, 0)[0] == 't';
	PQclear(lock);
	if (!mine)
		return 0;
	char run_max[32], ev_max[32];
	unsigned long long t = (unsigned long long)(before > 0 ? before : 0);
	snprintf(run_max, sizeof run_max, "run_%012llx", t & 0xffffffffffffULL);
	snprintf(ev_max, sizeof ev_max, "ev_%012llx", t & 0xffffffffffffULL);
	int total = 0;
	for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
		int n =
		    count_deleted(q, sql[i], before, limit, run_max, ev_max);
		if (n < 0)
			return -1;
		total += n;
	}
	return total;
}

int hf_pg_retry_delivery(struct hf_store *s, const char *id)
{
	struct hf_pg_store *q = pq(s);
	assert(pq_applying(q)); /* through HF_W_CALL */
	int n = hf_pg_run(q, q->wconn,
			  "UPDATE deliveries SET status = 'pending',"
			  " next_at = CASE WHEN node_id IS NULL THEN $2 ELSE"
			  " next_at END, updated_at = $2, max_attempts ="
			  " GREATEST(max_attempts, attempts + 1) WHERE id = $1"
			  " AND status <> 'delivered'",
			  "tI", id, hf_now_ms());
	if (n < 0)
		return -1;
	if (n > 0) {
		q->notify_pending = true; /* due now: any node may send it */
		return 0;
	}
	n = hf_pg_run(q, q->wconn, "SELECT 1 FROM deliveries WHERE id = $1",
		      "t", id);
	if (n < 0)
		return -1;
	return n > 0 ? HF_STORE_CONFLICT : HF_STORE_NOT_FOUND;
}
