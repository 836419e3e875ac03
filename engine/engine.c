/* engine.c - the engine's shared context (struct hf_engine): the workflows in
 * force as a refcounted snapshot that any thread reads without a lock and a
 * reload swaps atomically, and the end of a run (lane released, counted,
 * logged, a respond: sync waiter answered through the callback set by the
 * layer above, freed).
 *
 * Layer 3, beside the store, scheduler, workers and outbox it points to;
 * server.c (layer 5) creates and wires it, ingest and the admin API (layer 4)
 * read it. Thread-safe as stated per function in hf_engine.h. */
#include "hf_engine.h"

#include "hf_metrics.h"

#include <stdio.h>
#include <stdlib.h>

struct hf_snapshot *hf_snapshot_new(struct hf_workflow_set *set)
{
	struct hf_snapshot *snap = hf_xcalloc(1, sizeof *snap);
	snap->set = set;
	snap->router = hf_router_create(set);
	snap->refs = 1;
	return snap;
}

void hf_snapshot_unref(struct hf_snapshot *snap)
{
	if (!snap || atomic_fetch_sub((_Atomic int *)&snap->refs, 1) != 1)
		return;
	hf_router_destroy(snap->router);
	hf_workflow_set_unref(snap->set);
	free(snap);
}

/* Each thread keeps the snapshot it saw last, with a reference, and checks a
 * generation counter: the request path takes no lock unless a reload
 * happened since. The reference is dropped when the thread exits. */
struct snap_cache {
	struct hf_snapshot *snap;
	const struct hf_engine *eng;
	unsigned gen;
};
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *p)
{
	struct snap_cache *c = p;
	hf_snapshot_unref(c->snap);
	free(c);
}

static void cache_init(void)
{
	pthread_key_create(&cache_key, cache_free);
}

void hf_engine_snapshot_forget(void)
{
	pthread_once(&cache_once, cache_init);
	struct snap_cache *c = pthread_getspecific(cache_key);
	if (c) {
		pthread_setspecific(cache_key, NULL);
		cache_free(c);
	}
}

struct hf_snapshot *hf_engine_snapshot(struct hf_engine *eng)
{
	pthread_once(&cache_once, cache_init);
	struct snap_cache *c = pthread_getspecific(cache_key);
	if (!c) {
		c = hf_xcalloc(1, sizeof *c);
		pthread_setspecific(cache_key, c);
	}
	unsigned gen = atomic_load(&eng->snap_gen);
	if (c->snap && c->eng == eng && c->gen == gen) {
		atomic_fetch_add((_Atomic int *)&c->snap->refs, 1);
		return c->snap;
	}
	pthread_mutex_lock(&eng->snap_lock);
	struct hf_snapshot *snap = eng->snap;
	atomic_fetch_add((_Atomic int *)&snap->refs, 2);
	gen = atomic_load(&eng->snap_gen);
	pthread_mutex_unlock(&eng->snap_lock);
	hf_snapshot_unref(c->snap);
	c->snap = snap;
	c->eng = eng;
	c->gen = gen;
	return snap;
}

void hf_engine_run_finished(struct hf_engine *eng, struct hf_run *run)
{
	hf_sched_release(eng->sched, run);
	hf_metrics_run(run->wf ? run->wf->name : "",
		       hf_run_status_name(run->status));
	if (hf_log_structured()) {
		/* One line per outcome, with the ids a log search wants. */
		char attempt[16], elapsed[24];
		snprintf(attempt, sizeof attempt, "%d", run->attempt);
		snprintf(elapsed, sizeof elapsed, "%lld",
			 (long long)(hf_now_ms() - run->created_at));
		hf_log_kv(run->status == HF_RUN_FAILED ? HF_LOG_WARN
						       : HF_LOG_INFO,
			  "run finished", "run", run->id, "workflow",
			  run->wf ? run->wf->name : NULL, "event",
			  run->event ? run->event->id : NULL, "status",
			  hf_run_status_name(run->status), "attempt", attempt,
			  "elapsed_ms", elapsed, "error", run->error,
			  (const char *)NULL);
	} else if (run->status == HF_RUN_FAILED) {
		hf_log(HF_LOG_INFO, "run %s (%s) failed: %s", run->id,
		       run->wf ? run->wf->name : "?",
		       run->error ? run->error : "");
	}
	if (run->waiter && eng->sync_finish)
		eng->sync_finish(run->waiter, run);
	hf_run_free(run);
}

void hf_engine_run_dropped(struct hf_engine *eng, struct hf_run *run)
{
	/* Its lane's slot and its place in the window go; a respond: sync
	 * waiter is answered by its timer. */
	hf_sched_release(eng->sched, run);
	hf_log(HF_LOG_WARN,
	       "run %s (%s): another node took it over; dropped here", run->id,
	       run->wf ? run->wf->name : "?");
	hf_run_free(run);
}

void hf_engine_publish(struct hf_engine *eng, struct hf_workflow_set *set)
{
	struct hf_snapshot *snap = hf_snapshot_new(set);
	hf_metrics_load_errors(set->nfailed);
	pthread_mutex_lock(&eng->snap_lock);
	struct hf_snapshot *prev = eng->snap;
	eng->snap = snap;
	atomic_fetch_add(&eng->snap_gen, 1);
	pthread_mutex_unlock(&eng->snap_lock);
	hf_snapshot_unref(prev);
}
