/* test_scheduler.c - the in-memory run queue: FIFO order, runs waiting for
 * their due time, per-key concurrency lanes (max 1 and 2, arrival order kept,
 * other keys in parallel; a run waiting on the lane's runs elsewhere passing
 * its slot to an earlier one), depth, stop waking a blocked take, timers, and
 * destroy freeing whatever is still queued. Waits are bounded loops that
 * assert outcomes and order, never durations. */
#include "hf_sched.h"
#include "tap.h"
#include "wf_fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Waits (at most 5 s) until the scheduler has n ready runs. */
static bool wait_ready(struct hf_sched *s, size_t n)
{
	for (int i = 0; i < 1000; i++) {
		if (hf_sched_ready(s) >= n)
			return true;
		sleep_ms(5);
	}
	return hf_sched_ready(s) >= n;
}

static struct hf_event *new_event(void)
{
	struct hf_event *ev = hf_event_new();
	hf_id_new(ev->id, "ev");
	ev->method = hf_xstrdup("POST");
	ev->path = hf_xstrdup("/a");
	ev->headers = json_object();
	ev->received_at = hf_now_ms();
	return ev;
}

static struct hf_run *new_run(struct hf_event *ev, struct hf_workflow *wf,
			      const char *lane)
{
	struct hf_run *run = hf_run_new(ev, wf);
	run->lane = lane ? hf_xstrdup(lane) : NULL;
	return run;
}

/* A worker's end of a run. */
static void finish(struct hf_sched *s, struct hf_run *run)
{
	if (!run)
		return;
	hf_sched_release(s, run);
	hf_run_free(run);
}

static struct hf_workflow *wf_plain, *wf_lane1, *wf_lane2, *wf_lane1b;
static struct hf_event *ev;

static void test_fifo(void)
{
	struct hf_sched *s = hf_sched_create();
	CHECK(s != NULL);
	struct hf_run *r[4];
	for (int i = 0; i < 4; i++) {
		r[i] = new_run(ev, wf_plain, NULL);
		hf_sched_push(s, r[i]);
	}
	CHECK(hf_sched_ready(s) == 4);
	CHECK(hf_sched_depth(s) == 4);
	for (int i = 0; i < 4; i++) {
		struct hf_run *got = hf_sched_take(s);
		CHECK(got == r[i]);
		finish(s, got);
	}
	CHECK(hf_sched_ready(s) == 0);
	CHECK(hf_sched_depth(s) == 0);
	hf_sched_destroy(s);
}

static atomic_int room_calls;

static void on_room(void *arg)
{
	(void)arg;
	atomic_fetch_add(&room_calls, 1);
}

/* The window: slots admitted before the push, taken back, a list pushed in
 * order under one lock (lanes too), the room callback at the low mark. */
static void test_admit_and_list(void)
{
	struct hf_sched *s = hf_sched_create();
	CHECK(hf_sched_admit(s, 3, 4));
	CHECK(!hf_sched_admit(s, 2, 4)); /* 5 > 4 */
	CHECK(hf_sched_admit(s, 1, 4));
	CHECK(hf_sched_admit(s, 10, 0)); /* no limit */
	CHECK(hf_sched_depth(s) == 14);
	hf_sched_unadmit(s, 10);
	CHECK(hf_sched_depth(s) == 4);
	hf_sched_on_room(s, 2, on_room, NULL);
	struct hf_run *r[4], *list = NULL, **tail = &list;
	for (int i = 0; i < 4; i++) {
		r[i] = new_run(ev, wf_lane1b, "k");
		r[i]->admitted = true; /* counted by the admit above */
		*tail = r[i];
		tail = &r[i]->next;
	}
	hf_sched_push_list(s, list);
	CHECK(hf_sched_depth(s) == 4);
	CHECK(hf_sched_ready(s) == 1); /* one lane, max 1 */
	for (int i = 0; i < 4; i++) {
		struct hf_run *got = hf_sched_take(s);
		CHECK(got == r[i]);
		finish(s, got);
	}
	CHECK(hf_sched_depth(s) == 0);
	CHECK(atomic_load(&room_calls) == 1); /* 3 -> 2 only */
	hf_sched_on_room(s, 0, NULL, NULL);
	hf_sched_destroy(s);
}

