/* hf_dispatch.h - an event's runs: for each matched workflow, its `if:`, its
 * dedupe key and its concurrency key, evaluated in an expression-only Lua
 * runtime of the calling thread (dispatch.c). Used at ingest, for replay and by
 * the CLI. */
#ifndef HF_DISPATCH_H
#define HF_DISPATCH_H

#include "hf_luart.h"
#include "hf_router.h"
#include "hf_run.h"
#include <stdbool.h>
#include <stddef.h>

/* Builds the runs for an event (dispatch): for each workflow of wfs, evaluates
 * `if:` (a false or failing one is recorded in ev->skipped with the reason),
 * the dedupe key and the concurrency key with rt (a thread's expression
 * runtime; may be NULL when no workflow has expressions, see
 * hf_dispatch_needs_lua). Returns how many runs were written to out (each a new
 * queued run). */
size_t hf_dispatch(struct hf_luart *rt, struct hf_event *ev,
		   struct hf_workflow **wfs, size_t n, struct hf_run **out);
bool hf_dispatch_needs_lua(struct hf_workflow **wfs, size_t n);
/* The run of a schedule's fire ev (schedule.c): wf's `if:` and concurrency
 * key as hf_dispatch evaluates them, and key ("schedule:N:AT") as its dedupe
 * key in place of the webhook's. Returns the new queued run, or NULL when
 * `if:` declined or failed (recorded in ev->skipped). */
struct hf_run *hf_dispatch_schedule(struct hf_luart *rt, struct hf_event *ev,
				    struct hf_workflow *wf, const char *key);
/* The runs that replaying ev creates with router's workflows: matched by path
 * and method again, `if:` evaluated again, no dedupe. out holds HF_MAX_MATCH
 * runs. Returns how many. */
size_t hf_dispatch_replay(const struct hf_router *router, struct hf_event *ev,
			  struct hf_run **out);
/* A thread's expression runtime, created on first use, destroyed at thread
 * exit. */
struct hf_luart *hf_dispatch_runtime(void);

#endif
