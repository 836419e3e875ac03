/* park.c - the parked runs' two threads (see hf_park.h): hf-park wakes the
 * runs whose due time has come, hf-signals resumes the runs a signal (a
 * request to a wait_for path, or a run.resume_url) matches.
 *
 * hf-park keeps one timer: the earliest due time, read from the store's
 * index (hf_store_next_wake) and lowered by each run that parks
 * (hf_park_parked, on the writer), and read again at least every
 * HF_PARK_RECHECK_MS (HF_PARK_SHARED_RECHECK_MS where several nodes share
 * the store: another node's parked runs). When it comes, a write wakes up to
 * HF_PARK_WAKE_BATCH runs; its done() adds them to the disk backlog's count
 * (hf_backlog_stored), whose loader brings them into memory as the scheduler
 * has room. Nothing of a parked run is in memory meanwhile.
 *
 * hf-signals takes jobs in order: for a signal, it loads the runs waiting on
 * the path (hf_store_load_waiting), evaluates each wait_for's `if:` in its
 * own expression runtime, and submits one write that resumes the matches,
 * each conditional on the run still waiting at that step; the write's done()
 * hands the ids that were resumed to the job's callback (ingest's answer).
 * The thread does not wait for that commit. A signal's cost is bounded: at
 * most HF_PARK_SIGNAL_QUEUE signals are taken at once (ingest reserves a
 * place before it stores one: hf_park_signal_reserve), and one that finds
 * more than HF_PARK_SIGNAL_MAX runs on its path, or is still matching after
 * HF_PARK_SIGNAL_BUDGET_MS, resumes nothing (its callback hears why): it is
 * never answered as if every waiting run had been matched.
 *
 * Each thread starts when first needed, not with the server (a thread at rest
 * costs its stack's and malloc arena's pages): hf-park at start when the
 * store has parked runs (left by an earlier process) or is shared by several
 * nodes, else when the first run parks (hf_park_parked); hf-signals with the
 * first job. So a server whose workflows never wait runs neither.
 *
 * Threading: the two threads; hf_park_parked and the writes' done() on the
 * writer; hf_park_signal/_resume on HTTP threads (they only queue a job).
 * Lock: p->lock, never held while calling into the store. Neighbours:
 * park_step.c, backlog.c, ingest_signal.c, worker.c. */
#include "hf_backlog.h"
#include "hf_dispatch.h"
#include "hf_limits.h"
#include "hf_metrics.h"
#include "hf_park.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct match {
	char run_id[HF_ID_SIZE];
	int step;
	bool resumed;
	bool not_yet; /* the run has not parked at step yet */
};

struct job {
	struct hf_write w; /* first: the resume write */
	struct hf_park *p;
	struct hf_event *ev; /* a signal; NULL for a resume URL */
	char *path;	     /* the signal's wait_for path, as declared */
	char *output;	     /* the step's output (JSON text) */
	struct match *m;
	size_t nm, cap;
	char last[HF_ID_SIZE]; /* the page's last run id (candidate) */
	int seen;	       /* runs of the path read so far */
	int64_t deadline;      /* hf_mono_ms() past which it gives up */
	const char *over;      /* why it gave up (a static text), or NULL */
	bool evaluated;	       /* an `if:` ran in the thread's runtime */
	bool reserved;	       /* holds a place of p->signals */
	hf_park_done done;
	void *arg;
	struct job *next;
};

struct hf_park {
	struct hf_engine *eng;
	pthread_mutex_t lock;
	pthread_cond_t wake_cond, sig_cond;
	pthread_t wake_thread, sig_thread;
	bool wake_started, sig_started; /* started on first need */
	bool stopping;
	int64_t next_wake; /* the timer (wall ms) */
	int64_t hint;	   /* lowest wake_at parked since the last look */
	int64_t recheck;   /* the longest look away from the store (ms) */
	atomic_llong count;
	struct job *head, *tail; /* hf-signals' queue */
	atomic_int signals;	 /* places reserved (hf_park_signal_reserve) */
	int signal_max, signal_queue; /* HF_PARK_SIGNAL_MAX, _QUEUE */
	int64_t signal_budget;	      /* HF_PARK_SIGNAL_BUDGET_MS */

