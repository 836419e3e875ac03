/* test_pg_cluster.c - the PostgreSQL store's claim, lease and fencing SQL
 * against a real server (store_pg_node.c, store_pg_recover.c,
 * store_pg_apply.c), through the store's own interface: several nodes in
 * one process, each a store opened with hf_store_open_node on the database
 * named by HF_PG_URL (tests/unit/pg_unit.py starts a throwaway cluster and
 * gives each run of this binary a fresh database).
 *
 * Cases: claims hand each unclaimed run to one node (also two threads
 * claiming at once); a node whose heartbeat stops is reaped after its lease
 * (its epoch bumped, its runs back with step_attempt + 1, listed dead); a
 * node that lost its runs to another writes nothing late (its step write is
 * fenced, its run json unchanged, also when the step joins a batch already
 * begun) while the new holder's write lands, and
 * so is a step of a run it gave back and another node claimed; a
 * delivery is leased by one node at a time and the other's record of it is
 * refused; a lane's run waits for the earlier ones of its lane on any
 * node. */
#include "hf_store.h"
#include "tap.h"
#include "wf_fixture.h"
#include "writer_gate.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *url;
static struct hf_workflow *wf, *wf_lane;
static struct hf_workflow_set set;

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static struct hf_store *node(const char *name, int64_t lease_ms)
{
	struct hf_store_node n = {name, lease_ms, true};
	struct hf_error err = {0};
	struct hf_store *s = hf_store_open_node(url, false, &n, &err);
	if (!s) {
		fprintf(stderr, "open %s: %s\n", name, err.msg);
		exit(2);
	}
	return s;
}

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void done_cb(struct hf_write *w)
{
	struct waiter *wt = w->ctx;
	pthread_mutex_lock(&wt->lock);
	wt->done = true;
	pthread_cond_signal(&wt->cond);
	pthread_mutex_unlock(&wt->lock);
}

static void wait_for(struct waiter *wt)
{
	pthread_mutex_lock(&wt->lock);
	while (!wt->done)
		pthread_cond_wait(&wt->cond, &wt->lock);
	pthread_mutex_unlock(&wt->lock);
}

/* Submits w to s's writer thread and waits for its done(): its rc. */
static int submit_wait(struct hf_store *s, struct hf_write *w)
{
	struct waiter wt = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			    false};
	w->done = done_cb;
	w->ctx = &wt;
	hf_store_submit(s, w);
	wait_for(&wt);
	return w->rc;
}

static struct hf_event *new_event(void)
{
	struct hf_event *ev = hf_event_new();
	hf_id_new(ev->id, "ev");
	ev->method = hf_xstrdup("POST");
	ev->path = hf_xstrdup("/a");
	ev->query = json_object();
	ev->headers = json_object();
	ev->body = hf_xstrdup("{}");
	ev->body_len = 2;
	ev->decoded = json_object();
	ev->received_at = hf_now_ms();
	ev->skipped = json_array();
	return ev;
}

/* Ingests one run of w on s (claimed by s, or unclaimed: the backlog). The
 * run is returned (the caller frees it); its id in id. */
static struct hf_run *ingest(struct hf_store *s, struct hf_workflow *w,
			     bool unclaimed, const char *lane)
{
	struct hf_event *ev = new_event();
	struct hf_run *run = hf_run_new(ev, w);
	if (lane)
		run->lane = hf_xstrdup(lane);
	bool dropped = false;
	struct hf_write wr = {.kind = HF_W_INGEST};
	wr.event = ev;
	wr.runs = &run;
	wr.nruns = 1;
	wr.dropped = &dropped;
	wr.unclaimed = unclaimed;
	CHECK(submit_wait(s, &wr) == 0);
	hf_event_unref(ev);
	return run;
}

/* A step's write and its result (succeeded, output 1). */
struct step_write {
	struct hf_write w;
	struct hf_step_result res;
};

/* sw for step i of run (the run advanced as the worker would). */
static void step_init(struct step_write *sw, struct hf_run *run, size_t i,
		      struct hf_emit *emit)
{
	*sw = (struct step_write){.w = {.kind = HF_W_STEP}};
	sw->res.status = HF_STEP_SUCCEEDED;
	sw->res.output = json_integer(1);
	sw->res.logs = json_array();
	sw->res.started_at = sw->res.finished_at = hf_now_ms();
	sw->res.emits = emit;
	sw->res.nemits = emit ? 1 : 0;
	run->status =
	    i + 1 == run->wf->nsteps ? HF_RUN_SUCCEEDED : HF_RUN_RUNNING;
	run->next_step = i + 1;
	run->started_at = sw->res.started_at;
	sw->w.run = run;
	sw->w.step_index = i;
	sw->w.step_attempts = 1;
	sw->w.result = &sw->res;
}

