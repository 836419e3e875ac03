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
/* Pushes a list of runs linked through run->next, in order, under one lock:
 * what a commit made ready goes on in one hand-off. */
void hf_sched_push_list(struct hf_sched *s, struct hf_run *list);
/* Counts n runs about to be pushed in the depth when it stays within limit (0:
 * no limit), and returns whether it did; the caller then sets their
 * run->admitted, so that the push does not count them again. */
bool hf_sched_admit(struct hf_sched *s, size_t n, size_t limit);
/* Takes back n admitted runs that will not be pushed after all. */
void hf_sched_unadmit(struct hf_sched *s, size_t n);
/* fn(arg) is called (no lock held, on the thread releasing a run) whenever the
 * depth falls to low: room for a page of the disk backlog. */
void hf_sched_on_room(struct hf_sched *s, size_t low, void (*fn)(void *arg),
		      void *arg);
/* Blocks until a run is ready (returns it, ownership to the caller) or the
 * scheduler is stopped (returns NULL). */
struct hf_run *hf_sched_take(struct hf_sched *s);
/* A run is over: frees its lane slot, admitting the next run of the lane. The
 * caller still owns run. */
void hf_sched_release(struct hf_sched *s, struct hf_run *run);
/* run holds a slot of its lane but may not start yet (runs of its lane that
 * came before it are unfinished, on other nodes: hf_store_lane_ready): it waits
 * until due_at and looks again, keeping its slot, unless a run waiting here
 * for the lane may come before it (run->lane_seq lower, or not known yet):
 * that run then takes the slot, and run waits in the lane's FIFO, in lane_seq
 * order. So a lane's earlier run taken over from a dead node never waits
 * behind a later one that waits for it. */
void hf_sched_lane_wait(struct hf_sched *s, struct hf_run *run);
/* Takes the run with id run_id out of the queue (ready, waiting for its due
 * time, or waiting for its lane) and returns it, ownership to the caller, who
 * hands it to hf_sched_release; NULL when the scheduler does not hold it (a
 * worker does, or it is not in memory). For cancelling: a linear search. */
struct hf_run *hf_sched_cancel(struct hf_sched *s, const char *run_id);
/* Runs in memory and not finished (queued, waiting, running). */
size_t hf_sched_depth(struct hf_sched *s);
/* Runs ready and waiting for a worker. */
size_t hf_sched_ready(struct hf_sched *s);
/* Wakes every take() with NULL; later pushes are kept (freed by destroy). */
void hf_sched_stop(struct hf_sched *s);

/* Calls fn(arg) on the scheduler's thread once hf_mono_ms() >= due_mono_ms;
 * a timer still pending at hf_sched_destroy is called then, late (fn must
 * cope: it only frees what it holds once its purpose has gone). */
void hf_sched_timer(struct hf_sched *s, int64_t due_mono_ms,
		    void (*fn)(void *arg), void *arg);

#endif
