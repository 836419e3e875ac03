/* hf_schedule.h - the server's schedule thread: fires each workflow's
 * `on.schedule` entries at their times (schedule.c), as events that go the
 * webhook's way into the store (HF_W_INGEST, one run), keyed so that a fire
 * time makes at most one run, across restarts too; and at start, the fires
 * missed while the server was stopped, at most `catch_up` of them each.
 *
 * Layer 3 (engine): reads the engine's snapshot, writes through the store,
 * hands committed runs to the scheduler. */
#ifndef HF_SCHEDULE_H
#define HF_SCHEDULE_H

#include "hf_engine.h"

struct hf_schedule_thread;

/* Starts the thread: at once it runs the missed fires (catch_up), then
 * fires each schedule of the workflows in force, following reloads. */
struct hf_schedule_thread *hf_schedule_start(struct hf_engine *eng);
/* Stops firing and joins the thread; fires already submitted commit and
 * their runs reach the scheduler (or, once it stopped, the next start). */
void hf_schedule_stop(struct hf_schedule_thread *t); /* accepts NULL */

/* The event of a fire of wf's schedule idx at at_s (UTC seconds): method
 * SCHEDULE, path the workflow's name, query (and event.schedule) {cron, at},
 * no body, one new reference. For `hookflow run --now` too. */
struct hf_event *hf_schedule_event(const struct hf_workflow *wf, size_t idx,
				   int64_t at_s);

#endif
