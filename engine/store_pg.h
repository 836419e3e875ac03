/* store_pg.h - internals shared by the PostgreSQL state backend's files
 * (store_pg.c, store_pg_sql.c, store_pg_apply.c, store_pg_query.c,
 * store_pg_recover.c) and
 * by no other file: the backend's struct, its connections, the statement
 * helpers (parameters bound from a type string, as store_sqlite.h's), the
 * binary arrays behind the multi-row inserts, and the operations each file
 * implements for the table in store_pg.c. */
#ifndef HF_STORE_PG_H
#define HF_STORE_PG_H

#include "hf_limits.h"
#include "store_int.h"
#include "store_writer.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Statements prepared once per writer connection (hf_pg_exec). */
#define HF_PG_PREPARED 48

/* Longest --node name kept. */
#define HF_NODE_NAME_MAX 128

/* Rows of the writes of one batch that go in one multi-row INSERT each
 * (store_pg_apply.c): events, then runs with their queue rows. */
struct hf_pg_arr {
	char *buf;
	size_t len, cap;
	int n;
	unsigned oid; /* element type */
	bool nulls;
};

struct hf_pg_rows {
	int nevents, nruns;
	/* events: id path method query headers body received_at skipped */
	struct hf_pg_arr ev[8];
	/* runs: id event_id workflow version attempt created_at next_step
	 * step_attempt due_at lane node status wake_at waiting wait_path */
	struct hf_pg_arr run[15];
};

struct hf_pg_store {
	struct hf_store base; /* first: the ops table */
	char *url;
	bool sync_full;
	PGconn *wconn; /* the writer's connection (NULL while it is down) */
	/* Statements prepared on wconn: the SQL's address is the key (every
	 * caller passes a string literal); forgotten when wconn is reset. */
	const char *prepared[HF_PG_PREPARED];
	int nprepared;
	char last_state[8]; /* SQLSTATE of its last failed statement */

	/* The queue, the writer thread, wlock (guards wconn: the writer
	 * thread and the few callers that use it directly - retry_run without
	 * a writer thread - never at once), whether the database can write,
	 * the counts (store_writer.h). */
	struct hf_store_writer wr;

	pthread_mutex_t pool_lock;
	PGconn *readers[HF_STATE_READERS];
	int nreaders;

	char versions[HF_STATE_VERSION_CACHE][72];
	unsigned nversions;
	bool unclean;
	bool clean_stop;

	/* This server's row in nodes (0: none, the CLI), and its epoch: bumped
	 * by the node that reaps this one, adopted by the heartbeat when it
	 * finds it so (store_pg_node.c). Every write of a claimed run is
	 * fenced on both. */
	int64_t node_id;
	_Atomic int64_t epoch;
	char node_name[HF_NODE_NAME_MAX];
	int64_t lease_ms;
	bool notify;	     /* LISTEN/NOTIFY (--pg-notify) */
	bool notify_pending; /* the open batch left claimable work */
	bool batch_fenced; /* the open batch's node was reaped (hf_pg_fence) */
	bool fence_held;   /* the open batch's fence is taken (hf_pg_fence) */
	struct hf_pg_node *node; /* the heartbeat thread (store_pg_node.c) */

	struct hf_pg_rows rows; /* the batch's pending multi-row inserts */

	pthread_mutex_t key_lock;
	bool have_key;
	unsigned char key[32];
};

static inline struct hf_pg_store *pq(struct hf_store *s)
{
	return (struct hf_pg_store *)s;
}

static inline bool pq_applying(const struct hf_pg_store *q)
{
	return hf_writer_applying(&q->wr);
}

/* store_pg.c: a new connection to q->url (NULL with err set), set up for
 * this backend (synchronous_commit, the time zone, quiet notices). */
PGconn *hf_pg_connect(struct hf_pg_store *q, struct hf_error *err);
/* A connection from the pool (a new one when it is empty; NULL when none can
 * be made), and back (a broken one is closed). */
PGconn *hf_pg_reader_take(struct hf_pg_store *q);
void hf_pg_reader_give(struct hf_pg_store *q, PGconn *c);

/* store_pg_sql.c: runs sql on c with $1, $2... from the arguments after types,
 * one letter each: 't' a const char * (NULL binds NULL; not valid UTF-8 is
 * mended), 'i' an int, 'I' an int64_t, 'J' an int64_t bound as NULL when 0,
 * 'b' a bytea as (const void *, size_t), 'a' a struct hf_pg_arr * (a binary
 * array). On q's writer connection (c == q->wconn) the statement is
 * prepared once. Returns the result (PQclear it; NULL when c is NULL or out
 * of memory). */
PGresult *hf_pg_exec(struct hf_pg_store *q, PGconn *c, const char *sql,
		     const char *types, ...);
PGresult *hf_pg_vexec(struct hf_pg_store *q, PGconn *c, const char *sql,
		      const char *types, va_list ap);
/* store_pg_sql.c: remembers the SQLSTATE of a failed statement on q's
 * writer connection (q->last_state), for store_fault. */
