/* worker.c - worker threads: take a ready run, execute its next step in the
 * thread's own Lua runtime, hand the result to the writer, take the next run.
 *
 * The run goes back to the scheduler (next step, or a retry at its due time) or
 * ends only in the write's done() callback, after the step's result, the run's
 * progress and the step's emitted deliveries are committed together. A crash
 * before that commit re-runs the step at the next start: steps are at least
 * once, and `run.attempt` tells a script it is a repeat.
 *
 * While the state database cannot write (hf_store_writable), a worker takes
 * no run: a step's result that cannot be stored would only make it run again.
 * A step whose commit failed anyway runs again later as the next attempt
 * (run.attempt + 1). On PostgreSQL a node that lost its lease starts no
 * step (the store is not writable meanwhile) and drops the runs it held
 * (hf_store_holds), and a step's write that the store refused because
 * another node took the run over (w->fenced) drops the run too. Each worker
 * shows the deadline of the step it runs, for
 * /healthz (hf_workers_stuck). */
#include "hf_cancel.h"
#include "hf_debounce.h"
#include "hf_limits.h"
#include "hf_metrics.h"
#include "hf_on_failure.h"
#include "hf_ops.h"
#include "hf_outbox.h"
#include "hf_park.h"
#include "hf_throttle.h"
#include "hf_worker.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct worker {
	struct hf_workers *pool;
	struct hf_luart *rt;
	pthread_t thread;
	/* Writes of this worker not yet committed, and the bytes of their
	 * results (see HF_WORKER_INFLIGHT, HF_WORKER_INFLIGHT_BYTES). */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int inflight;
	size_t inflight_bytes;
	/* The step running (under lock): its deadline (mono ms; 0: none
	 * running), run and step, for hf_workers_stuck. */
	int64_t deadline;
	char run_id[HF_ID_SIZE];
	char step_id[64];
};

struct hf_workers {
	struct hf_engine *eng;
	struct worker *items;
	int n;
	atomic_int busy;
	atomic_int running; /* threads not yet exited */
	atomic_bool stopping;
};

/* A worker does not wait for each commit (that would cap it at one step per
 * fsync) but keeps at most HF_WORKER_INFLIGHT writes, holding at most
 * HF_WORKER_INFLIGHT_BYTES of results, uncommitted: a crash repeats at most
 * that many steps per worker. Group commit batches them with everyone
 * else's; the bound is well above what a worker runs during one commit, so
 * commits, not the bound, set the pace, and the bytes keep the memory of
 * big outputs waiting for their commit bounded. */
static void commit_begin(struct worker *wk, size_t bytes)
{
	pthread_mutex_lock(&wk->lock);
	wk->inflight++;
	wk->inflight_bytes += bytes;
	pthread_mutex_unlock(&wk->lock);
}

/* Waits until at most max writes and max_bytes bytes are uncommitted. */
static void commit_wait(struct worker *wk, int max, size_t max_bytes)
{
	pthread_mutex_lock(&wk->lock);
	while (wk->inflight > max || wk->inflight_bytes > max_bytes)
		pthread_cond_wait(&wk->cond, &wk->lock);
	pthread_mutex_unlock(&wk->lock);
}

/* On the writer thread, after the commit (or its failure). The worker is
 * woken only when it may be waiting: once below half the bounds, or at the
 * last write (the stop waits for that), not at every commit. */
static void commit_end(struct worker *wk, size_t bytes)
{
	if (!wk)
		return;
	pthread_mutex_lock(&wk->lock);
	wk->inflight--;
	wk->inflight_bytes -= bytes;
	if (wk->inflight == 0 ||
	    (wk->inflight <= HF_WORKER_INFLIGHT / 2 &&
	     wk->inflight_bytes <= HF_WORKER_INFLIGHT_BYTES / 2))
		pthread_cond_signal(&wk->cond);
	pthread_mutex_unlock(&wk->lock);
}

struct step_write {
	struct hf_write w;
	struct hf_step_result res;
	/* The run's state before the step, restored when the commit fails. */
	size_t prev_step;
	int prev_attempt;
	enum hf_run_status prev_status;
	int64_t prev_wake_at;
	struct worker *wk; /* waiting for this commit; NULL: nobody */
	size_t bytes;	   /* counted in wk->inflight_bytes */
};

