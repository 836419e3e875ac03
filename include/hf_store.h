/* hf_store.h - the state database: schema and migrations, the single writer
 * thread with group commit, and the read queries behind the admin API and the
 * CLI. hf_store_open picks the backend from the --state value (SQLite or
 * PostgreSQL);
 * every function here dispatches to it (engine/store_int.h).
 *
 * Every write goes through hf_store_submit(): the writer thread takes whatever
 * writes are waiting (up to HF_WRITER_BATCH), applies them in one transaction,
 * commits once (one fsync for the batch with --sync full), then calls each
 * write's done() on the writer thread. Readers use their own connections
 * (hf_store_reader), which WAL lets read while the writer writes.
 *
 * <sqlite3.h> is included only by the SQLite backend (store_sqlite*.c). */
#ifndef HF_STORE_H
#define HF_STORE_H

#include "hf_limits.h"
#include "hf_run.h"
#include "hf_util.h"
#include <jansson.h>
#include <stdbool.h>

struct hf_store;

enum hf_write_kind {
	/* An accepted event and its new runs (HF_W_RUNS: new runs alone). A
	 * run whose status is HF_RUN_WAITING (wake_at, waiting, wait_path
	 * set) is stored parked (hf_park.h): whoever wrote it must not hand it
	 * to the scheduler, and calls hf_park_parked after the commit.
	 * Runs whose dedupe key was already
	 * seen are dropped (w->dup_of gets the original event id); when every
	 * run was dropped and one was a duplicate, the event is not stored. */
	HF_W_INGEST,
	/* New runs for an event already stored (replay). */
	HF_W_RUNS,
	/* A run began (status running, started_at). */
	HF_W_RUN_STARTED,
	/* A step finished: its record, the run's progress, the step's emits. */
	HF_W_STEP,
	/* A delivery attempt finished (the outbox's). */
	HF_W_DELIVERY,
	/* Arbitrary SQL-free maintenance: runs fn on the writer connection. */
	HF_W_CALL,
};

struct hf_write {
	enum hf_write_kind kind;
	int rc; /* set by the writer before done(): 0 committed, <0 failed */
	void (*done)(
	    struct hf_write *w); /* on the writer thread, after commit */
	void *ctx;
	struct hf_write *next;

	/* HF_W_INGEST, HF_W_RUNS */
	struct hf_event *event;
	struct hf_run **runs;
	size_t nruns;
	char
	    dup_of[HF_ID_SIZE]; /* INGEST: original event id when a duplicate */
	bool *dropped;		/* INGEST: per run, dropped as a duplicate */
	size_t skip_base; /* INGEST: event->skipped's length before the write */
	bool skip_base_set;
	bool unclaimed; /* RUNS: written by the CLI, for a running server to
			   pick up */
	/* STEP, RUN_STARTED, DELIVERY: set by the writer when this node no
	 * longer holds the run (or delivery): another node took it over, and
	 * the write wrote nothing (w->rc is 0). The run is dropped here. */
	bool fenced;

	/* HF_W_RUN_STARTED, HF_W_STEP */
	struct hf_run *run;
	/* HF_W_STEP */
	size_t step_index;
	int step_attempts;
	struct hf_step_result *result;

	/* HF_W_DELIVERY */
	char delivery_id[HF_DELIVERY_ID_SIZE];
	int http_status; /* 0 on network error */
	char *delivery_error;
	int64_t duration_ms;
	int64_t attempt_at;
	const char *delivery_status; /* "pending", "delivered", "failed" */
	int64_t next_at;
	int attempts;

	/* HF_W_CALL */
	int (*call)(struct hf_store *s, void *arg);
	void *call_arg;
};

/* Opens (creating or migrating) the state database named by state: a file path,
 * ":memory:" (fine for `hookflow run`) or "sqlite:PATH" for SQLite;
 * "postgres://…" or "postgresql://…" (libpq's URI) for PostgreSQL; any other
 * "SCHEME://" is refused. With start_writer the writer thread
 * runs; without it, hf_store_submit applies each write synchronously (CLI
 * use). Returns NULL with err set on failure. */
struct hf_store *hf_store_open(const char *state, bool sync_full,
			       bool start_writer, struct hf_error *err);
