/* run.c - the in-memory event and run objects (see hf_run.h for who owns what
 * when), and the release of step results and emits. Pure data: no I/O, no
 * threads of its own, no Lua (luart.c fills the results). */
#include "hf_body.h"
#include "hf_router.h"
#include "hf_run.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct hf_event *hf_event_new(void)
{
	struct hf_event *ev = hf_xcalloc(1, sizeof *ev);
	ev->refs = 1;
	return ev;
}

struct hf_event *hf_event_new_packed(size_t extra, char **extra_at)
{
	struct hf_event *ev = hf_xcalloc(1, sizeof *ev + extra);
	ev->refs = 1;
	ev->packed = true;
	*extra_at = (char *)(ev + 1);
	return ev;
}

struct hf_event *hf_event_ref(struct hf_event *ev)
{
	atomic_fetch_add((_Atomic int *)&ev->refs, 1);
	return ev;
}

void hf_event_unref(struct hf_event *ev)
{
	if (!ev || atomic_fetch_sub((_Atomic int *)&ev->refs, 1) != 1)
		return;
	if (!ev->packed) {
		free(ev->method);
		free(ev->path);
		free(ev->body);
		free(ev->headers_text);
		free(ev->query_text);
	}
	json_decref(ev->query);
	json_decref(ev->headers);
	json_decref(ev->decoded);
	json_decref(ev->skipped);
	free(ev);
}

