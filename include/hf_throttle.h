/* hf_throttle.h - `throttle: {key, limit, period}` at run time: at most limit
 * starts per period per key (a run's first step, or a step's first attempt),
 * the key shared by every workflow naming it; the rest park (hf_park.h,
 * waiting for "throttle") until their start, in arrival order, none dropped.
 *
 * Each start gets a time at once (a reservation): the n-th of a key starts
 * no sooner than period after the (n - limit)-th. A run whose time is later
 * parks until then. The limit holds on the starts really made: each start let
 * through is recorded at the clock read under the key's lock (and is the
 * step's recorded started_at: hf_run.throttled_at), and a start is let
 * through only when the last period holds fewer than limit of them. So a
 * woken run (which lags its time) asks again: its reservation moves to its
 * real start, or, when the starts made still fill its window, later (it
 * parks again, briefly). With SQLite the reservations and starts are memory;
 * the parked runs' due times are rows, read back at start-up
 * (hf_throttle_restore). With PostgreSQL they are rows of the state database
 * (table throttle; the starts made keyed "started\n" + key), admitted in the
 * writer's transaction under a row lock on the key: shared by every node,
 * kept across restarts. One store round trip per throttled start.
 *
 * Threading: any thread (one mutex). */
#ifndef HF_THROTTLE_H
#define HF_THROTTLE_H

#include "hf_run.h"
#include "hf_store.h"
#include <stdint.h>

/* Before run's next step (a worker; now: unused, the clock is read under
 * the key's lock; s: where the reservations are shared, or NULL for this
 * process's memory): when a throttle applies and its start must wait, parks
 * run (status waiting, wake_at, waiting) and returns 1: the caller stores it
 * as a parked run. Else 0: the step runs now (run->throttled_at its start). */
int hf_throttle_gate(struct hf_store *s, struct hf_run *run, int64_t now);
/* Reads back the start times of the runs parked for a throttle of set's
 * workflows (at start-up, before workers take runs). */
void hf_throttle_restore(struct hf_store *s, const struct hf_workflow_set *set);
/* Forgets every reservation (tests, `hookflow run`). */
void hf_throttle_reset(void);

#endif