static void step_release(struct step_write *sw)
{
	json_decref(sw->res.output);
	json_decref(sw->res.logs);
}

/* Step i of run written by s: the write's rc, with *fenced. */
static int step(struct hf_store *s, struct hf_run *run, size_t i,
		struct hf_emit *emit, bool *fenced)
{
	struct step_write sw;
	step_init(&sw, run, i, emit);
	int rc = submit_wait(s, &sw.w);
	*fenced = sw.w.fenced;
	step_release(&sw);
	return rc;
}

struct claimed {
	pthread_mutex_t lock;
	char ids[256][HF_ID_SIZE];
	int n;
};

static void collect(struct hf_run *run, void *arg)
{
	struct claimed *c = arg;
	pthread_mutex_lock(&c->lock);
	if (c->n < 256)
		snprintf(c->ids[c->n++], HF_ID_SIZE, "%s", run->id);
	pthread_mutex_unlock(&c->lock);
	hf_run_free(run);
}

static int claim(struct hf_store *s, int limit, struct claimed *c)
{
	return hf_store_claim(s, &set, limit, collect, c);
}

static bool unique(const struct claimed *c)
{
	for (int i = 0; i < c->n; i++)
		for (int j = i + 1; j < c->n; j++)
			if (strcmp(c->ids[i], c->ids[j]) == 0)
				return false;
	return true;
}

static void test_claims(struct hf_store *a, struct hf_store *b)
{
	for (int i = 0; i < 10; i++)
		hf_run_free(ingest(a, wf, true, NULL));
	struct claimed c = {PTHREAD_MUTEX_INITIALIZER};
	CHECK(claim(a, 4, &c) == 4);
	CHECK(claim(b, 100, &c) == 6); /* not the four a holds */
	CHECK(claim(a, 100, &c) == 0);
	CHECK(c.n == 10 && unique(&c));
}

struct racer {
	struct hf_store *s;
	struct claimed *c;
	int got;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	int n;
	while ((n = claim(r->s, 3, r->c)) > 0)
		r->got += n;
	return NULL;
}

static void test_concurrent_claims(struct hf_store *a, struct hf_store *b)
{
	for (int i = 0; i < 60; i++)
		hf_run_free(ingest(a, wf, true, NULL));
	struct claimed c = {PTHREAD_MUTEX_INITIALIZER};
	struct racer ra = {a, &c, 0}, rb = {b, &c, 0};
	pthread_t ta, tb;
	pthread_create(&ta, NULL, race, &ra);
	pthread_create(&tb, NULL, race, &rb);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK(ra.got + rb.got == 60);
	CHECK(c.n == 60 && unique(&c)); /* SKIP LOCKED: each run once */
}

/* The node named name in /api/nodes' shape, with a reference; NULL when
 * missing. */
static json_t *listed(struct hf_store *s, const char *name)
{
	json_t *all = hf_store_nodes_json(s), *n, *found = NULL;
	size_t i;
	json_array_foreach(json_object_get(all, "nodes"), i, n)
	{
		const char *nm = json_string_value(json_object_get(n, "name"));
		if (nm && strcmp(nm, name) == 0)
			found = json_incref(n);
	}
	json_decref(all);
	return found;
}

static int run_step_attempts(struct hf_store *s, const char *run_id)
{
	json_t *r = hf_store_run_json(s, run_id);
	int n = r ? (int)json_array_size(json_object_get(r, "steps")) : -1;
	json_decref(r);
	return n;
}

