/* hf_luart.h - the Lua 5.4 runtime: one sandboxed lua_State per thread, the
 * globals of docs/reference.md's "Lua" section (event, steps, args, run, env,
 * json, log, crypto, db, http, webhook, require), memory and time limits, and
 * the conversion between JSON values (jansson) and Lua values.
 *
 * A runtime belongs to one thread for its lifetime. Chunks are compiled once
 * per runtime and cached by (workflow version, chunk name). Each step runs in
 * the runtime's environment table, whose __index is the read-only sandbox and
 * which is emptied after every step, so nothing a step does to its globals
 * reaches the next step. A chunk gets only the globals its source can read
 * (`event` is not even built for `if: false` or `return 1`). */
#ifndef HF_LUART_H
#define HF_LUART_H

#include "hf_run.h" /* step results and emits */
#include "hf_util.h"
#include "hf_workflow.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct hf_luart;
struct hf_egress;

struct hf_luart_config {
	const char *scripts_dir; /* for require(); NULL = require unavailable */
	const char
	    *data_path; /* --data database for db.*; NULL = db unavailable */
	bool data_sync_full; /* PRAGMA synchronous=FULL on the data database */
	size_t memory_limit; /* bytes per step; 0 = HF_LUA_MEMORY */
	/* Where http.* may connect (outlives the runtime); NULL = default. */
	const struct hf_egress *egress;
	int64_t max_value; /* --max-value for db.*; 0 = HF_DEFAULT_MAX_VALUE */
	/* An expression-only runtime (ingest-time
	 * `if:`/`dedupe:`/`concurrency`) has no db, http, webhook, log or
	 * require, and a tight instruction budget. */
	bool expr_only;
};

/* Gives SQLite the allocator that counts what one db.* call takes (2 x
 * --max-value + HF_DB_CALL_SLACK at most; lua_db.c). Must run before anything
 * else in the process uses SQLite (the state database included); returns false
 * when it came too late (SQLite then uses its own allocator, uncounted). Main
 * thread, once. */
bool hf_lua_db_global_init(void);

/* Returns a runtime, or NULL with err set (data database cannot be opened). */
struct hf_luart *hf_luart_create(const struct hf_luart_config *cfg,
				 struct hf_error *err);
void hf_luart_destroy(struct hf_luart *rt); /* accepts NULL */

/* What one step execution sees. Nothing here is taken over by the runtime. */
struct hf_step_ctx {
	const struct hf_workflow *wf;
	size_t step; /* index into wf->steps */
	/* {"id","method","path","query":{},"headers":{},"body":…,"raw":"…",
	 *  "received_at":…}: becomes the `event` global. */
	json_t *event;
	/* When set, the `event` global is built from it instead of event
	 * (body decoded from the raw bytes once per run: lua_event.c). */
	const struct hf_event *ev;
	json_t *steps; /* {"step_id": output} of earlier steps; skipped ones
			  absent */
	const char *run_id;
	int attempt; /* 1 for the first try of this step; `run.attempt` */
	int64_t
	    timeout_ms; /* the step's budget (already capped by the run's) */
	/* The `failure` global of an on_failure step; NULL: none. */
	json_t *failure;
	/* The `events` global of a debounced run; NULL: none. */
	json_t *events;
	/* run.resume_url (hf_park.h); NULL: the run has no wait_for ahead. */
	const char *resume_url;
};

/* Runs step ctx->step: evaluates its `if:` (SKIPPED when false), builds `args`
 * from `with:`, runs the code under the memory and time limits, and converts
 * the return value to JSON (a non-JSON-shaped value fails the step with a
 * message saying where). Always fills res; returns 0, or -1 only on internal
 * errors. */
int hf_luart_run_step(struct hf_luart *rt, const struct hf_step_ctx *ctx,
		      struct hf_step_result *res);

/* Evaluates a workflow-level expression against an event. cache_key names the
 * compiled chunk (e.g. "VERSION:if"). On success returns 0 and *value (owned by
 * the caller; json_null() for nil). On error returns -1 and *err (malloc'd). */
int hf_luart_eval(struct hf_luart *rt, const char *cache_key,
		  const struct hf_expr *e, json_t *event, json_t **value,
		  char **err);

/* The same with the event as ingest holds it: `event` is built only if the
 * expression can read it (hf_luart_expr_reads_event), its body from
 * ev->decoded when ingest kept one, else decoded from ev's raw bytes.
 * wf gives event.params. */
int hf_luart_eval_event(struct hf_luart *rt, const char *cache_key,
			const struct hf_expr *e, const struct hf_event *ev,
			const struct hf_workflow *wf, json_t **value,
			char **err);

/* hf_luart_eval_event with a second event as the `signal` global: a
 * wait_for's `if:` (hf_park.h), ev the waiting run's event. */
int hf_luart_eval_signal(struct hf_luart *rt, const char *cache_key,
			 const struct hf_expr *e, const struct hf_event *ev,
			 const struct hf_workflow *wf,
			 const struct hf_event *signal, json_t **value,
			 char **err);

/* Lets go of the `signal` table that hf_luart_eval_signal keeps between
 * evaluations of one signal (its memory is freed, with a full collection
 * when it was large), once that signal has been matched. Accepts NULL. */
void hf_luart_forget_signal(struct hf_luart *rt);

/* False when an expression's chunk cannot read the `event` global (it does
 * not name it and cannot reach the environment: no _ENV, _G, load,
 * require), so that ingest needs no decoded body for it. Conservative. */
bool hf_luart_expr_reads_event(const char *chunk);

/* True when the Lua value of an `if:` result counts as true (not
 * nil/false/null). */
bool hf_json_truthy(const json_t *v);

#endif