void hf_pg_note_state(struct hf_pg_store *q, PGconn *c, const PGresult *r);
/* The result's status was good (a command or rows). */
bool hf_pg_ok(const PGresult *r);
/* hf_pg_exec that keeps only whether it worked: rows affected, or -1. */
int hf_pg_run(struct hf_pg_store *q, PGconn *c, const char *sql,
	      const char *types, ...);
/* hf_pg_exec on c, or when c is NULL on a pooled connection: calls row for
 * each row until it returns nonzero. Returns how many rows row saw, or -1. */
int hf_pg_each(struct hf_pg_store *q, PGconn *c,
	       int (*row)(PGconn *c, PGresult *r, int i, void *arg), void *arg,
	       const char *sql, const char *types, ...);
int hf_pg_veach(struct hf_pg_store *q, PGconn *c,
		int (*row)(PGconn *c, PGresult *r, int i, void *arg), void *arg,
		const char *sql, const char *types, va_list ap);

/* Column helpers (text results). */
static inline const char *pg_text(const PGresult *r, int i, int col)
{
	return PQgetisnull(r, i, col) ? NULL : PQgetvalue(r, i, col);
}
static inline int64_t pg_int(const PGresult *r, int i, int col)
{
	return PQgetisnull(r, i, col)
		   ? 0
		   : strtoll(PQgetvalue(r, i, col), NULL, 10);
}
/* A column of JSON text as a new reference (JSON null for NULL, a string
 * when the text is not JSON). */
json_t *hf_pg_json(const PGresult *r, int i, int col);
/* A bytea column's bytes (free them; "" when NULL), its length in *len. */
unsigned char *hf_pg_bytes(const PGresult *r, int i, int col, size_t *len);

/* store_pg_sql.c: binary arrays for unnest($n::T[]). */
void hf_pg_arr_init(struct hf_pg_arr *a, unsigned oid);
void hf_pg_arr_reset(struct hf_pg_arr *a);
void hf_pg_arr_free(struct hf_pg_arr *a);
void hf_pg_arr_text(struct hf_pg_arr *a, const char *s); /* NULL: NULL */
void hf_pg_arr_bytes(struct hf_pg_arr *a, const void *p, size_t n);
void hf_pg_arr_int8(struct hf_pg_arr *a, int64_t v);
void hf_pg_arr_int8_or_null(struct hf_pg_arr *a, int64_t v); /* 0: NULL */
#define HF_PG_TEXT_OID 25
#define HF_PG_INT8_OID 20
#define HF_PG_BYTEA_OID 17

/* store_pg_apply.c */
int hf_pg_apply(struct hf_pg_store *q, struct hf_write *w);
/* Before writes of a batch (from w up to end; those hf_writer_more adds,
 * before they apply): at the first writes of claimed runs, holds this
 * node's row in `nodes` (FOR KEY SHARE: a reaper skips it meanwhile, till
 * the COMMIT) and checks its epoch; reaped already, q->batch_fenced makes
 * them, and those of the rest of the batch, write nothing. transact() clears
 * batch_fenced and fence_held at each BEGIN. 0 or -1. */
int hf_pg_fence(struct hf_pg_store *q, const struct hf_write *w,
		const struct hf_write *end);
/* Sends the batch's pending multi-row inserts: 0 or -1. */
int hf_pg_flush_rows(struct hf_pg_store *q);
void hf_pg_rows_init(struct hf_pg_store *q);
void hf_pg_rows_reset(struct hf_pg_store *q);
void hf_pg_rows_free(struct hf_pg_store *q);
int hf_pg_store_version(struct hf_pg_store *q, const struct hf_workflow *wf);
int hf_pg_key(struct hf_pg_store *q, struct hf_error *err);
int hf_pg_secrets_start(struct hf_pg_store *q, struct hf_error *err);

/* store_pg_query.c */
json_t *hf_pg_run_json(struct hf_store *s, const char *run_id);
json_t *hf_pg_runs_json(struct hf_store *s, const char *workflow,
			const char *status, int limit, bool steps);
json_t *hf_pg_event_json(struct hf_store *s, const char *event_id);
json_t *hf_pg_deliveries_json(struct hf_store *s, const char *status,
			      int limit);
json_t *hf_pg_delivery_json(struct hf_store *s, const char *id);
int hf_pg_pending_deliveries(struct hf_store *s, int64_t from, int64_t from_seq,
			     int limit,
			     int (*fn)(const struct hf_delivery *d, void *arg),
			     void *arg);
struct hf_event *hf_pg_load_event(struct hf_store *s, const char *event_id);
/* A run's steps as RUN's "steps" array (new reference), on c. */
json_t *hf_pg_steps_json(PGconn *c, const char *run_id);
struct hf_event *hf_pg_load_event_on(struct hf_pg_store *q, PGconn *c,
				     const char *event_id);

/* store_pg_node.c: nodes and leases. Registers this server (reaping at once
 * an earlier node of the same name: it is gone), starts the heartbeat thread
 * (heartbeat, reaper, LISTEN), and at a clean stop gives its runs back. */
