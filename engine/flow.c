/* flow.c - the hf-flow thread (see hf_flow.h): jobs that act on other runs,
 * taken off the writer and the HTTP threads. A job is "run R of workflow W,
 * key K, was committed": the unfinished runs of W and K older than R (queued,
 * waiting or running; read from the store, so runs on disk and parked runs
 * count) are cancelled (cancel.c), each as `hookflow cancel` would.
 *
 * The queue is a FIFO under one mutex; the thread sleeps on a condition
 * variable while it is empty. Jobs left at stop are dropped (the older runs
 * simply finish). Neighbours: ingest_sync.c (hands the committed runs),
 * cancel.c, the store's active_runs. */
#include "hf_cancel.h"
#include "hf_flow.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Most unfinished runs of one key looked at per job. */
#define FLOW_SCAN_MAX 10000

struct job {
	char run_id[HF_ID_SIZE];
	char *workflow;
	char *lane;
	int64_t created_at;
	struct job *next;
};

static struct {
	struct hf_engine *eng;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, **tail;
	bool started, stopping;
} flow = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void job_free(struct job *j)
{
	free(j->workflow);
	free(j->lane);
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

static void *flow_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "hf-flow");
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
		cancel_older(j);
		job_free(j);
		pthread_mutex_lock(&flow.lock);
	}
	pthread_mutex_unlock(&flow.lock);
	return NULL;
}

int hf_flow_start(struct hf_engine *eng)
{
	pthread_mutex_lock(&flow.lock);
	flow.eng = eng;
	flow.head = NULL;
	flow.tail = &flow.head;
	flow.stopping = false;
	flow.started = pthread_create(&flow.thread, NULL, flow_main, NULL) == 0;
	pthread_mutex_unlock(&flow.lock);
	return flow.started ? 0 : -1;
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
	pthread_mutex_lock(&flow.lock);
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