	/* The wake write (hf-park's, then the writer's). */
	struct hf_write ww;
	int64_t ww_now;
	int woke;
	bool ww_done;
};

static void count_add(struct hf_park *p, long long n)
{
	long long v = atomic_fetch_add(&p->count, n) + n;
	hf_metrics_runs_waiting(v > 0 ? v : 0);
}

static void *wake_main(void *arg);

/* hf-park, once, under p->lock. A failure is retried by the next run that
 * parks (the runs parked meanwhile are in the store: the thread finds them
 * when it starts). */
static void start_waking(struct hf_park *p)
{
	if (p->wake_started || p->stopping)
		return;
	p->wake_started =
	    hf_thread_start(&p->wake_thread, "hf-park", wake_main, p) == 0;
	if (!p->wake_started)
		hf_log(HF_LOG_ERROR, "cannot start the hf-park thread");
}

void hf_park_parked(struct hf_park *p, int64_t wake_at)
{
	if (!p)
		return;
	count_add(p, 1);
	pthread_mutex_lock(&p->lock);
	start_waking(p);
	if (wake_at < p->hint)
		p->hint = wake_at;
	if (wake_at < p->next_wake) {
		p->next_wake = wake_at;
		pthread_cond_signal(&p->wake_cond);
	}
	pthread_mutex_unlock(&p->lock);
}

void hf_park_unparked(struct hf_park *p, int n)
{
	if (p && n > 0)
		count_add(p, -n);
}

int64_t hf_park_count(struct hf_park *p)
{
	long long v = p ? atomic_load(&p->count) : 0;
	return v > 0 ? v : 0;
}

/* --- waking (hf-park, then the writer) --- */

static int wake_call(struct hf_store *s, void *arg)
{
	struct hf_park *p = arg;
	p->woke = hf_store_wake_due(s, p->ww_now, HF_PARK_WAKE_BATCH);
	return p->woke < 0 ? -1 : 0;
}

static void wake_done(struct hf_write *w)
{
	struct hf_park *p = w->call_arg;
	if (w->rc == 0 && p->woke > 0) {
		hf_backlog_stored(p->eng->backlog, 0, (size_t)p->woke);
		count_add(p, -p->woke);
	}
	pthread_mutex_lock(&p->lock);
	p->ww_done = true;
	pthread_cond_signal(&p->wake_cond);
	pthread_mutex_unlock(&p->lock);
}

/* Wakes one batch due at now (lock held on entry and exit, not between).
 * Returns how many woke, or -1. */
static int wake_batch(struct hf_park *p, int64_t now)
{
	memset(&p->ww, 0, sizeof p->ww);
	p->ww.kind = HF_W_CALL;
	p->ww.call = wake_call;
	p->ww.call_arg = p;
	p->ww.done = wake_done;
	p->ww_now = now;
	p->ww_done = false;
	pthread_mutex_unlock(&p->lock);
	hf_store_submit(p->eng->store, &p->ww);
	pthread_mutex_lock(&p->lock);
	while (!p->ww_done)
		pthread_cond_wait(&p->wake_cond, &p->lock);
	return p->ww.rc < 0 ? -1 : p->woke;
}

