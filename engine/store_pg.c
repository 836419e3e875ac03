/* store_pg.c - the PostgreSQL state backend's core (--state postgres://…):
 * the schema, created or migrated at start under an advisory lock, the
 * connections (the writer's and a pool of readers), the writer's transaction
 * (one per batch, done() only after COMMIT) and which of its failures are the
 * database's (a lost connection or a failing server: every write fails
 * alike), the probe's write (which reconnects), and the table of operations
 * that store.c dispatches through. The writer thread itself (queue, batches,
 * a failed batch applied again write by write, whether the database can
 * write) is store_writer.c, shared with the SQLite backend.
 *
 * The schema mirrors the SQLite backend's (store_sqlite.c) column for column,
 * so that every answer of the admin API and the CLI is the same, with what
 * PostgreSQL needs besides: ids in the "C" collation (byte order, as
 * SQLite's), an identity column giving runs and deliveries their arrival
 * order (SQLite's rowid), and a narrow `queue` table, one row per unfinished
 * run (deleted when the run ends), holding which node has it (node_id, epoch;
 * NULL: unclaimed, e.g. written by the CLI) - what several nodes will claim
 * from; `nodes` registers each server: any number of them share the
 * database (store_pg_node.c: leases, reaping, wake-ups; the claims are in
 * store_pg_recover.c, the fencing of a claimed run's writes in
 * store_pg_apply.c).
 *
 * Durability: --sync full sets synchronous_commit on (a 2xx means the event
 * is on PostgreSQL's disk); --sync normal sets it off: a commit survives a
 * crash of hookflow but PostgreSQL's crash may lose the last few hundred
 * milliseconds of acknowledged writes (its wal_writer_delay, three times).
 *
 * Not here: the statements, parameters and arrays (store_pg_sql.c),
 * applying each kind of write (store_pg_apply.c), the reads
 * (store_pg_query.c), recovery, retries and prune (store_pg_recover.c).
 *
 * Threading: as the SQLite backend's: one writer thread owns the writer
 * connection; without it (the CLI) writes apply on the caller's thread under
 * wlock. Readers borrow a connection from a small pool.
 *
 * Neighbours: store.c (the generic interface), store_pg.h. With its sibling
 * store_pg_*.c files, the only code that includes <libpq-fe.h>. */
#include "store_pg.h"
#include "hf_crypto.h"
#include "hf_limits.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 4

