/* hf_worker.h - the pool of worker threads. Each owns one Lua runtime for its
 * lifetime, takes ready runs from the scheduler, executes one step, and hands
 * the result to the store's writer; the run continues (or ends) when that
 * result is committed. A worker never waits for the commit: it takes the next
 * run. */
#ifndef HF_WORKER_H
#define HF_WORKER_H

#include "hf_engine.h"
#include "hf_luart.h"

struct hf_workers;

/* Starts n workers on eng. Returns NULL with err set when a runtime cannot be
 * created (e.g. the data database cannot be opened). */
struct hf_workers *hf_workers_start(struct hf_engine *eng, int n,
				    const struct hf_luart_config *cfg,
				    struct hf_error *err);
/* Waits up to timeout_ms for the workers to finish their current step and
 * stop (the scheduler must be stopped first). Returns 0 when all stopped, -1 on
 * timeout (the workers are then left running, and not freed). */
int hf_workers_stop(struct hf_workers *w, int64_t timeout_ms);
/* Steps executing right now. */
int hf_workers_busy(struct hf_workers *w);
/* True when a worker runs a step more than HF_HEALTH_STUCK_MARGIN_MS past
 * its deadline (its time limit did not end it); why gets a one-line reason
 * naming the worker, the step and the run. Any thread. */
bool hf_workers_stuck(struct hf_workers *w, char *why, size_t size);

/* hf_run_advance and hf_step_budget, which a worker uses, are in hf_ops.h. */

#endif
