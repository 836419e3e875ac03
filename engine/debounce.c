/* debounce.c - bursts of events made one run (see hf_debounce.h): the
 * leader's row holds the burst ("waiting": {"for": "debounce", "until",
 * "step": null, "key", "first", "events": [EVENT_ID…]}); followers join it
 * through hf_store_debounce_extend, conditional on the leader still waiting.
 *
 * With PostgreSQL the decision is the state database's, inside the writer's
 * transaction (hf_store_debounce_find locks the key's row until the COMMIT,
 * then finds the open burst; a new leader is stored parked in the same
 * transaction): a burst is one run whichever nodes its events reach.
 *
 * Neighbours: worker.c (calls in at a run's first step), park (wakes the
 * leader), the store (active_runs finds the leader; run_waiting reads a
 * woken leader's burst back). */
#include "hf_debounce.h"
#include "hf_dispatch.h"
#include "hf_limits.h"
#include "hf_ops.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DEBOUNCE_SCAN_MAX HF_FLOW_SCAN_MAX

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

bool hf_debounce_applies(const struct hf_run *run)
{
	return run->wf && run->wf->debounce && run->next_step == 0 &&
	       run->step_attempt == 1 && !run->woken && !run->events &&
	       run->status != HF_RUN_WAITING;
}

void hf_debounce_lock(void)
{
	pthread_mutex_lock(&lock);
}

void hf_debounce_unlock(void)
{
	pthread_mutex_unlock(&lock);
}

static char *key_of(const struct hf_run *run)
{
	char ck[256];
	snprintf(ck, sizeof ck, "%s:debounce", run->wf->version);
	json_t *v = NULL;
	char *err = NULL, *out = NULL;
	struct hf_luart *rt = hf_dispatch_runtime();
	if (rt && hf_luart_eval_event(rt, ck, run->wf->debounce->key,
				      run->event, run->wf, &v, &err) == 0)
		out = json_is_string(v)
			  ? hf_xstrdup(json_string_value(v))
			  : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	else
		hf_log(HF_LOG_WARN, "run %s: debounce.key: %s (not debounced)",
		       run->id, err ? err : "no runtime");
	json_decref(v);
	free(err);
	return out;
}

struct find {
	const char *key;
	char leader[HF_ID_SIZE];
	json_t *waiting; /* the leader's */
};

static void find_leader(const struct hf_active_run *r, void *arg)
{
	struct find *f = arg;
	if (strcmp(r->status, "waiting") != 0 || !r->waiting)
		return;
	json_t *w = json_loads(r->waiting, 0, NULL);
	const char *fo = json_string_value(json_object_get(w, "for"));
	const char *k = json_string_value(json_object_get(w, "key"));
	if (fo && k && strcmp(fo, "debounce") == 0 && strcmp(k, f->key) == 0) {
		json_decref(f->waiting);
		f->waiting = json_incref(w);
		snprintf(f->leader, sizeof f->leader, "%s", r->id);
	}
	json_decref(w);
}

