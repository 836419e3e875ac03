/* flow.c - the hf-flow thread (see hf_flow.h): jobs that act on other runs,
 * taken off the writer and the HTTP threads. A job is "run R of workflow W,
 * key K, was committed": the unfinished runs of W and K older than R (queued,
 * waiting or running; read from the store, so runs on disk and parked runs
 * count) are cancelled (cancel.c), each as `hookflow cancel` would.
 *
 * A request to a `cancel_on:` path: for each workflow naming the path, its
 * queued and waiting runs (from the store) whose cancel_on `if:` is true,
 * with `event` the run's event and `signal` the request (hf_luart_eval_signal
 * in this thread's expression runtime, with dispatch.c's limits), are
 * cancelled. Running runs are left alone.
 *
 * The queue is a FIFO under one mutex; the thread sleeps on a condition
 * variable while it is empty. Jobs left at stop are dropped (the older runs
 * simply finish). Neighbours: ingest_sync.c (hands the committed runs),
 * cancel.c, the store's active_runs. */
#include "hf_cancel.h"
#include "hf_dispatch.h"
#include "hf_flow.h"
#include "hf_limits.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FLOW_SCAN_MAX HF_FLOW_SCAN_MAX

/* Either "run_id of workflow, key lane, was committed" (ev NULL), or "the
 * request ev to a cancel_on path of wfs was committed". */
struct job {
	char run_id[HF_ID_SIZE];
	char *workflow;
	char *lane;
	int64_t created_at;
	struct hf_event *ev;	  /* reference */
	struct hf_workflow **wfs; /* references */
	size_t nwfs;
	struct job *next;
};

static struct {
	struct hf_engine *eng;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, **tail;
	bool enabled; /* between hf_flow_start and hf_flow_stop */
	bool started, stopping;
} flow = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void job_free(struct job *j)
{
	free(j->workflow);
	free(j->lane);
	hf_event_unref(j->ev);
	for (size_t i = 0; i < j->nwfs; i++)
		hf_workflow_unref(j->wfs[i]);
	free(j->wfs);
	free(j);
}

struct older {
	const struct job *job;
	char (*ids)[HF_ID_SIZE];
	size_t n, cap;
};

static void collect(const struct hf_active_run *r, void *arg)
{
	struct older *o = arg;
	const struct job *j = o->job;
	bool before =
	    r->created_at < j->created_at ||
	    (r->created_at == j->created_at && strcmp(r->id, j->run_id) < 0);
	if (!before || strcmp(r->id, j->run_id) == 0)
		return;
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 8;
		o->ids = hf_xrealloc(o->ids, o->cap * sizeof *o->ids);
	}
	snprintf(o->ids[o->n++], HF_ID_SIZE, "%s", r->id);
}

static void cancel_older(const struct job *j)
{
	struct older o = {.job = j};
	if (hf_store_active_runs(flow.eng->store, j->workflow, j->lane,
				 FLOW_SCAN_MAX, collect, &o) < 0)
		hf_log(HF_LOG_WARN,
		       "cancel_in_progress: cannot read the runs of '%s'",
		       j->workflow);
	char *reason = hf_xasprintf("cancelled by a newer run %s "
				    "(concurrency.cancel_in_progress)",
				    j->run_id);
	for (size_t i = 0; i < o.n; i++)
		hf_cancel_run(flow.eng, o.ids[i], reason); /* 409: finished */
	free(reason);
	free(o.ids);
}

/* --- cancel_on --- */

struct waiting {
	char (*ids)[HF_ID_SIZE];
	char (*events)[HF_ID_SIZE];
	size_t n, cap;
};

static void collect_waiting(const struct hf_active_run *r, void *arg)
{
	struct waiting *w = arg;
	if (strcmp(r->status, "queued") != 0 &&
	    strcmp(r->status, "waiting") != 0)
		return; /* a running run is not cancelled by cancel_on */
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 8;
		w->ids = hf_xrealloc(w->ids, w->cap * sizeof *w->ids);
		w->events = hf_xrealloc(w->events, w->cap * sizeof *w->events);
	}
	snprintf(w->ids[w->n], HF_ID_SIZE, "%s", r->id);
	snprintf(w->events[w->n++], HF_ID_SIZE, "%s",
		 r->event_id ? r->event_id : "");
}

/* An `if:` ran for the signal being matched (hf-flow's only). */
static bool signal_evaluated;

/* Whether the cancel_on entry e of wf matches signal for a run of event ev:
 * its `if:` in the thread's expression runtime (dispatch.c's limits). */
static bool matches(const struct hf_workflow *wf, size_t k,
		    const struct hf_cancel_on *e, struct hf_event *ev,
		    struct hf_event *signal)
{
	if (!e->if_expr)
		return true;
	char key[256];
	snprintf(key, sizeof key, "%s:cancel_on:%zu", wf->version, k);
	json_t *v = NULL;
	char *err = NULL;
	struct hf_luart *rt = hf_dispatch_runtime();
	signal_evaluated = rt != NULL;
	bool yes = rt &&
		   hf_luart_eval_signal(rt, key, e->if_expr, ev, wf, signal, &v,
					&err) == 0 &&
		   hf_json_truthy(v);
	if (err)
		hf_log(HF_LOG_WARN, "workflow '%s': cancel_on.if: %s", wf->name,
		       err);
	json_decref(v);
	free(err);
	return yes;
}

