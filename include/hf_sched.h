/* hf_sched.h - the in-memory run queue: ready runs in arrival order, runs
 * waiting for a retry's due time, per-key concurrency lanes, and timers.
 *
 * The writer feeds it after commit, workers take from it. A run waits here
 * owned by the scheduler; take() hands it to a worker. One internal thread
 * moves due runs to the ready queue and fires timers; an idle scheduler sleeps
 * on a condition variable (no polling). */
#ifndef HF_SCHED_H
#define HF_SCHED_H

#include "hf_run.h"
#include <stddef.h>
#include <stdint.h>

struct hf_sched;

struct hf_sched *hf_sched_create(void);
/* Frees the scheduler and every run still queued in it. */
void hf_sched_destroy(struct hf_sched *s); /* accepts NULL */

/* Takes ownership of run. A run entering for the first time takes a slot in its
 * lane (run->lane, wf->concurrency_max) or waits in the lane's FIFO; a run
 * whose due_at is in the future waits for it. */
void hf_sched_push(struct hf_sched *s, struct hf_run *run);
/* Blocks until a run is ready (returns it, ownership to the caller) or the
 * scheduler is stopped (returns NULL). */
struct hf_run *hf_sched_take(struct hf_sched *s);
/* A run is over: frees its lane slot, admitting the next run of the lane. The
 * caller still owns run. */
void hf_sched_release(struct hf_sched *s, struct hf_run *run);
/* Runs in memory and not finished (queued, waiting, running). */
size_t hf_sched_depth(struct hf_sched *s);
/* Runs ready and waiting for a worker. */
size_t hf_sched_ready(struct hf_sched *s);
/* Wakes every take() with NULL; later pushes are kept (freed by destroy). */
void hf_sched_stop(struct hf_sched *s);

/* Calls fn(arg) on the scheduler's thread once hf_mono_ms() >= due_mono_ms. */
void hf_sched_timer(struct hf_sched *s, int64_t due_mono_ms,
		    void (*fn)(void *arg), void *arg);

#endif