/* Ids are compared byte by byte (COLLATE "C"), as in SQLite: run and event
 * ids begin with their creation time, and lists are ordered by them. */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT COLLATE \"C\" PRIMARY KEY,"
    " value TEXT);"
    "CREATE TABLE IF NOT EXISTS nodes("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL,"
    " epoch BIGINT NOT NULL DEFAULT 1, started_at BIGINT NOT NULL,"
    " heartbeat_at BIGINT NOT NULL, stopped_at BIGINT);"
    "CREATE TABLE IF NOT EXISTS events("
    " id TEXT COLLATE \"C\" PRIMARY KEY, path TEXT NOT NULL,"
    " method TEXT NOT NULL, query TEXT, headers TEXT NOT NULL,"
    " body BYTEA NOT NULL, received_at BIGINT NOT NULL, skipped TEXT);"
    "CREATE TABLE IF NOT EXISTS runs("
    " seq BIGINT GENERATED ALWAYS AS IDENTITY,"
    " id TEXT COLLATE \"C\" PRIMARY KEY, event_id TEXT COLLATE \"C\" NOT"
    " NULL, workflow TEXT COLLATE \"C\" NOT NULL, version TEXT,"
    " status TEXT COLLATE \"C\" NOT NULL, attempt INTEGER NOT NULL,"
    " created_at BIGINT NOT NULL, started_at BIGINT, finished_at BIGINT,"
    " error TEXT, next_step INTEGER NOT NULL DEFAULT 0,"
    " step_attempt INTEGER NOT NULL DEFAULT 1,"
    " due_at BIGINT NOT NULL DEFAULT 0, lane TEXT);"
    "CREATE INDEX IF NOT EXISTS runs_event ON runs(event_id);"
    "CREATE INDEX IF NOT EXISTS runs_workflow ON runs(workflow, id);"
    "CREATE INDEX IF NOT EXISTS runs_status ON runs(status, id);"
    /* One row per unfinished run: the hot, narrow table claims read. */
    "CREATE TABLE IF NOT EXISTS queue("
    " run_id TEXT COLLATE \"C\" PRIMARY KEY, seq BIGINT NOT NULL,"
    " node_id BIGINT, epoch BIGINT NOT NULL DEFAULT 0,"
    " claimed_at BIGINT);"
    "CREATE INDEX IF NOT EXISTS queue_seq ON queue(seq);"
    "CREATE INDEX IF NOT EXISTS queue_unclaimed ON queue(seq)"
    " WHERE node_id IS NULL;"
    "CREATE TABLE IF NOT EXISTS steps("
    " run_id TEXT COLLATE \"C\" NOT NULL, idx INTEGER NOT NULL,"
    " step_id TEXT NOT NULL, status TEXT NOT NULL, output TEXT, error TEXT,"
    " logs TEXT, attempts INTEGER NOT NULL, started_at BIGINT,"
    " finished_at BIGINT, PRIMARY KEY(run_id, idx));"
    "CREATE TABLE IF NOT EXISTS dedupe("
    " workflow TEXT COLLATE \"C\" NOT NULL, key TEXT COLLATE \"C\" NOT NULL,"
    " event_id TEXT NOT NULL, created_at BIGINT NOT NULL,"
    " PRIMARY KEY(workflow, key));"
    "CREATE INDEX IF NOT EXISTS dedupe_created ON dedupe(created_at);"
    "CREATE TABLE IF NOT EXISTS deliveries("
    " seq BIGINT GENERATED ALWAYS AS IDENTITY,"
    " id TEXT COLLATE \"C\" PRIMARY KEY, run_id TEXT, step_id TEXT,"
    " url TEXT NOT NULL, payload BYTEA NOT NULL, headers TEXT, secret TEXT,"
    " status TEXT COLLATE \"C\" NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL,"
    " backoff_ms BIGINT NOT NULL, next_at BIGINT NOT NULL,"
    " last_status INTEGER, last_error TEXT, created_at BIGINT NOT NULL,"
    " updated_at BIGINT, timeout_ms BIGINT NOT NULL DEFAULT 30000,"
    " node_id BIGINT, epoch BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(next_at)"
    " WHERE status = 'pending';"
    "CREATE INDEX IF NOT EXISTS deliveries_created ON"
    " deliveries(created_at, seq);"
    "CREATE INDEX IF NOT EXISTS deliveries_done ON deliveries(updated_at)"
    " WHERE status IN ('delivered','failed');"
    "CREATE TABLE IF NOT EXISTS workflow_versions("
    " version TEXT COLLATE \"C\" PRIMARY KEY, name TEXT NOT NULL, file TEXT,"
    " yaml TEXT NOT NULL, scripts TEXT, created_at BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS delivery_attempts("
    " delivery_id TEXT COLLATE \"C\" NOT NULL, n INTEGER NOT NULL,"
    " at BIGINT NOT NULL, status INTEGER, error TEXT, duration_ms BIGINT,"
    " PRIMARY KEY(delivery_id, n));"
    /* The earlier attempts of a retried run (hf_pg_retry_run), each as it
     * ended: its steps as the JSON array that RUN's "steps" is. */
    "CREATE TABLE IF NOT EXISTS run_history("
    " run_id TEXT COLLATE \"C\" NOT NULL, attempt INTEGER NOT NULL,"
    " status TEXT NOT NULL, error TEXT, steps TEXT, finished_at BIGINT,"
    " PRIMARY KEY(run_id, attempt));"
    /* Schema 3: several nodes (store_pg_node.c); 2 is the parked runs
     * (store_pg_park.c). */
    "ALTER TABLE nodes ADD COLUMN IF NOT EXISTS lease_ms BIGINT NOT NULL"
    " DEFAULT 15000;"
    "ALTER TABLE steps ADD COLUMN IF NOT EXISTS node TEXT;"
    "CREATE INDEX IF NOT EXISTS queue_node ON queue(node_id)"
    " WHERE node_id IS NOT NULL;"
    /* A run's lane (workflow, newline, key) beside it in the queue: it
     * starts once fewer than max runs of its lane came before it
     * (hf_pg_lane_ready), whichever node holds them. */
    "ALTER TABLE queue ADD COLUMN IF NOT EXISTS lane TEXT COLLATE \"C\";"
    "CREATE INDEX IF NOT EXISTS queue_lane ON queue(lane, seq)"
    " WHERE lane IS NOT NULL;"
    /* The deliveries a node has leased (a reaper gives them back). */
    "CREATE INDEX IF NOT EXISTS deliveries_node ON deliveries(node_id)"
    " WHERE node_id IS NOT NULL;"
    /* The queue churns: vacuum it by rows changed, not by its size. */
    "ALTER TABLE queue SET (autovacuum_vacuum_scale_factor = 0,"
    " autovacuum_vacuum_threshold = 1000);";