static void step_written(struct hf_write *w)
{
	struct step_write *sw = (struct step_write *)w;
	struct hf_engine *eng = w->ctx;
	struct hf_run *run = w->run;
	struct worker *wk = sw->wk;
	size_t bytes = sw->bytes;
	if (w->rc < 0) {
		/* Not committed: try the step again rather than lose the run,
		 * once the database writes again (workers pause till then). It
		 * did run, and may have had effects: the next try is a later
		 * attempt, so that run.attempt > 1 tells the script. */
		run->next_step = sw->prev_step;
		run->step_attempt = sw->prev_attempt + (w->result ? 1 : 0);
		run->status = sw->prev_status;
		run->due_at = hf_now_ms() + HF_STORE_PROBE_MS;
		/* Not parked after all: the step waits again when it runs. */
		run->wake_at = sw->prev_wake_at;
		hf_run_end_wait(run);
	}
	bool over = w->rc == 0 && (run->status == HF_RUN_SUCCEEDED ||
				   run->status == HF_RUN_FAILED ||
				   run->status == HF_RUN_CANCELLED);
	/* Parked (hf_park.h): the row holds it now, memory lets go. */
	bool parked = w->rc == 0 && run->status == HF_RUN_WAITING;
	/* The step's emits are committed: the outbox need not wait a tick. */
	if (w->rc == 0 && w->result && sw->res.nemits > 0)
		hf_outbox_kick(eng->outbox);
	bool committed = w->rc == 0;
	if (w->result)
		hf_step_result_release(&sw->res);
	bool fenced = w->fenced;
	free(sw);
	atomic_store(&run->owned, false);
	/* Cancelled while this step ran: it committed, no later step runs. */
	if (committed && hf_cancel_take(run)) {
		hf_cancel_drop(eng, run);
	} else if (fenced && run->status == HF_RUN_CANCELLED) {
		/* Cancelled on another node (store_pg_apply.c): the step
		 * committed, no later step runs. */
		hf_cancel_drop(eng, run);
	} else if (fenced) {
		/* Another node holds the run: this node lets go of it. */
		hf_engine_run_dropped(eng, run);
	} else if (over) {
		hf_engine_run_finished(eng, run);
	} else if (parked) {
		/* A respond: sync caller gets its answer now (202). */
		if (run->waiter && eng->sync_finish)
			eng->sync_finish(run->waiter, run);
		run->waiter = NULL;
		hf_park_parked(eng->park, run->wake_at);
		hf_sched_release(eng->sched, run);
		hf_run_free(run);
	} else {
		hf_sched_push(eng->sched, run);
	}
	commit_end(wk, bytes);
}

/* Not counted in the worker's bound (no step repeats for it): its step's
 * write, behind it, is. */
static void started_written(struct hf_write *w)
{
	free(w);
}

/* Ends a run that cannot proceed (its workflow is gone, its timeout passed)
 * without running a step. */
static void fail_run(struct hf_engine *eng, struct hf_run *run, char *error)
{
	struct step_write *sw = hf_xcalloc(1, sizeof *sw);
	free(run->error);
	run->error = error;
	run->status = HF_RUN_FAILED;
	sw->prev_step = run->next_step;
	sw->prev_attempt = run->step_attempt;
	sw->prev_status = HF_RUN_RUNNING;
	sw->w.kind = HF_W_STEP;
	sw->w.run = run;
	sw->w.result = NULL;
	sw->w.done = step_written;
	sw->w.ctx = eng;
	hf_store_submit(eng->store, &sw->w);
}

/* Shows the step of run about to start at now (wall ms), or with NULL that
 * none runs. */
static void show_step(struct worker *wk, const struct hf_run *run, int64_t now)
{
	int64_t budget = run ? hf_step_budget(run, now) : 0;
	pthread_mutex_lock(&wk->lock);
	wk->deadline = budget > 0 ? hf_mono_ms() + budget : 0;
	if (budget > 0) {
		snprintf(wk->run_id, sizeof wk->run_id, "%s", run->id);
		snprintf(wk->step_id, sizeof wk->step_id, "%s",
			 run->wf->steps[run->next_step].id);
	}
	pthread_mutex_unlock(&wk->lock);
}

