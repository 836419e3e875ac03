/* hf_run.h - the in-memory event and run objects that flow between ingest, the
 * store's writer, the scheduler and the workers, and the result of one step
 * execution (with the webhook deliveries it emitted) that a worker hands to the
 * writer.
 *
 * Ownership: an event is shared by its runs (atomic refcount). A run is owned
 * by exactly one party at a time: the writer while its write is pending, the
 * scheduler while it waits, a worker while it executes a step. Handing it on
 * hands on the ownership, so a run needs no lock of its own. */
#ifndef HF_RUN_H
#define HF_RUN_H

#include "hf_limits.h"
#include "hf_util.h"
#include "hf_workflow.h"
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct hf_event {
	int refs; /* atomic */
	char id[HF_ID_SIZE];
	char *method;
	char *path;
	json_t *query;	 /* object */
	json_t *headers; /* object, lower-case names */
	/* The raw bytes as received, NUL-terminated: the stored form, there
	 * for the event's whole life. A JSON body (by Content-Type, not
	 * empty) that ingest accepted is valid for hf_json_parse. */
	char *body;
	size_t body_len;
	/* The decoded JSON or form body, or NULL: not decoded (yet) or not a
	 * body that decodes. Ingest decodes it only when a workflow-level
	 * expression (if:, dedupe, concurrency key) or a Stripe dedupe needs
	 * it: read it through hf_event_body(), which decodes on first use. */
	json_t *decoded;
	int64_t received_at; /* wall ms */
	json_t *skipped; /* [{"workflow","reason"}] workflows that matched the
			    path but did not get a run (NULL: none yet) */
	/* headers and query as JSON text, made by ingest on its own thread so
	 * that the single writer does not have to (NULL: the writer dumps
	 * them). An event loaded from the disk backlog has only the text
	 * (headers and query NULL): read the trees through hf_event_headers()
	 * and hf_event_query(), which parse on first use; a step's `event` is
	 * decoded into Lua straight from the text (lua_event.c). */
	char *headers_text;
	char *query_text;
	/* method, path, body and the two texts live in the event's own block
	 * (hf_event_new_packed): freed with it, not one by one. */
	bool packed;
};

/* Returns a new event with one reference; takes ownership of nothing. */
struct hf_event *hf_event_new(void);
/* The same with room for extra bytes right after the event (*extra_at),
 * for its strings: set packed; such an event's strings are never replaced. */
struct hf_event *hf_event_new_packed(size_t extra, char **extra_at);
struct hf_event *hf_event_ref(struct hf_event *ev);
void hf_event_unref(struct hf_event *ev); /* accepts NULL */
/* ev->decoded, decoded from the raw bytes by the Content-Type on first use
 * (thread-safe: the first tree set wins, and stays for the event's life).
 * Borrowed reference; NULL when the body does not decode (OTHER, empty). */
json_t *hf_event_body(struct hf_event *ev);
/* ev->headers and ev->query, parsed from headers_text and query_text on
 * first use when the event came with the text alone (thread-safe, as
 * hf_event_body). Borrowed references: an object ({} for text that is not
 * one), or NULL when the event has neither tree nor text. */
json_t *hf_event_headers(struct hf_event *ev);
json_t *hf_event_query(struct hf_event *ev);
/* The `event` global as JSON: {"id","method","path","params","query",
 * "headers","body","raw","received_at"} ("params" is {}: see below). New
 * reference. "raw" may hold bytes that are not UTF-8: the value is meant for
 * Lua, not for json_dumps. */
json_t *hf_event_to_lua_json(const struct hf_event *ev);
/* Sets "params" in such an object to the path parameters that wf's path
 * reads from the event's path ({} when it has none). */
void hf_event_json_params(json_t *evjson, const struct hf_event *ev,
			  const struct hf_workflow *wf);

enum hf_run_status {
	HF_RUN_QUEUED = 0,
	HF_RUN_RUNNING,
	HF_RUN_SUCCEEDED,
	HF_RUN_FAILED,
	/* Parked (hf_park.h): a row in the store with a due time, not in
	 * memory; RUN's "waiting" says what for. */
	HF_RUN_WAITING,
	HF_RUN_CANCELLED, /* hookflow cancel, the API, cancel_on (cancel.c) */
};
const char *hf_run_status_name(enum hf_run_status s);
int hf_run_status_parse(const char *name); /* -1 when unknown */

struct hf_sync_waiter; /* ingest's: a suspended request waiting for a run's end
			*/

/* What a woken run (hf_run.woken) woke from: its step's own wait (sleep,
 * until, a signal), or a flow gate before the step. */
enum hf_woken_from {
	HF_WOKEN_WAIT = 0,
	HF_WOKEN_THROTTLE,
	HF_WOKEN_DEBOUNCE,
};