/* --- connections --- */

static void no_notices(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

PGconn *hf_pg_connect(struct hf_pg_store *q, struct hf_error *err)
{
	/* Bounded waits on a network that drops packets (the URL's own values
	 * win: they come after these): a connection attempt gives up after
	 * 10s, a write unacknowledged for 15s fails the connection, and an
	 * idle one is probed. The writer then reports the fault (503) and
	 * reconnects by itself. */
	static const char *const keys[] = {
	    "connect_timeout",	"keepalives",
	    "keepalives_idle",	"keepalives_interval",
	    "keepalives_count", "tcp_user_timeout",
	    "dbname",		NULL};
	const char *values[] = {"10", "1",     "10",   "5",
				"3",  "15000", q->url, NULL};
	PGconn *c = PQconnectdbParams(keys, values, 1);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		/* libpq's message names the host, never the password. */
		char msg[256];
		snprintf(msg, sizeof msg, "%s",
			 c ? PQerrorMessage(c) : "out of memory");
		msg[strcspn(msg, "\n")] = '\0';
		hf_error_set(err, NULL, 0, 0,
			     "cannot connect to the state database: %s", msg);
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, no_notices, NULL);
	/* The server's side of a lost client, too: a node cut off in the
	 * middle of a transaction must not keep its rows locked (the other
	 * nodes wait on them to take its work over) until the kernel's
	 * two-hour keepalive. hookflow's transactions are never idle. */
	char sql[400];
	snprintf(
	    sql, sizeof sql,
	    "SET synchronous_commit = %s; SET client_encoding = 'UTF8';"
	    " SET application_name = 'hookflow';"
	    " SET idle_in_transaction_session_timeout = '5s';"
	    " SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2;"
	    " SET tcp_keepalives_count = 3; SET tcp_user_timeout = 15000",
	    q->sync_full ? "on" : "off");
	PGresult *r = PQexec(c, sql);
	bool ok = hf_pg_ok(r);
	PQclear(r);
	if (!ok) {
		hf_error_set(err, NULL, 0, 0,
			     "cannot set up the state database: %s",
			     PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

PGconn *hf_pg_reader_take(struct hf_pg_store *q)
{
	PGconn *c = NULL;
	pthread_mutex_lock(&q->pool_lock);
	if (q->nreaders > 0)
		c = q->readers[--q->nreaders];
	pthread_mutex_unlock(&q->pool_lock);
	return c ? c : hf_pg_connect(q, NULL);
}

void hf_pg_reader_give(struct hf_pg_store *q, PGconn *c)
{
	if (!c)
		return;
	if (PQstatus(c) == CONNECTION_OK &&
	    PQtransactionStatus(c) == PQTRANS_IDLE) {
		pthread_mutex_lock(&q->pool_lock);
		if (q->nreaders < HF_STATE_READERS) {
			q->readers[q->nreaders++] = c;
			c = NULL;
		}
		pthread_mutex_unlock(&q->pool_lock);
	}
	PQfinish(c);
}

/* --- transactions --- */

/* A failure of the database rather than of one write: the connection is
 * gone, or the server cannot write (disk full, out of memory, shutting down,
 * a read-only standby, an I/O error). */
static bool store_fault(PGconn *c, const char *state)
{
	if (!c || PQstatus(c) != CONNECTION_OK || !state)
		return true;
	return strncmp(state, "53", 2) == 0 || strncmp(state, "57", 2) == 0 ||
	       strncmp(state, "58", 2) == 0 || strncmp(state, "08", 2) == 0 ||
	       strncmp(state, "XX", 2) == 0 || strcmp(state, "25006") == 0;
}

/* The writer's connection, connected again when it was lost: NULL (msg says
 * why) when the server cannot be reached. */
static PGconn *writer_conn(struct hf_pg_store *q, char *msg, size_t size)
{
	if (q->wconn && PQstatus(q->wconn) == CONNECTION_OK)
		return q->wconn;
	PQfinish(q->wconn);
	q->wconn = NULL;
	q->nprepared = 0;
	struct hf_error err = {0};
	q->wconn = hf_pg_connect(q, &err);
	if (!q->wconn)
		snprintf(msg, size, "%.150s", err.msg);
	return q->wconn;
}

static int exec_simple(struct hf_pg_store *q, const char *sql)
{
	PGresult *r = PQexec(q->wconn, sql);
	int rc = hf_pg_ok(r) ? 0 : -1;
	hf_pg_note_state(q, q->wconn, r);
	PQclear(r);
	return rc;
}

/* Copies the writer connection's last error message. */
static void last_error(struct hf_pg_store *q, char *msg, size_t size)
{
	const char *m = q->wconn ? PQerrorMessage(q->wconn) : "";
	snprintf(msg, size, "%s", *m ? m : "a write refused");
	msg[strcspn(msg, "\n")] = '\0';
	if (!msg[0])
		snprintf(msg, size, "a write refused");
}

/* The writer's transaction (struct hf_writer_ops): the writes from w up to
 * end (NULL: the list's end), and those queued meanwhile (hf_writer_more),
 * in one transaction: new rows go out together before the COMMIT
 * (hf_pg_flush_rows), so a write that arrived while the batch was sent joins
 * it rather than wait for the next round trips. Returns 0, or -1 rolled
 * back, with whether it was a fault of the database in *fault and the
 * message in msg. */
static int transact(struct hf_store *s, struct hf_write *w,
		    const struct hf_write *end, bool *fault, char *msg,
		    size_t size)
{
	struct hf_pg_store *q = pq(s);
	*fault = false;
	char state[8] = "";
	q->last_state[0] = '\0';
	if (!writer_conn(q, msg, size)) {
		*fault = true;
		return -1;
	}
	int rc = exec_simple(q, "BEGIN");
	if (rc < 0 && PQstatus(q->wconn) != CONNECTION_OK &&
	    writer_conn(q, msg, size))
		rc = exec_simple(q, "BEGIN"); /* reconnected: once more */
	if (!q->wconn) { /* the server cannot be reached: msg says why */
		*fault = true;
		return -1;
	}
	hf_pg_rows_reset(q);
	q->notify_pending = false;
	q->batch_fenced = q->fence_held = false;
	if (rc == 0)
		rc = hf_pg_fence(q, w, end);
	struct hf_write *last = NULL;
	for (; rc == 0 && w != end; last = w, w = w->next)
		rc = hf_pg_apply(q, w);
	while (rc == 0 && !end && last && (w = hf_writer_more(&q->wr, last))) {
		rc = hf_pg_fence(q, w, NULL);
		for (; rc == 0 && w; last = w, w = w->next)
			rc = hf_pg_apply(q, w);
	}
	if (rc == 0)
		rc = hf_pg_flush_rows(q);
	if (rc == 0)
		rc = hf_pg_notify_flush(q);
	if (rc == 0) {
		rc = exec_simple(q, "COMMIT");
		if (rc == 0)
			return 0;
	}
	last_error(q, msg, size);
	snprintf(state, sizeof state, "%s", q->last_state);
	if (q->wconn) {
		PGresult *r = PQexec(q->wconn, "ROLLBACK");
		PQclear(r);
	}
	/* A maintenance call can fail without an SQL error: not a fault. */
	*fault = store_fault(q->wconn, state[0] ? state : "00000");
	q->nversions = 0;
	return -1;
}

static int probe_call(struct hf_store *s, void *arg)
{
	(void)arg;
	struct hf_pg_store *q = pq(s);
	return hf_pg_run(q, q->wconn,
			 "INSERT INTO meta(key, value) VALUES ('probed_at', $1)"
			 " ON CONFLICT (key) DO UPDATE SET value = $1",
			 "I", hf_now_ms()) < 0
		   ? -1
		   : 0;
}

static void set_clean_stop(struct hf_store *s)
{
	pq(s)->clean_stop = true;
}

static void store_close(struct hf_store *s)
{
	struct hf_pg_store *q = pq(s);
	if (hf_writer_stop(&q->wr)) {
		/* The heartbeat first: it would take the stop for a reap. */
		hf_pg_node_stop(q);
		if (q->clean_stop)
			hf_pg_clean_stop_end(q);
	}
	hf_pg_node_stop(q);
	for (int i = 0; i < q->nreaders; i++)
		PQfinish(q->readers[i]);
	PQfinish(q->wconn);
	hf_pg_rows_free(q);
	hf_writer_destroy(&q->wr);
	pthread_mutex_destroy(&q->pool_lock);
	pthread_mutex_destroy(&q->key_lock);
	hf_secret_wipe(q->key, sizeof q->key);
	if (q->url)
		hf_secret_wipe(q->url, strlen(q->url));
	free(q->url);
	free(q);
}

static void submit(struct hf_store *s, struct hf_write *w)
{
	hf_writer_submit(&pq(s)->wr, w);
}

void hf_pg_on_batch_end(struct hf_store *s, void (*fn)(void *arg), void *arg)
{
	hf_writer_on_batch_end(&pq(s)->wr, fn, arg);
}

static void stats(struct hf_store *s, struct hf_store_stats *out)
{
	hf_writer_stats(&pq(s)->wr, out);
}

static bool writable(struct hf_store *s, char *why, size_t size)
{
	struct hf_pg_store *q = pq(s);
	if (!hf_pg_lease_fresh(q)) {
		if (why && size)
			snprintf(why, size,
				 "this node's lease on the state database is "
				 "stale (no heartbeat for %llds)",
				 (long long)(q->lease_ms * 3 / 4000));
		return false;
	}
	return hf_writer_writable(&q->wr, why, size);
}

/* --- sharing work between servers (store_pg_node.c has the rest) --- */

static int heartbeat(struct hf_store *s)
{
	return hf_pg_lease_fresh(pq(s)) ? 0 : -1;
}

static void release(struct hf_store *s, const char *run_id)
{
	struct hf_pg_store *q = pq(s);
	if (!q->node_id)
		return;
	PGconn *c = hf_pg_reader_take(q);
	int n = hf_pg_run(q, c,
			  "UPDATE queue SET node_id = NULL, epoch = 0,"
			  " claimed_at = NULL WHERE node_id = $1 AND"
			  " ($2::text IS NULL OR run_id = $2)",
			  "It", q->node_id, run_id);
	if (n > 0 && q->notify)
		hf_pg_run(q, c, "NOTIFY hookflow", "");
	hf_pg_reader_give(q, c);
}

static bool holds(struct hf_store *s, const struct hf_run *run)
{
	return run->epoch == 0 || run->epoch == atomic_load(&pq(s)->epoch);
}

static const struct hf_writer_ops writer_ops = {
    .transact = transact,
    .probe = probe_call,
};

static const struct hf_store_ops pg_ops = {
    .name = "postgres",
    .close = store_close,
    .set_clean_stop = set_clean_stop,
    .submit = submit,
    .stats = stats,
    .writable = writable,
    .run_json = hf_pg_run_json,
    .runs_json = hf_pg_runs_json,
    .event_json = hf_pg_event_json,
    .deliveries_json = hf_pg_deliveries_json,
    .delivery_json = hf_pg_delivery_json,
    .pending_deliveries = hf_pg_pending_deliveries,
    .load_event = hf_pg_load_event,
    .retry_delivery = hf_pg_retry_delivery,
    .prune = hf_pg_prune,
    .load_pending = hf_pg_load_pending,
    .changed = hf_pg_changed,
    .stored_workflows = hf_pg_stored_workflows,
    .save_versions = hf_pg_save_versions,
    .retry_run = hf_pg_retry_run,
    .cancel_run = hf_pg_cancel_run,
    .cancel_notes = hf_pg_cancel_notes,
    .cancel_note_done = hf_pg_cancel_note_done,
    .active_runs = hf_pg_active_runs,
    .debounce_extend = hf_pg_debounce_extend,
    .run_waiting = hf_pg_run_waiting,
    .throttle_reserve = hf_pg_throttle_reserve,
    .debounce_find = hf_pg_debounce_find,
    .debounce_lead = hf_pg_debounce_lead,
    .dedupe_last = hf_pg_dedupe_last,
    .load_backlog = hf_pg_load_backlog,
    .claim_runs = hf_pg_claim_runs,
    .count_backlog = hf_pg_count_backlog,
    .on_batch_end = hf_pg_on_batch_end,
    .next_wake = hf_pg_next_wake,
    .count_waiting = hf_pg_count_waiting,
    .wake_due = hf_pg_wake_due,
    .resume_run = hf_pg_resume_run,
    .load_waiting = hf_pg_load_waiting,
    .secret_key = hf_pg_secret_key,
    .claim = hf_pg_claim,
    .wait = hf_pg_wait,
    .heartbeat = heartbeat,
    .release = release,
    .holds = holds,
    .nodes_json = hf_pg_nodes_json,
    .lease_deliveries = hf_pg_lease_deliveries,
    .lane_ready = hf_pg_lane_ready,
};

/* Creates the schema, or migrates an older one, one server at a time (a
 * transaction-scoped advisory lock: released by the COMMIT). */
static int migrate(struct hf_pg_store *q, struct hf_error *err)
{
	PGresult *r = PQexec(q->wconn, "BEGIN;"
				       " SELECT pg_advisory_xact_lock("
				       "1752133483)"); /* "hook" */
	bool ok = hf_pg_ok(r);
	PQclear(r);
	/* The schema's version: with it current, no DDL at all (CREATE INDEX
	 * IF NOT EXISTS would lock the table against a running server's
	 * writes, at every CLI command). */
	int64_t have = 0;
	if (ok) {
		r = PQexec(q->wconn, "SELECT to_regclass('meta') IS NOT NULL");
		ok = hf_pg_ok(r) && PQntuples(r) == 1;
		bool exists = ok && PQgetvalue(r, 0, 0)[0] == 't';
		PQclear(r);
		if (exists) {
			r = PQexec(q->wconn,
				   "SELECT COALESCE(max(value::bigint),"
				   " 0) FROM meta WHERE key ="
				   " 'schema_version'");
			ok = hf_pg_ok(r) && PQntuples(r) == 1;
			have = ok ? pg_int(r, 0, 0) : 0;
			PQclear(r);
		}
	}
	if (ok && have > SCHEMA_VERSION) {
		hf_error_set(
		    err, NULL, 0, 0,
		    "the state database's schema is version %lld, newer "
		    "than this hookflow's (%d): use a newer hookflow",
		    (long long)have, SCHEMA_VERSION);
		r = PQexec(q->wconn, "ROLLBACK");
		PQclear(r);
		return -1;
	}
	if (ok && have < SCHEMA_VERSION) {
		r = PQexec(q->wconn, schema_sql);
		ok = hf_pg_ok(r);
		PQclear(r);
		r = ok ? PQexec(q->wconn, hf_pg_park_schema) : NULL;
		ok = ok && hf_pg_ok(r); /* version 2: parked runs */
		PQclear(r);
		r = ok ? PQexec(q->wconn, hf_pg_shared_schema) : NULL;
		ok = ok && hf_pg_ok(r); /* version 4: throttle, debounce */
		PQclear(r);
		if (ok)
			ok = hf_pg_run(
				 q, q->wconn,
				 "INSERT INTO meta(key, value) VALUES"
				 " ('schema_version', $1) ON CONFLICT (key)"
				 " DO UPDATE SET value = EXCLUDED.value",
				 "i", SCHEMA_VERSION) >= 0;
	}
	if (ok)
		ok = exec_simple(q, "COMMIT") == 0;
	if (!ok) {
		char msg[200];
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(q->wconn));
		msg[strcspn(msg, "\n")] = '\0';
		hf_error_set(err, NULL, 0, 0,
			     "cannot create the state schema: %s", msg);
		r = PQexec(q->wconn, "ROLLBACK");
		PQclear(r);
		return -1;
	}
	return 0;
}

struct hf_store *hf_store_pg_open(const char *url, bool sync_full,
				  bool start_writer,
				  const struct hf_store_node *node,
				  struct hf_error *err)
{
	struct hf_pg_store *q = hf_xcalloc(1, sizeof *q);
	q->base.ops = &pg_ops;
	q->url = hf_xstrdup(url);
	q->sync_full = sync_full;
	hf_writer_init(&q->wr, &q->base, &writer_ops);
	pthread_mutex_init(&q->pool_lock, NULL);
	pthread_mutex_init(&q->key_lock, NULL);
	hf_pg_rows_init(q);
	q->wconn = hf_pg_connect(q, err);
	if (!q->wconn || migrate(q, err) < 0)
		goto fail;
	q->notify = true; /* the CLI's replays and retries wake the nodes */
	if (start_writer) {
		if (hf_pg_node_start(q, node, err) < 0 ||
		    hf_pg_secrets_start(q, err) < 0)
			goto fail;
		hf_pg_clean_stop_begin(q);
		if (hf_writer_start(&q->wr) < 0) {
			hf_error_set(err, NULL, 0, 0,
				     "cannot start the writer thread");
			goto fail;
		}
	}
	return &q->base;
fail:
	store_close(&q->base);
	return NULL;
}
