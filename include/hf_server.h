/* hf_server.h - the running server's shared context, handed to ingest, the
 * admin API and the workers: options, the store, the scheduler, and the current
 * workflows (a refcounted snapshot swapped atomically on reload).
 *
 * Only server.c creates and wires it; the modules read it. */
#ifndef HF_SERVER_H
#define HF_SERVER_H

#include "hf_luart.h"
#include "hf_router.h"
#include "hf_run.h"
#include "hf_sched.h"
#include "hf_store.h"
#include "hf_workflow.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

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
	int64_t max_queue;
	int64_t drain_timeout_ms;
	int64_t retain_ms; /* 0: keep everything */
	int http_threads;
};

/* The workflows in force and their router; immutable once published. */
struct hf_snapshot {
	struct hf_workflow_set *set;
	struct hf_router *router;
	int refs; /* atomic */
};

struct hf_server {
	struct hf_options opt;
	struct hf_store *store;
	struct hf_sched *sched;
	struct hf_workers *workers;
	struct hf_outbox *outbox;
	struct hf_ingest *ingest;

	pthread_mutex_t snap_lock;
	struct hf_snapshot *snap;
	atomic_uint snap_gen; /* bumped on each reload */

	atomic_bool draining; /* stop accepting: answer 503 */
	int64_t started_at;   /* wall ms */
};

/* Runs a server with options opt (copied) until SIGTERM or SIGINT, then
 * drains. Returns the exit status: 0 after a clean stop, 1 when it cannot
 * start (after printing why). Called by `hookflow serve` (cmd_serve.c). */
int hf_server_run(const struct hf_options *opt);

/* Returns the current snapshot with a reference taken. */
struct hf_snapshot *hf_server_snapshot(struct hf_server *srv);
void hf_snapshot_unref(struct hf_snapshot *snap); /* accepts NULL */
/* Builds a snapshot over set, taking over the caller's reference to set. */
struct hf_snapshot *hf_snapshot_new(struct hf_workflow_set *set);

/* Hands a finished run back: releases its lane, answers a respond: sync waiter,
 * counts it, frees it. Any thread. */
void hf_server_run_finished(struct hf_server *srv, struct hf_run *run);

#include "hf_dispatch.h" /* until the layering pass */

#endif
