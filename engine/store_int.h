/* store_int.h - the state store's backend interface (private to engine/).
 *
 * struct hf_store, opaque to the store's users (hf_store.h), begins with the
 * backend's table of operations; a backend's own struct begins with a struct
 * hf_store, so that a pointer to either is a pointer to both. store.c picks
 * the backend from the --state value and every public hf_store_* function
 * calls the operation of the same name. Included by store.c and by the
 * backends' files only.
 *
 * Each operation has the contract of the public function of the same name in
 * hf_store.h; the comments here add what a backend must guarantee beyond it.
 * Backends: SQLite (store_sqlite*.c) and PostgreSQL (store_pg*.c). Claim,
 * wait, heartbeat and release exist for several servers sharing one
 * PostgreSQL database (store_pg_node.c); SQLite, where one server owns the
 * file, implements them as no-ops. */
#ifndef HF_STORE_INT_H
#define HF_STORE_INT_H

#include "hf_store.h"

struct hf_store_ops {
	const char *name; /* "sqlite", "postgres": for logs */

	/* Stops the writer after every submitted write was applied and its
	 * done() called, records the clean stop if asked, frees s. */
	void (*close)(struct hf_store *s);
	void (*set_clean_stop)(struct hf_store *s);
	/* Every write submitted is applied once, in submission order (FIFO:
	 * a write's done() means every earlier write was applied), and done()
	 * is called once it is durable or failed (w->rc < 0). One bad write
	 * must not fail the others batched with it. */
	void (*submit)(struct hf_store *s, struct hf_write *w);
	void (*stats)(struct hf_store *s, struct hf_store_stats *out);
	/* Must turn true again by itself once writes can succeed (a probe),
	 * even when nobody submits a write. */
	bool (*writable)(struct hf_store *s, char *why, size_t size);

	/* Reads: any thread, concurrently with the writer; each sees
	 * committed data only. */
	json_t *(*run_json)(struct hf_store *s, const char *run_id);
	json_t *(*runs_json)(struct hf_store *s, const char *workflow,
			     const char *status, int limit, bool steps);
	json_t *(*event_json)(struct hf_store *s, const char *event_id);
	json_t *(*deliveries_json)(struct hf_store *s, const char *status,
				   int limit);
	json_t *(*delivery_json)(struct hf_store *s, const char *id);
	int (*pending_deliveries)(
	    struct hf_store *s, int64_t from, int64_t from_seq, int limit,
	    int (*fn)(const struct hf_delivery *d, void *arg), void *arg);
	struct hf_event *(*load_event)(struct hf_store *s,
				       const char *event_id);

	/* Maintenance run by an HF_W_CALL write, on the thread applying it,
	 * inside its transaction. */
	int (*retry_delivery)(struct hf_store *s, const char *id);
	int (*prune)(struct hf_store *s, int64_t before, int limit);

