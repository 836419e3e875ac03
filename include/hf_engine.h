/* hf_engine.h - the engine's shared context, layer 3: the options, the store,
 * the scheduler, the workers, the outbox and the workflows in force (a
 * refcounted snapshot swapped atomically on reload). Handed to the workers and
 * the outbox beside it and to ingest and the admin API above it.
 *
 * server.c creates and wires it (engine.c owns the snapshot and the end of a
 * run); the modules read it. Calls that the engine must make upwards (answering
 * a respond: sync request) go through the function pointers it holds. */
#ifndef HF_ENGINE_H
#define HF_ENGINE_H

#include "hf_router.h"
#include "hf_run.h"
#include "hf_sched.h"
#include "hf_store.h"
#include "hf_workflow.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct hf_egress;
struct hf_backlog;
struct hf_park;

struct hf_options {
	char *listen; /* HOST:PORT */
	char *workflows_dir;
	char *scripts_dir;
	char *state_path;
	char *data_path;
	int workers;
	int64_t max_body;
	char *admin_token;
	bool sync_full;
	bool data_sync_full; /* --data-sync: the data database's synchronous */
	int64_t max_queue;   /* the in-memory window: runs in the scheduler */
	int64_t max_backlog; /* runs waiting on disk before webhooks get 503 */
	int64_t drain_timeout_ms;
	int64_t retain_ms; /* 0: keep everything */
	int http_threads;
	/* --http-io poll: the HTTP threads wait with poll rather than epoll
	 * (hf_ingest_start in ingest.c says when that pays). */
	bool http_poll;
	/* --egress-deny/--egress-allow, for http.* and the outbox; NULL: the
	 * default policy. */
	struct hf_egress *egress;
	int64_t max_value; /* --max-value: one value or row in db.* */
	bool strict;	   /* --strict: no start while a workflow file fails */
	/* --public-url: scheme and host of the URL senders call, for {url} in
	 * signed templates; NULL: from X-Forwarded-Proto and Host. */
	char *public_url;
	/* Several nodes on one PostgreSQL state database (§7): this node's
	 * name (--node; NULL: the host name), its lease (--lease), and
	 * whether it LISTENs for wake-ups (--pg-notify). */
	char *node_name;
	int64_t lease_ms;
	bool pg_notify;
};

/* The workflows in force and their router; immutable once published. */
struct hf_snapshot {
	struct hf_workflow_set *set;
	struct hf_router *router;
	int refs; /* atomic */
};

struct hf_engine {
	struct hf_options opt;
	struct hf_store *store;
	struct hf_sched *sched;
	struct hf_workers *workers;
	struct hf_outbox *outbox;
	struct hf_backlog *backlog; /* runs waiting on disk (hf_backlog.h) */
	struct hf_park *park;	    /* parked runs (hf_park.h) */

	pthread_mutex_t snap_lock;
	struct hf_snapshot *snap;
	atomic_uint snap_gen; /* bumped on each reload */

	atomic_bool draining; /* stop accepting: answer 503 */
	int64_t started_at;   /* wall ms */

	/* Set by the layer above (server.c: ingest's answer): a run with a
	 * respond: sync waiter is over. Any thread; NULL when nobody waits. */
	void (*sync_finish)(struct hf_sync_waiter *waiter,
			    const struct hf_run *run);
};

/* Returns the current snapshot with a reference taken. Any thread; no lock
 * unless a reload happened since the thread's last call. */
struct hf_snapshot *hf_engine_snapshot(struct hf_engine *eng);
/* Drops the calling thread's cached snapshot (the main thread, at exit). */
void hf_engine_snapshot_forget(void);
void hf_snapshot_unref(struct hf_snapshot *snap); /* accepts NULL */
/* Builds a snapshot over set, taking over the caller's reference to set. */
struct hf_snapshot *hf_snapshot_new(struct hf_workflow_set *set);
/* Makes set (the caller's reference is taken over) the workflows in force. */
void hf_engine_publish(struct hf_engine *eng, struct hf_workflow_set *set);

/* Hands a finished run back: releases its lane, answers a respond: sync waiter
 * (eng->sync_finish), counts it, frees it. Any thread. */
void hf_engine_run_finished(struct hf_engine *eng, struct hf_run *run);
/* Lets go of a run that this node no longer holds (PostgreSQL: another node
 * took it over, hf_store_holds): releases its lane and frees it, without
 * counting it as ended. Any thread. */
void hf_engine_run_dropped(struct hf_engine *eng, struct hf_run *run);

#endif