static void test_due(void)
{
	struct hf_sched *s = hf_sched_create();
	struct hf_run *later = new_run(ev, wf_plain, NULL);
	later->due_at = hf_now_ms() + 50;
	hf_sched_push(s, later);
	struct hf_run *now = new_run(ev, wf_plain, NULL);
	hf_sched_push(s, now);
	/* Pushed first, but not due: the run behind it goes first. */
	CHECK(hf_sched_depth(s) == 2);
	struct hf_run *got = hf_sched_take(s);
	CHECK(got == now);
	finish(s, got);
	/* Then it becomes ready, and not before its due time. */
	CHECK(wait_ready(s, 1));
	got = hf_sched_take(s);
	CHECK(got == later);
	CHECK(got && hf_now_ms() >= got->due_at);
	finish(s, got);

	/* Several delayed runs come out in due order, not push order. */
	int64_t base = hf_now_ms();
	struct hf_run *d[3];
	int64_t offs[3] = {90, 30, 60};
	for (int i = 0; i < 3; i++) {
		d[i] = new_run(ev, wf_plain, NULL);
		d[i]->due_at = base + offs[i];
		hf_sched_push(s, d[i]);
	}
	struct hf_run *want[3] = {d[1], d[2], d[0]};
	for (int i = 0; i < 3; i++) {
		CHECK(wait_ready(s, 1));
		got = hf_sched_take(s);
		CHECK(got == want[i]);
		CHECK(got && hf_now_ms() >= got->due_at);
		finish(s, got);
	}
	CHECK(hf_sched_depth(s) == 0);
	hf_sched_destroy(s);
}

static void test_lane_max1(void)
{
	struct hf_sched *s = hf_sched_create();
	struct hf_run *r[5];
	for (int i = 0; i < 5; i++) {
		r[i] = new_run(ev, wf_lane1, "k");
		hf_sched_push(s, r[i]);
	}
	/* Only the first holds the lane's slot; all five count. */
	CHECK(hf_sched_ready(s) == 1);
	CHECK(hf_sched_depth(s) == 5);
	struct hf_run *got = hf_sched_take(s);
	CHECK(got == r[0]);
	CHECK(got && got->in_lane);
	CHECK(hf_sched_ready(s) == 0);

	/* Another key of the same workflow, and the same key of another
	 * workflow, proceed while "k" is busy. */
	struct hf_run *other = new_run(ev, wf_lane1, "other");
	struct hf_run *otherwf = new_run(ev, wf_lane1b, "k");
	hf_sched_push(s, other);
	hf_sched_push(s, otherwf);
	CHECK(hf_sched_ready(s) == 2);
	CHECK(hf_sched_depth(s) == 7);
	struct hf_run *o1 = hf_sched_take(s);
	struct hf_run *o2 = hf_sched_take(s);
	CHECK(o1 == other);
	CHECK(o2 == otherwf);
	CHECK(hf_sched_ready(s) == 0);

	/* Each release admits the next of "k", in arrival order. */
	for (int i = 1; i < 5; i++) {
		CHECK(hf_sched_ready(s) == 0);
		finish(s, got);
		CHECK(hf_sched_ready(s) == 1);
		got = hf_sched_take(s);
		CHECK(got == r[i]);
	}
	CHECK(hf_sched_depth(s) == 3);
	finish(s, got);
	CHECK(hf_sched_depth(s) == 2);
	CHECK(hf_sched_ready(s) == 0);
	finish(s, o1);
	finish(s, o2);
	CHECK(hf_sched_depth(s) == 0);

	/* The lane was dropped when idle: a new run of "k" goes straight in. */
	struct hf_run *again = new_run(ev, wf_lane1, "k");
	hf_sched_push(s, again);
	CHECK(hf_sched_ready(s) == 1);
	got = hf_sched_take(s);
	CHECK(got == again);
	finish(s, got);
	hf_sched_destroy(s);
}