/* What the result of sw holds until its commit (for
 * HF_WORKER_INFLIGHT_BYTES). */
static size_t result_bytes(const struct step_write *sw)
{
	const struct hf_step_result *r = &sw->res;
	size_t n = sizeof *sw + (r->output_text ? strlen(r->output_text) : 0) +
		   (r->logs_text ? strlen(r->logs_text) : 0) +
		   (r->error ? strlen(r->error) : 0);
	for (size_t i = 0; i < r->nemits; i++)
		n += sizeof r->emits[i] +
		     (r->emits[i].payload ? strlen(r->emits[i].payload) : 0);
	return n;
}

/* Parked: the run's row changes, no step record yet (the write makes a
 * "started" write redundant). */
static void park_write(struct worker *wk, struct hf_engine *eng,
		       struct hf_run *run, struct step_write *sw, size_t index)
{
	atomic_store(&run->step_pending, true);
	sw->w.kind = HF_W_STEP;
	sw->w.run = run;
	sw->w.step_index = index;
	sw->w.result = NULL;
	sw->w.done = step_written;
	sw->w.ctx = eng;
	sw->wk = wk;
	commit_begin(wk, 0);
	hf_store_submit(eng->store, &sw->w);
	commit_wait(wk, HF_WORKER_INFLIGHT, HF_WORKER_INFLIGHT_BYTES);
}

static void execute(struct worker *wk, struct hf_run *run);

/* A debounced run at its first step (hf_debounce.h): parked as a burst's
 * leader, or ended as joined to one, each committed before the next run of
 * any burst is looked at. Returns false when it runs now. */
static bool debounce(struct worker *wk, struct hf_run *run, int64_t now)
{
	struct hf_engine *eng = wk->pool->eng;
	hf_debounce_lock();
	enum hf_run_status prev = run->status;
	int rc = hf_debounce_gate(eng->store, run, now);
	if (rc > 0) {
		struct step_write *sw = hf_xcalloc(1, sizeof *sw);
		sw->prev_step = run->next_step;
		sw->prev_attempt = run->step_attempt;
		sw->prev_status = prev;
		park_write(wk, eng, run, sw, run->next_step);
		commit_wait(wk, 0, 0); /* the next burst member sees it */
	}
	hf_debounce_unlock();
	return rc > 0;
}

/* Before a step (hf_debounce.h, hf_throttle.h): true when the run was
 * parked or ended instead. */
static bool flow_gates(struct worker *wk, struct hf_run *run, int64_t now)
{
	struct hf_engine *eng = wk->pool->eng;
	if (hf_debounce_applies(run) && debounce(wk, run, now))
		return true;
	hf_debounce_resolve(eng->store, run); /* a woken leader's burst */
	if (hf_throttle_gate(eng->store, run, now) <= 0)
		return false;
	/* Parked until its start, before it starts. */
	struct step_write *sw = hf_xcalloc(1, sizeof *sw);
	sw->prev_step = run->next_step;
	sw->prev_attempt = run->step_attempt;
	sw->prev_status = HF_RUN_QUEUED;
	park_write(wk, eng, run, sw, run->next_step);
	return true;
}

/* The run's timeout passed before its step: its on_failure steps run now
 * (on their own time), else it fails. */
static void timed_out(struct worker *wk, struct hf_run *run)
{
	char t[32];
	snprintf(t, sizeof t, "%lldms", (long long)run->wf->timeout_ms);
	char *msg = hf_xasprintf("run timed out after %s", t);
	if (hf_on_failure_enter(run, run->wf->steps[run->next_step].id, msg,
				run->step_attempt)) {
		free(run->error);
		run->error = msg;
		atomic_store(&run->owned, false);
		execute(wk, run);
		return;
	}
	fail_run(wk->pool->eng, run, msg);
}

