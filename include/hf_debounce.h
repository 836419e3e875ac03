/* hf_debounce.h - `debounce: {key, period, max_wait}` at run time: events with
 * the same key within period of each other make one run, started period
 * after the last (never later than max_wait after the first), with `event`
 * the last and `events` all of them in arrival order.
 *
 * The first run of a burst (the leader) parks before its first step
 * (hf_park.h, waiting for "debounce", its "waiting" holding the key, the
 * burst's start and its event ids). A later run of the same key, at its
 * first step, adds its event to the leader's row and moves the leader's due
 * time (only while the leader still waits), then ends itself: status
 * cancelled, error "debounced into run LEADER". Woken, the leader reads its
 * events back (hf_debounce_resolve). All state is in the rows: a restart
 * loses nothing. One process-wide mutex orders the bursts' updates; with
 * PostgreSQL the decision is taken in the writer's transaction under a row
 * lock on the key (hf_store_debounce_find), so that several nodes share the
 * bursts.
 *
 * Threading: a worker thread (store reads and commits are waited for). */
#ifndef HF_DEBOUNCE_H
#define HF_DEBOUNCE_H

#include "hf_run.h"
#include "hf_store.h"
#include <stdint.h>

/* Whether run's workflow debounces a run at its next step (a new run not yet
 * woken); then the caller holds hf_debounce_lock around hf_debounce_gate and
 * the commit of what it decided. */
bool hf_debounce_applies(const struct hf_run *run);
void hf_debounce_lock(void);
void hf_debounce_unlock(void);
/* At now: 1 when run leads a new burst (parked: status waiting, wake_at,
 * waiting set; the caller stores it and waits for the commit), 2 when its
 * event joined a waiting leader's burst (status cancelled, error set: the
 * caller ends it), 0 to run now (the key failed: not debounced). */
int hf_debounce_gate(struct hf_store *s, struct hf_run *run, int64_t now);
/* A woken leader (or one loaded after a restart): reads its burst back,
 * sets run->events (the `events` global) and makes run->event the last
 * event. No-op for other runs. */
void hf_debounce_resolve(struct hf_store *s, struct hf_run *run);

#endif