static void test_lane_max2(void)
{
	struct hf_sched *s = hf_sched_create();
	struct hf_run *r[3];
	for (int i = 0; i < 3; i++) {
		r[i] = new_run(ev, wf_lane2, "k");
		hf_sched_push(s, r[i]);
	}
	CHECK(hf_sched_ready(s) == 2);
	CHECK(hf_sched_depth(s) == 3);
	struct hf_run *a = hf_sched_take(s);
	struct hf_run *b = hf_sched_take(s);
	CHECK(a == r[0]);
	CHECK(b == r[1]);
	CHECK(hf_sched_ready(s) == 0);
	finish(s, b);
	CHECK(hf_sched_depth(s) == 2);
	CHECK(hf_sched_ready(s) == 1);
	struct hf_run *c = hf_sched_take(s);
	CHECK(c == r[2]);
	finish(s, a);
	finish(s, c);
	CHECK(hf_sched_depth(s) == 0);
	hf_sched_destroy(s);
}

/* A run waiting in its lane with a future due time (a retry's) is admitted on
 * release but is still not taken before its time. */
static void test_lane_due(void)
{
	struct hf_sched *s = hf_sched_create();
	struct hf_run *first = new_run(ev, wf_lane1, "k");
	struct hf_run *second = new_run(ev, wf_lane1, "k");
	second->due_at = hf_now_ms() + 50;
	hf_sched_push(s, first);
	hf_sched_push(s, second);
	struct hf_run *got = hf_sched_take(s);
	CHECK(got == first);
	finish(s, got);
	CHECK(hf_sched_depth(s) == 1);
	CHECK(wait_ready(s, 1));
	got = hf_sched_take(s);
	CHECK(got == second);
	CHECK(got && hf_now_ms() >= got->due_at);
	finish(s, got);
	hf_sched_destroy(s);
}

/* A run holding its lane's slot but waiting on the lane's runs elsewhere
 * (hf_sched_lane_wait) passes the slot to a run waiting here that may come
 * before it (lane_seq unknown, or lower) and waits in lane_seq order; it keeps
 * the slot when none may. */
static void test_lane_wait(void)
{
	struct hf_sched *s = hf_sched_create();
	struct hf_run *held = new_run(ev, wf_lane1, "k");
	struct hf_run *taken = new_run(ev, wf_lane1, "k"); /* seq not known */
	struct hf_run *late = new_run(ev, wf_lane1, "k");
	held->lane_seq = 5;
	late->lane_seq = 9;
	hf_sched_push(s, held);
	hf_sched_push(s, late);
	hf_sched_push(s, taken);
	CHECK(hf_sched_take(s) == held);
	hf_sched_lane_wait(s, held);
	CHECK(wait_ready(s, 1));
	struct hf_run *got = hf_sched_take(s);
	CHECK(got == taken && got->in_lane && !held->in_lane);
	finish(s, got); /* then held (5), before late (9) */
	CHECK(wait_ready(s, 1));
	got = hf_sched_take(s);
	CHECK(got == held && got->in_lane);
	/* Only late (9) waits: held keeps its slot and looks again. */
	held->due_at = hf_now_ms() + 20;
	hf_sched_lane_wait(s, held);
	CHECK(held->in_lane);
	CHECK(wait_ready(s, 1));
	CHECK(hf_sched_take(s) == held);
	finish(s, held);
	CHECK(wait_ready(s, 1));
	got = hf_sched_take(s);
	CHECK(got == late);
	finish(s, got);
	CHECK(hf_sched_depth(s) == 0);
	hf_sched_destroy(s);
}

static void *take_thread(void *arg)
{
	return hf_sched_take(arg);
}

static void test_stop(void)
{
	struct hf_sched *s = hf_sched_create();
	pthread_t t;
	CHECK(pthread_create(&t, NULL, take_thread, s) == 0);
	sleep_ms(20); /* most likely blocked in take by now; either way works */
	hf_sched_stop(s);
	void *res = (void *)1;
	pthread_join(t, &res);
	CHECK(res == NULL);
	/* After stop, take returns NULL at once, and pushes are kept for
	 * destroy to free. */
	hf_sched_push(s, new_run(ev, wf_plain, NULL));
	CHECK(hf_sched_take(s) == NULL);
	CHECK(hf_sched_depth(s) == 1);
	hf_sched_destroy(s);
}

static atomic_int fired;
static atomic_int order[3];
static atomic_int norder;