static void execute(struct worker *wk, struct hf_run *run)
{
	struct hf_engine *eng = wk->pool->eng;
	int64_t now = hf_now_ms();
	bool held = atomic_exchange(&run->owned, true);
	assert(!held && "a run is executed by one worker at a time");
	(void)held;
	if (!run->wf) {
		fail_run(
		    eng, run,
		    hf_xstrdup(run->error ? run->error : "workflow missing"));
		return;
	}
	atomic_store(&run->step_pending, false);
	if (flow_gates(wk, run, now))
		return;
	if (run->status == HF_RUN_QUEUED) {
		run->status = HF_RUN_RUNNING;
		/* A run woken from a wait (hf_park.h) keeps its start. */
		if (!run->started_at)
			run->started_at = now;
		struct hf_write *w = hf_xcalloc(1, sizeof *w);
		w->kind = HF_W_RUN_STARTED;
		w->run = run;
		w->done = started_written;
		hf_store_submit(eng->store, w);
	}
	if (run->next_step >= run->wf->nsteps)
		hf_on_failure_restore(eng->store,
				      run); /* loaded after a stop */
	struct step_write *sw = hf_xcalloc(1, sizeof *sw);
	sw->prev_step = run->next_step;
	sw->prev_attempt = run->step_attempt;
	sw->prev_status = run->status;
	sw->prev_wake_at = run->wake_at;
	struct hf_ops_step done;
	atomic_fetch_add(&wk->pool->busy, 1);
	show_step(wk, run, now);
	int rc = hf_ops_step(wk->rt, run, now, &sw->res, &done);
	show_step(wk, NULL, 0);
	atomic_fetch_sub(&wk->pool->busy, 1);
	if (rc < 0) {
		free(sw);
		timed_out(wk, run);
		return;
	}

	if (run->status == HF_RUN_WAITING) {
		hf_step_result_release(&sw->res);
		park_write(wk, eng, run, sw, done.index);
		return;
	}
	hf_metrics_step(hf_step_status_name(sw->res.status),
			(double)(sw->res.finished_at - sw->res.started_at) /
			    1000.0);
	sw->w.kind = HF_W_STEP;
	sw->w.run = run;
	sw->w.step_index = done.index;
	/* A skipped step was never tried. */
	sw->w.step_attempts =
	    sw->res.status == HF_STEP_SKIPPED ? 0 : done.attempt;
	sw->w.result = &sw->res;
	sw->w.done = step_written;
	sw->w.ctx = eng;
	sw->res.output_text =
	    json_dumps(sw->res.output, JSON_COMPACT | JSON_ENCODE_ANY);
	sw->res.logs_text = json_dumps(sw->res.logs, JSON_COMPACT);
	atomic_store(&run->step_pending, true);
	sw->wk = wk;
	sw->bytes = result_bytes(sw);
	commit_begin(wk, sw->bytes);
	hf_store_submit(eng->store, &sw->w);
	commit_wait(wk, HF_WORKER_INFLIGHT, HF_WORKER_INFLIGHT_BYTES);
}

/* A run of a concurrency lane starts once the runs of its lane before it
 * allow (on PostgreSQL they may be on other nodes: hf_store_lane_ready);
 * until then it waits in the scheduler, holding its lane's local slot so
 * that the lane's later runs here stay behind it, unless one of those waiting
 * here comes before it (hf_sched_lane_wait: a run taken over from a dead
 * node, which this one may be waiting for). */