static void *wake_main(void *arg)
{
	struct hf_park *p = arg;
	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		p->hint = INT64_MAX;
		pthread_mutex_unlock(&p->lock);
		int64_t next = hf_store_next_wake(p->eng->store);
		pthread_mutex_lock(&p->lock);
		if (next < 0) /* cannot read now: look again soon */
			next = hf_now_ms() + HF_STORE_PROBE_MS;
		p->next_wake = next < p->hint ? next : p->hint;
		int64_t until = hf_mono_ms() + p->recheck;
		int64_t now = hf_now_ms();
		while (!p->stopping && p->next_wake > now &&
		       hf_mono_ms() < until) {
			int64_t wait = p->next_wake - now;
			if (wait > until - hf_mono_ms())
				wait = until - hf_mono_ms();
			struct timespec ts;
			hf_deadline_in(wait < 1 ? 1 : wait, &ts);
			pthread_cond_timedwait(&p->wake_cond, &p->lock, &ts);
			now = hf_now_ms();
		}
		if (p->stopping || p->next_wake > now)
			continue;
		/* None woken though one looked due (a row another
		 * transaction holds): do not spin on it. */
		if (wake_batch(p, now) <= 0 && !p->stopping) {
			struct timespec ts;
			hf_deadline_in(HF_STORE_PROBE_MS, &ts);
			pthread_cond_timedwait(&p->wake_cond, &p->lock, &ts);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* --- signals (hf-signals, then the writer) --- */

/* Answers the job's caller. A signal's place is given back first: once
 * its sender has the answer, its next signal finds the place free. */
static void job_answer(struct job *j, json_t *resumed, const char *why)
{
	if (j->reserved)
		hf_park_signal_unreserve(j->p);
	j->reserved = false;
	j->done(j->arg, resumed, why);
}

static void job_free(struct job *j)
{
	if (j->reserved)
		hf_park_signal_unreserve(j->p);
	hf_event_unref(j->ev);
	free(j->path);
	free(j->output);
	free(j->m);
	free(j);
}

static int resume_call(struct hf_store *s, void *arg)
{
	struct job *j = arg;
	int64_t now = hf_now_ms();
	for (size_t i = 0; i < j->nm; i++) {
		int rc = hf_store_resume_run(s, j->m[i].run_id, j->m[i].step,
					     j->output, now);
		if (rc < 0)
			return -1;
		j->m[i].resumed = rc == 1;
		j->m[i].not_yet = rc == HF_RESUME_NOT_YET;
	}
	return 0;
}

static void resume_done(struct hf_write *w)
{
	struct job *j = w->call_arg;
	if (w->rc < 0) { /* nothing resumed: the caller may try again */
		job_answer(j, NULL, NULL);
		job_free(j);
		return;
	}
	json_t *ids = json_array();
	size_t n = 0;
	for (size_t i = 0; w->rc == 0 && i < j->nm; i++)
		if (j->m[i].resumed) {
			json_array_append_new(ids, json_string(j->m[i].run_id));
			n++;
		}
	if (n) {
		hf_backlog_stored(j->p->eng->backlog, 0, n);
		count_add(j->p, -(long long)n);
	}
	/* A resume URL whose run is still on its way to the wait_for. */
	bool early = w->rc == 0 && !j->ev && j->nm == 1 && j->m[0].not_yet;
	job_answer(j, ids, early ? hf_park_not_yet : NULL);
	job_free(j);
}

const char hf_park_not_yet[] = "the run has not reached this wait_for step "
			       "yet";

static void add_match(struct job *j, const char *run_id, int step)
{
	if (j->nm == j->cap) {
		j->cap = j->cap ? 2 * j->cap : 8;
		j->m = hf_xrealloc(j->m, j->cap * sizeof *j->m);
	}
	struct match *m = &j->m[j->nm++];
	snprintf(m->run_id, sizeof m->run_id, "%s", run_id);
	m->step = step;
	m->resumed = false;
	m->not_yet = false;
}

/* A run waiting on the signal's path: a match when its wait_for's `if:` is
 * true (an error counts as false, and is logged). Frees run. */
static void candidate(struct hf_run *run, void *arg)
{
	struct job *j = arg;
	const struct hf_workflow *wf = run->wf;
	const struct hf_step *st = wf && run->next_step < wf->nsteps
				       ? &wf->steps[run->next_step]
				       : NULL;
	bool match = st && st->park == HF_PARK_WAIT_FOR && st->wait_path &&
		     strcmp(st->wait_path, j->path) == 0;
	/* Past a limit nothing more is evaluated: the signal resumes none. */
	if (!j->over && ++j->seen > j->p->signal_max)
		j->over = "more runs wait on its path than a signal is "
			  "matched against";
	else if (!j->over && hf_mono_ms() >= j->deadline)
		j->over = "matching it against the runs waiting on its path "
			  "took longer than a signal may";
	if (j->over)
		match = false;
	if (match && st->wait_if) {
		char key[160], *err = NULL;
		json_t *v = NULL;
		snprintf(key, sizeof key, "%s:%s:wait_if",
			 wf->version ? wf->version : wf->name, st->id);
		struct hf_luart *rt = hf_dispatch_runtime();
		j->evaluated = true;
		if (!rt ||
		    hf_luart_eval_signal(rt, key, st->wait_if, run->event, wf,
					 j->ev, &v, &err) < 0) {
			hf_log(HF_LOG_WARN,
			       "run %s: wait_for '%s' if: failed on signal "
			       "%s: %s",
			       run->id, st->id, j->ev->id,
			       err ? err : "no runtime");
			match = false;
		} else {
			match = hf_json_truthy(v);
		}
		json_decref(v);
		free(err);
	}
	if (match)
		add_match(j, run->id, (int)run->next_step);
	snprintf(j->last, sizeof j->last, "%s", run->id);
	hf_run_free(run);
}

/* Matches a signal against the runs waiting on its path, page by page
 * (HF_PARK_SIGNAL_PAGE runs in memory at a time), one run more than
 * signal_max at most (to see that there are more). False when it gave up or
 * the runs could not be read: the job is answered (nothing resumed) and
 * freed. */
static bool match_signal(struct hf_park *p, struct job *j)
{
	struct hf_snapshot *snap = hf_engine_snapshot(p->eng);
	int n, want;
	j->deadline = hf_mono_ms() + p->signal_budget;
	do {
		want = p->signal_max + 1 - j->seen;
		if (want > HF_PARK_SIGNAL_PAGE)
			want = HF_PARK_SIGNAL_PAGE;
		n = hf_store_load_waiting(p->eng->store, snap->set, j->path,
					  j->last, want, candidate, j);
	} while (n == want && !j->over);
	hf_snapshot_unref(snap);
	if (j->evaluated) /* its `signal` table is not needed any more */
		hf_luart_forget_signal(hf_dispatch_runtime());
	if (!j->over && n >= 0)
		return true;
	if (j->over)
		hf_log(HF_LOG_WARN,
		       "signal %s to %s resumes nothing: %s (%d runs "
		       "read)",
		       j->ev->id, j->path, j->over, j->seen);
	job_answer(j, NULL, j->over);
	job_free(j);
	return false;
}

static void handle(struct hf_park *p, struct job *j)
{
	if (j->ev && !match_signal(p, j))
		return;
	if (j->nm == 0) {
		job_answer(j, json_array(), NULL);
		job_free(j);
		return;
	}
	memset(&j->w, 0, sizeof j->w);
	j->w.kind = HF_W_CALL;
	j->w.call = resume_call;
	j->w.call_arg = j;
	j->w.done = resume_done;
	hf_store_submit(p->eng->store, &j->w);
}

static void *signals_main(void *arg)
{
	struct hf_park *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->stopping)
			pthread_cond_wait(&p->sig_cond, &p->lock);
		struct job *j = p->head;
		if (!j)
			break; /* stopping, nothing left */
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->lock);
		handle(p, j);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	/* Its expression runtime goes with the thread (hf_dispatch_runtime). */
	return NULL;
}

