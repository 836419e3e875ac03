/* store_sqlite_park.c - the SQLite backend's parked runs (hf_park.h): the
 * next due time, waking the runs whose time has come, resuming one at its
 * wait_for step with a signal's body, counting them, and the key behind
 * run.resume_url.
 *
 * A parked run is a row of runs with status 'waiting', wake_at (its due
 * time, indexed by runs_wake), waiting (RUN's "waiting" as JSON) and, at a
 * wait_for, wait_path (indexed by runs_wait_path). Waking it makes it a run
 * of the disk backlog (status 'queued', claimed 0), still with `waiting` set:
 * whoever loads it then knows that the wait at next_step is over
 * (hf_run.woken). A resumed wait_for gets its step's row (the signal's body
 * as its output) in the same transaction, and wake_at the time it woke.
 *
 * Threading: hf_sqlite_next_wake and hf_sqlite_count_waiting read on a pooled
 * connection; hf_sqlite_wake_due and hf_sqlite_resume_run run inside an
 * HF_W_CALL write, on the thread applying it (asserted).
 *
 * Neighbours: store_sqlite_recover.c (hf_sqlite_load_waiting, load_run),
 * store_sqlite_schema.c (the columns and indexes, version 3). */
#include "store_sqlite.h"

#include <assert.h>
#include <stdint.h>

static int int_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	(void)db;
	*(int64_t *)arg = sqlite3_column_type(st, 0) == SQLITE_NULL
			      ? INT64_MAX
			      : sqlite3_column_int64(st, 0);
	return 1;
}

int64_t hf_sqlite_next_wake(struct hf_store *s)
{
	int64_t at = INT64_MAX;
	if (hf_sqlite_each(sq(s), NULL, int_row, &at,
			   "SELECT min(wake_at) FROM runs WHERE status ="
			   " 'waiting'",
			   "") < 0)
		return -1;
	return at;
}

int64_t hf_sqlite_count_waiting(struct hf_store *s)
{
	int64_t n = -1;
	if (hf_sqlite_each(sq(s), NULL, int_row, &n,
			   "SELECT count(*) FROM runs WHERE status = 'waiting'",
			   "") < 0)
		return -1;
	return n;
}

int hf_sqlite_wake_due(struct hf_store *s, int64_t now, int limit)
{
	struct hf_sqlite_store *q = sq(s);
	assert(sq_applying(q)); /* through HF_W_CALL */
	if (hf_sqlite_exec(q->wdb,
			   "UPDATE runs SET status = 'queued', claimed = 0,"
			   " wait_path = NULL WHERE rid IN (SELECT rid FROM"
			   " runs WHERE status = 'waiting' AND wake_at <= ?1"
			   " ORDER BY wake_at LIMIT ?2)",
			   "Ii", now, limit) != SQLITE_DONE)
		return -1;
	int n = sqlite3_changes(q->wdb);
	if (n > 0) /* behind the backlog's cursor */
		hf_sqlite_bl_unclaimed(q, 0);
	return n;
}

/* Why run_id could not be resumed at step (hf_store_resume_run): not there
 * yet (HF_RESUME_NOT_YET) while it has not ended and either is before that
 * step or is at it but not parked for a signal (a woken wait keeps its
 * "waiting" until its step's row is written: that wait is over); else 0. */
static int not_yet(struct hf_sqlite_store *q, const char *run_id, int step,
		   int64_t lo, int64_t hi)
{
	int rc = hf_sqlite_exec(
	    q->wdb,
	    "SELECT 1 FROM runs WHERE rid BETWEEN ?3 AND ?4 AND id = ?1 AND"
	    " status IN ('queued', 'running', 'waiting') AND (next_step < ?2"
	    " OR (next_step = ?2 AND (waiting IS NULL OR json_extract(waiting,"
	    " '$.for') <> 'signal')))",
	    "tiII", run_id, step, lo, hi);
	return rc == SQLITE_ROW	   ? HF_RESUME_NOT_YET
	       : rc == SQLITE_DONE ? 0
				   : -1;
}

int hf_sqlite_resume_run(struct hf_store *s, const char *run_id, int step,
			 const char *output, int64_t now)
{
	struct hf_sqlite_store *q = sq(s);
	assert(sq_applying(q)); /* through HF_W_CALL */
	int64_t lo = hf_sqlite_band(run_id),
		hi = lo + ((1 << HF_BAND_BITS) - 1);
	/* The step's row first (the run still waiting there), then the run:
	 * one transaction, so both or neither. */
	if (hf_sqlite_exec(q->wdb,
			   "INSERT INTO steps(run, prev, idx, step_id, status,"
			   " output, error, logs, attempts, started_at,"
			   " finished_at) SELECT rid, steps, next_step,"
			   " json_extract(waiting, '$.step'), 'succeeded',"
			   " ?3, NULL, '[]', 1, ?4, ?4 FROM runs WHERE rid"
			   " BETWEEN ?5 AND ?6 AND id = ?1 AND status ="
			   " 'waiting' AND next_step = ?2 AND wait_path IS"
			   " NOT NULL",
			   "titIII", run_id, step, output ? output : "null",
			   now, lo, hi) != SQLITE_DONE)
		return -1;
	if (sqlite3_changes(q->wdb) == 0)
		return not_yet(q, run_id, step, lo, hi);
	if (hf_sqlite_exec(q->wdb,
			   "UPDATE runs SET status = 'queued', claimed = 0,"
			   " wait_path = NULL, wake_at = ?3, steps = ?6 WHERE"
			   " rid BETWEEN ?4 AND ?5 AND id = ?1 AND status ="
			   " 'waiting' AND next_step = ?2",
			   "tiIIII", run_id, step, now, lo, hi,
			   (int64_t)sqlite3_last_insert_rowid(q->wdb)) !=
	    SQLITE_DONE)
		return -1;
	if (sqlite3_changes(q->wdb) == 0)
		return 0;
	hf_sqlite_bl_unclaimed(q, 0); /* behind the backlog's cursor */
	return 1;
}

int hf_sqlite_secret_key(struct hf_store *s, unsigned char key[32])
{
	struct hf_error err = {0};
	struct hf_sqlite_store *q = sq(s);
	if (hf_sqlite_key(q, &err) < 0)
		return -1;
	memcpy(key, q->key, 32);
	return 0;
}