int hf_pg_node_start(struct hf_pg_store *q, const struct hf_store_node *node,
		     struct hf_error *err);
void hf_pg_node_stop(struct hf_pg_store *q);
/* False while this node's last successful heartbeat is older than the lease
 * less a margin: it must not start steps (nor deliveries). */
bool hf_pg_lease_fresh(struct hf_pg_store *q);
int hf_pg_wait(struct hf_store *s, int64_t timeout_ms);
json_t *hf_pg_nodes_json(struct hf_store *s);
/* Adds "NOTIFY hookflow" to the open transaction when it left claimable work
 * (q->notify_pending) and notifications are on: 0 or -1. */
int hf_pg_notify_flush(struct hf_pg_store *q);
int hf_pg_claim(struct hf_store *s, const struct hf_workflow_set *set,
		int limit, void (*fn)(struct hf_run *run, void *arg),
		void *arg);
int hf_pg_lease_deliveries(struct hf_store *s, const char *const *ids, size_t n,
			   bool *leased);
int hf_pg_lane_ready(struct hf_store *s, const struct hf_run *run, int max,
		     int64_t *seq);

/* store_pg_recover.c */
void hf_pg_clean_stop_begin(struct hf_pg_store *q);
void hf_pg_clean_stop_end(struct hf_pg_store *q);
int hf_pg_load_pending(struct hf_store *s, const struct hf_workflow_set *set,
		       bool only_unclaimed,
		       void (*fn)(struct hf_run *run, void *arg), void *arg);
bool hf_pg_changed(struct hf_store *s);
/* store_pg_flow.c: cancelling runs (hf_store.h). */
int hf_pg_cancel_run(struct hf_store *s, const char *run_id, const char *reason,
		     bool note, char *workflow);
int hf_pg_cancel_notes(struct hf_store *s,
		       void (*fn)(const char *run_id, bool was_waiting,
				  void *arg),
		       void *arg);
int hf_pg_cancel_note_done(struct hf_store *s, const char *run_id);
int hf_pg_debounce_extend(struct hf_store *s, const char *run_id,
			  int64_t wake_at, const char *waiting);
char *hf_pg_run_waiting(struct hf_store *s, const char *run_id);
/* store_pg_shared.c: the throttle's and the debounce's shared state. */
extern const char hf_pg_shared_schema[];
int hf_pg_throttle_reserve(struct hf_store *s, const char *key, int limit,
			   int64_t period_ms, int64_t own, int64_t *now,
			   int64_t *at);
int hf_pg_debounce_find(struct hf_store *s, const char *workflow,
			const char *key, char **leader, char **waiting);
int hf_pg_debounce_lead(struct hf_store *s, const char *run_id, int64_t wake_at,
			const char *waiting);
int hf_pg_active_runs(struct hf_store *s, const char *workflow,
		      const char *lane, int limit,
		      void (*fn)(const struct hf_active_run *r, void *arg),
		      void *arg);
int hf_pg_save_versions(struct hf_store *s, const struct hf_workflow_set *set);
struct hf_workflow_set *hf_pg_stored_workflows(struct hf_store *s);
int hf_pg_retry_run(struct hf_store *s, const char *run_id,
		    struct hf_error *err);
int hf_pg_retry_delivery(struct hf_store *s, const char *id);
int hf_pg_prune(struct hf_store *s, int64_t before, int limit);

/* The disk backlog and schedules' last fire, as the SQLite backend has them
 * on main (hf_store_load_backlog, _claim_runs, _count_backlog,
 * _on_batch_end, _dedupe_last in hf_store.h there): ready for the ops table
 * once store_int.h has these operations. The backlog is the queue's rows
 * with no node. */
int hf_pg_load_backlog(struct hf_store *s, const struct hf_workflow_set *set,
		       int limit, void (*fn)(struct hf_run *run, void *arg),
		       void *arg);
int hf_pg_claim_runs(struct hf_store *s, struct hf_run *const *runs, size_t n);
int64_t hf_pg_count_backlog(struct hf_store *s);
void hf_pg_on_batch_end(struct hf_store *s, void (*fn)(void *arg), void *arg);
int hf_pg_dedupe_last(struct hf_store *s, const char *workflow,
		      const char *prefix, char *out, size_t size);

/* Parked runs (store_pg_park.c; hf_pg_load_waiting in store_pg_recover.c),
 * and their part of the schema (version 2). */
extern const char hf_pg_park_schema[];
int hf_pg_load_waiting(struct hf_store *s, const struct hf_workflow_set *set,
		       const char *path, const char *after, int limit,
		       void (*fn)(struct hf_run *run, void *arg), void *arg);
int64_t hf_pg_next_wake(struct hf_store *s);
int64_t hf_pg_count_waiting(struct hf_store *s);
int hf_pg_wake_due(struct hf_store *s, int64_t now, int limit);
int hf_pg_resume_run(struct hf_store *s, const char *run_id, int step,
		     const char *output, int64_t now);
int hf_pg_secret_key(struct hf_store *s, unsigned char key[32]);

#endif