	/* Recovery and pickup of runs written elsewhere (the CLI). */
	int (*load_pending)(struct hf_store *s,
			    const struct hf_workflow_set *set,
			    bool only_unclaimed,
			    void (*fn)(struct hf_run *run, void *arg),
			    void *arg);
	bool (*changed)(struct hf_store *s);
	/* The newest dedupe key with a prefix (schedules' last fire). NULL:
	 * none kept (hf_store_dedupe_last returns 0). */
	int (*dedupe_last)(struct hf_store *s, const char *workflow,
			   const char *prefix, char *out, size_t size);
	/* The newest stored version of each workflow, as a set (NULL: none
	 * can be read). Any thread. */
	struct hf_workflow_set *(*stored_workflows)(struct hf_store *s);
	/* Stores the versions of set as the ones in force (the newest), by an
	 * HF_W_CALL write. NULL: not kept. */
	int (*save_versions)(struct hf_store *s,
			     const struct hf_workflow_set *set);
	int (*retry_run)(struct hf_store *s, const char *run_id,
			 struct hf_error *err);
	/* Cancelling (cancel.c): cancel_run and cancel_note_done by an
	 * HF_W_CALL write; cancel_notes on a read connection. */
	int (*cancel_run)(struct hf_store *s, const char *run_id,
			  const char *reason, bool note, char *workflow);
	int (*cancel_notes)(struct hf_store *s,
			    void (*fn)(const char *run_id, bool was_waiting,
				       void *arg),
			    void *arg);
	int (*cancel_note_done)(struct hf_store *s, const char *run_id);
	int (*debounce_extend)(struct hf_store *s, const char *run_id,
			       int64_t wake_at, const char *waiting);
	char *(*run_waiting)(struct hf_store *s, const char *run_id);
	/* Shared by several nodes (NULL where one process decides alone:
	 * SQLite); HF_W_CALL writes. */
	int (*throttle_reserve)(struct hf_store *s, const char *key, int limit,
				int64_t period_ms, int64_t own, int64_t *now,
				int64_t *at);
	int (*debounce_find)(struct hf_store *s, const char *workflow,
			     const char *key, char **leader, char **waiting);
	int (*debounce_lead)(struct hf_store *s, const char *run_id,
			     int64_t wake_at, const char *waiting);
	int (*active_runs)(struct hf_store *s, const char *workflow,
			   const char *lane, int limit,
			   void (*fn)(const struct hf_active_run *r, void *arg),
			   void *arg);

	/* --- Sharing work between servers (no-ops for SQLite). --- */

	/* Claims for this server at most limit runs that are ready (queued,
	 * or held by a server whose lease ran out) and calls fn for each, as
	 * load_pending does. Must guarantee that a run is held by at most one
	 * live server at a time (the claim is one atomic statement, e.g.
	 * SELECT … FOR UPDATE SKIP LOCKED), and that a claimed run stays
	 * claimed until released or its lease runs out. Returns how many or
	 * -1. SQLite: 0 (load_pending claimed everything at start). */
	int (*claim)(struct hf_store *s, const struct hf_workflow_set *set,
		     int limit, void (*fn)(struct hf_run *run, void *arg),
		     void *arg);
	/* Blocks at most timeout_ms until work for this server may have been
	 * committed by another connection (new runs, retries, deliveries due;
	 * e.g. LISTEN/NOTIFY). Must not lose a wake-up: work committed before
	 * the call either makes it return 1 or is found by the next claim.
	 * Returns 1 woken, 0 timed out, -1 on error. SQLite: 0 at once (the
	 * server polls changed). */
	int (*wait)(struct hf_store *s, int64_t timeout_ms);
	/* Renews the lease on every run this server holds; called more often
	 * than the lease lasts. Returns 0, or -1 when a lease was lost: the
	 * server must then stop committing steps of that run. SQLite: 0. */
	int (*heartbeat)(struct hf_store *s);
	/* Gives back the claim on run_id (NULL: every run this server holds)
	 * without changing its progress, so that another server takes it at
	 * once instead of after the lease; called after a clean drain.
	 * Idempotent. SQLite: nothing (the clean-stop marker covers it). */
	void (*release)(struct hf_store *s, const char *run_id);
	/* NULL: true, NULL, all leased, ready (hf_store.h). */
	bool (*holds)(struct hf_store *s, const struct hf_run *run);
	json_t *(*nodes_json)(struct hf_store *s);
	int (*lease_deliveries)(struct hf_store *s, const char *const *ids,
				size_t n, bool *leased);
	int (*lane_ready)(struct hf_store *s, const struct hf_run *run, int max,
			  int64_t *seq);

	/* --- The disk backlog (hf_store.h). NULL: not kept (load_backlog
	 * returns 0). --- */
	int (*load_backlog)(struct hf_store *s,
			    const struct hf_workflow_set *set, int limit,
			    void (*fn)(struct hf_run *run, void *arg),
			    void *arg);
	int (*claim_runs)(struct hf_store *s, struct hf_run *const *runs,
			  size_t n);
	int64_t (*count_backlog)(struct hf_store *s);
	void (*on_batch_end)(struct hf_store *s, void (*fn)(void *arg),
			     void *arg);

