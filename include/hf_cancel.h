/* hf_cancel.h - cancelling runs: the store's record (status cancelled) and
 * the in-memory side, which stops a run wherever it is: taken out of the
 * scheduler at once when it waits there, or, when a worker holds it, ended
 * after its running step commits (the worker asks hf_cancel_take).
 *
 * Cancels made by another process (`hookflow cancel`) leave a note in the
 * store that the server polls (hf_cancel_poll). Any thread unless said. */
#ifndef HF_CANCEL_H
#define HF_CANCEL_H

#include "hf_engine.h"
#include "hf_run.h"
#include "hf_store.h"
#include <stdbool.h>

/* Records the cancel of run_id in s (hf_store_cancel_run through the writer,
 * waiting for the commit; with note for a server to notice). Returns 0,
 * HF_STORE_NOT_FOUND, HF_STORE_CONFLICT (already finished) or -1. */
int hf_cancel_store(struct hf_store *s, const char *run_id, const char *reason,
		    bool note);
/* A running server's cancel: records it, then stops the run in memory.
 * Returns as hf_cancel_store. */
int hf_cancel_run(struct hf_engine *eng, const char *run_id,
		  const char *reason);
/* The cancel of run_id is committed: stops it in memory. */
void hf_cancel_committed(struct hf_engine *eng, const char *run_id);
/* Whether run was cancelled while it was out of the scheduler (a worker or
 * the writer held it): then true, once. Cheap when nothing is cancelled. */
bool hf_cancel_take(struct hf_run *run);
/* Ends run in memory as cancelled (its record is in the store already):
 * releases its lane, answers a sync waiter, counts it, frees it. */
void hf_cancel_drop(struct hf_engine *eng, struct hf_run *run);
/* The server's housekeeping: stops in memory the runs that other processes
 * cancelled (their notes), and drops the notes. */
void hf_cancel_poll(struct hf_engine *eng);

#endif