static void enqueue(struct hf_park *p, struct job *j)
{
	pthread_mutex_lock(&p->lock);
	if (!p->sig_started && !p->stopping) {
		/* Queued even if this fails: the next job tries again, and
		 * hf_park_stop answers what is left. */
		p->sig_started = hf_thread_start(&p->sig_thread, "hf-signals",
						 signals_main, p) == 0;
		if (!p->sig_started)
			hf_log(HF_LOG_ERROR,
			       "cannot start the hf-signals thread");
	}
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	pthread_cond_signal(&p->sig_cond);
	pthread_mutex_unlock(&p->lock);
}

bool hf_park_signal_reserve(struct hf_park *p)
{
	int n = atomic_load(&p->signals);
	do {
		if (n >= p->signal_queue)
			return false;
	} while (!atomic_compare_exchange_weak(&p->signals, &n, n + 1));
	return true;
}

void hf_park_signal_unreserve(struct hf_park *p)
{
	atomic_fetch_sub(&p->signals, 1);
}

void hf_park_signal(struct hf_park *p, struct hf_event *ev, const char *path,
		    char *output, hf_park_done done, void *arg)
{
	struct job *j = hf_xcalloc(1, sizeof *j);
	j->p = p;
	j->ev = hf_event_ref(ev);
	j->path = hf_xstrdup(path);
	j->output = output;
	j->reserved = true;
	j->done = done;
	j->arg = arg;
	enqueue(p, j);
}

