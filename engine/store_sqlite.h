/* store_sqlite.h - internals shared by the SQLite state backend's files
 * (store_sqlite.c, store_sqlite_apply.c, store_sqlite_query.c,
 * store_sqlite_recover.c) and by no other file: the backend's struct, its
 * connections, binding and column helpers, and the operations each file
 * implements for the table in store_sqlite.c. */
#ifndef HF_STORE_SQLITE_H
#define HF_STORE_SQLITE_H

#include "hf_limits.h"
#include "store_int.h"
#include "store_writer.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Checkpoints (store_sqlite.c): past HF_CKPT_PAGES frames in the WAL the
 * checkpointer thread copies them into the database (PASSIVE, beside the
 * writer); once it is nearly caught up the writer copies the few frames left
 * itself, so that its next transaction starts the WAL again from its
 * beginning. Past HF_CKPT_MAX_PAGES (the checkpointer cannot keep up, or a
 * reader pins old frames) the writer checkpoints everything itself, waiting
 * for readers (RESTART): the WAL stays bounded whatever the load.
 * 300 frames (1.2 MiB), not 1000: each checkpoint ends with an fsync of the
 * database file, which the WAL's next fdatasync waits behind on the same
 * disk; smaller ones stall a commit less. Measured (--sync full, 64
 * connections, fresh servers alternating and bench.py in both orders): p99
 * 0.69-0.93 of 1000/256's in eleven runs of twelve (1.10 in the other), the
 * same CPU per event, bytes per event 1.00-1.08 (hot pages are copied more
 * often). */
#ifndef HF_CKPT_PAGES
#define HF_CKPT_PAGES 300
#endif
#ifndef HF_CKPT_TAIL_PAGES
#define HF_CKPT_TAIL_PAGES 64
#endif
#ifndef HF_CKPT_MAX_PAGES
#define HF_CKPT_MAX_PAGES 8000
#endif

/* The writer connection's prepared statements (store_sqlite_apply.c). */
enum stmt_id {
	ST_INSERT_EVENT,
	ST_INSERT_RUN,
	ST_DEDUPE_INSERT,
	ST_DEDUPE_GET,
	ST_RUN_STARTED,
	ST_INSERT_STEP,
	ST_RUN_STEPS,
	ST_UPDATE_RUN,
	ST_INSERT_DELIVERY,
	ST_DELIVERY_ATTEMPT,
	ST_DELIVERY_UPDATE,
	ST_INSERT_VERSION,
	ST_VERSION_ID,
	ST_EVENT_RID,
	ST_COUNT,
};

struct hf_sqlite_store {
	struct hf_store base; /* first: the ops table */
	char *path;
	bool sync_full;
	sqlite3 *wdb; /* the writer's connection */
	sqlite3_stmt *stmts[ST_COUNT];

	/* The queue, the writer thread, wlock (guards wdb: the connection is
	 * opened NOMUTEX, so the writer thread and the few callers that use
	 * wdb directly - hf_store_changed, the claim in hf_store_load_pending,
	 * hf_store_retry_run - must never use it at the same time), whether
	 * the database can write, the counts (store_writer.h). */
	struct hf_store_writer wr;

	/* The checkpointer (store_sqlite.c, "checkpoints"): its thread and
	 * connection; woken under ckpt_lock when the WAL passed
	 * HF_CKPT_PAGES. wal_frames: the WAL's frames after the last
	 * commit on wdb (set by the WAL hook: on the writer thread, or on a
	 * caller holding wlock, hf_sqlite_retry_run).
	 * ckpt_caught_up: the checkpointer copied all but a few frames (the
	 * writer then copies the rest itself, which resets the WAL). */
	bool ckpt_running, ckpt_stop, ckpt_wake;
	pthread_t ckpt_thread;
	sqlite3 *cdb;
	pthread_mutex_t ckpt_lock;
	pthread_cond_t ckpt_cond;
	atomic_int wal_frames;
	atomic_bool ckpt_caught_up;
	uint64_t ckpt_writer, ckpt_blocking; /* checkpoints the writer ran */

	pthread_mutex_t pool_lock;
	sqlite3 *readers[HF_STATE_READERS];
	int nreaders;
	int data_version;