/* A server's place among the nodes sharing a PostgreSQL state database
 * (serve's --node, --lease, --pg-notify); ignored by SQLite. */
struct hf_store_node {
	const char *name; /* unique per live node; default the host name */
	int64_t lease_ms; /* others take over its work this long after its
			     last heartbeat */
	bool notify;	  /* LISTEN/NOTIFY wake-ups (off for poolers) */
};
/* hf_store_open for a server (the writer thread runs), as node. */
struct hf_store *hf_store_open_node(const char *state, bool sync_full,
				    const struct hf_store_node *node,
				    struct hf_error *err);
/* Records, at hf_store_close, that the server stopped cleanly: no step was in
 * flight. Without it, the next server treats the next step of every unfinished
 * run as a possible repeat (run.attempt + 1). */
void hf_store_set_clean_stop(struct hf_store *s);
/* Stops the writer after it drained every submitted write, and closes. */
void hf_store_close(struct hf_store *s); /* accepts NULL */

/* Hands w to the writer. w must stay valid until its done() is called. */
void hf_store_submit(struct hf_store *s, struct hf_write *w);

/* False while the state database cannot write: the last write failed for a
 * reason of the database rather than of the write (disk full, I/O error, out
 * of memory, locked by another process); why (when not NULL) then gets
 * SQLite's reason, e.g. "database or disk is full". True again once a write
 * commits: while it cannot, the writer tries a tiny write every
 * HF_STORE_PROBE_MS. Webhooks get 503, workers and the outbox pause meanwhile.
 * Any thread. */
bool hf_store_writable(struct hf_store *s, char *why, size_t size);

/* Statistics for /metrics. */
struct hf_store_stats {
	uint64_t commits;
	uint64_t writes;
	uint64_t write_errors;
};
void hf_store_stats(struct hf_store *s, struct hf_store_stats *out);

/* --- Reads. Each thread gets its own read connection; results are new JSON
 * references in the admin API's shapes (README.md, "HTTP"). NULL when not
 * found. ---
 */

json_t *hf_store_run_json(struct hf_store *s, const char *run_id);
/* {"runs":[RUN…]} newest first; workflow/status may be NULL. With steps, each
 * RUN has its "steps" and "history"; without, neither (the runs list's
 * summary=1: a step's output and logs may be 1 MiB each). */
json_t *hf_store_runs_json(struct hf_store *s, const char *workflow,
			   const char *status, int limit, bool steps);
json_t *hf_store_event_json(struct hf_store *s, const char *event_id);
/* {"deliveries":[DELIVERY…]} newest first by created_at (then the order they
 * were stored in); status may be NULL. */
json_t *hf_store_deliveries_json(struct hf_store *s, const char *status,
				 int limit);
json_t *hf_store_delivery_json(struct hf_store *s, const char *id);

/* A delivery due for an attempt, as the outbox reads it. The pointers are
 * valid during the callback only. */
struct hf_delivery {
	const char *id;
	const char *url;
	const void *payload;
	size_t payload_len;
	const char *headers; /* JSON object text, or NULL */
	const char *secret;  /* NULL: unsigned */
	int attempts;	     /* made so far */
	int max_attempts;
	int64_t backoff_ms; /* 0: the default schedule */
	int64_t timeout_ms; /* per attempt */
	int64_t next_at;    /* wall ms of the next attempt */
	int64_t seq; /* order among rows of one next_at (SQLite: rowid), or 0 */
};
/* Calls fn for at most limit pending deliveries, soonest next_at first (the
 * partial index on next_at makes this cheap), until fn returns non-zero;
 * only those with next_at >= from (INT64_MIN: all), and of those at from,
 * only those with seq >= from_seq (INT64_MIN: all; a backend whose rows
 * have no seq gives them all). Returns how many rows fn saw, or -1. Any
 * thread (a read connection). */
int hf_store_pending_deliveries(
    struct hf_store *s, int64_t from, int64_t from_seq, int limit,
    int (*fn)(const struct hf_delivery *d, void *arg), void *arg);