void hf_park_resume(struct hf_park *p, const char *run_id, int step,
		    char *output, hf_park_done done, void *arg)
{
	struct job *j = hf_xcalloc(1, sizeof *j);
	j->p = p;
	j->output = output;
	j->done = done;
	j->arg = arg;
	add_match(j, run_id, step);
	enqueue(p, j);
}

/* --- lifecycle --- */

/* The signal limits; HOOKFLOW_TEST_SIGNAL_LIMITS=MAX,BUDGET_MS,QUEUE in the
 * environment sets them lower, for the test suite only (README). */
static void test_limits(struct hf_park *p)
{
	p->signal_max = HF_PARK_SIGNAL_MAX;
	p->signal_budget = HF_PARK_SIGNAL_BUDGET_MS;
	p->signal_queue = HF_PARK_SIGNAL_QUEUE;
	const char *v = getenv("HOOKFLOW_TEST_SIGNAL_LIMITS");
	int max, budget, queue;
	if (v && sscanf(v, "%d,%d,%d", &max, &budget, &queue) == 3 &&
	    max >= 0 && budget >= 0 && queue >= 0) {
		p->signal_max = max < p->signal_max ? max : p->signal_max;
		p->signal_budget =
		    budget < p->signal_budget ? budget : p->signal_budget;
		p->signal_queue =
		    queue < p->signal_queue ? queue : p->signal_queue;
	}
}

struct hf_park *hf_park_start(struct hf_engine *eng)
{
	struct hf_park *p = hf_xcalloc(1, sizeof *p);
	p->eng = eng;
	p->next_wake = p->hint = INT64_MAX;
	json_t *nodes = hf_store_nodes_json(eng->store); /* NULL: SQLite */
	p->recheck = nodes ? HF_PARK_SHARED_RECHECK_MS : HF_PARK_RECHECK_MS;
	test_limits(p);
	int64_t n = hf_store_count_waiting(eng->store);
	atomic_store(&p->count, n > 0 ? n : 0);
	hf_metrics_runs_waiting(n > 0 ? n : 0);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake_cond, NULL);
	pthread_cond_init(&p->sig_cond, NULL);
	/* Runs parked by an earlier process (n > 0), maybe some (n < 0: the
	 * count failed), or by another node: hf-park now. */
	bool wake_now = n != 0 || nodes;
	json_decref(nodes);
	if (wake_now) {
		pthread_mutex_lock(&p->lock);
		start_waking(p);
		bool ok = p->wake_started;
		pthread_mutex_unlock(&p->lock);
		if (!ok) {
			pthread_mutex_destroy(&p->lock);
			pthread_cond_destroy(&p->wake_cond);
			pthread_cond_destroy(&p->sig_cond);
			free(p);
			return NULL;
		}
	}
	return p;
}

void hf_park_stop(struct hf_park *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->wake_cond);
	pthread_cond_broadcast(&p->sig_cond);
	bool waking = p->wake_started, signals = p->sig_started;
	pthread_mutex_unlock(&p->lock);
	if (waking)
		pthread_join(p->wake_thread, NULL);
	/* hf-signals empties its queue first: each job is answered. */
	if (signals)
		pthread_join(p->sig_thread, NULL);
	for (struct job *j = p->head, *next; j; j = next) {
		next = j->next; /* hf-signals could not start: they fail */
		job_answer(j, NULL, NULL);
		job_free(j);
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake_cond);
	pthread_cond_destroy(&p->sig_cond);
	free(p);
}