	char versions[HF_STATE_VERSION_CACHE][72];
	int64_t version_ids[HF_STATE_VERSION_CACHE]; /* workflow_versions.vid */
	unsigned nversions; /* ring: next slot = nversions %
			       HF_STATE_VERSION_CACHE */
	/* The applying thread's own: the band (hf_sqlite_band) of the last
	 * event and run it inserted and the rid after theirs, so that the next
	 * insert into the same band skips looking up the band's last rid (0:
	 * none; cleared when a batch rolls back). [0] events, [1] runs. */
	int64_t last_band[2], next_rid[2];
	/* The previous server did not stop cleanly (read at open). */
	bool unclean;
	/* This one did: every step finished (set by hf_store_set_clean_stop).
	 */
	bool clean_stop;
	/* The disk backlog's runs taken into memory (store_sqlite_backlog.c).
	 */
	struct hf_sqlite_backlog *bl;
	/* The applying thread's buffer and LZ4 state for packed bodies
	 * (store_sqlite_pack.c). */
	char *pack_buf;
	void *pack_state;
	size_t pack_cap;

	/* The key that seals emit signing secrets (deliveries.secret), loaded
	 * once under key_lock by hf_sqlite_key (hf_secret_key_load). */
	pthread_mutex_t key_lock;
	bool have_key;
	unsigned char key[32];
};

static inline struct hf_sqlite_store *sq(struct hf_store *s)
{
	return (struct hf_sqlite_store *)s;
}

/* The invariant behind the writer connection's prepared statements and
 * transactions: only the thread applying a batch uses them - the writer
 * thread when it runs, else the caller of hf_store_submit, under wlock. For
 * assert() in the paths that apply writes (HF_W_CALL maintenance included). */
static inline bool sq_applying(const struct hf_sqlite_store *q)
{
	return hf_writer_applying(&q->wr);
}

/* Row ids (schema version 2). events and runs are keyed by an integer, rid,
 * derived from their public id "<prefix>_<12 hex digits: ms>_<10 hex>":
 * ms << HF_BAND_BITS, plus the how-many-th row of that millisecond
 * (max + 1 at insert). The id is stored once, in the row; a lookup by id
 * reads the band of its millisecond, a few rows: rid BETWEEN lo AND hi AND
 * id = ?. An id of another shape has the band of ms 0. */
#define HF_BAND_BITS 15

static inline int64_t hf_sqlite_band(const char *id)
{
	const char *p = id ? strchr(id, '_') : NULL;
	int64_t ms = 0;
	if (!p)
		return 0;
	for (int i = 1; i <= 12; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
					       : -1;
		if (d < 0)
			return 0;
		ms = ms << 4 | d;
	}
	return p[13] == '_' ? ms << HF_BAND_BITS : 0;
}

/* An event's runs (schema version 5). A run made with its event - within
 * HF_RUN_NEAR_MS of the event's id, as every run of an accepted webhook is -
 * is found by its rid: in the bands of those milliseconds, with event = the
 * event's rid. Any other run of the event (a replay, ...) is "late" and in
 * the partial index runs_late, whose condition is HF_RUNS_LATE: a query
 * must say it word for word for SQLite to use the index. No index on every
 * run's event: an index b-tree fed in rid order rewrote 2-3 of its pages at
 * every commit (rebalancing its last leaves; measured: issue 13's notes). */
#define HF_RUN_NEAR_MS 100
#define HF_RUNS_LATE "(rid >> 15) - (event >> 15) NOT BETWEEN 0 AND 100"
/* The rids of the runs made with the event whose rid is the SQL x, for
 * "rid BETWEEN " HF_RUNS_NEAR_OF(x): the event's rid ?1 (HF_RUNS_NEAR_P1),
 * or events e's (HF_RUNS_NEAR_E). */
#define HF_RUNS_NEAR_OF(x)                                                     \
	"((" x " >> 15) << 15) AND ((((" x " >> 15) + 101) << 15) - 1)"
#define HF_RUNS_NEAR_P1 HF_RUNS_NEAR_OF("?1")
#define HF_RUNS_NEAR_E HF_RUNS_NEAR_OF("e.rid")
_Static_assert(HF_BAND_BITS == 15 && HF_RUN_NEAR_MS == 100,
	       "HF_RUNS_LATE and HF_RUNS_NEAR_OF spell these numbers out");

/* A run's steps (schema version 6, store_sqlite_schema.c) as a FROM item:
 * its chain of step rows walked from the last, whose sid the SQL query
 * `last` selects, through prev; of the rows of one idx the newest, its
 * sid as the column sid. */
