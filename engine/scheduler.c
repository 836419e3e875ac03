/* scheduler.c - the in-memory run queue (see hf_sched.h): a FIFO of ready runs,
 * a min-heap of runs waiting for their due time, a min-heap of timers, and a
 * hash of concurrency lanes. One mutex guards it all; workers wait on
 * `ready_cond`, the scheduler's own thread on `timer_cond` until the earliest
 * due time. */
#include "hf_sched.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* An entry of a min-heap on due: a timer (monotonic ms, fn(arg)), or a run
 * waiting for its due time (wall ms, arg the run, fn NULL). */
struct timer {
	int64_t due;
	void (*fn)(void *arg);
	void *arg;
};

struct heap {
	struct timer *items;
	size_t n, cap;
};

/* A FIFO of runs, linked through hf_run.next. */
struct runq {
	struct hf_run *head, *tail;
};

/* Runs of one concurrency key: `active` hold a slot, the rest wait in order. */
struct lane {
	char *key; /* workflow name, '\n', lane value */
	int active;
	struct runq waiting;
	struct lane *next;
};

#define LANE_BUCKETS 4096

struct hf_sched {
	pthread_mutex_t lock;
	pthread_cond_t ready_cond;
	pthread_cond_t timer_cond;
	pthread_t thread;
	bool stopping;

	struct runq ready;
	size_t nready;

	struct heap delayed; /* runs, on due_at (wall ms) */
	struct heap timers;  /* on monotonic ms */

	struct lane *lanes[LANE_BUCKETS];
	size_t depth;

	/* hf_sched_on_room: room(room_arg) once depth falls to room_low. */
	size_t room_low;
	void (*room)(void *arg);
	void *room_arg;
};

/* --- heaps (min on due) --- */

static void heap_push(struct heap *h, struct timer t)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 16;
		h->items = hf_xrealloc(h->items, h->cap * sizeof *h->items);
	}
	size_t i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (h->items[p].due <= t.due)
			break;
		h->items[i] = h->items[p];
		i = p;
	}
	h->items[i] = t;
}

static struct timer heap_pop(struct heap *h)
{
	struct timer top = h->items[0];
	struct timer last = h->items[--h->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->items[c + 1].due < h->items[c].due)
			c++;
		if (last.due <= h->items[c].due)
			break;
		h->items[i] = h->items[c];
		i = c;
	}
	if (h->n)
		h->items[i] = last;
	return top;
}

/* --- FIFOs of runs --- */

static void runq_push(struct runq *q, struct hf_run *run)
{
	run->next = NULL;
	if (q->tail)
		q->tail->next = run;
	else
		q->head = run;
	q->tail = run;
}

/* The first run, or NULL when q is empty. */
static struct hf_run *runq_pop(struct runq *q)
{
	struct hf_run *run = q->head;
	if (!run)
		return NULL;
	q->head = run->next;
	if (!q->head)
		q->tail = NULL;
	run->next = NULL;
	return run;
}

static void runq_free(struct runq *q)
{
	for (struct hf_run *r; (r = runq_pop(q));)
		hf_run_free(r);
}

/* --- lanes --- */