#define HF_STORE_NOT_FOUND (-2)
#define HF_STORE_CONFLICT (-3)
/* Sends a delivery again: status pending, due now, and one more attempt
 * allowed when every attempt was used. Returns 0, HF_STORE_NOT_FOUND,
 * HF_STORE_CONFLICT (it was delivered) or -1. Writer connection: through
 * HF_W_CALL (with or without the writer thread). */
int hf_store_retry_delivery(struct hf_store *s, const char *id);

/* Loads an event for replay (new reference) or NULL. */
struct hf_event *hf_store_load_event(struct hf_store *s, const char *event_id);

/* Loads every claimed run that is queued or running (at start-up: the
 * unclaimed ones are the disk backlog, hf_store_load_backlog), or only those
 * created outside this process since the last call (unclaimed; the CLI's replay
 * and retry), marking them claimed, in arrival order (rowid). A run gets the
 * workflow version it was stored with (rebuilt from workflow_versions when set
 * holds another), else the workflow of that name in set; a run with neither is
 * failed with a message. At start-up a running run not waiting for a retry gets
 * step_attempt + 1: its step may have been in flight at the crash. Calls fn for
 * each. */
int hf_store_load_pending(struct hf_store *s, const struct hf_workflow_set *set,
			  bool only_unclaimed,
			  void (*fn)(struct hf_run *run, void *arg), void *arg);
/* --- The disk backlog: runs stored unclaimed (HF_W_INGEST or HF_W_RUNS with
 * w->unclaimed) wait on disk until the server has room for them in memory;
 * the CLI's replays and retries are stored so too. --- */

/* Loads at most limit unfinished unclaimed runs, oldest (rowid) first, as
 * hf_store_load_pending does, without claiming them (hf_store_claim_runs
 * does). Returns how many or -1. Any thread (a read connection). */
int hf_store_load_backlog(struct hf_store *s, const struct hf_workflow_set *set,
			  int limit, void (*fn)(struct hf_run *run, void *arg),
			  void *arg);
/* Marks runs claimed (taken into memory): a restart no longer finds them in
 * the backlog but loads them with hf_store_load_pending. SQLite: the runs
 * of the last hf_store_load_backlog, claimed in memory until their own first
 * write, and the highest taken recorded (store_sqlite_backlog.c). Returns 0
 * or -1.
 * Writer connection only: use through HF_W_CALL. */
int hf_store_claim_runs(struct hf_store *s, struct hf_run *const *runs,
			size_t n);
/* How many unfinished runs are unclaimed, or -1. Inside an HF_W_CALL on the
 * writer connection (counting that transaction's writes), else any thread. */
int64_t hf_store_count_backlog(struct hf_store *s);
/* fn(arg) is called on the writer thread after the done() calls of each batch
 * (once per commit): to hand results on once per batch rather than once per
 * write. Set before the first write. */
void hf_store_on_batch_end(struct hf_store *s, void (*fn)(void *arg),
			   void *arg);

/* Stores the version of each workflow of set (the server's, at each load) as
 * the ones in force. Returns 0 or -1. Writer connection only: use through
 * HF_W_CALL. */
int hf_store_save_versions(struct hf_store *s,
			   const struct hf_workflow_set *set);
/* The versions of the workflows that the server loaded last
 * (hf_store_save_versions; before any such load: the newest version of each
 * workflow that a run stored), rebuilt as a set with one reference (possibly
 * empty), or NULL when it cannot be read. A version that no longer parses is
 * left out (an older one of the same workflow may take its place). `hookflow
 * replay` matches events against it. */
struct hf_workflow_set *hf_store_stored_workflows(struct hf_store *s);
/* The greatest dedupe key of workflow that starts with prefix (keys compare
 * as bytes; a schedule's keys, "schedule:N:ISO-TIME", sort by time), copied
 * into out. Returns 1 found, 0 none (or a backend without it), -1 on error.
 * Any thread (a read connection). */
int hf_store_dedupe_last(struct hf_store *s, const char *workflow,
			 const char *prefix, char *out, size_t size);
/* True when another connection committed since the last call (data_version). */
bool hf_store_changed(struct hf_store *s);

/* --- Parked runs (hf_park.h): a run that waits is a row with status
 * 'waiting' and a due time; none of it is in memory. --- */

/* The earliest due time of a parked run (wall ms), INT64_MAX when none, -1
 * on error. Any thread (a read connection). */
