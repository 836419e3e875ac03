/* store_pg_flow.c - the PostgreSQL state database's part of flow control:
 * cancelling a run (hf_store_cancel_run) and the notes that tell a running
 * server about a cancel made by another process (the CLI), as
 * store_sqlite_flow.c does for SQLite: a note is a row of meta keyed
 * "cancel:RUN_ID". With several nodes the note names the node that held
 * the run in its queue (value "STATUS\nNODE_ID"), written whichever process
 * cancels (another node's API too), and only that node takes it: the run is
 * in its memory.
 *
 * hf_pg_cancel_run and hf_pg_cancel_note_done run inside an HF_W_CALL write
 * (asserted); hf_pg_cancel_notes on a pooled read connection.
 *
 * Neighbours: store_pg_apply.c (step writes keep a cancelled run
 * cancelled), cancel.c (the in-memory side). */
#include "store_pg.h"

#include <assert.h>
#include <string.h>

struct status {
	char status[16];
	char *workflow;
};

static int status_row(PGconn *c, PGresult *r, int i, void *arg)
{
	(void)c;
	struct status *st = arg;
	snprintf(st->status, sizeof st->status, "%s",
		 pg_text(r, i, 0) ? pg_text(r, i, 0) : "");
	snprintf(st->workflow, HF_NAME_MAX + 1, "%s",
		 pg_text(r, i, 1) ? pg_text(r, i, 1) : "");
	return 1;
}

static int holder_row(PGconn *c, PGresult *r, int i, void *arg)
{
	(void)c;
	*(int64_t *)arg = pg_int(r, i, 0);
	return 1;
}

int hf_pg_cancel_run(struct hf_store *s, const char *run_id, const char *reason,
		     bool note, char *workflow)
{
	struct hf_pg_store *q = pq(s);
	assert(pq_applying(q)); /* through HF_W_CALL */
	struct status row = {"", workflow};
	const char *status = row.status;
	int n = hf_pg_each(q, q->wconn, status_row, &row,
			   "SELECT status, workflow FROM runs WHERE id = $1"
			   " FOR UPDATE",
			   "t", run_id);
	if (n < 0)
		return -1;
	if (n == 0)
		return HF_STORE_NOT_FOUND;
	if (strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
	    strcmp(status, "cancelled") == 0)
		return HF_STORE_CONFLICT;
	int64_t holder = 0; /* the node holding the run, if any */
	if (hf_pg_each(q, q->wconn, holder_row, &holder,
		       "SELECT node_id FROM queue WHERE run_id = $1", "t",
		       run_id) < 0)
		return -1;
	if (holder == q->node_id)
		holder = 0;
	if (hf_pg_run(q, q->wconn,
		      "UPDATE runs SET status = 'cancelled', error = $2,"
		      " finished_at = $3 WHERE id = $1",
		      "ttI", run_id, reason, hf_now_ms()) < 0 ||
	    hf_pg_run(q, q->wconn, "DELETE FROM queue WHERE run_id = $1", "t",
		      run_id) < 0)
		return -1;
	if ((note || holder) &&
	    hf_pg_run(q, q->wconn,
		      "INSERT INTO meta(key, value) VALUES ('cancel:'"
		      " || $1, $2 || CASE WHEN $3::int8 = 0 THEN '' ELSE"
		      " chr(10) || $3::int8 END) ON CONFLICT (key) DO UPDATE"
		      " SET value = EXCLUDED.value",
		      "ttI", run_id, status, holder) < 0)
		return -1;
	return strcmp(status, "waiting") == 0 ? 1 : 0;
}

struct notes {
	void (*fn)(const char *run_id, bool was_waiting, void *arg);
	void *arg;
};

static int note_row(PGconn *c, PGresult *r, int i, void *arg)
{
	(void)c;
	struct notes *n = arg;
	const char *prev = pg_text(r, i, 1);
	n->fn(pg_text(r, i, 0), prev && strcmp(prev, "waiting") == 0, n->arg);
	return 0;
}

int hf_pg_cancel_notes(struct hf_store *s,
		       void (*fn)(const char *run_id, bool was_waiting,
				  void *arg),
		       void *arg)
{
	struct notes n = {fn, arg};
	/* A note naming a node is that node's alone. */
	return hf_pg_each(pq(s), NULL, note_row, &n,
			  "SELECT substr(key, 8), split_part(value, chr(10), 1)"
			  " FROM meta WHERE key >= 'cancel:' AND key <"
			  " 'cancel;' AND split_part(value, chr(10), 2) IN"
			  " ('', $1::int8::text) LIMIT 1000",
			  "I", pq(s)->node_id);
}

int hf_pg_cancel_note_done(struct hf_store *s, const char *run_id)
{
	struct hf_pg_store *q = pq(s);
	assert(pq_applying(q)); /* through HF_W_CALL */
	return hf_pg_run(q, q->wconn,
			 "DELETE FROM meta WHERE key = 'cancel:' || $1", "t",
			 run_id) < 0
		   ? -1
		   : 0;
}

struct active {
	void (*fn)(const struct hf_active_run *r, void *arg);
	void *arg;
};

static int active_row(PGconn *c, PGresult *r, int i, void *arg)
{
	(void)c;
	struct active *a = arg;
	struct hf_active_run run = {
	    .id = pg_text(r, i, 0),
	    .event_id = pg_text(r, i, 1),
	    .status = pg_text(r, i, 2),
	    .created_at = pg_int(r, i, 3),
	    .wake_at = pg_int(r, i, 4),
	    .waiting = pg_text(r, i, 5),
	};
	a->fn(&run, a->arg);
	return 0;
}

int hf_pg_active_runs(struct hf_store *s, const char *workflow,
		      const char *lane, int limit,
		      void (*fn)(const struct hf_active_run *r, void *arg),
		      void *arg)
{
	struct active a = {fn, arg};
	return hf_pg_each(
	    pq(s), NULL, active_row, &a,
	    "SELECT id, event_id, status, created_at, wake_at, waiting"
	    " FROM runs"
	    " WHERE status IN ('queued','running','waiting') AND"
	    " workflow = $1 AND ($2::text IS NULL OR lane = $2)"
	    " ORDER BY seq LIMIT $3",
	    "tti", workflow, lane, limit);
}

int hf_pg_debounce_extend(struct hf_store *s, const char *run_id,
			  int64_t wake_at, const char *waiting)
{
	struct hf_pg_store *q = pq(s);
	assert(pq_applying(q)); /* through HF_W_CALL */
	int n = hf_pg_run(q, q->wconn,
			  "UPDATE runs SET wake_at = $2, waiting = $3 WHERE"
			  " id = $1 AND status = 'waiting'",
			  "tIt", run_id, wake_at, waiting);
	return n < 0 ? -1 : n > 0 ? 1 : 0;
}

static int text_row(PGconn *c, PGresult *r, int i, void *arg)
{
	(void)c;
	const char *t = pg_text(r, i, 0);
	*(char **)arg = t ? hf_xstrdup(t) : NULL;
	return 1;
}

char *hf_pg_run_waiting(struct hf_store *s, const char *run_id)
{
	char *out = NULL;
	hf_pg_each(pq(s), NULL, text_row, &out,
		   "SELECT waiting FROM runs WHERE id = $1", "t", run_id);
	return out;
}