static void on_timer(void *arg)
{
	int id = (int)(intptr_t)arg;
	int i = atomic_fetch_add(&norder, 1);
	if (i < 3)
		atomic_store(&order[i], id);
	atomic_fetch_add(&fired, 1);
}

static void test_timers(void)
{
	struct hf_sched *s = hf_sched_create();
	int64_t mono = hf_mono_ms();
	hf_sched_timer(s, mono + 60, on_timer, (void *)(intptr_t)3);
	hf_sched_timer(s, mono + 20, on_timer, (void *)(intptr_t)1);
	hf_sched_timer(s, mono + 40, on_timer, (void *)(intptr_t)2);
	for (int i = 0; i < 1000 && atomic_load(&fired) < 3; i++)
		sleep_ms(5);
	CHECK(atomic_load(&fired) == 3);
	CHECK(atomic_load(&order[0]) == 1);
	CHECK(atomic_load(&order[1]) == 2);
	CHECK(atomic_load(&order[2]) == 3);
	/* A timer already due fires too. */
	hf_sched_timer(s, hf_mono_ms() - 10, on_timer, (void *)(intptr_t)4);
	for (int i = 0; i < 1000 && atomic_load(&fired) < 4; i++)
		sleep_ms(5);
	CHECK(atomic_load(&fired) == 4);
	/* A timer not yet due when the scheduler goes is called then, late,
	 * so that it can free what it holds (a sync waiter). */
	hf_sched_timer(s, hf_mono_ms() + 3600 * 1000, on_timer,
		       (void *)(intptr_t)5);
	hf_sched_destroy(s);
	CHECK(atomic_load(&fired) == 5);
}

/* Destroy frees runs ready, delayed and waiting in a lane (valgrind shows a
 * leak otherwise). */
static void test_destroy_frees(void)
{
	struct hf_sched *s = hf_sched_create();
	hf_sched_push(s, new_run(ev, wf_plain, NULL));
	struct hf_run *late = new_run(ev, wf_plain, NULL);
	late->due_at = hf_now_ms() + 3600 * 1000;
	hf_sched_push(s, late);
	hf_sched_push(s, new_run(ev, wf_lane1, "k"));
	hf_sched_push(s, new_run(ev, wf_lane1, "k"));
	hf_sched_push(s, new_run(ev, wf_lane1, "k"));
	CHECK(hf_sched_depth(s) == 5);
	CHECK(hf_sched_ready(s) == 2);
	hf_sched_destroy(s);
	hf_sched_destroy(NULL);
	/* Every run dropped its event reference: only ours is left. */
	CHECK(ev->refs == 1);
}

int main(void)
{
	wf_plain = parse_workflow("name: plain\n"
				  "on: {webhook: {path: /a}}\n"
				  "steps: [{id: s, run: return 1}]\n");
	wf_lane1 = parse_workflow("name: lane1\n"
				  "on: {webhook: {path: /a}}\n"
				  "concurrency: {key: event.body.k}\n"
				  "steps: [{id: s, run: return 1}]\n");
	wf_lane1b = parse_workflow("name: lane1b\n"
				   "on: {webhook: {path: /a}}\n"
				   "concurrency: {key: event.body.k, max: 1}\n"
				   "steps: [{id: s, run: return 1}]\n");
	wf_lane2 = parse_workflow("name: lane2\n"
				  "on: {webhook: {path: /a}}\n"
				  "concurrency: {key: event.body.k, max: 2}\n"
				  "steps: [{id: s, run: return 1}]\n");
	CHECK(wf_lane1->concurrency_max == 1);
	CHECK(wf_lane2->concurrency_max == 2);
	ev = new_event();

	test_fifo();
	test_admit_and_list();
	test_due();
	test_lane_max1();
	test_lane_max2();
	test_lane_due();
	test_lane_wait();
	test_stop();
	test_timers();
	test_destroy_frees();

	CHECK(ev->refs == 1);
	hf_event_unref(ev);
	CHECK(wf_plain->refs == 1);
	hf_workflow_unref(wf_plain);
	hf_workflow_unref(wf_lane1);
	hf_workflow_unref(wf_lane1b);
	hf_workflow_unref(wf_lane2);
	return tap_done();
}