#define HF_STEPS_OF(last)                                                      \
	"(SELECT *, max(sid) FROM steps WHERE sid IN (WITH RECURSIVE"          \
	" chain(sid) AS (" last " UNION ALL SELECT s.prev FROM steps s"        \
	" JOIN chain c ON s.sid = c.sid WHERE s.prev IS NOT NULL) SELECT sid"  \
	" FROM chain) GROUP BY idx)"
/* Those of the run whose last step row is ?1. */
#define HF_STEPS_OF_P1 HF_STEPS_OF("SELECT ?1")

/* Binds the band of id: its first rid at i, its last at i + 1. */
static inline void bind_band(sqlite3_stmt *st, int i, const char *id)
{
	int64_t lo = hf_sqlite_band(id);
	sqlite3_bind_int64(st, i, lo);
	sqlite3_bind_int64(st, i + 1, lo + ((1 << HF_BAND_BITS) - 1));
}

static inline void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* bind_text without SQLite's copy (a malloc, a memcpy and a free per value):
 * for the writer's statements (store_sqlite_apply.c), each reset and cleared
 * (step_done) while s, a field of the write being applied, still lives. */
static inline void bind_kept(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Binds v, or SQL NULL when v is 0 (a time or an HTTP status not known). */
static inline void bind_int_or_null(sqlite3_stmt *st, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* Binds v as compact JSON text (NULL binds SQL NULL). */
static inline void bind_json(sqlite3_stmt *st, int i, const json_t *v)
{
	if (!v) {
		sqlite3_bind_null(st, i);
		return;
	}
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (s)
		sqlite3_bind_text(st, i, s, -1, free);
	else
		sqlite3_bind_null(st, i);
}

/* Binds text, v encoded already (kept until the statement is reset), or
 * without it v as JSON. */
static inline void bind_json_text(sqlite3_stmt *st, int i, const char *text,
				  const json_t *v)
{
	if (text)
		sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
	else
		bind_json(st, i, v);
}

/* A column of JSON text as a new reference (JSON null for SQL NULL, a string
 * when the text is not JSON). */
static inline json_t *col_json(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	const char *text = (const char *)sqlite3_column_text(st, i);
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
	return v ? v : json_string(text);
}

/* store_sqlite.c: a read connection from the pool (opened when the pool is
 * empty; NULL on failure), and back. */
sqlite3 *hf_sqlite_reader_take(struct hf_sqlite_store *q);
void hf_sqlite_reader_give(struct hf_sqlite_store *q, sqlite3 *db);

/* store_sqlite.c: one statement on db (NULL: none, returns NULL) for sql, with
 * ?1, ?2... bound in order from the arguments after types, one letter each: 't'
 * a const char * (NULL binds NULL), 'i' an int, 'I' an int64_t. NULL when sql
 * does not prepare. */
sqlite3_stmt *hf_sqlite_stmt(sqlite3 *db, const char *sql, const char *types,
			     ...);
sqlite3_stmt *hf_sqlite_vstmt(sqlite3 *db, const char *sql, const char *types,
			      va_list ap);
/* Runs sql, bound as hf_sqlite_stmt binds it, to its first step: returns what
 * that step returned (SQLITE_DONE, SQLITE_ROW or an error), or -1 when sql does
 * not prepare. */
int hf_sqlite_exec(sqlite3 *db, const char *sql, const char *types, ...);
/* Runs sql, bound as hf_sqlite_stmt binds it, on db, or when db is NULL on a
 * read connection taken from q's pool for it, and calls row for each row (with
 * the connection: a nested query goes on the same one) until row returns
 * nonzero. Returns the number of rows row was called for, or -1 when there is
 * no connection or sql does not prepare. */
int hf_sqlite_each(struct hf_sqlite_store *q, sqlite3 *db,
		   int (*row)(sqlite3 *db, sqlite3_stmt *st, void *arg),
		   void *arg, const char *sql, const char *types, ...);
int hf_sqlite_veach(struct hf_sqlite_store *q, sqlite3 *db,
		    int (*row)(sqlite3 *db, sqlite3_stmt *st, void *arg),
		    void *arg, const char *sql, const char *types, va_list ap);

/* store_sqlite_apply.c: prepares the writer connection's statements (0, or
 * -1 with err set); applies one write inside the open transaction (0, or -1:
 * the transaction must be rolled back). */
int hf_sqlite_prepare(struct hf_sqlite_store *q, struct hf_error *err);
/* store_sqlite_apply.c: stores wf's YAML and scripts under its version once
 * (inside the open transaction): 0 or -1. */
int hf_sqlite_store_version(struct hf_sqlite_store *q,
			    const struct hf_workflow *wf);
int hf_sqlite_apply(struct hf_sqlite_store *q, struct hf_write *w);
/* store_sqlite_apply.c: the key for deliveries' secrets, loaded on first use
 * (any thread): 0, or -1 with err set. hf_sqlite_secrets_start (the server's
 * open, before the writer thread starts): loads the key, seals the secrets
 * older versions stored in plain text, and checks that every pending
 * delivery's secret opens with the key (-1 with err set when one does not). */
int hf_sqlite_key(struct hf_sqlite_store *q, struct hf_error *err);
int hf_sqlite_secrets_start(struct hf_sqlite_store *q, struct hf_error *err);

/* store_sqlite_query.c: reads on pooled read connections. */
json_t *hf_sqlite_run_json(struct hf_store *s, const char *run_id);
/* A run's steps as RUN's "steps", read on db (the writer's connection, inside
 * its transaction). */
json_t *hf_sqlite_steps_json(sqlite3 *db, const char *run_id);
json_t *hf_sqlite_runs_json(struct hf_store *s, const char *workflow,
			    const char *status, int limit, bool steps);
json_t *hf_sqlite_event_json(struct hf_store *s, const char *event_id);
json_t *hf_sqlite_deliveries_json(struct hf_store *s, const char *status,
				  int limit);
json_t *hf_sqlite_delivery_json(struct hf_store *s, const char *id);
int hf_sqlite_pending_deliveries(
    struct hf_store *s, int64_t from, int64_t from_seq, int limit,
    int (*fn)(const struct hf_delivery *d, void *arg), void *arg);
struct hf_event *hf_sqlite_load_event(struct hf_store *s, const char *event_id);

/* store_sqlite_recover.c: the clean-stop marker (read when a server opens the
 * database, written when it closes it), recovery and pickup of runs,
 * retries, prune. */
void hf_sqlite_clean_stop_begin(struct hf_sqlite_store *q);
void hf_sqlite_clean_stop_end(struct hf_sqlite_store *q);
int hf_sqlite_load_pending(struct hf_store *s,
			   const struct hf_workflow_set *set,
			   bool only_unclaimed,
			   void (*fn)(struct hf_run *run, void *arg),
			   void *arg);
bool hf_sqlite_changed(struct hf_store *s);
/* store_sqlite_flow.c: cancelling runs (hf_store.h). */
int hf_sqlite_cancel_run(struct hf_store *s, const char *run_id,
			 const char *reason, bool note, char *workflow);
int hf_sqlite_cancel_notes(struct hf_store *s,
			   void (*fn)(const char *run_id, bool was_waiting,
				      void *arg),
			   void *arg);
int hf_sqlite_cancel_note_done(struct hf_store *s, const char *run_id);
int hf_sqlite_debounce_extend(struct hf_store *s, const char *run_id,
			      int64_t wake_at, const char *waiting);
char *hf_sqlite_run_waiting(struct hf_store *s, const char *run_id);
int hf_sqlite_active_runs(struct hf_store *s, const char *workflow,
			  const char *lane, int limit,
			  void (*fn)(const struct hf_active_run *r, void *arg),
			  void *arg);
/* The event of a row (store_sqlite_query.c): its id in column idc, then
 * path, method, query, headers, body, received_at from column col on. NULL
 * when the id is NULL (a LEFT JOIN found no event). */
struct hf_event *hf_sqlite_event_row(sqlite3_stmt *st, int idc, int col);
/* The same with query and headers as their JSON text alone (the trees
 * parsed on first use: hf_event_headers), and no skipped list: the disk
 * backlog's loader, whose runs go to a step. */
struct hf_event *hf_sqlite_event_row_text(sqlite3_stmt *st, int idc, int col);
/* Creates the schema or migrates an older file (store_sqlite_schema.c).
 * Returns 0, or -1 with err set. */
int hf_sqlite_migrate(struct hf_sqlite_store *q, struct hf_error *err);
/* store_sqlite_vfs.c: the writer connection's VFS (its WAL writes gathered
 * per commit), or NULL for SQLite's default. */
const char *hf_sqlite_vfs_name(void);
int hf_sqlite_load_backlog(struct hf_store *s,
			   const struct hf_workflow_set *set, int limit,
			   void (*fn)(struct hf_run *run, void *arg),
			   void *arg);
int hf_sqlite_claim_runs(struct hf_store *s, struct hf_run *const *runs,
			 size_t n);
/* Event bodies stored as LZ4 blocks (store_sqlite_pack.c): the bytes to
 * store for a body of len bytes, a block in q's buffer (its size in *stored)
 * when that is at least an eighth smaller, else NULL (the body is stored as
 * it came); valid until the next call. The applying thread's only. trim
 * gives back a buffer past HF_BODY_KEEP; free, at close. register: the SQL
 * function hf_body(body, body_size), the body as it came, on db. */
const void *hf_sqlite_pack(struct hf_sqlite_store *q, const void *body,
			   size_t len, size_t *stored);
void hf_sqlite_pack_trim(struct hf_sqlite_store *q);
void hf_sqlite_pack_free(struct hf_sqlite_store *q);
int hf_sqlite_pack_register(sqlite3 *db);
/* The disk backlog's claim in memory (store_sqlite_backlog.c): set up at
 * open, freed at close; after an unclean stop, the mark read (unclaimed runs
 * at or below it may have been in flight). The applier's hooks: a run's
 * write sets claimed = 1 (written), a row became unclaimed (its rid, 0 when
 * not known), the batch committed or rolled back. rewind: rows became
 * unclaimed in a commit already made (any thread). */
void hf_sqlite_bl_init(struct hf_sqlite_store *q);
void hf_sqlite_bl_free(struct hf_sqlite_store *q);
void hf_sqlite_bl_unclean(struct hf_sqlite_store *q, int64_t mark);
void hf_sqlite_bl_written(struct hf_sqlite_store *q, const char *run_id);
void hf_sqlite_bl_unclaimed(struct hf_sqlite_store *q, int64_t rid);
void hf_sqlite_bl_commit(struct hf_sqlite_store *q);
void hf_sqlite_bl_rollback(struct hf_sqlite_store *q);
void hf_sqlite_bl_rewind(struct hf_sqlite_store *q);
/* Loads the runs RUN_SELECT (store_sqlite_recover.c) finds with where
 * (bound as types...) on a read connection, handing each to fn with its rid;
 * one at or below unclean_below (not waiting for a retry) comes at
 * step_attempt + 1. Returns how many, or -1. */
int hf_sqlite_load_where(struct hf_store *s, const struct hf_workflow_set *set,
			 int64_t unclean_below,
			 void (*fn)(struct hf_run *run, int64_t rid, void *arg),
			 void *arg, const char *where, const char *types, ...);
/* Parked runs (store_sqlite_park.c; hf_sqlite_load_waiting in
 * store_sqlite_recover.c). */
int hf_sqlite_load_waiting(struct hf_store *s,
			   const struct hf_workflow_set *set, const char *path,
			   const char *after, int limit,
			   void (*fn)(struct hf_run *run, void *arg),
			   void *arg);
int64_t hf_sqlite_next_wake(struct hf_store *s);
int64_t hf_sqlite_count_waiting(struct hf_store *s);
int hf_sqlite_wake_due(struct hf_store *s, int64_t now, int limit);
int hf_sqlite_resume_run(struct hf_store *s, const char *run_id, int step,
			 const char *output, int64_t now);
int hf_sqlite_secret_key(struct hf_store *s, unsigned char key[32]);
int64_t hf_sqlite_count_backlog(struct hf_store *s);
int hf_sqlite_dedupe_last(struct hf_store *s, const char *workflow,
			  const char *prefix, char *out, size_t size);
int hf_sqlite_save_versions(struct hf_store *s,
			    const struct hf_workflow_set *set);
struct hf_workflow_set *hf_sqlite_stored_workflows(struct hf_store *s);
int hf_sqlite_retry_run(struct hf_store *s, const char *run_id,
			struct hf_error *err);
int hf_sqlite_retry_delivery(struct hf_store *s, const char *id);
int hf_sqlite_prune(struct hf_store *s, int64_t before, int limit);

#endif
