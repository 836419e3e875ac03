/* test_store.c - the state database: ingest (with dedupe) and the admin API's
 * shapes of events and runs, step records, the runs list's filters, loading
 * pending runs with their outputs, retry of a failed run, prune, the
 * data_version check, and group commit with the writer thread. Each case opens
 * a database in a temporary directory. */
#include "hf_limits.h"
#include "hf_store.h"
#include "tap.h"
#include "tmpdir.h"
#include "wf_fixture.h"
#include "writer_gate.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dbpath[300];

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void remove_db(void)
{
	static const char *suffix[] = {"", "-wal", "-shm", "-journal"};
	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		char p[320];
		snprintf(p, sizeof p, "%s%s", dbpath, suffix[i]);
		unlink(p);
	}
}

static struct hf_store *open_store(bool writer)
{
	remove_db();
	struct hf_error err = {0};
	struct hf_store *s = hf_store_open(dbpath, false, writer, &err);
	if (!s) {
		fprintf(stderr, "open: %s\n", err.msg);
		exit(2);
	}
	return s;
}

static struct hf_workflow *wf_a, *wf_b;

static struct hf_event *new_event(const char *body)
{
	struct hf_event *ev = hf_event_new();
	hf_id_new(ev->id, "ev");
	ev->method = hf_xstrdup("POST");
	ev->path = hf_xstrdup("/a");
	ev->query = json_pack("{s:s}", "q", "1");
	ev->headers = json_pack("{s:s}", "content-type", "application/json");
	ev->body = hf_xstrdup(body);
	ev->body_len = strlen(body);
	ev->decoded = json_loads(body, 0, NULL);
	ev->received_at = hf_now_ms();
	ev->skipped = json_array();
	return ev;
}

static atomic_int ndone, nok;

static void on_done(struct hf_write *w)
{
	if (w->rc == 0)
		atomic_fetch_add(&nok, 1);
	atomic_fetch_add(&ndone, 1);
}

/* Ingests ev with runs synchronously (store opened without a writer). Returns
 * the write's rc; dropped and dup_of are copied out when given. */
static int ingest(struct hf_store *s, struct hf_event *ev, struct hf_run **runs,
		  size_t n, bool *dropped, char *dup_of)
{
	bool drop[8] = {0};
	struct hf_write w = {.kind = HF_W_INGEST, .done = on_done};
	w.event = ev;
	w.runs = runs;
	w.nruns = n;
	w.dropped = drop;
	int before = atomic_load(&ndone);
	hf_store_submit(s, &w);
	CHECK(atomic_load(&ndone) ==
	      before + 1); /* done() ran, synchronously */
	if (dropped)
		memcpy(dropped, drop, n * sizeof *drop);
	if (dup_of)
		memcpy(dup_of, w.dup_of, HF_ID_SIZE);
	return w.rc;
}

/* Records step i of run with result res (run's fields already updated). */
static int step(struct hf_store *s, struct hf_run *run, size_t i,
		struct hf_step_result *res, int attempts)
{
	struct hf_write w = {.kind = HF_W_STEP, .done = on_done};
	w.run = run;
	w.step_index = i;
	w.step_attempts = attempts;
	w.result = res;
	hf_store_submit(s, &w);
	return w.rc;
}

static void result(struct hf_step_result *res, enum hf_step_status st,
		   json_t *output, const char *error, int64_t at)
{
	memset(res, 0, sizeof *res);
	res->status = st;
	res->output = output ? output : json_null();
	res->error = error ? hf_xstrdup(error) : NULL;
	res->logs = json_pack("[{s:s,s:s,s:s}]", "level", "info", "message",
			      "hello", "at", "2026-01-01T00:00:00.000Z");
	res->started_at = at;
	res->finished_at = at;
}