static unsigned long hash(const char *s)
{
	unsigned long h = 5381;
	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static char *lane_key(const struct hf_run *run)
{
	return hf_xasprintf("%s\n%s", run->wf->name, run->lane);
}

static struct lane *lane_get(struct hf_sched *s, const char *key, bool create)
{
	struct lane **slot = &s->lanes[hash(key) % LANE_BUCKETS];
	for (struct lane *l = *slot; l; l = l->next)
		if (strcmp(l->key, key) == 0)
			return l;
	if (!create)
		return NULL;
	struct lane *l = hf_xcalloc(1, sizeof *l);
	l->key = hf_xstrdup(key);
	l->next = *slot;
	*slot = l;
	return l;
}

static void lane_drop_if_idle(struct hf_sched *s, struct lane *l)
{
	if (l->active > 0 || l->waiting.head)
		return;
	struct lane **slot = &s->lanes[hash(l->key) % LANE_BUCKETS];
	while (*slot != l)
		slot = &(*slot)->next;
	*slot = l->next;
	free(l->key);
	free(l);
}

/* --- queueing (lock held) --- */

static void make_ready(struct hf_sched *s, struct hf_run *run)
{
	if (run->due_at > hf_now_ms()) {
		heap_push(&s->delayed, (struct timer){run->due_at, NULL, run});
		pthread_cond_signal(&s->timer_cond);
		return;
	}
	runq_push(&s->ready, run);
	s->nready++;
	pthread_cond_signal(&s->ready_cond);
}

/* Lock held: hf_sched_push. */
static void push_locked(struct hf_sched *s, struct hf_run *run)
{
	if (!run->admitted) {
		run->admitted = true;
		s->depth++;
	}
	if (run->lane && run->wf && !run->in_lane) {
		char *key = lane_key(run);
		struct lane *l = lane_get(s, key, true);
		free(key);
		int max =
		    run->wf->concurrency_max > 0 ? run->wf->concurrency_max : 1;
		if (l->active >= max) {
			runq_push(&l->waiting, run);
			return;
		}
		l->active++;
		run->in_lane = true;
	}
	make_ready(s, run);
}

void hf_sched_push_list(struct hf_sched *s, struct hf_run *list)
{
	if (!list)
		return;
	pthread_mutex_lock(&s->lock);
	for (struct hf_run *run = list, *next; run; run = next) {
		next = run->next;
		push_locked(s, run);
	}
	pthread_mutex_unlock(&s->lock);
}

/* Lock held: depth fell by one; true when the room callback is due. */
static bool room_due(const struct hf_sched *s)
{
	return s->room && s->depth == s->room_low;
}

bool hf_sched_admit(struct hf_sched *s, size_t n, size_t limit)
{
	pthread_mutex_lock(&s->lock);
	bool ok = limit == 0 || s->depth + n <= limit;
	if (ok)
		s->depth += n;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

void hf_sched_unadmit(struct hf_sched *s, size_t n)
{
	if (!n)
		return;
	pthread_mutex_lock(&s->lock);
	bool due = false;
	for (; n && s->depth; n--) {
		s->depth--;
		due = due || room_due(s);
	}
	pthread_mutex_unlock(&s->lock);
	if (due)
		s->room(s->room_arg);
}

void hf_sched_on_room(struct hf_sched *s, size_t low, void (*fn)(void *arg),
		      void *arg)
{
	pthread_mutex_lock(&s->lock);
	s->room_low = low;
	s->room_arg = arg;
	s->room = fn;
	pthread_mutex_unlock(&s->lock);
}

void hf_sched_push(struct hf_sched *s, struct hf_run *run)
{
	pthread_mutex_lock(&s->lock);
	push_locked(s, run);
	pthread_mutex_unlock(&s->lock);
}

struct hf_run *hf_sched_take(struct hf_sched *s)
{
	pthread_mutex_lock(&s->lock);
	while (!s->ready.head && !s->stopping)
		pthread_cond_wait(&s->ready_cond, &s->lock);
	struct hf_run *run = s->stopping ? NULL : runq_pop(&s->ready);
	if (run)
		s->nready--;
	pthread_mutex_unlock(&s->lock);
	return run;
}

void hf_sched_release(struct hf_sched *s, struct hf_run *run)
{
	pthread_mutex_lock(&s->lock);
	bool due = false;
	if (run->admitted) {
		run->admitted = false;
		s->depth--;
		due = room_due(s);
	}
	if (run->in_lane) {
		run->in_lane = false;
		char *key = lane_key(run);
		struct lane *l = lane_get(s, key, false);
		free(key);
		if (l) {
			l->active--;
			struct hf_run *next = runq_pop(&l->waiting);
			if (next) {
				l->active++;
				next->in_lane = true;
				make_ready(s, next);
			}
			lane_drop_if_idle(s, l);
		}
	}
	pthread_mutex_unlock(&s->lock);
	/* After the unlock: the callback takes its own lock, under which
	 * the backlog reads the depth (sched lock inside it, never around). */
	if (due)
		s->room(s->room_arg);
}

/* Lock held: unlinks and returns the run of q with id run_id, or NULL. */
static struct hf_run *runq_remove(struct runq *q, const char *run_id)
{
	struct hf_run *prev = NULL;
	for (struct hf_run *r = q->head; r; prev = r, r = r->next) {
		if (strcmp(r->id, run_id) != 0)
			continue;
		if (prev)
			prev->next = r->next;
		else
			q->head = r->next;
		if (q->tail == r)
			q->tail = prev;
		r->next = NULL;
		return r;
	}
	return NULL;
}

/* Lock held: removes the delayed run with id run_id (the heap rebuilt
 * without it), or NULL. */
static struct hf_run *delayed_remove(struct heap *h, const char *run_id)
{
	for (size_t i = 0; i < h->n; i++) {
		struct hf_run *r = h->items[i].arg;
		if (strcmp(r->id, run_id) != 0)
			continue;
		struct heap rest = {0};
		for (size_t j = 0; j < h->n; j++)
			if (j != i)
				heap_push(&rest, h->items[j]);
		free(h->items);
		*h = rest;
		return r;
	}
	return NULL;
}

struct hf_run *hf_sched_cancel(struct hf_sched *s, const char *run_id)
{
	pthread_mutex_lock(&s->lock);
	struct hf_run *run = runq_remove(&s->ready, run_id);
	if (run)
		s->nready--;
	if (!run)
		run = delayed_remove(&s->delayed, run_id);
	for (size_t i = 0; !run && i < LANE_BUCKETS; i++)
		for (struct lane *l = s->lanes[i]; l && !run; l = l->next)
			run = runq_remove(&l->waiting, run_id);
	pthread_mutex_unlock(&s->lock);
	return run;
}

/* --- a lane's order across nodes (PostgreSQL) --- */

/* Lock held: the run waiting in l that comes before run: the lowest known
 * lane_seq below run's, else the first whose lane_seq is not known yet (a run
 * taken over from another node, say); NULL when none may. */
static struct hf_run *lane_earlier(const struct lane *l,
				   const struct hf_run *run)
{
	struct hf_run *lower = NULL, *unknown = NULL;
	for (struct hf_run *r = l->waiting.head; r; r = r->next) {
		if (r->lane_seq == 0) {
			if (!unknown)
				unknown = r;
		} else if (r->lane_seq < run->lane_seq &&
			   (!lower || r->lane_seq < lower->lane_seq)) {
			lower = r;
		}
	}
	return lower ? lower : unknown;
}

/* Lock held: run waits in q before the first run of a later known lane_seq. */
static void lane_insert(struct runq *q, struct hf_run *run)
{
	struct hf_run **at = &q->head, *prev = NULL;
	while (*at && !((*at)->lane_seq > run->lane_seq)) {
		prev = *at;
		at = &(*at)->next;
	}
	run->next = *at;
	*at = run;
	if (q->tail == prev)
		q->tail = run;
}

void hf_sched_lane_wait(struct hf_sched *s, struct hf_run *run)
{
	pthread_mutex_lock(&s->lock);
	struct lane *l = NULL;
	if (run->in_lane && run->lane_seq > 0) {
		char *key = lane_key(run);
		l = lane_get(s, key, false);
		free(key);
	}
	struct hf_run *first = l ? lane_earlier(l, run) : NULL;
	if (first) {
		/* The slot passes to the earlier run; the lane's count stays.
		 */
		runq_remove(&l->waiting, first->id);
		first->in_lane = true;
		run->in_lane = false;
		lane_insert(&l->waiting, run);
		make_ready(s, first);
	} else {
		push_locked(s, run);
	}
	pthread_mutex_unlock(&s->lock);
}

size_t hf_sched_depth(struct hf_sched *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->depth;
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t hf_sched_ready(struct hf_sched *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->nready;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void hf_sched_timer(struct hf_sched *s, int64_t due_mono_ms,
		    void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&s->lock);
	heap_push(&s->timers, (struct timer){due_mono_ms, fn, arg});
	pthread_cond_signal(&s->timer_cond);
	pthread_mutex_unlock(&s->lock);
}

static void *sched_main(void *arg)
{
	struct hf_sched *s = arg;
	/* Named for top -H, perf and gdb. */
	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		int64_t now = hf_now_ms(), mono = hf_mono_ms();
		while (s->delayed.n && s->delayed.items[0].due <= now)
			make_ready(s, heap_pop(&s->delayed).arg);
		if (s->timers.n && s->timers.items[0].due <= mono) {
			struct timer t = heap_pop(&s->timers);
			pthread_mutex_unlock(&s->lock);
			t.fn(t.arg);
			pthread_mutex_lock(&s->lock);
			continue;
		}
		/* Sleep until the earliest due time, at most a minute (the wall
		 * clock may jump). */
		int64_t wait = 60000;
		if (s->delayed.n && s->delayed.items[0].due - now < wait)
			wait = s->delayed.items[0].due - now;
		if (s->timers.n && s->timers.items[0].due - mono < wait)
			wait = s->timers.items[0].due - mono;
		if (wait < 1)
			wait = 1;
		struct timespec ts;
		hf_deadline_in(wait, &ts);
		pthread_cond_timedwait(&s->timer_cond, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

struct hf_sched *hf_sched_create(void)
{
	struct hf_sched *s = hf_xcalloc(1, sizeof *s);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->ready_cond, NULL);
	pthread_cond_init(&s->timer_cond, NULL);
	if (hf_thread_start(&s->thread, "hf-sched", sched_main, s) != 0) {
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->ready_cond);
		pthread_cond_destroy(&s->timer_cond);
		free(s);
		return NULL;
	}
	return s;
}

void hf_sched_stop(struct hf_sched *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->ready_cond);
	pthread_cond_broadcast(&s->timer_cond);
	pthread_mutex_unlock(&s->lock);
}

void hf_sched_destroy(struct hf_sched *s)
{
	if (!s)
		return;
	hf_sched_stop(s);
	pthread_join(s->thread, NULL);
	runq_free(&s->ready);
	for (size_t i = 0; i < s->delayed.n; i++)
		hf_run_free(s->delayed.items[i].arg);
	for (size_t i = 0; i < LANE_BUCKETS; i++) {
		struct lane *l = s->lanes[i];
		while (l) {
			struct lane *next = l->next;
			runq_free(&l->waiting);
			free(l->key);
			free(l);
			l = next;
		}
	}
	/* Timers not yet due are called now, late, so that each frees what
	 * it holds (a sync waiter's reference: ingest_sync.c). */
	for (size_t i = 0; i < s->timers.n; i++)
		s->timers.items[i].fn(s->timers.items[i].arg);
	free(s->delayed.items);
	free(s->timers.items);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->ready_cond);
	pthread_cond_destroy(&s->timer_cond);
	free(s);
}
