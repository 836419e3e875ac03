/* hf_flow.h - flow control that acts on other runs: a background thread
 * (hf-flow) that cancels the older runs of a concurrency key when a newer one
 * is committed (`concurrency.cancel_in_progress`), and the queued and waiting
 * runs that a request to a `cancel_on:` path matches. It reads the store and
 * cancels through the writer (cancel.c), so the writer thread and the HTTP
 * threads only hand it small jobs.
 *
 * Threading: hf_flow_run_committed on the writer thread (an ingest's done());
 * start and stop on the main thread. */
#ifndef HF_FLOW_H
#define HF_FLOW_H

#include "hf_engine.h"
#include "hf_run.h"

/* Readies flow control for eng: the thread starts with the first job (a
 * server whose workflows neither cancel_in_progress nor cancel_on never runs
 * it). Returns 0. */
int hf_flow_start(struct hf_engine *eng);
/* Stops it after the jobs queued so far (the cancels they make wait for the
 * writer, which must still run). */
void hf_flow_stop(void);
/* run was just committed (a webhook's, a schedule fire's or a replay's new
 * run): queues what it asks of other runs. Cheap when its workflow asks
 * nothing. */
void hf_flow_run_committed(const struct hf_run *run);
/* The request ev, to a `cancel_on:` path of snap's workflows, was committed:
 * queues it (references taken on both) to cancel the queued and waiting runs
 * whose cancel_on `if:` it matches. */
void hf_flow_signal(struct hf_event *ev, struct hf_snapshot *snap);

#endif