/* The runs of wf that signal cancels (one reading of its runs for all its
 * cancel_on entries on the signal's path). */
static void cancel_matching(const struct hf_workflow *wf,
			    struct hf_event *signal)
{
	struct waiting w = {0};
	if (hf_store_active_runs(flow.eng->store, wf->name, NULL, FLOW_SCAN_MAX,
				 collect_waiting, &w) < 0)
		hf_log(HF_LOG_WARN, "cancel_on: cannot read the runs of '%s'",
		       wf->name);
	char *reason = hf_xasprintf("cancelled by cancel_on (event %s to %s)",
				    signal->id, signal->path);
	for (size_t i = 0; i < w.n; i++) {
		struct hf_event *ev =
		    hf_store_load_event(flow.eng->store, w.events[i]);
		bool hit = false;
		for (size_t k = 0; ev && !hit && k < wf->ncancel_on; k++)
			hit = hf_workflow_cancel_on_matches(&wf->cancel_on[k],
							    signal->path) &&
			      matches(wf, k, &wf->cancel_on[k], ev, signal);
		hf_event_unref(ev);
		if (hit)
			hf_cancel_run(flow.eng, w.ids[i], reason);
	}
	free(reason);
	free(w.ids);
	free(w.events);
}

static void run_job(const struct job *j)
{
	if (!j->ev) {
		cancel_older(j);
		return;
	}
	for (size_t i = 0; i < j->nwfs; i++)
		cancel_matching(j->wfs[i], j->ev);
	if (signal_evaluated) /* its `signal` table, kept while it matched */
		hf_luart_forget_signal(hf_dispatch_runtime());
	signal_evaluated = false;
}

static void *flow_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&flow.lock);
	for (;;) {
		while (!flow.head && !flow.stopping)
			pthread_cond_wait(&flow.cond, &flow.lock);
		if (!flow.head)
			break;
		struct job *j = flow.head;
		flow.head = j->next;
		if (!flow.head)
			flow.tail = &flow.head;
		pthread_mutex_unlock(&flow.lock);
		run_job(j);
		job_free(j);
		pthread_mutex_lock(&flow.lock);
	}
	pthread_mutex_unlock(&flow.lock);
	return NULL;
}

/* The thread starts with the first job (enqueue), not here: a thread at
 * rest costs its stack's and malloc arena's pages, and most servers never
 * queue a job. */
int hf_flow_start(struct hf_engine *eng)
{
	pthread_mutex_lock(&flow.lock);
	flow.eng = eng;
	flow.head = NULL;
	flow.tail = &flow.head;
	flow.stopping = false;
	flow.enabled = true;
	pthread_mutex_unlock(&flow.lock);
	return 0;
}

void hf_flow_stop(void)
{
	pthread_mutex_lock(&flow.lock);
	bool started = flow.started;
	flow.stopping = true;
	/* Queued jobs are dropped: the runs they would cancel finish. */
	for (struct job *j = flow.head, *next; j; j = next) {
		next = j->next;
		job_free(j);
	}
	flow.head = NULL;
	flow.tail = &flow.head;
	pthread_cond_signal(&flow.cond);
	pthread_mutex_unlock(&flow.lock);
	if (started)
		pthread_join(flow.thread, NULL);
	flow.started = false;
	flow.enabled = false;
}

/* Queues j, starting the thread on the first job; or frees it when the
 * thread does not run (stopped, or it cannot start: the next job tries
 * again). */
static void enqueue(struct job *j)
{
	pthread_mutex_lock(&flow.lock);
	if (flow.enabled && !flow.started && !flow.stopping) {
		flow.started = hf_thread_start(&flow.thread, "hf-flow",
					       flow_main, NULL) == 0;
		if (!flow.started)
			hf_log(HF_LOG_ERROR, "cannot start the hf-flow thread");
	}
	if (flow.started && !flow.stopping) {
		*flow.tail = j;
		flow.tail = &j->next;
		j = NULL;
		pthread_cond_signal(&flow.cond);
	}
	pthread_mutex_unlock(&flow.lock);
	if (j)
		job_free(j);
}

void hf_flow_run_committed(const struct hf_run *run)
{
	if (!run->wf || !run->wf->concurrency_cancel || !run->lane)
		return;
	struct job *j = hf_xcalloc(1, sizeof *j);
	snprintf(j->run_id, sizeof j->run_id, "%s", run->id);
	j->workflow = hf_xstrdup(run->wf->name);
	j->lane = hf_xstrdup(run->lane);
	j->created_at = run->created_at;
	enqueue(j);
}

void hf_flow_signal(struct hf_event *ev, struct hf_snapshot *snap)
{
	const struct hf_workflow_set *set = snap->set;
	struct job *j = hf_xcalloc(1, sizeof *j);
	j->ev = hf_event_ref(ev);
	j->wfs = hf_xcalloc(set->n ? set->n : 1, sizeof *j->wfs);
	for (size_t i = 0; i < set->n; i++)
		for (size_t k = 0; k < set->items[i]->ncancel_on; k++)
			if (hf_workflow_cancel_on_matches(
				&set->items[i]->cancel_on[k], ev->path)) {
				j->wfs[j->nwfs++] =
				    hf_workflow_ref(set->items[i]);
				break;
			}
	enqueue(j);
}
