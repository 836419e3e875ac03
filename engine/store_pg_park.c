/* store_pg_park.c - the PostgreSQL backend's parked runs (hf_park.h), as
 * store_sqlite_park.c has them: the next due time, waking the runs whose
 * time has come, resuming one at its wait_for step, counting them, and the
 * key behind run.resume_url.
 *
 * A parked run has no row in queue (apply_step deletes it, as for a run that
 * ended): waking it puts one back with no node, which makes it a run of the
 * disk backlog (hf_pg_load_backlog). Its `waiting` column stays set, so that
 * whoever loads it knows the wait at next_step is over (hf_run.woken).
 *
 * Threading: hf_pg_next_wake and hf_pg_count_waiting read on a pooled
 * connection; hf_pg_wake_due and hf_pg_resume_run run inside an HF_W_CALL
 * write on the writer's connection (asserted). */
#include "store_pg.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

/* Schema version 2: the parked run's columns and indexes, added to the runs
 * table of version 1 too (store_pg.c runs it after its schema). */
const char hf_pg_park_schema[] =
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS wake_at BIGINT,"
    " ADD COLUMN IF NOT EXISTS waiting TEXT,"
    " ADD COLUMN IF NOT EXISTS wait_path TEXT;"
    "CREATE INDEX IF NOT EXISTS runs_wake ON runs(wake_at)"
    " WHERE status = 'waiting';"
    "CREATE INDEX IF NOT EXISTS runs_wait_path ON runs(wait_path, id)"
    " WHERE status = 'waiting';";

/* One number read on a pooled connection: NULL reads as none. */
static int64_t read_int(struct hf_pg_store *q, const char *sql, int64_t none)
{
	PGconn *c = hf_pg_reader_take(q);
	PGresult *r = hf_pg_exec(q, c, sql, "");
	int64_t v = -1;
	if (hf_pg_ok(r) && PQntuples(r) == 1)
		v = PQgetisnull(r, 0, 0) ? none : pg_int(r, 0, 0);
	PQclear(r);
	hf_pg_reader_give(q, c);
	return v;
}

int64_t hf_pg_next_wake(struct hf_store *s)
{
	return read_int(pq(s),
			"SELECT min(wake_at) FROM runs WHERE status ="
			" 'waiting'",
			INT64_MAX);
}

int64_t hf_pg_count_waiting(struct hf_store *s)
{
	return read_int(
	    pq(s), "SELECT count(*) FROM runs WHERE status = 'waiting'", 0);
}

int hf_pg_wake_due(struct hf_store *s, int64_t now, int limit)
{
	struct hf_pg_store *q = pq(s);
	assert(pq_applying(q)); /* through HF_W_CALL */
	return hf_pg_run(
	    q, q->wconn,
	    "WITH w AS (UPDATE runs SET status = 'queued', wait_path = NULL"
	    " WHERE id IN (SELECT id FROM runs WHERE status = 'waiting' AND"
	    " wake_at <= $1 ORDER BY wake_at LIMIT $2 FOR UPDATE SKIP"
	    " LOCKED) RETURNING id, seq, workflow, lane) INSERT INTO"
	    " queue(run_id, seq, node_id, epoch, lane) SELECT id, seq, NULL,"
	    " 0, workflow || chr(10) || lane FROM w"
	    " ON CONFLICT (run_id) DO UPDATE SET node_id = NULL, epoch = 0,"
	    " claimed_at = NULL",
	    "Ii", now, limit);
}

/* Why run_id could not be resumed at step (hf_store_resume_run), as
 * store_sqlite_park.c tells it: HF_RESUME_NOT_YET, 0 or -1. */
static int not_yet(struct hf_pg_store *q, const char *run_id, int step)
{
	int n = hf_pg_run(
	    q, q->wconn,
	    "SELECT 1 FROM runs WHERE id = $1 AND status IN ('queued',"
	    " 'running', 'waiting') AND (next_step < $2 OR (next_step = $2"
	    " AND (waiting IS NULL OR (waiting::json)->>'for' <> 'signal')))",
	    "ti", run_id, step);
	return n < 0 ? -1 : n > 0 ? HF_RESUME_NOT_YET : 0;
}

int hf_pg_resume_run(struct hf_store *s, const char *run_id, int step,
		     const char *output, int64_t now)
{
	struct hf_pg_store *q = pq(s);
	assert(pq_applying(q)); /* through HF_W_CALL */
	/* The step's row, then the run and its queue row: one transaction. */
	int n = hf_pg_run(
	    q, q->wconn,
	    "INSERT INTO steps(run_id, idx, step_id, status, output, error,"
	    " logs, attempts, started_at, finished_at) SELECT id, next_step,"
	    " (waiting::json)->>'step', 'succeeded', $3, NULL, '[]', 1, $4,"
	    " $4 FROM runs WHERE id = $1 AND status = 'waiting' AND"
	    " next_step = $2 AND wait_path IS NOT NULL"
	    " ON CONFLICT (run_id, idx) DO UPDATE SET step_id ="
	    " EXCLUDED.step_id, status = EXCLUDED.status, output ="
	    " EXCLUDED.output, error = NULL, logs = EXCLUDED.logs, attempts"
	    " = 1, started_at = EXCLUDED.started_at, finished_at ="
	    " EXCLUDED.finished_at",
	    "titI", run_id, step, output ? output : "null", now);
	if (n == 0)
		n = not_yet(q, run_id, step);
	if (n <= 0 || n == HF_RESUME_NOT_YET)
		return n;
	n = hf_pg_run(q, q->wconn,
		      "WITH w AS (UPDATE runs SET status = 'queued', wait_path"
		      " = NULL, wake_at = $3 WHERE id = $1 AND status ="
		      " 'waiting' AND next_step = $2 RETURNING id, seq,"
		      " workflow, lane) INSERT INTO queue(run_id, seq, node_id,"
		      " epoch, lane) SELECT id, seq, NULL, 0, workflow ||"
		      " chr(10) || lane FROM w ON CONFLICT (run_id) DO UPDATE"
		      " SET node_id = NULL, epoch = 0, claimed_at = NULL",
		      "tiI", run_id, step, now);
	return n < 0 ? -1 : n > 0 ? 1 : 0;
}

int hf_pg_secret_key(struct hf_store *s, unsigned char key[32])
{
	struct hf_error err = {0};
	struct hf_pg_store *q = pq(s);
	if (hf_pg_key(q, &err) < 0)
		return -1;
	memcpy(key, q->key, 32);
	return 0;
}