int64_t hf_store_next_wake(struct hf_store *s);
/* How many runs are parked, or -1. Any thread. */
int64_t hf_store_count_waiting(struct hf_store *s);
/* Wakes at most limit parked runs due at now (soonest first): each becomes a
 * run of the disk backlog (hf_store_load_backlog brings it in, woken).
 * Returns how many, or -1. Writer connection only: through HF_W_CALL. */
int hf_store_wake_due(struct hf_store *s, int64_t now, int limit);
/* Resumes run_id if it is still parked at its wait_for step `step`: that
 * step's record gets output (JSON text, the signal's body) and the run goes
 * to the disk backlog, woken. Returns 1 resumed; HF_RESUME_NOT_YET when the
 * run has not parked there yet but may (it is queued or running before it,
 * or waits at an earlier step); 0 when its wait there is over
 * (resumed, timed out, the run past it or ended) or there is no such run;
 * -1 on error. Writer connection only: through HF_W_CALL. */
#define HF_RESUME_NOT_YET 2
int hf_store_resume_run(struct hf_store *s, const char *run_id, int step,
			const char *output, int64_t now);
/* Calls fn for at most limit runs parked at a wait_for on path whose id is
 * greater than after (NULL or "": from the first), in id order, loaded as
 * hf_store_load_backlog loads runs (not claimed: they stay parked): a page;
 * the next starts after the last id seen. Returns how many or -1. Any thread
 * (a read connection). */
int hf_store_load_waiting(struct hf_store *s, const struct hf_workflow_set *set,
			  const char *path, const char *after, int limit,
			  void (*fn)(struct hf_run *run, void *arg), void *arg);
/* The state database's secret key (the one that seals emit secrets), from
 * which run.resume_url's tokens are derived. Returns 0 or -1. */
int hf_store_secret_key(struct hf_store *s, unsigned char key[32]);

/* CLI: re-queues a failed run from its failed step (outputs of succeeded steps
 * kept), attempt + 1, with a fresh run timeout (started_at cleared). Returns 0
 * or -1 with err. */
int hf_store_retry_run(struct hf_store *s, const char *run_id,
		       struct hf_error *err);

/* Ends unfinished run run_id as cancelled (finished_at now, error reason) and
 * drops it from the queue; with note, also leaves a note for a running server
 * (the CLI: hf_store_cancel_notes), which must stop the run in memory.
 * Returns 0 (1 when the run was parked: status waiting), HF_STORE_NOT_FOUND,
 * HF_STORE_CONFLICT (already finished) or -1.
 * Writer connection only: use through HF_W_CALL (with or without the writer
 * thread). Later step writes of a cancelled run keep it cancelled. */
int hf_store_cancel_run(struct hf_store *s, const char *run_id,
			const char *reason, bool note,
			char workflow[HF_NAME_MAX + 1] /* OUT: its workflow */);
/* Calls fn for each run id noted by hf_store_cancel_run(…, note) that
 * hf_store_cancel_note_done has not dropped yet. Returns how many or -1. Any
 * thread (a read connection). */
int hf_store_cancel_notes(struct hf_store *s,
			  void (*fn)(const char *run_id, bool was_waiting,
				     void *arg),
			  void *arg);
/* Drops the note of run_id. Writer connection only (HF_W_CALL). */
int hf_store_cancel_note_done(struct hf_store *s, const char *run_id);
/* Debounce (debounce.c): moves parked run_id's due time to wake_at and its
 * "waiting" to waiting (JSON text) if it is still parked. Returns 1 moved, 0
 * not parked (any more), -1 on error. Writer connection only (HF_W_CALL). */
int hf_store_debounce_extend(struct hf_store *s, const char *run_id,
			     int64_t wake_at, const char *waiting);
/* The stored "waiting" of run_id (JSON text, malloc'd), NULL when none or on
 * error. Any thread (a read connection). */
char *hf_store_run_waiting(struct hf_store *s, const char *run_id);
/* Shared by several nodes (PostgreSQL; writer connection only, HF_W_CALL);
 * each returns -2 where the store leaves the decision to the process
 * (SQLite). throttle_reserve: the start time of one more start of key
 * (limit per period_ms, arrival order; own: the reservation a woken run
 * moves, or INT64_MIN) in *at, recorded, decided at *now (the clock read
 * under the key's lock); *at == *now: it starts, recorded as a start made. */
