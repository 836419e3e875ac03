/* test_store_park.c - parked runs in the state store (hf_park.h, SQLite):
 * a run stored parked by HF_W_INGEST and one parked by a step's write, the
 * due-time index (next_wake, count_waiting), waking what is due into the
 * disk backlog (loaded woken), load_waiting by path, and resume_run: once,
 * only at a wait_for, with the signal's body as the step's output, and
 * HF_RESUME_NOT_YET for a run not parked there yet. */
#include "hf_store.h"
#include "tap.h"
#include "tmpdir.h"
#include "wf_fixture.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct hf_workflow *wf;

static struct hf_event *new_event(void)
{
	struct hf_event *ev = hf_event_new();
	hf_id_new(ev->id, "ev");
	ev->method = hf_xstrdup("POST");
	ev->path = hf_xstrdup("/a");
	ev->query = json_object();
	ev->headers = json_pack("{s:s}", "content-type", "application/json");
	ev->body = hf_xstrdup("{}");
	ev->body_len = 2;
	ev->received_at = hf_now_ms();
	ev->skipped = json_array();
	return ev;
}

static void no_done(struct hf_write *w)
{
	(void)w;
}

/* Writes synchronously (a store without a writer thread); returns rc. */
static int submit(struct hf_store *s, struct hf_write *w)
{
	w->done = no_done;
	hf_store_submit(s, w);
	return w->rc;
}

struct call {
	int64_t now;
	const char *id;
	const char *output;
	int result;
};

static int wake_call(struct hf_store *s, void *arg)
{
	struct call *c = arg;
	c->result = hf_store_wake_due(s, c->now, 10);
	return c->result < 0 ? -1 : 0;
}

static int resume_call(struct hf_store *s, void *arg)
{
	struct call *c = arg;
	c->result = hf_store_resume_run(s, c->id, 0, c->output, c->now);
	return c->result < 0 ? -1 : 0;
}

static int call(struct hf_store *s, int (*fn)(struct hf_store *, void *),
		struct call *c)
{
	struct hf_write w = {.kind = HF_W_CALL, .call = fn, .call_arg = c};
	CHECK(submit(s, &w) == 0);
	return c->result;
}

struct got {
	struct hf_run *runs[8];
	size_t n;
};

static void collect(struct hf_run *run, void *arg)
{
	struct got *g = arg;
	if (g->n < 8)
		g->runs[g->n++] = run;
	else
		hf_run_free(run);
}

static void got_free(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		hf_run_free(g->runs[i]);
	g->n = 0;
}

static void park(struct hf_run *run, int64_t at, const char *path)
{
	run->status = HF_RUN_WAITING;
	run->wake_at = at;
	run->waiting =
	    hf_xstrdup(path ? "{\"for\":\"signal\",\"step\":\"w\"}"
			    : "{\"for\":\"debounce\",\"step\":null}");
	run->wait_path = path ? hf_xstrdup(path) : NULL;
}