/* The burst's "waiting" text: due at wake. */
static char *waiting_text(const char *key, int64_t first, int64_t wake,
			  json_t *events /* taken */)
{
	char iso[32];
	hf_time_iso(wake, iso);
	json_t *o = json_pack("{s:s,s:s,s:n,s:s,s:I,s:o}", "for", "debounce",
			      "until", iso, "step", "key", key, "first",
			      (json_int_t)first, "events", events);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

struct extend {
	const char *id;
	int64_t wake;
	const char *waiting;
	int result;
};

static int extend_call(struct hf_store *s, void *arg)
{
	struct extend *e = arg;
	e->result = hf_store_debounce_extend(s, e->id, e->wake, e->waiting);
	return e->result < 0 ? -1 : 0;
}

/* The burst of f's leader with run's event added, due at *wake. */
static char *join_text(const struct hf_run *run, const struct find *f,
		       int64_t now, int64_t *wake_at)
{
	const struct hf_debounce *d = run->wf->debounce;
	int64_t first =
	    json_integer_value(json_object_get(f->waiting, "first"));
	json_t *events = json_deep_copy(json_object_get(f->waiting, "events"));
	if (!json_is_array(events)) {
		json_decref(events);
		events = json_array();
	}
	json_array_append_new(events, json_string(run->event->id));
	int64_t wake = now + d->period_ms;
	if (d->max_wait_ms > 0 && wake > first + d->max_wait_ms)
		wake = first + d->max_wait_ms;
	*wake_at = wake;
	return waiting_text(
	    json_string_value(json_object_get(f->waiting, "key")), first, wake,
	    events);
}

/* Adds run's event to the burst of f's leader: true when it did. */
static bool join(struct hf_store *s, struct hf_run *run, struct find *f,
		 int64_t now)
{
	int64_t wake = 0;
	char *text = join_text(run, f, now, &wake);
	struct extend e = {f->leader, wake, text, -1};
	struct hf_write w = {0};
	w.kind = HF_W_CALL;
	w.call = extend_call;
	w.call_arg = &e;
	bool joined = hf_ops_submit_wait(s, &w) == 0 && e.result == 1;
	free(text);
	return joined;
}

struct decide {
	struct hf_run *run;
	const char *key;
	int64_t now, wake;
	int rc; /* 1 led, 2 joined, -2 not shared (SQLite) */
	char leader[HF_ID_SIZE];
	char *waiting; /* led: the burst */
};

/* In the writer's transaction (HF_W_CALL), the key's row locked: joins the
 * open burst, else parks run as a new one's leader. Run again whole when
 * its batch is retried write by write. */
static int decide_call(struct hf_store *s, void *arg)
{
	struct decide *d = arg;
	struct hf_run *run = d->run;
	free(d->waiting);
	d->waiting = NULL;
	char *leader = NULL, *text = NULL;
	d->rc =
	    hf_store_debounce_find(s, run->wf->name, d->key, &leader, &text);
	if (d->rc < 0)
		return d->rc == -2 ? 0 : -1;
	int rc = 0;
	if (d->rc == 1) {
		struct find f = {.key = d->key};
		f.waiting = json_loads(text, 0, NULL);
		snprintf(f.leader, sizeof f.leader, "%s", leader);
		int64_t wake = 0;
		char *t = f.waiting ? join_text(run, &f, d->now, &wake) : NULL;
		int n = t ? hf_store_debounce_extend(s, leader, wake, t) : 0;
		free(t);
		json_decref(f.waiting);
		if (n < 0)
			rc = -1;
		else if (n == 1) {
			snprintf(d->leader, sizeof d->leader, "%s", leader);
			d->rc = 2;
		}
	}
	if (rc == 0 && d->rc != 2) { /* a new burst, led by run */
		d->wake = d->now + run->wf->debounce->period_ms;
		d->waiting = waiting_text(d->key, d->now, d->wake,
					  json_pack("[s]", run->event->id));
		rc = hf_store_debounce_lead(s, run->id, d->wake, d->waiting);
		d->rc = 1;
	}
	free(leader);
	free(text);
	return rc;
}

/* The decision shared through the state database: 1 led, 2 joined, -2
 * where the store leaves it to this process, -1 on error. */
static int decide_shared(struct hf_store *s, struct hf_run *run,
			 const char *key, int64_t now)
{
	struct decide d = {.run = run, .key = key, .now = now, .rc = -2};
	struct hf_write w = {0};
	w.kind = HF_W_CALL;
	w.call = decide_call;
	w.call_arg = &d;
	int ok = hf_ops_submit_wait(s, &w);
	if (ok == 0 && d.rc == 1) {
		free(run->waiting);
		run->waiting = d.waiting;
		d.waiting = NULL;
		free(run->wait_path);
		run->wait_path = NULL;
		run->wake_at = d.wake;
		run->status = HF_RUN_WAITING;
	} else if (ok == 0 && d.rc == 2) {
		run->status = HF_RUN_CANCELLED;
		free(run->error);
		run->error = hf_xasprintf("debounced into run %s", d.leader);
	}
	free(d.waiting);
	return ok == 0 ? d.rc : d.rc == -2 ? -2 : -1;
}

int hf_debounce_gate(struct hf_store *s, struct hf_run *run, int64_t now)
{
	const struct hf_debounce *d = run->wf->debounce;
	char *key = key_of(run);
	if (!key)
		return 0;
	int shared = decide_shared(s, run, key, now);
	if (shared == 1 || shared == 2) {
		free(key);
		return shared;
	}
	struct find f = {.key = key};
	hf_store_active_runs(s, run->wf->name, NULL, DEBOUNCE_SCAN_MAX,
			     find_leader, &f);
	int rc;
	if (f.waiting && join(s, run, &f, now)) {
		run->status = HF_RUN_CANCELLED;
		free(run->error);
		run->error = hf_xasprintf("debounced into run %s", f.leader);
		rc = 2;
	} else {
		/* A new burst, led by run. */
		int64_t wake = now + d->period_ms;
		json_t *events = json_pack("[s]", run->event->id);
		free(run->waiting);
		run->waiting = waiting_text(key, now, wake, events);
		free(run->wait_path);
		run->wait_path = NULL;
		run->wake_at = wake;
		run->status = HF_RUN_WAITING;
		rc = 1;
	}
	json_decref(f.waiting);
	free(key);
	return rc;
}

/* Arrival order: the time each event was received, then its id (ids sort
 * by creation). Two workers may take a burst's runs in either order. */
static int by_arrival(const void *a, const void *b)
{
	const struct hf_event *x = *(struct hf_event *const *)a;
	const struct hf_event *y = *(struct hf_event *const *)b;
	if (x->received_at != y->received_at)
		return x->received_at < y->received_at ? -1 : 1;
	return strcmp(x->id, y->id);
}

void hf_debounce_resolve(struct hf_store *s, struct hf_run *run)
{
	if (!run->wf || !run->wf->debounce || run->events ||
	    run->status == HF_RUN_WAITING || run->next_step >= run->wf->nsteps)
		return;
	char *text = hf_store_run_waiting(s, run->id);
	json_t *w = text ? json_loads(text, 0, NULL) : NULL;
	json_t *ids = json_object_get(w, "events");
	if (!json_is_array(ids)) {
		json_decref(w);
		free(text);
		return;
	}
	/* The burst kept in memory so that the run's next writes (and its
	 * next wait's "waiting": hf_run_waiting_text) keep it stored, whatever
	 * the run woke from (its burst, a throttle, a sleep). */
	free(run->waiting);
	run->waiting = hf_run_burst_text(text);
	free(text);
	size_t n = 0, i;
	struct hf_event **evs =
	    hf_xcalloc(json_array_size(ids) + 1, sizeof *evs);
	json_t *id;
	json_array_foreach(ids, i, id)
	{
		struct hf_event *ev =
		    hf_store_load_event(s, json_string_value(id));
		if (ev)
			evs[n++] = ev;
	}
	qsort(evs, n, sizeof *evs, by_arrival);
	run->events = json_array();
	for (i = 0; i < n; i++) {
		json_t *o = hf_event_to_lua_json(evs[i]);
		hf_event_json_params(o, evs[i], run->wf);
		json_array_append_new(run->events, o);
	}
	if (n) {
		hf_event_unref(run->event);
		run->event = hf_event_ref(evs[n - 1]);
	}
	for (i = 0; i < n; i++)
		hf_event_unref(evs[i]);
	free(evs);
	json_decref(w);
}