static void test_lease_and_reaping(struct hf_store *b)
{
	struct hf_store *gone = node("gone", 300);
	struct hf_run *run = ingest(gone, wf, false, NULL);
	char id[HF_ID_SIZE];
	snprintf(id, sizeof id, "%s", run->id);
	hf_run_free(run);
	json_t *n = listed(b, "gone");
	CHECK(n && json_is_true(json_object_get(n, "alive")));
	json_decref(n);
	/* Closed without a clean stop: its heartbeat stops, its run stays
	 * claimed, as if it was killed. */
	hf_store_close(gone);
	struct claimed c = {PTHREAD_MUTEX_INITIALIZER};
	int64_t deadline = hf_mono_ms() + 10000;
	while (c.n == 0 && hf_mono_ms() < deadline) {
		claim(b, 10, &c);
		sleep_ms(50);
	}
	CHECK(c.n == 1 && strcmp(c.ids[0], id) == 0);
	n = listed(b, "gone");
	CHECK(n && json_is_false(json_object_get(n, "alive")));
	CHECK(n && json_integer_value(json_object_get(n, "epoch")) == 2);
	json_decref(n);
}

static void keep(struct hf_run *run, void *arg)
{
	struct hf_run **out = arg;
	if (!*out)
		*out = run;
	else
		hf_run_free(run);
}

/* A node named name (*old) with one run (*run), then a second node of the
 * same name, returned, which takes the run over (its copy in *mine). */
static struct hf_store *heir_of(const char *name, struct hf_store **old,
				struct hf_run **run, struct hf_run **mine)
{
	*old = node(name, 15000);
	*run = ingest(*old, wf, false, NULL);
	struct hf_store *heir = node(name, 15000);
	*mine = NULL;
	CHECK(hf_store_load_pending(heir, &set, false, keep, mine) == 1);
	return heir;
}

/* The same name starts again: the old node is gone for the database (its
 * epoch bumped) and its runs are the new one's. The old node's late step
 * writes nothing; the heir's lands. */
static void test_heir_writes(void)
{
	struct hf_store *old;
	struct hf_run *run, *mine;
	struct hf_store *heir = heir_of("heir", &old, &run, &mine);
	CHECK(mine && strcmp(mine->id, run->id) == 0);
	/* A possible repeat: the old node never stopped cleanly. */
	CHECK(mine && mine->step_attempt == 2);
	bool fenced = true;
	if (mine) {
		CHECK(step(heir, mine, 0, NULL, &fenced) == 0);
		CHECK(!fenced);
		CHECK(run_step_attempts(heir, mine->id) == 1);
		CHECK(hf_store_holds(heir, mine));
		hf_run_free(mine);
	}
	CHECK(step(old, run, 1, NULL, &fenced) == 0 && fenced);
	CHECK(run_step_attempts(heir, run->id) == 1);
	hf_run_free(run);
	hf_store_close(old);
	hf_store_close(heir);
}

/* The same, with the old node's late step joining a batch that began with
 * no step in it (hf_writer_more, while a maintenance call applies): the
 * batch's fence is taken before the step applies, and the step writes
 * nothing. The two writes are one commit. */
static void test_late_step_joins_a_batch(void)
{
	struct hf_store *old;
	struct hf_run *run, *mine;
	struct hf_store *heir = heir_of("late", &old, &run, &mine);
	hf_run_free(mine);
	struct hf_store_stats before, after;
	hf_store_stats(old, &before);
	struct waiter gw = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			    false},
		      sww = gw;
	struct hf_write gate;
	gate_submit(old, &gate, done_cb, &gw);
	struct step_write sw;
	step_init(&sw, run, 0, NULL);
	sw.w.done = done_cb;
	sw.w.ctx = &sww;
	hf_store_submit(old, &sw.w);
	gate_release();
	wait_for(&gw);
	wait_for(&sww);
	hf_store_stats(old, &after);
	CHECK(gate.rc == 0);
	CHECK(sw.w.rc == 0 && sw.w.fenced);
	CHECK(after.commits == before.commits + 1);
	CHECK(run_step_attempts(heir, run->id) == 0);
	step_release(&sw);
	hf_run_free(run);
	hf_store_close(old);
	hf_store_close(heir);
}

/* A run this node gave back (release) and another claimed: this node's
 * step for it is refused, row by row, while its epoch is current. */
static void test_released_run_is_fenced(struct hf_store *a, struct hf_store *b)
{
	struct hf_run *run = ingest(a, wf, false, NULL);
	hf_store_release(a, run->id);
	struct claimed c = {PTHREAD_MUTEX_INITIALIZER};
	CHECK(claim(b, 10, &c) == 1 && strcmp(c.ids[0], run->id) == 0);
	bool fenced = false;
	CHECK(step(a, run, 0, NULL, &fenced) == 0 && fenced);
	CHECK(run_step_attempts(b, run->id) == 0);
	hf_run_free(run);
}