static bool lane_ready(struct hf_engine *eng, struct hf_run *run)
{
	if (!run->lane || !run->wf || run->status != HF_RUN_QUEUED)
		return true;
	int max = run->wf->concurrency_max > 0 ? run->wf->concurrency_max : 1;
	int64_t seq = 0;
	int ready = hf_store_lane_ready(eng->store, run, max, &seq);
	if (seq > 0)
		run->lane_seq = seq;
	if (ready == 1)
		return true;
	run->due_at = hf_now_ms() + HF_LANE_POLL_MS;
	hf_sched_lane_wait(eng->sched, run);
	return false;
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	/* Named for top -H, perf and gdb. */
	struct hf_engine *eng = wk->pool->eng;
	struct hf_run *run;
	for (;;) {
		/* Paused while the database cannot write (bounded by the
		 * stop). */
		while (!hf_store_writable(eng->store, NULL, 0) &&
		       !atomic_load(&wk->pool->stopping)) {
			struct timespec ts = {0, HF_WORKER_PAUSE_POLL_MS *
						     1000 * 1000L};
			nanosleep(&ts, NULL);
		}
		if (!(run = hf_sched_take(eng->sched)))
			break;
		if (hf_cancel_take(run)) {
			hf_cancel_drop(eng, run);
			continue;
		}
		if (!hf_store_writable(eng->store, NULL, 0)) {
			/* It could not while this worker waited for a run. */
			run->due_at = hf_now_ms() + HF_WORKER_PAUSE_POLL_MS;
			hf_sched_push(eng->sched, run);
			continue;
		}
		if (!hf_store_holds(eng->store, run)) {
			/* This node lost its lease since it took the run:
			 * another node has it. */
			hf_engine_run_dropped(eng, run);
			continue;
		}
		if (!lane_ready(eng, run))
			continue;
		execute(wk, run);
	}
	/* The writer's done() callbacks name this worker: wait for them. */
	commit_wait(wk, 0, 0);
	atomic_fetch_sub(&wk->pool->running, 1);
	return NULL;
}

struct hf_workers *hf_workers_start(struct hf_engine *eng, int n,
				    const struct hf_luart_config *cfg,
				    struct hf_error *err)
{
	struct hf_workers *pool = hf_xcalloc(1, sizeof *pool);
	pool->eng = eng;
	pool->items = hf_xcalloc((size_t)n, sizeof *pool->items);
	for (int i = 0; i < n; i++) {
		pool->items[i].pool = pool;
		pthread_mutex_init(&pool->items[i].lock, NULL);
		pthread_cond_init(&pool->items[i].cond, NULL);
		pool->items[i].rt = hf_luart_create(cfg, err);
		if (!pool->items[i].rt)
			goto fail;
	}
	for (int i = 0; i < n; i++) {
		atomic_fetch_add(&pool->running, 1);
		if (hf_thread_start(&pool->items[i].thread, "hf-worker",
				    worker_main, &pool->items[i]) != 0) {
			atomic_fetch_sub(&pool->running, 1);
			hf_error_set(err, NULL, 0, 0, "cannot start worker");
			hf_sched_stop(eng->sched);
			for (int j = 0; j < i; j++)
				pthread_join(pool->items[j].thread, NULL);
			goto fail;
		}
		pool->n++;
	}
	return pool;
fail:
	for (int i = 0; i < n; i++)
		hf_luart_destroy(pool->items[i].rt);
	free(pool->items);
	free(pool);
	return NULL;
}

int hf_workers_busy(struct hf_workers *w)
{
	return w ? atomic_load(&w->busy) : 0;
}

int hf_workers_stop(struct hf_workers *pool, int64_t timeout_ms)
{
	if (!pool)
		return 0;
	atomic_store(&pool->stopping, true);
	int64_t deadline = hf_mono_ms() + timeout_ms;
	while (atomic_load(&pool->running) > 0 && hf_mono_ms() < deadline) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&pool->running) > 0)
		return -1;
	for (int i = 0; i < pool->n; i++) {
		pthread_join(pool->items[i].thread, NULL);
		hf_luart_destroy(pool->items[i].rt);
	}
	free(pool->items);
	free(pool);
	return 0;
}

bool hf_workers_stuck(struct hf_workers *pool, char *why, size_t size)
{
	if (!pool)
		return false;
	int64_t now = hf_mono_ms();
	for (int i = 0; i < pool->n; i++) {
		struct worker *wk = &pool->items[i];
		pthread_mutex_lock(&wk->lock);
		int64_t late = wk->deadline ? now - wk->deadline : 0;
		bool stuck = late > HF_HEALTH_STUCK_MARGIN_MS;
		if (stuck)
			snprintf(
			    why, size,
			    "worker %d stuck: step '%s' of run %s is %llds "
			    "past its deadline",
			    i + 1, wk->step_id, wk->run_id,
			    (long long)(late / 1000));
		pthread_mutex_unlock(&wk->lock);
		if (stuck)
			return true;
	}
	return false;
}