	/* --- Parked runs (hf_store.h, hf_park.h). NULL: none kept. A woken
	 * or resumed run must come back through load_backlog, with
	 * hf_run.woken set by the load (it no longer waits but its row still
	 * says what for), so that the wait at next_step ends without running.
	 * wake_due and resume_run are conditional on the run still waiting
	 * there: whichever of a timeout and a signal commits first wins. --- */
	int64_t (*next_wake)(struct hf_store *s);
	int64_t (*count_waiting)(struct hf_store *s);
	int (*wake_due)(struct hf_store *s, int64_t now, int limit);
	int (*resume_run)(struct hf_store *s, const char *run_id, int step,
			  const char *output, int64_t now);
	int (*load_waiting)(struct hf_store *s,
			    const struct hf_workflow_set *set, const char *path,
			    const char *after, int limit,
			    void (*fn)(struct hf_run *run, void *arg),
			    void *arg);
	int (*secret_key)(struct hf_store *s, unsigned char key[32]);
};

struct hf_store {
	const struct hf_store_ops *ops;
};

/* The SQLite backend (store_sqlite.c): path is a file or ":memory:". */
struct hf_store *hf_store_sqlite_open(const char *path, bool sync_full,
				      bool start_writer, struct hf_error *err);
/* The PostgreSQL backend (store_pg.c): url is a postgres:// or
 * postgresql:// URI (libpq's conninfo). */
struct hf_store *hf_store_pg_open(const char *url, bool sync_full,
				  bool start_writer,
				  const struct hf_store_node *node,
				  struct hf_error *err);

/* --- rebuilding runs from stored rows (store_pickup.c, both backends) --- */

/* The workflow versions rebuilt during one pickup (wf NULL: the version
 * cannot be rebuilt); the pickup's end lets go of them. */
struct hf_version_cache {
	struct {
		char version[72];
		struct hf_workflow *wf;
	} items[16];
	size_t n;
};
/* A stored version parsed again by the backend (ctx); NULL when it is not
 * stored or no longer loads. */
typedef struct hf_workflow *(*hf_version_parse)(void *ctx, const char *version);
/* A stored version (its row of workflow_versions: file, the YAML text of len
 * bytes, scripts as {"name": "code"}) parsed again: NULL when it no longer
 * loads (say, a ${NAME} it reads is gone from the environment) or no longer
 * hashes to version. What both backends' hf_version_parse do once they have
 * the row. */
struct hf_workflow *hf_pickup_version(const char *file, const char *yaml,
				      size_t len, const json_t *scripts,
				      const char *version);
/* The workflow a stored run resumes with: the version it was stored with
 * when that is not the current one and can be rebuilt (else, logged, the
 * current one), or the current workflow named wf_name; NULL when none. */
struct hf_workflow *hf_pickup_workflow(const struct hf_workflow_set *set,
				       const char *run_id, const char *wf_name,
				       const char *version,
				       struct hf_version_cache *vc,
				       hf_version_parse parse, void *ctx);
/* The run run_id for ev (whose reference it takes) and wf; with wf NULL, a
 * run that says its workflow wf_name is gone (the caller fails it). */
struct hf_run *hf_pickup_run(struct hf_event *ev, struct hf_workflow *wf,
			     const char *wf_name, const char *run_id);
/* Lets go of vc's versions, then hands each run of list (n of them) to fn
 * in order, or frees them all when the read failed (rc < 0). Returns n, or
 * -1. */
int hf_pickup_end(struct hf_version_cache *vc, struct hf_run *list, int n,
		  int rc, void (*fn)(struct hf_run *run, void *arg), void *arg);

#endif