static void test_delivery_lease(struct hf_store *a, struct hf_store *b)
{
	struct hf_run *run = ingest(a, wf, false, NULL);
	struct hf_emit e = {0};
	hf_id_new(e.id, "dl");
	e.url = "http://127.0.0.1:9/x";
	e.payload = "{}";
	e.attempts = 3;
	e.timeout_ms = 1000;
	bool fenced = true;
	CHECK(step(a, run, 0, &e, &fenced) == 0 && !fenced);
	hf_run_free(run);
	const char *ids[] = {e.id};
	bool got_a = false, got_b = true;
	CHECK(hf_store_lease_deliveries(a, ids, 1, &got_a) == 0 && got_a);
	CHECK(hf_store_lease_deliveries(b, ids, 1, &got_b) == 0 && !got_b);
	/* b's record of an attempt it was not leased is refused. */
	struct hf_write w = {.kind = HF_W_DELIVERY};
	snprintf(w.delivery_id, sizeof w.delivery_id, "%s", e.id);
	w.http_status = 200;
	w.attempts = 1;
	w.attempt_at = hf_now_ms();
	w.delivery_status = "delivered";
	w.next_at = hf_now_ms();
	CHECK(submit_wait(b, &w) == 0 && w.fenced);
	json_t *d = hf_store_delivery_json(a, e.id);
	CHECK_STR(json_string_value(json_object_get(d, "status")), "pending");
	json_decref(d);
	/* a's own record lands. */
	struct hf_write w2 = w;
	w2.fenced = false;
	w2.next = NULL;
	CHECK(submit_wait(a, &w2) == 0 && !w2.fenced);
	d = hf_store_delivery_json(a, e.id);
	CHECK_STR(json_string_value(json_object_get(d, "status")), "delivered");
	json_decref(d);
}

static void test_lanes(struct hf_store *a, struct hf_store *b)
{
	struct hf_run *first = ingest(a, wf_lane, false, "k");
	struct hf_run *second = ingest(b, wf_lane, false, "k");
	struct hf_run *other = ingest(b, wf_lane, false, "other");
	int64_t s1 = 0, s2 = 0, s3 = 0;
	CHECK(hf_store_lane_ready(a, first, 1, &s1) == 1);
	CHECK(hf_store_lane_ready(b, second, 1, &s2) == 0); /* first is a's */
	CHECK(s1 > 0 && s2 > s1); /* each run's place in the lane */
	CHECK(hf_store_lane_ready(b, second, 2, &s2) == 1);
	CHECK(hf_store_lane_ready(b, other, 1, &s3) == 1);
	bool fenced = true;
	CHECK(step(a, first, 0, NULL, &fenced) == 0 && !fenced);
	CHECK(hf_store_lane_ready(b, second, 1, &s2) == 1); /* first ended */
	hf_run_free(first);
	hf_run_free(second);
	hf_run_free(other);
}

int main(void)
{
	url = getenv("HF_PG_URL");
	if (!url || !*url) {
		fprintf(stderr, "HF_PG_URL: a database for the test (run "
				"through tests/unit/pg_unit.py)\n");
		return 2;
	}
	wf = parse_workflow("name: alpha\n"
			    "on: {webhook: {path: /a}}\n"
			    "steps: [{id: a, run: return 1}, {id: b, run: "
			    "return 2}]\n");
	wf_lane = parse_workflow("name: lane\n"
				 "on: {webhook: {path: /l}}\n"
				 "concurrency: {key: event.body.k, max: 1}\n"
				 "steps: [{id: a, run: return 1}]\n");
	set.items = &wf;
	set.n = 1;
	set.refs = 1;
	struct hf_store *a = node("a", 15000), *b = node("b", 15000);
	test_claims(a, b);
	test_concurrent_claims(a, b);
	test_lease_and_reaping(b);
	test_heir_writes();
	test_late_step_joins_a_batch();
	test_released_run_is_fenced(a, b);
	test_delivery_lease(a, b);
	test_lanes(a, b);
	hf_store_set_clean_stop(a);
	hf_store_set_clean_stop(b);
	hf_store_close(a);
	hf_store_close(b);
	hf_workflow_unref(wf);
	hf_workflow_unref(wf_lane);
	return tap_done();
}
