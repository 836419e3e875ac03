/* hf_ops.h - the operations on runs, events and deliveries that more than one
 * front end performs: replay an event, retry a run, retry a delivery, and run
 * one step of a run. The admin API (api.c), the command line (cmd_*.c) and the
 * workers (worker.c) call these; none of them writes its own copy.
 *
 * This layer sits below ingest, the API, the server and the CLI: it uses the
 * store, the scheduler, dispatch and the Lua runtime only. What it needs of a
 * running server (the workflows in force, the scheduler) is passed in. */
#ifndef HF_OPS_H
#define HF_OPS_H

#include "hf_luart.h"
#include "hf_router.h"
#include "hf_run.h"
#include "hf_sched.h"
#include "hf_store.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Submits w to the store and waits for its commit (or, on a store without a
 * writer thread, applies it at once). Sets w->done. Returns w->rc. */
int hf_ops_submit_wait(struct hf_store *s, struct hf_write *w);

/* Replays event_id with router's workflows (matched by path and method again,
 * `if:` evaluated again, no dedupe) and stores the new runs, waiting for the
 * commit. With sched (a server), the committed runs are queued there; without
 * (the CLI), they are stored unclaimed, for a running server to pick up, and
 * freed. On success *out is {"event": ID, "runs": [RUN_ID...]}. Returns 0,
 * HF_STORE_NOT_FOUND (no such event) or -1 (the runs could not be stored). */
int hf_ops_replay(struct hf_store *s, struct hf_sched *sched,
		  const struct hf_router *router, const char *event_id,
		  json_t **out);

/* Queues failed run run_id again from its failed step (hf_store_retry_run).
 * conn must be a connection of its own (hf_store_open without a writer): a
 * running server notices commits of other connections only. Returns 0,
 * HF_STORE_NOT_FOUND, HF_STORE_CONFLICT (the run has not failed) or -1, with
 * err set unless 0. */
int hf_ops_retry_run(struct hf_store *conn, const char *run_id,
		     struct hf_error *err);

/* Sends a delivery again: pending, due now (hf_store_retry_delivery through
 * the writer, waiting for the commit). Returns 0, HF_STORE_NOT_FOUND,
 * HF_STORE_CONFLICT (it was delivered) or -1. The caller kicks the outbox. */
int hf_ops_retry_delivery(struct hf_store *s, const char *delivery_id);

/* The step's budget: its timeout, capped by what is left of the run's. Returns
 * <= 0 when the run's timeout has passed. */
int64_t hf_step_budget(const struct hf_run *run, int64_t now);

/* Decides a run's next state after a step: updates run->next_step,
 * step_attempt, due_at, status and error from res. A failed step is tried
 * again while attempts are left, after the backoff or the delay of its
 * retry.after (capped by retry.max_delay; none that would pass the run's
 * timeout), never after retry.never. Returns true when the run is over. */
bool hf_run_advance(struct hf_run *run, const struct hf_step_result *res,
		    int64_t now);

/* What hf_ops_step ran. */
struct hf_ops_step {
	size_t index; /* the step, into run->wf->steps */
	int attempt;  /* its attempt number, from 1 */
	bool over;    /* the run ended (succeeded or failed) */
};

/* Runs run's next step in rt: builds the step context (the event, the outputs
 * of earlier steps, the attempt, the budget left at now), executes the step
 * into res (the caller releases it), then advances the run (hf_run_advance).
 * Returns 0, or -1 without running anything when the run's timeout has passed
 * (the caller fails the run). */
int hf_ops_step(struct hf_luart *rt, struct hf_run *run, int64_t now,
		struct hf_step_result *res, struct hf_ops_step *done);

#endif