/* *slot, or the object parsed from text (the first set wins). */
static json_t *lazy_object(json_t **slot, const char *text)
{
	json_t *v = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (v || !text)
		return v;
	v = json_loads(text, 0, NULL);
	if (!json_is_object(v)) {
		json_decref(v);
		v = json_object();
	}
	json_t *expected = NULL;
	if (__atomic_compare_exchange_n(slot, &expected, v, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return v;
	json_decref(v); /* another thread's came first */
	return expected;
}

json_t *hf_event_headers(struct hf_event *ev)
{
	return lazy_object(&ev->headers, ev->headers_text);
}

json_t *hf_event_query(struct hf_event *ev)
{
	return lazy_object(&ev->query, ev->query_text);
}

json_t *hf_event_body(struct hf_event *ev)
{
	json_t *v = __atomic_load_n(&ev->decoded, __ATOMIC_ACQUIRE);
	if (v || !ev->body || !ev->body_len)
		return v;
	char err[64];
	if (hf_body_decode_event(hf_event_headers(ev), ev->body, ev->body_len,
				 &v, err, sizeof err) < 0 ||
	    !v)
		return NULL;
	json_t *expected = NULL;
	if (__atomic_compare_exchange_n(&ev->decoded, &expected, v, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return v;
	json_decref(v); /* another thread's came first */
	return expected;
}

json_t *hf_event_to_lua_json(const struct hf_event *ev)
{
	/* Decoding on first use is not a change of the event's value. */
	json_t *body = hf_event_body((struct hf_event *)ev);
	json_t *query = hf_event_query((struct hf_event *)ev);
	json_t *headers = hf_event_headers((struct hf_event *)ev);
	char at[32];
	hf_time_iso(ev->received_at, at);
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(ev->id));
	json_object_set_new(o, "method", json_string(ev->method));
	json_object_set_new(o, "path", json_string(ev->path));
	json_object_set_new(o, "params", json_object());
	json_object_set(o, "query", query ? query : json_object());
	if (!query)
		json_decref(json_object_get(o, "query"));
	json_object_set(o, "headers", headers);
	/* No "body" key (nil in Lua) unless there is a decoded body. */
	if (body && !json_is_null(body))
		json_object_set(o, "body", body);
	json_object_set_new(o, "raw",
			    json_stringn_nocheck(ev->body ? ev->body : "",
						 ev->body ? ev->body_len : 0));
	json_object_set_new(o, "received_at", json_string(at));
	/* A schedule's fire (schedule.c) keeps {cron, at} as its query: the
	 * stored event has no column of its own for them. */
	if (ev->method && strcmp(ev->method, "SCHEDULE") == 0 && query)
		json_object_set_new(o, "schedule", json_deep_copy(query));
	return o;
}

void hf_event_json_params(json_t *evjson, const struct hf_event *ev,
			  const struct hf_workflow *wf)
{
	json_object_set_new(evjson, "params",
			    hf_path_params(wf ? wf->path : NULL, ev->path));
}

static const char *run_status_names[] = {"queued", "running", "succeeded",
					 "failed", "waiting", "cancelled"};
#define NSTATUS (sizeof run_status_names / sizeof run_status_names[0])

const char *hf_run_status_name(enum hf_run_status s)
{
	return (unsigned)s < NSTATUS ? run_status_names[s] : "unknown";
}

int hf_run_status_parse(const char *name)
{
	for (int i = 0; i < (int)NSTATUS; i++)
		if (name && strcmp(name, run_status_names[i]) == 0)
			return i;
	return -1;
}

struct hf_run *hf_run_new(struct hf_event *ev, struct hf_workflow *wf)
{
	struct hf_run *run = hf_xcalloc(1, sizeof *run);
	hf_id_new(run->id, "run");
	run->event = ev ? hf_event_ref(ev) : NULL;
	run->wf = hf_workflow_ref(wf);
	run->status = HF_RUN_QUEUED;
	run->attempt = 1;
	run->step_attempt = 1;
	run->outputs = json_object();
	run->created_at = hf_now_ms();
	return run;
}

void hf_run_free(struct hf_run *run)
{
	if (!run)
		return;
	hf_event_unref(run->event);
	hf_workflow_unref(run->wf);
	json_decref(run->outputs);
	json_decref(run->last_output);
	free(run->lane);
	free(run->error);
	free(run->dedupe_key);
	json_decref(run->failure);
	json_decref(run->events);
	free(run->waiting);
	free(run->wait_path);
	free(run);
}

const char *hf_step_status_name(enum hf_step_status s)
{
	switch (s) {
	case HF_STEP_SUCCEEDED:
		return "succeeded";
	case HF_STEP_FAILED:
		return "failed";
	case HF_STEP_SKIPPED:
		return "skipped";
	}
	return "unknown";
}

void hf_emit_release(struct hf_emit *e)
{
	if (!e)
		return;
	free(e->url);
	free(e->payload);
	json_decref(e->headers);
	free(e->secret);
	memset(e, 0, sizeof *e);
}

void hf_step_result_release(struct hf_step_result *res)
{
	if (!res)
		return;
	json_decref(res->output);
	json_decref(res->logs);
	free(res->error);
	free(res->output_text);
	free(res->logs_text);
	for (size_t i = 0; i < res->nemits; i++)
		hf_emit_release(&res->emits[i]);
	free(res->emits);
	memset(res, 0, sizeof *res);
}

/* Adds the burst of waiting (the keys "key", "first", "events" of a debounced
 * run's) to o: false when waiting has none. */
static bool add_burst(json_t *o, const char *waiting)
{
	static const char *const keys[] = {"key", "first", "events"};
	json_t *w = waiting ? json_loads(waiting, 0, NULL) : NULL;
	bool has = json_is_array(json_object_get(w, "events"));
	for (size_t i = 0; has && i < sizeof keys / sizeof keys[0]; i++) {
		json_t *v = json_object_get(w, keys[i]);
		if (v)
			json_object_set(o, keys[i], v);
	}
	json_decref(w);
	return has;
}

static char *text_of(json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

char *hf_run_waiting_text(const struct hf_run *run, json_t *o)
{
	add_burst(o, run->waiting);
	return text_of(o);
}

char *hf_run_burst_text(const char *waiting)
{
	json_t *o = json_pack("{s:s,s:n}", "for", "debounce", "step");
	if (add_burst(o, waiting))
		return text_of(o);
	json_decref(o);
	return NULL;
}

void hf_run_end_wait(struct hf_run *run)
{
	char *burst = hf_run_burst_text(run->waiting);
	free(run->waiting);
	free(run->wait_path);
	run->waiting = burst;
	run->wait_path = NULL;
}