/* An ingested run of wf finished with status st (run freed; id copied out). */
static void finished_run(struct hf_store *s, struct hf_workflow *wf,
			 enum hf_run_status st, char id[HF_ID_SIZE])
{
	struct hf_event *ev = new_event("{}");
	struct hf_run *run = hf_run_new(ev, wf);
	CHECK(ingest(s, ev, &run, 1, NULL, NULL) == 0);
	if (st != HF_RUN_QUEUED) {
		struct hf_step_result res;
		bool ok = st != HF_RUN_FAILED;
		result(&res, ok ? HF_STEP_SUCCEEDED : HF_STEP_FAILED,
		       ok ? json_pack("{s:i}", "x", 1) : NULL,
		       ok ? NULL : "boom", hf_now_ms());
		run->status = st;
		run->started_at = hf_now_ms();
		run->next_step = st == HF_RUN_RUNNING ? 1 : 0;
		if (st == HF_RUN_FAILED)
			run->error = hf_xstrdup("step a: boom");
		CHECK(step(s, run, 0, &res, 1) == 0);
		hf_step_result_release(&res);
	}
	memcpy(id, run->id, HF_ID_SIZE);
	hf_run_free(run);
	hf_event_unref(ev);
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void test_ingest(bool writer)
{
	struct hf_store *s = open_store(writer);
	struct hf_event *ev = new_event("{\"n\":1}");
	struct hf_run *runs[2] = {hf_run_new(ev, wf_a), hf_run_new(ev, wf_b)};
	if (!writer) {
		CHECK(ingest(s, ev, runs, 2, NULL, NULL) == 0);
	} else {
		bool drop[2];
		struct hf_write w = {.kind = HF_W_INGEST, .done = on_done};
		w.event = ev;
		w.runs = runs;
		w.nruns = 2;
		w.dropped = drop;
		int before = atomic_load(&ndone);
		hf_store_submit(s, &w);
		for (int i = 0; i < 1000 && atomic_load(&ndone) == before; i++)
			sleep_ms(5);
		CHECK(atomic_load(&ndone) == before + 1);
		CHECK(w.rc == 0);
	}

	json_t *e = hf_store_event_json(s, ev->id);
	CHECK(e != NULL);
	CHECK_STR(str(e, "id"), ev->id);
	CHECK_STR(str(e, "path"), "/a");
	CHECK_STR(str(e, "method"), "POST");
	CHECK_STR(str(e, "body"), "{\"n\":1}");
	CHECK_STR(str(json_object_get(e, "headers"), "content-type"),
		  "application/json");
	CHECK_STR(str(json_object_get(e, "query"), "q"), "1");
	CHECK(str(e, "received_at") && strlen(str(e, "received_at")) == 24);
	CHECK(json_is_array(json_object_get(e, "skipped")));
	json_t *eruns = json_object_get(e, "runs");
	CHECK(json_array_size(eruns) == 2);
	/* ids sort by creation: runs[0] was created first or in the same ms */
	for (size_t i = 0; i < 2; i++) {
		const char *id = json_string_value(json_array_get(eruns, i));
		CHECK(id && (strcmp(id, runs[0]->id) == 0 ||
			     strcmp(id, runs[1]->id) == 0));
	}
	json_decref(e);

	json_t *r = hf_store_run_json(s, runs[0]->id);
	CHECK(r != NULL);
	CHECK_STR(str(r, "id"), runs[0]->id);
	CHECK_STR(str(r, "workflow"), "alpha");
	CHECK_STR(str(r, "event"), ev->id);
	CHECK_STR(str(r, "status"), "queued");
	CHECK(json_integer_value(json_object_get(r, "attempt")) == 1);
	CHECK(str(r, "created_at") && strlen(str(r, "created_at")) == 24);
	CHECK(json_is_null(json_object_get(r, "finished_at")));
	CHECK(json_is_null(json_object_get(r, "error")));
	CHECK(json_is_array(json_object_get(r, "steps")));
	CHECK(json_array_size(json_object_get(r, "steps")) == 0);
	json_decref(r);
	r = hf_store_run_json(s, runs[1]->id);
	CHECK_STR(str(r, "workflow"), "beta");
	json_decref(r);

	CHECK(hf_store_run_json(s, "run_nope") == NULL);
	CHECK(hf_store_event_json(s, "ev_nope") == NULL);
	CHECK(hf_store_load_event(s, "ev_nope") == NULL);

	/* The event loads back for replay, body decoded again. */
	struct hf_event *back = hf_store_load_event(s, ev->id);
	CHECK(back != NULL);
	if (back) {
		CHECK_STR(back->id, ev->id);
		CHECK_STR(back->method, "POST");
		CHECK_STR(back->path, "/a");
		CHECK(back->body_len == 7);
		CHECK_STR(back->body, "{\"n\":1}");
		CHECK(back->received_at == ev->received_at);
		CHECK(json_equal(hf_event_body(back), ev->decoded));
		CHECK(json_equal(back->headers, ev->headers));
		CHECK(json_equal(back->query, ev->query));
	}
	hf_event_unref(back);

	hf_run_free(runs[0]);
	hf_run_free(runs[1]);
	hf_event_unref(ev);
	hf_store_close(s);
}

static void test_dedupe(void)
{
	struct hf_store *s = open_store(false);
	bool drop[2];
	char dup[HF_ID_SIZE];

	struct hf_event *e1 = new_event("{}");
	struct hf_run *r1 = hf_run_new(e1, wf_a);
	r1->dedupe_key = hf_xstrdup("k1");
	CHECK(ingest(s, e1, &r1, 1, drop, dup) == 0);
	CHECK(!drop[0]);
	CHECK_STR(dup, "");

	/* Same workflow and key: dropped, the original named, nothing stored */
	struct hf_event *e2 = new_event("{}");
	struct hf_run *r2 = hf_run_new(e2, wf_a);
	r2->dedupe_key = hf_xstrdup("k1");
	CHECK(ingest(s, e2, &r2, 1, drop, dup) == 0);
	CHECK(drop[0]);
	CHECK_STR(dup, e1->id);
	json_t *j = hf_store_event_json(s, e2->id);
	CHECK(j == NULL);
	json_decref(j);
	j = hf_store_run_json(s, r2->id);
	CHECK(j == NULL);
	json_decref(j);
	/* The duplicate is told in the event's skipped list. */
	json_t *sk = json_array_get(e2->skipped, 0);
	CHECK_STR(str(sk, "workflow"), "alpha");
	char want[128];
	snprintf(want, sizeof want, "duplicate of event %s", e1->id);
	CHECK_STR(str(sk, "reason"), want);

	/* Same key, another workflow: not a duplicate. Mixed: the event is
	 * stored with the new run only. */
	struct hf_event *e3 = new_event("{}");
	struct hf_run *r3[2] = {hf_run_new(e3, wf_a), hf_run_new(e3, wf_b)};
	r3[0]->dedupe_key = hf_xstrdup("k1");
	r3[1]->dedupe_key = hf_xstrdup("k1");
	CHECK(ingest(s, e3, r3, 2, drop, dup) == 0);
	CHECK(drop[0]);
	CHECK(!drop[1]);
	j = hf_store_event_json(s, e3->id);
	CHECK(j != NULL);
	CHECK(json_array_size(json_object_get(j, "runs")) == 1);
	CHECK_STR(
	    json_string_value(json_array_get(json_object_get(j, "runs"), 0)),
	    r3[1]->id);
	CHECK(json_array_size(json_object_get(j, "skipped")) == 1);
	json_decref(j);
	j = hf_store_run_json(s, r3[0]->id);
	CHECK(j == NULL);
	json_decref(j);

	/* No key: never a duplicate. */
	struct hf_event *e4 = new_event("{}");
	struct hf_run *r4 = hf_run_new(e4, wf_a);
	CHECK(ingest(s, e4, &r4, 1, drop, dup) == 0);
	CHECK(!drop[0]);
	j = hf_store_run_json(s, r4->id);
	CHECK(j != NULL);
	json_decref(j);

	hf_run_free(r1);
	hf_run_free(r2);
	hf_run_free(r3[0]);
	hf_run_free(r3[1]);
	hf_run_free(r4);
	hf_event_unref(e1);
	hf_event_unref(e2);
	hf_event_unref(e3);
	hf_event_unref(e4);
	hf_store_close(s);
}

static void test_steps(void)
{
	struct hf_store *s = open_store(false);
	struct hf_event *ev = new_event("{}");
	struct hf_run *run = hf_run_new(ev, wf_a);
	CHECK(ingest(s, ev, &run, 1, NULL, NULL) == 0);

	/* Step a succeeds on its second attempt: the run is running. */
	struct hf_step_result res;
	result(&res, HF_STEP_SUCCEEDED, json_pack("{s:i}", "x", 1), NULL,
	       hf_now_ms());
	run->status = HF_RUN_RUNNING;
	run->started_at = hf_now_ms();
	run->next_step = 1;
	CHECK(step(s, run, 0, &res, 2) == 0);
	hf_step_result_release(&res);
	json_t *r = hf_store_run_json(s, run->id);
	CHECK_STR(str(r, "status"), "running");
	CHECK(json_is_string(json_object_get(r, "started_at")));
	CHECK(json_is_null(json_object_get(r, "finished_at")));
	json_t *steps = json_object_get(r, "steps");
	CHECK(json_array_size(steps) == 1);
	json_t *st = json_array_get(steps, 0);
	CHECK_STR(str(st, "id"), "a");
	CHECK_STR(str(st, "status"), "succeeded");
	CHECK(json_integer_value(
		  json_object_get(json_object_get(st, "output"), "x")) == 1);
	CHECK(json_is_null(json_object_get(st, "error")));
	CHECK(json_integer_value(json_object_get(st, "attempts")) == 2);
	json_t *logs = json_object_get(st, "logs");
	CHECK(json_array_size(logs) == 1);
	CHECK_STR(str(json_array_get(logs, 0), "message"), "hello");
	CHECK(json_is_string(json_object_get(st, "started_at")));
	CHECK(json_is_string(json_object_get(st, "finished_at")));
	json_decref(r);

	/* Step b fails: so does the run. */
	result(&res, HF_STEP_FAILED, NULL, "b.lua:1: boom", hf_now_ms());
	run->status = HF_RUN_FAILED;
	run->error = hf_xstrdup("step b: boom");
	CHECK(step(s, run, 1, &res, 1) == 0);
	hf_step_result_release(&res);
	r = hf_store_run_json(s, run->id);
	CHECK_STR(str(r, "status"), "failed");
	CHECK_STR(str(r, "error"), "step b: boom");
	CHECK(json_is_string(json_object_get(r, "finished_at")));
	steps = json_object_get(r, "steps");
	CHECK(json_array_size(steps) == 2);
	st = json_array_get(steps, 1);
	CHECK_STR(str(st, "id"), "b");
	CHECK_STR(str(st, "status"), "failed");
	CHECK_STR(str(st, "error"), "b.lua:1: boom");
	CHECK(json_is_null(json_object_get(st, "output")));
	json_decref(r);

	/* Retry: queued again, attempt 2, error and finish cleared. */
	struct hf_error err = {0};
	CHECK(hf_store_retry_run(s, run->id, &err) == 0);
	r = hf_store_run_json(s, run->id);
	CHECK_STR(str(r, "status"), "queued");
	CHECK(json_integer_value(json_object_get(r, "attempt")) == 2);
	CHECK(json_is_null(json_object_get(r, "error")));
	CHECK(json_is_null(json_object_get(r, "finished_at")));
	CHECK(json_is_null(json_object_get(r, "started_at")));
	json_decref(r);
	/* Now queued, not failed: refused, as is an unknown run. */
	memset(&err, 0, sizeof err);
	CHECK(hf_store_retry_run(s, run->id, &err) == -1);
	CHECK(strstr(err.msg, "has not failed") != NULL);
	memset(&err, 0, sizeof err);
	CHECK(hf_store_retry_run(s, "run_nope", &err) == -1);
	CHECK(err.msg[0] != '\0');

	hf_run_free(run);
	hf_event_unref(ev);
	hf_store_close(s);
}

struct collected {
	struct hf_run *runs[16];
	size_t n;
};

static void collect(struct hf_run *run, void *arg)
{
	struct collected *c = arg;
	if (c->n < 16)
		c->runs[c->n++] = run;
	else
		hf_run_free(run);
}

static void collected_free(struct collected *c)
{
	for (size_t i = 0; i < c->n; i++)
		hf_run_free(c->runs[i]);
	c->n = 0;
}

static void test_pending(void)
{
	struct hf_store *s = open_store(false);
	char q1[HF_ID_SIZE], running[HF_ID_SIZE], done[HF_ID_SIZE],
	    failed[HF_ID_SIZE], q2[HF_ID_SIZE];
	finished_run(s, wf_a, HF_RUN_QUEUED, q1);
	finished_run(s, wf_b, HF_RUN_RUNNING, running);
	finished_run(s, wf_a, HF_RUN_SUCCEEDED, done);
	finished_run(s, wf_a, HF_RUN_FAILED, failed);
	finished_run(s, wf_b, HF_RUN_QUEUED, q2);

	struct hf_workflow *items[2] = {wf_a, wf_b};
	struct hf_workflow_set set = {items, 2, 1};
	struct collected c = {0};
	CHECK(hf_store_load_pending(s, &set, false, collect, &c) == 3);
	CHECK(c.n == 3);
	if (c.n == 3) {
		CHECK_STR(c.runs[0]->id, q1);
		CHECK_STR(c.runs[1]->id, running);
		CHECK_STR(c.runs[2]->id, q2);
		CHECK(c.runs[0]->wf == wf_a);
		CHECK(c.runs[1]->wf == wf_b);
		CHECK(c.runs[0]->status == HF_RUN_QUEUED);
		CHECK(c.runs[1]->status == HF_RUN_RUNNING);
		/* The running run resumes at step b with a's output. */
		CHECK(c.runs[1]->next_step == 1);
		CHECK(json_object_size(c.runs[1]->outputs) == 1);
		CHECK(json_integer_value(json_object_get(
			  json_object_get(c.runs[1]->outputs, "a"), "x")) == 1);
		CHECK(json_object_size(c.runs[0]->outputs) == 0);
		CHECK(c.runs[0]->event &&
		      strcmp(c.runs[0]->event->path, "/a") == 0);
	}
	collected_free(&c);

	/* Retry of the failed run: a CLI-style load (only unclaimed) picks it
	 * up with its succeeded steps' outputs, and only once. */
	struct hf_error err = {0};
	CHECK(hf_store_retry_run(s, failed, &err) == 0);
	CHECK(hf_store_load_pending(s, &set, true, collect, &c) == 1);
	CHECK(c.n == 1 && strcmp(c.runs[0]->id, failed) == 0);
	CHECK(c.n == 1 && c.runs[0]->attempt == 2);
	collected_free(&c);
	CHECK(hf_store_load_pending(s, &set, true, collect, &c) == 0);
	CHECK(c.n == 0);

	/* A run of a workflow no longer in the set (and whose version is
	 * stored) still loads, with the stored version. */
	struct hf_workflow *only_a[1] = {wf_a};
	struct hf_workflow_set set_a = {only_a, 1, 1};
	CHECK(hf_store_load_pending(s, &set_a, false, collect, &c) == 4);
	for (size_t i = 0; i < c.n; i++)
		if (strcmp(c.runs[i]->id, running) == 0) {
			CHECK(c.runs[i]->wf != NULL);
			CHECK(c.runs[i]->wf &&
			      strcmp(c.runs[i]->wf->name, "beta") == 0);
			CHECK(c.runs[i]->wf && strcmp(c.runs[i]->wf->version,
						      wf_b->version) == 0);
		}
	collected_free(&c);
	hf_store_close(s);
}

static size_t count_runs(struct hf_store *s, const char *wf, const char *status,
			 int limit, json_t **out)
{
	json_t *j = hf_store_runs_json(s, wf, status, limit, true);
	size_t n = json_array_size(json_object_get(j, "runs"));
	if (out)
		*out = j;
	else
		json_decref(j);
	return n;
}

static void test_runs_list(void)
{
	struct hf_store *s = open_store(false);
	/* Ids carry the creation ms: a pause between runs makes "newest
	 * first" well defined. */
	char ids[5][HF_ID_SIZE];
	finished_run(s, wf_a, HF_RUN_QUEUED, ids[0]);
	sleep_ms(3);
	finished_run(s, wf_b, HF_RUN_FAILED, ids[1]);
	sleep_ms(3);
	finished_run(s, wf_a, HF_RUN_FAILED, ids[2]);
	sleep_ms(3);
	finished_run(s, wf_a, HF_RUN_SUCCEEDED, ids[3]);
	sleep_ms(3);
	finished_run(s, wf_b, HF_RUN_QUEUED, ids[4]);

	json_t *j;
	CHECK(count_runs(s, NULL, NULL, 0, &j) == 5);
	json_t *list = json_object_get(j, "runs");
	for (size_t i = 0; i < 5; i++)
		CHECK_STR(str(json_array_get(list, i), "id"), ids[4 - i]);
	/* Each element is a full RUN, steps included. */
	json_t *f = json_array_get(list, 1);
	CHECK_STR(str(f, "status"), "succeeded");
	CHECK(json_array_size(json_object_get(f, "steps")) == 1);
	json_decref(j);

	CHECK(count_runs(s, "alpha", NULL, 0, &j) == 3);
	list = json_object_get(j, "runs");
	CHECK_STR(str(json_array_get(list, 0), "id"), ids[3]);
	CHECK_STR(str(json_array_get(list, 1), "id"), ids[2]);
	CHECK_STR(str(json_array_get(list, 2), "id"), ids[0]);
	json_decref(j);

	CHECK(count_runs(s, NULL, "failed", 0, &j) == 2);
	list = json_object_get(j, "runs");
	CHECK_STR(str(json_array_get(list, 0), "id"), ids[2]);
	CHECK_STR(str(json_array_get(list, 1), "id"), ids[1]);
	json_decref(j);

	CHECK(count_runs(s, "beta", "failed", 0, &j) == 1);
	CHECK_STR(str(json_array_get(json_object_get(j, "runs"), 0), "id"),
		  ids[1]);
	json_decref(j);

	CHECK(count_runs(s, NULL, NULL, 2, &j) == 2);
	list = json_object_get(j, "runs");
	CHECK_STR(str(json_array_get(list, 0), "id"), ids[4]);
	CHECK_STR(str(json_array_get(list, 1), "id"), ids[3]);
	json_decref(j);

	CHECK(count_runs(s, "gamma", NULL, 0, NULL) == 0);
	CHECK(count_runs(s, NULL, "running", 0, NULL) == 0);
	hf_store_close(s);
}

struct prune_arg {
	int64_t before;
	int result;
};

static int prune_call(struct hf_store *s, void *arg)
{
	struct prune_arg *a = arg;
	a->result = hf_store_prune(s, a->before, 1000);
	return a->result < 0 ? -1 : 0;
}

static void test_prune(void)
{
	struct hf_store *s = open_store(false);
	int64_t now = hf_now_ms(), old = now - 10LL * 24 * 3600 * 1000;

	/* An event and a run from ten days ago, finished then. */
	struct hf_event *ev = new_event("{}");
	snprintf(ev->id, sizeof ev->id, "ev_%012llx_0000000001",
		 (unsigned long long)old);
	ev->received_at = old;
	struct hf_run *run = hf_run_new(ev, wf_a);
	snprintf(run->id, sizeof run->id, "run_%012llx_0000000001",
		 (unsigned long long)old);
	run->created_at = old;
	run->dedupe_key = hf_xstrdup("old-key");
	CHECK(ingest(s, ev, &run, 1, NULL, NULL) == 0);
	struct hf_step_result res;
	result(&res, HF_STEP_SUCCEEDED, NULL, NULL, old);
	run->status = HF_RUN_SUCCEEDED;
	run->started_at = old;
	CHECK(step(s, run, 0, &res, 1) == 0);
	hf_step_result_release(&res);

	/* An old run still queued: kept, and so is its event. */
	struct hf_event *ev2 = new_event("{}");
	snprintf(ev2->id, sizeof ev2->id, "ev_%012llx_0000000002",
		 (unsigned long long)old);
	ev2->received_at = old;
	struct hf_run *run2 = hf_run_new(ev2, wf_a);
	snprintf(run2->id, sizeof run2->id, "run_%012llx_0000000002",
		 (unsigned long long)old);
	run2->created_at = old;
	CHECK(ingest(s, ev2, &run2, 1, NULL, NULL) == 0);

	/* Recent, finished: kept. */
	char recent[HF_ID_SIZE];
	finished_run(s, wf_a, HF_RUN_SUCCEEDED, recent);

	struct prune_arg a = {now - 24LL * 3600 * 1000, 0};
	struct hf_write w = {.kind = HF_W_CALL, .done = on_done};
	w.call = prune_call;
	w.call_arg = &a;
	hf_store_submit(s, &w);
	CHECK(w.rc == 0);
	/* step, run, event, dedupe row */
	CHECK(a.result == 4);

	json_t *j = hf_store_run_json(s, run->id);
	CHECK(j == NULL);
	json_decref(j);
	j = hf_store_event_json(s, ev->id);
	CHECK(j == NULL);
	json_decref(j);
	j = hf_store_run_json(s, run2->id);
	CHECK(j != NULL);
	json_decref(j);
	j = hf_store_event_json(s, ev2->id);
	CHECK(j != NULL);
	json_decref(j);
	j = hf_store_run_json(s, recent);
	CHECK(j != NULL);
	CHECK(j && json_array_size(json_object_get(j, "steps")) == 1);
	json_decref(j);

	/* Pruned again: nothing left to prune. */
	a.result = -1;
	hf_store_submit(s, &w);
	CHECK(w.rc == 0);
	CHECK(a.result == 0);

	hf_run_free(run);
	hf_run_free(run2);
	hf_event_unref(ev);
	hf_event_unref(ev2);
	hf_store_close(s);
}

/* data_version: a commit by another connection is seen once. */
static void test_changed(void)
{
	struct hf_store *s = open_store(false);
	struct hf_error err = {0};
	struct hf_store *other = hf_store_open(dbpath, false, false, &err);
	CHECK(other != NULL);
	if (!other) {
		hf_store_close(s);
		return;
	}
	CHECK(!hf_store_changed(s)); /* the first call only reads it */
	CHECK(!hf_store_changed(s));
	char id[HF_ID_SIZE];
	finished_run(other, wf_a, HF_RUN_QUEUED, id);
	CHECK(hf_store_changed(s));
	CHECK(!hf_store_changed(s));
	/* Its own commits do not count. */
	finished_run(s, wf_a, HF_RUN_QUEUED, id);
	CHECK(!hf_store_changed(s));
	hf_store_close(other);
	hf_store_close(s);
}

/* --- group commit --- */

#define GC_THREADS 4
#define GC_PER_THREAD 250

static bool wait_done(int n)
{
	for (int i = 0; i < 2000 && atomic_load(&ndone) < n; i++)
		sleep_ms(5);
	return atomic_load(&ndone) == n;
}

struct gc_item {
	struct hf_write w;
	struct hf_run *run;
	bool dropped;
};

struct gc_thread {
	struct hf_store *s;
	struct gc_item items[GC_PER_THREAD];
};

static void *gc_main(void *arg)
{
	struct gc_thread *t = arg;
	for (int i = 0; i < GC_PER_THREAD; i++) {
		struct gc_item *it = &t->items[i];
		struct hf_event *ev = new_event("{\"i\":1}");
		it->run = hf_run_new(ev, i % 2 ? wf_a : wf_b);
		hf_event_unref(ev); /* the run holds it */
		it->w.kind = HF_W_INGEST;
		it->w.done = on_done;
		it->w.event = it->run->event;
		it->w.runs = &it->run;
		it->w.nruns = 1;
		it->w.dropped = &it->dropped;
		hf_store_submit(t->s, &it->w);
	}
	return NULL;
}

static void test_group_commit(void)
{
	struct hf_store *s = open_store(true);
	atomic_store(&ndone, 0);
	atomic_store(&nok, 0);
	struct hf_write gate;
	gate_submit(s, &gate, on_done, NULL);

	static struct gc_thread threads[GC_THREADS];
	pthread_t tid[GC_THREADS];
	for (int i = 0; i < GC_THREADS; i++) {
		threads[i].s = s;
		CHECK(pthread_create(&tid[i], NULL, gc_main, &threads[i]) == 0);
	}
	for (int i = 0; i < GC_THREADS; i++)
		pthread_join(tid[i], NULL);
	gate_release();

	int total = GC_THREADS * GC_PER_THREAD + 1;
	CHECK(wait_done(total));
	CHECK(atomic_load(&nok) == total);
	CHECK(gate.rc == 0);

	struct hf_store_stats st;
	hf_store_stats(s, &st);
	CHECK(st.writes == (uint64_t)total);
	CHECK(st.write_errors == 0);
	CHECK(st.commits < st.writes);
	/* The gate's batch took the writes queued while it was applied
	 * (hf_writer_more) up to HF_WRITER_BATCH in all, the next batch the
	 * rest: 1,001 writes in two commits. */
	CHECK(total > HF_WRITER_BATCH && total <= 2 * HF_WRITER_BATCH);
	CHECK(st.commits == 2);

	CHECK(count_runs(s, NULL, NULL, 1000, NULL) ==
	      GC_THREADS * GC_PER_THREAD);
	CHECK(count_runs(s, "alpha", NULL, 1000, NULL) ==
	      GC_THREADS * (GC_PER_THREAD / 2));
	hf_store_close(s);
	for (int i = 0; i < GC_THREADS; i++)
		for (int j = 0; j < GC_PER_THREAD; j++) {
			CHECK(threads[i].items[j].w.rc == 0);
			CHECK(!threads[i].items[j].dropped);
			hf_run_free(threads[i].items[j].run);
		}
}

/* Close drains what was submitted. */
static void test_close_drains(void)
{
	struct hf_store *s = open_store(true);
	atomic_store(&ndone, 0);
	struct hf_event *ev[10];
	struct hf_run *run[10];
	struct hf_write w[10];
	bool drop[10];
	for (int i = 0; i < 10; i++) {
		ev[i] = new_event("{}");
		run[i] = hf_run_new(ev[i], wf_a);
		w[i] = (struct hf_write){.kind = HF_W_INGEST, .done = on_done};
		w[i].event = ev[i];
		w[i].runs = &run[i];
		w[i].nruns = 1;
		w[i].dropped = &drop[i];
		hf_store_submit(s, &w[i]);
	}
	hf_store_close(s);
	CHECK(atomic_load(&ndone) == 10);
	struct hf_error err = {0};
	s = hf_store_open(dbpath, false, false, &err);
	CHECK(s != NULL);
	if (s)
		CHECK(count_runs(s, NULL, NULL, 100, NULL) == 10);
	hf_store_close(s);
	for (int i = 0; i < 10; i++) {
		hf_run_free(run[i]);
		hf_event_unref(ev[i]);
	}
}

/* A write refused (not a fault of the database); arg: NULL or an int
 * counting the tries. */
static int fail_call(struct hf_store *s, void *arg)
{
	(void)s;
	if (arg)
		(*(int *)arg)++;
	return -1;
}

static void submit_ingest(struct hf_store *s, struct hf_write *w,
			  struct hf_event *ev, struct hf_run **run, bool *drop)
{
	*w = (struct hf_write){.kind = HF_W_INGEST, .done = on_done};
	w->event = ev;
	w->runs = run;
	w->nruns = 1;
	w->dropped = drop;
	hf_store_submit(s, w);
}

/* One bad write in a batch fails alone: the batch is rolled back and each
 * write applied again in a transaction of its own. */
static void test_batch_failure(void)
{
	struct hf_store *s = open_store(true);
	atomic_store(&ndone, 0);
	atomic_store(&nok, 0);
	struct hf_event *e0 = new_event("{}");
	struct hf_run *r0 = hf_run_new(e0, wf_a);
	r0->dedupe_key = hf_xstrdup("k");
	bool d0, d1, d2;
	struct hf_write w0, w1, w2, bad, gate;
	submit_ingest(s, &w0, e0, &r0, &d0);
	CHECK(wait_done(1));

	gate_submit(s, &gate, on_done, NULL);
	struct hf_event *e1 = new_event("{}"); /* a duplicate of e0 */
	struct hf_run *r1 = hf_run_new(e1, wf_a);
	r1->dedupe_key = hf_xstrdup("k");
	submit_ingest(s, &w1, e1, &r1, &d1);
	int tries = 0;
	bad = (struct hf_write){.kind = HF_W_CALL, .done = on_done};
	bad.call = fail_call;
	bad.call_arg = &tries;
	hf_store_submit(s, &bad);
	struct hf_event *e2 = new_event("{}");
	struct hf_run *r2 = hf_run_new(e2, wf_b);
	submit_ingest(s, &w2, e2, &r2, &d2);
	gate_release();
	CHECK(wait_done(5));

	CHECK(w0.rc == 0 && gate.rc == 0);
	CHECK(bad.rc < 0);
	CHECK(tries == 2); /* in the batch, then alone */
	CHECK(w1.rc == 0);
	CHECK(d1);
	CHECK_STR(w1.dup_of, e0->id);
	CHECK(w2.rc == 0);
	CHECK(!d2);
	json_t *j = hf_store_run_json(s, r2->id);
	CHECK(j != NULL);
	json_decref(j);
	j = hf_store_event_json(s, e1->id);
	CHECK(j == NULL);
	json_decref(j);
	struct hf_store_stats st;
	hf_store_stats(s, &st);
	CHECK(st.write_errors == 1);
	CHECK(st.writes == 4);
	/* The write applied again alone after the failed batch does not add
	 * its skip reason a second time. */
	CHECK(json_array_size(e1->skipped) == 1);

	hf_store_close(s);
	hf_run_free(r0);
	hf_run_free(r1);
	hf_run_free(r2);
	hf_event_unref(e0);
	hf_event_unref(e1);
	hf_event_unref(e2);
}

static int nop_call(struct hf_store *s, void *arg)
{
	(void)s;
	(void)arg;
	return 0;
}

/* A write that fails alone in its batch is tried once, and fails without
 * making the database unwritable; the next write commits. */
static void test_lone_failure(void)
{
	struct hf_store *s = open_store(true);
	atomic_store(&ndone, 0);
	atomic_store(&nok, 0);
	struct hf_write bad, next;
	int tries = 0;
	bad = (struct hf_write){.kind = HF_W_CALL, .done = on_done};
	bad.call = fail_call;
	bad.call_arg = &tries;
	hf_store_submit(s, &bad); /* nothing else queued: a batch alone */
	CHECK(wait_done(1));
	CHECK(bad.rc < 0);
	CHECK(tries == 1);
	char why[128] = "";
	CHECK(hf_store_writable(s, why, sizeof why));
	next = (struct hf_write){.kind = HF_W_CALL, .done = on_done};
	next.call = nop_call;
	hf_store_submit(s, &next);
	CHECK(wait_done(2));
	CHECK(next.rc == 0);
	struct hf_store_stats st;
	hf_store_stats(s, &st);
	CHECK(st.write_errors == 1);
	CHECK(st.writes == 1);
	hf_store_close(s);
}

/* After a server that did not stop cleanly, the next step of a running run
 * (not waiting for a retry) counts as a possible repeat; after a clean stop it
 * does not. */
static void test_unclean_restart(void)
{
	struct hf_store *s = open_store(true);
	struct hf_event *ev = new_event("{}");
	struct hf_run *runs[2] = {hf_run_new(ev, wf_a), hf_run_new(ev, wf_b)};
	runs[1]->due_at = hf_now_ms() + 3600 * 1000; /* waiting for a retry */
	bool drop[2];
	struct hf_write w = {.kind = HF_W_INGEST, .done = on_done};
	w.event = ev;
	w.runs = runs;
	w.nruns = 2;
	w.dropped = drop;
	hf_store_submit(s, &w);
	hf_store_close(s); /* no hf_store_set_clean_stop: a crash */
	CHECK(w.rc == 0);

	struct hf_workflow *items[2] = {wf_a, wf_b};
	struct hf_workflow_set set = {items, 2, 1};
	struct collected c = {0};
	struct hf_error err = {0};
	s = hf_store_open(dbpath, false, true, &err);
	CHECK(s != NULL);
	if (!s)
		goto out;
	CHECK(hf_store_load_pending(s, &set, false, collect, &c) == 2);
	CHECK(c.n == 2 && c.runs[0]->step_attempt == 2);
	CHECK(c.n == 2 && c.runs[1]->step_attempt == 1);
	collected_free(&c);
	hf_store_set_clean_stop(s);
	struct hf_write nop = {.kind = HF_W_CALL, .call = nop_call};
	hf_store_submit(s, &nop);
	hf_store_close(s);

	s = hf_store_open(dbpath, false, true, &err);
	CHECK(s != NULL);
	if (!s)
		goto out;
	CHECK(hf_store_load_pending(s, &set, false, collect, &c) == 2);
	CHECK(c.n == 2 && c.runs[0]->step_attempt == 1);
	collected_free(&c);
	hf_store_close(s);
out:
	hf_run_free(runs[0]);
	hf_run_free(runs[1]);
	hf_event_unref(ev);
}

int main(void)
{
	tmpdir_create("store");
	tmpdir_file(dbpath, sizeof dbpath, "state.db");
	wf_a = parse_workflow(
	    "name: alpha\n"
	    "on: {webhook: {path: /a}}\n"
	    "steps: [{id: a, run: return 1}, {id: b, run: return 2}]\n");
	wf_b = parse_workflow(
	    "name: beta\n"
	    "on: {webhook: {path: /a}}\n"
	    "steps: [{id: a, run: return 1}, {id: b, run: return 2}]\n");

	test_ingest(false);
	test_ingest(true);
	test_dedupe();
	test_steps();
	test_pending();
	test_runs_list();
	test_prune();
	test_changed();
	test_group_commit();
	test_close_drains();
	test_batch_failure();
	test_lone_failure();
	test_unclean_restart();

	hf_workflow_unref(wf_a);
	hf_workflow_unref(wf_b);
	CHECK(tmpdir_remove() == 0);
	return tap_done();
}