int main(void)
{
	char path[300];
	struct hf_error err = {0};
	tmpdir_create("store_park");
	tmpdir_file(path, sizeof path, "state.db");
	wf = parse_workflow("name: p\non: {webhook: {path: /a}}\n"
			    "steps: [{id: w, wait_for: {path: /sig, timeout: "
			    "1h}}, {id: b, run: return 2}]\n");
	struct hf_store *s = hf_store_open(path, false, false, &err);
	CHECK(s != NULL);
	int64_t now = hf_now_ms();
	CHECK(hf_store_next_wake(s) == INT64_MAX);

	/* Ingest: due, later, not parked. */
	struct hf_event *ev = new_event();
	struct hf_run *runs[3] = {hf_run_new(ev, wf), hf_run_new(ev, wf),
				  hf_run_new(ev, wf)};
	park(runs[0], now - 5, NULL);
	park(runs[1], now + 3600000, NULL);
	bool dropped[3] = {0};
	struct hf_write w = {.kind = HF_W_INGEST,
			     .event = ev,
			     .runs = runs,
			     .nruns = 3,
			     .dropped = dropped,
			     .unclaimed = true};
	CHECK(submit(s, &w) == 0);
	CHECK(hf_store_count_waiting(s) == 2);
	CHECK(hf_store_next_wake(s) == now - 5);
	CHECK(hf_store_count_backlog(s) == 1); /* the one not parked */
	json_t *r0 = hf_store_run_json(s, runs[0]->id);
	CHECK(r0 && strcmp(json_string_value(json_object_get(r0, "status")),
			   "waiting") == 0);
	CHECK_STR(json_string_value(
		      json_object_get(json_object_get(r0, "waiting"), "for")),
		  "debounce");
	json_decref(r0);

	/* Wake what is due: the first, into the backlog, woken. */
	struct call c = {.now = now};
	CHECK(call(s, wake_call, &c) == 1);
	CHECK(call(s, wake_call, &c) == 0);
	CHECK(hf_store_count_waiting(s) == 1);
	CHECK(hf_store_count_backlog(s) == 2);
	struct got g = {.n = 0};
	CHECK(hf_store_load_backlog(s, NULL, 10, collect, &g) == 2);
	bool found = false;
	for (size_t i = 0; i < g.n; i++)
		if (strcmp(g.runs[i]->id, runs[0]->id) == 0)
			found = g.runs[i]->woken &&
				g.runs[i]->status == HF_RUN_QUEUED;
		else
			CHECK(!g.runs[i]->woken);
	CHECK(found);
	got_free(&g);

	/* A run that parks at its wait_for step (a step's write). */
	struct hf_run *run = runs[2];
	park(run, now + 3600000, "/sig");
	struct hf_write sw = {.kind = HF_W_STEP, .run = run};
	CHECK(submit(s, &sw) == 0);
	CHECK(hf_store_count_waiting(s) == 2);
	CHECK(hf_store_load_waiting(s, NULL, "/sig", NULL, 10, collect, &g) ==
	      1);
	CHECK(g.n == 1 && strcmp(g.runs[0]->id, run->id) == 0);
	got_free(&g);
	CHECK(hf_store_load_waiting(s, NULL, "/sig", run->id, 10, collect,
				    &g) == 0); /* the page after it */
	CHECK(hf_store_load_waiting(s, NULL, "/other", NULL, 10, collect, &g) ==
	      0);

	/* Resumed once, at a wait_for only: a run parked before it (a
	 * debounce) is not there yet; no such run, or a wait that is over
	 * (resumed, woken), is 0. */
	c = (struct call){.now = now, .id = runs[1]->id, .output = "1"};
	CHECK(call(s, resume_call, &c) == HF_RESUME_NOT_YET);
	c = (struct call){.now = now, .id = "run_nosuchrun", .output = "1"};
	CHECK(call(s, resume_call, &c) == 0);
	c = (struct call){.now = now, .id = run->id, .output = "{\"a\":1}"};
	CHECK(call(s, resume_call, &c) == 1);
	CHECK(call(s, resume_call, &c) == 0);
	CHECK(hf_store_count_waiting(s) == 1);
	CHECK(hf_store_load_backlog(s, NULL, 10, collect, &g) == 2);
	for (size_t i = 0; i < g.n; i++) {
		if (strcmp(g.runs[i]->id, run->id) != 0)
			continue;
		CHECK(g.runs[i]->woken && g.runs[i]->wake_at == now);
		json_t *out = json_object_get(g.runs[i]->outputs, "w");
		CHECK(json_integer_value(json_object_get(out, "a")) == 1);
	}
	got_free(&g);

	for (size_t i = 0; i < 3; i++)
		hf_run_free(runs[i]);
	hf_event_unref(ev);
	hf_store_close(s);
	hf_workflow_unref(wf);
	CHECK(tmpdir_remove() == 0);
	return tap_done();
}