int hf_store_throttle_reserve(struct hf_store *s, const char *key, int limit,
			      int64_t period_ms, int64_t own, int64_t *now,
			      int64_t *at);
/* Locks workflow's debounce key until the COMMIT, then finds the run leading
 * its open burst: 1 with *leader and *waiting (malloc'd), 0 none, -1. */
int hf_store_debounce_find(struct hf_store *s, const char *workflow,
			   const char *key, char **leader, char **waiting);
/* Parks run_id (this node's) as a new burst's leader at once: 0, or -1. */
int hf_store_debounce_lead(struct hf_store *s, const char *run_id,
			   int64_t wake_at, const char *waiting);
/* An unfinished run as hf_store_active_runs lists it (valid during the
 * callback only). */
struct hf_active_run {
	const char *id;
	const char *event_id;
	const char *status; /* queued, running, waiting */
	int64_t created_at;
	int64_t wake_at;     /* a waiting run's due time (hf_park.h) */
	const char *waiting; /* RUN's "waiting" as JSON text, or NULL */
};
/* Calls fn for at most limit unfinished runs (queued, running, waiting) of
 * workflow, only those of lane when lane is not NULL, oldest first (the
 * waiting ones after the others). Returns
 * how many or -1. Any thread (a read connection). */
int hf_store_active_runs(struct hf_store *s, const char *workflow,
			 const char *lane, int limit,
			 void (*fn)(const struct hf_active_run *r, void *arg),
			 void *arg);

/* Deletes events, runs, steps, deliveries finished before `before` (wall ms),
 * at most limit rows per table. Returns rows deleted or -1. Writer connection
 * only: use through HF_W_CALL. */
int hf_store_prune(struct hf_store *s, int64_t before, int limit);

/* --- Sharing work between servers on one database (a PostgreSQL backend; see
 * engine/store_int.h for what each guarantees). No-ops for SQLite, where one
 * server owns the file: claim returns 0, wait returns 0 at once, heartbeat
 * returns 0. --- */

/* Claims at most limit ready runs for this server; fn as hf_store_load_pending.
 * Returns how many or -1. */
int hf_store_claim(struct hf_store *s, const struct hf_workflow_set *set,
		   int limit, void (*fn)(struct hf_run *run, void *arg),
		   void *arg);
/* Waits at most timeout_ms for work committed elsewhere: 1 woken, 0 timed out,
 * -1 on error. */
int hf_store_wait(struct hf_store *s, int64_t timeout_ms);
/* Renews this server's lease on its runs: 0, or -1 when one was lost. */
int hf_store_heartbeat(struct hf_store *s);
/* Gives back the claim on run_id (NULL: on every run this server holds). */
void hf_store_release(struct hf_store *s, const char *run_id);
/* False when run was claimed under an epoch this node has lost since (it
 * was reaped): drop it, another node has it. SQLite: true. Any thread. */
bool hf_store_holds(struct hf_store *s, const struct hf_run *run);
/* {"nodes":[{"id","name","epoch","heartbeat_at","started_at","alive"}]}
 * (new reference), or NULL when the backend keeps no nodes (SQLite). */
json_t *hf_store_nodes_json(struct hf_store *s);
/* Takes a lease on each of n pending deliveries about to be sent by this
 * node (leased[i]: true when it got it; false: another node sends it), so
 * that two nodes never send one at once; one statement. Returns 0 or -1
 * (then none is leased). SQLite: every one, at once. */
int hf_store_lease_deliveries(struct hf_store *s, const char *const *ids,
			      size_t n, bool *leased);
/* Whether run (with a concurrency lane, not started yet) may start: fewer
 * than max runs of its lane that arrived before it are unfinished, on any
 * node. 1 yes, 0 not yet, -1 on error. *seq: the run's place in the lane
 * (its arrival order, on every node; 0 when unknown). SQLite: 1 and *seq 0
 * (the scheduler's lanes, in memory, are the whole story). Any thread. */
int hf_store_lane_ready(struct hf_store *s, const struct hf_run *run, int max,
			int64_t *seq);

#endif
