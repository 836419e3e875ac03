/* store_sqlite_flow.c - the SQLite state database's part of flow control:
 * cancelling a run (hf_store_cancel_run) and the notes that tell a running
 * server about a cancel made by another process (the CLI).
 *
 * A cancel note is a row of meta keyed "cancel:RUN_ID" (a range of meta's
 * primary key: cheap to poll). hf_sqlite_cancel_run and
 * hf_sqlite_cancel_note_done run inside an HF_W_CALL write (asserted);
 * hf_sqlite_cancel_notes on a read connection.
 *
 * Neighbours: store_sqlite_apply.c (step writes keep a cancelled run
 * cancelled), cancel.c (the in-memory side). */
#include "store_sqlite.h"

#include <assert.h>
#include <string.h>

int hf_sqlite_cancel_run(struct hf_store *s, const char *run_id,
			 const char *reason, bool note, char *workflow)
{
	struct hf_sqlite_store *q = sq(s);
	assert(sq_applying(q)); /* through HF_W_CALL */
	int64_t lo = hf_sqlite_band(run_id);
	int64_t hi = lo + ((1 << HF_BAND_BITS) - 1);
	sqlite3_stmt *st = hf_sqlite_stmt(
	    q->wdb,
	    "SELECT status, workflow FROM runs WHERE rid BETWEEN ?2 AND ?3"
	    " AND id = ?1",
	    "tII", run_id, lo, hi);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	char status[16] = "";
	if (rc == SQLITE_ROW) {
		snprintf(status, sizeof status, "%s",
			 (const char *)sqlite3_column_text(st, 0));
		snprintf(workflow, HF_NAME_MAX + 1, "%s",
			 (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? HF_STORE_NOT_FOUND : -1;
	if (strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
	    strcmp(status, "cancelled") == 0)
		return HF_STORE_CONFLICT;
	if (hf_sqlite_exec(q->wdb,
			   "UPDATE runs SET status = 'cancelled', error = ?2,"
			   " finished_at = ?3 WHERE rid BETWEEN ?4 AND ?5 AND"
			   " id = ?1",
			   "ttIII", run_id, reason, hf_now_ms(), lo,
			   hi) != SQLITE_DONE)
		return -1;
	if (note && hf_sqlite_exec(q->wdb,
				   "INSERT OR REPLACE INTO meta(key, value)"
				   " VALUES ('cancel:' || ?1, ?2)",
				   "tt", run_id, status) != SQLITE_DONE)
		return -1;
	return strcmp(status, "waiting") == 0 ? 1 : 0;
}

struct notes {
	void (*fn)(const char *run_id, bool was_waiting, void *arg);
	void *arg;
};

static int note_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	(void)db;
	struct notes *n = arg;
	const char *prev = (const char *)sqlite3_column_text(st, 1);
	n->fn((const char *)sqlite3_column_text(st, 0),
	      prev && strcmp(prev, "waiting") == 0, n->arg);
	return 0;
}

int hf_sqlite_cancel_notes(struct hf_store *s,
			   void (*fn)(const char *run_id, bool was_waiting,
				      void *arg),
			   void *arg)
{
	struct notes n = {fn, arg};
	return hf_sqlite_each(
	    sq(s), NULL, note_row, &n,
	    "SELECT substr(key, 8), value FROM meta WHERE key >="
	    " 'cancel:' AND key < 'cancel;' LIMIT 1000",
	    "");
}

int hf_sqlite_cancel_note_done(struct hf_store *s, const char *run_id)
{
	struct hf_sqlite_store *q = sq(s);
	assert(sq_applying(q)); /* through HF_W_CALL */
	return hf_sqlite_exec(q->wdb,
			      "DELETE FROM meta WHERE key = 'cancel:' || ?1",
			      "t", run_id) == SQLITE_DONE
		   ? 0
		   : -1;
}

struct active {
	void (*fn)(const struct hf_active_run *r, void *arg);
	void *arg;
};

static int active_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	(void)db;
	struct active *a = arg;
	struct hf_active_run r = {
	    .id = (const char *)sqlite3_column_text(st, 0),
	    .event_id = (const char *)sqlite3_column_text(st, 1),
	    .status = (const char *)sqlite3_column_text(st, 2),
	    .created_at = sqlite3_column_int64(st, 3),
	    .wake_at = sqlite3_column_int64(st, 4),
	    .waiting = (const char *)sqlite3_column_text(st, 5),
	};
	a->fn(&r, a->arg);
	return 0;
}

int hf_sqlite_active_runs(struct hf_store *s, const char *workflow,
			  const char *lane, int limit,
			  void (*fn)(const struct hf_active_run *r, void *arg),
			  void *arg)
{
	struct active a = {fn, arg};
	/* Two statements: runs_pending (queued, running) serves the first;
	 * a parked run's status is 'waiting'. */
	static const char *const sql[] = {
	    "SELECT r.id, e.id, r.status, r.created_at, r.wake_at, r.waiting"
	    " FROM runs r JOIN events"
	    " e ON e.rid = r.event WHERE r.status IN ('queued','running') AND"
	    " r.workflow = ?1 AND (?2 IS NULL OR r.lane = ?2) ORDER BY r.rid"
	    " LIMIT ?3",
	    "SELECT r.id, e.id, r.status, r.created_at, r.wake_at, r.waiting"
	    " FROM runs r JOIN events"
	    " e ON e.rid = r.event WHERE r.status = 'waiting' AND"
	    " r.workflow = ?1 AND (?2 IS NULL OR r.lane = ?2) ORDER BY r.rid"
	    " LIMIT ?3",
	};
	int total = 0;
	for (int i = 0; i < 2; i++) {
		int n = hf_sqlite_each(sq(s), NULL, active_row, &a, sql[i],
				       "tti", workflow, lane, limit);
		if (n < 0)
			return -1;
		total += n;
	}
	return total;
}

int hf_sqlite_debounce_extend(struct hf_store *s, const char *run_id,
			      int64_t wake_at, const char *waiting)
{
	struct hf_sqlite_store *q = sq(s);
	assert(sq_applying(q)); /* through HF_W_CALL */
	int64_t lo = hf_sqlite_band(run_id);
	if (hf_sqlite_exec(q->wdb,
			   "UPDATE runs SET wake_at = ?2, waiting = ?3 WHERE"
			   " rid BETWEEN ?4 AND ?5 AND id = ?1 AND status ="
			   " 'waiting'",
			   "tItII", run_id, wake_at, waiting, lo,
			   lo + ((1 << HF_BAND_BITS) - 1)) != SQLITE_DONE)
		return -1;
	return sqlite3_changes(q->wdb) > 0 ? 1 : 0;
}

static int text_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	(void)db;
	const char *t = (const char *)sqlite3_column_text(st, 0);
	*(char **)arg = t ? hf_xstrdup(t) : NULL;
	return 1;
}

char *hf_sqlite_run_waiting(struct hf_store *s, const char *run_id)
{
	char *out = NULL;
	int64_t lo = hf_sqlite_band(run_id);
	hf_sqlite_each(sq(s), NULL, text_row, &out,
		       "SELECT waiting FROM runs WHERE rid BETWEEN ?2 AND ?3"
		       " AND id = ?1",
		       "tII", run_id, lo, lo + ((1 << HF_BAND_BITS) - 1));
	return out;
}