struct hf_run {
	char id[HF_ID_SIZE];
	struct hf_event *event; /* reference */
	struct hf_workflow
	    *wf; /* reference: the version the run started with */
	enum hf_run_status status;
	int attempt;	    /* 1, +1 for each `hookflow retry` */
	size_t next_step;   /* index of the step to run next */
	int step_attempt;   /* attempt number of next_step, from 1 */
	json_t *outputs;    /* {"step_id": output} of finished steps */
	int64_t created_at; /* wall ms */
	int64_t started_at; /* wall ms, 0 until the first step starts */
	int64_t due_at;	    /* wall ms before which the run must not proceed */
	char *lane;	    /* concurrency key, NULL without `concurrency:` */
	bool in_lane;	    /* holds a slot of its lane (scheduler's) */
	bool admitted;	    /* counted in the scheduler's depth */
	/* Its place in the lane on every node (PostgreSQL's queue seq), 0
	 * until hf_store_lane_ready told it: hf_sched_lane_wait. */
	int64_t lane_seq;
	/* Set by the worker once a step's result is on its way to the writer:
	 * the writer then skips the run's "started" write, which the step's
	 * own write makes redundant (one write less per short step). */
	atomic_bool step_pending;
	/* A worker is executing a step of this run, from taking it off the
	 * scheduler until its step's write is done: asserted, so that no run is
	 * ever held by two workers at once. */
	atomic_bool owned;
	/* PostgreSQL: this node's epoch when it took the run (the store's;
	 * hf_store_holds). 0 with SQLite. */
	int64_t epoch;
	char *error; /* the run's error once failed */
	/* The last finished step's output, for respond: sync. */
	json_t *last_output;
	struct hf_sync_waiter
	    *waiter; /* NULL unless respond: sync is waiting */
	/* Dedupe key for this workflow (ingest only), NULL when none. */
	char *dedupe_key;
	/* The parked run (hf_park.h). Parking (status HF_RUN_WAITING, set by
	 * hf_park_step): when the wait ends (wall ms), RUN's "waiting" as
	 * JSON text, and a wait_for's path (NULL otherwise). Else wake_at is
	 * when the run last woke (0: never): its timeout counts from then.
	 * woken: loaded from the store woken from the wait at next_step,
	 * which then ends without running (its output, a signal's body, is
	 * in outputs already, or nil), unless woken_from says that the wait
	 * was a flow gate's before the step (its "waiting" said so): the
	 * step then runs, or parks for its own wait. */
	int64_t wake_at;
	char *waiting;
	char *wait_path;
	bool woken;
	enum hf_woken_from woken_from;
	/* When a throttle let the next step start (hf_throttle.h): its
	 * recorded started_at (0: none). */
	int64_t throttled_at;
	/* In the on_failure steps (next_step >= wf->nsteps): the `failure`
	 * global, {"step","error","attempt"}; NULL until known (after a
	 * restart the worker reads it back: on_failure.c). */
	json_t *failure;
	/* A debounced run (hf_debounce.h): the `events` global, the burst's
	 * events as Lua sees `event`; NULL until read back. */
	json_t *events;
	/* SQLite: the run's row, once this process stored it (0: unknown, the
	 * row is found by id); store_sqlite_apply.c. */
	int64_t rid;
	struct hf_run *next; /* intrusive link for queues */
};

/* A new queued run of wf for ev, with references taken on both. */
struct hf_run *hf_run_new(struct hf_event *ev, struct hf_workflow *wf);
/* A debounced run's burst (hf_debounce.h: the keys "key", "first" and
 * "events" of its "waiting") rides in whatever "waiting" the run has next, so
 * that neither a later wait nor a restart loses `events`. Returns the text of
 * o (a wait's own keys; o is taken) with the burst of run->waiting added when
 * it has one. */
char *hf_run_waiting_text(const struct hf_run *run, json_t *o);
/* The "waiting" a run keeps once a wait is over: its burst alone
 * ({"for": "debounce", "step": null, "key", "first", "events"}) when waiting
 * has one, else NULL. */
char *hf_run_burst_text(const char *waiting);
/* A wait of run's is over (or never began): its "waiting" becomes its burst
 * alone (hf_run_burst_text) or NULL, and it has no wait_path. */
void hf_run_end_wait(struct hf_run *run);
void hf_run_free(struct hf_run *run); /* accepts NULL */

/* The result of one step execution (filled by hf_luart_run_step, stored by
 * the writer). */
enum hf_step_status {
	HF_STEP_SUCCEEDED = 0,
	HF_STEP_FAILED = 1,
	HF_STEP_SKIPPED = 2,
};
const char *hf_step_status_name(enum hf_step_status s);

/* Deliveries that webhook.emit() queued during the step: committed with the
 * step's result, discarded when the step fails. */
struct hf_emit {
	char id[HF_DELIVERY_ID_SIZE]; /* generated, or webhook.emit's id */
	char *url;
	char *payload;	    /* JSON text or the raw string given */
	json_t *headers;    /* object of extra headers, may be NULL */
	char *secret;	    /* NULL when unsigned */
	int attempts;	    /* total attempts allowed */
	int64_t backoff_ms; /* 0: the default schedule */
	int64_t timeout_ms; /* per attempt */
};

struct hf_step_result {
	enum hf_step_status status;
	json_t *output; /* never NULL: json_null() for nil */
	char *error;	/* with traceback; NULL on success */
	json_t *logs;	/* array of {"level","message","at"} */
	struct hf_emit *emits;
	size_t nemits;
	/* For respond: sync: the output was a table {status=,headers=,body=}.
	 */
	int64_t started_at; /* wall ms */
	int64_t finished_at;
	/* A failed step that called retry.after: the next attempt no sooner
	 * than retry_delay_ms from now (before retry.max_delay caps it); one
	 * that called retry.never: no further attempt. */
	bool retry_after;
	bool retry_never;
	int64_t retry_delay_ms;
	/* output and logs as JSON text, filled by the worker before the result
	 * goes to the writer (so that the single writer thread does not dump
	 * them); NULL otherwise. Freed by hf_step_result_release. */
	char *output_text;
	char *logs_text;
};
void hf_step_result_release(struct hf_step_result *res);
void hf_emit_release(struct hf_emit *e);

#endif
