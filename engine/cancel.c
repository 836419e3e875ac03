/* cancel.c - cancelling runs (see hf_cancel.h): the store's record through
 * the writer, then the run stopped in memory.
 *
 * A run in memory is owned by one party at a time (hf_run.h). The scheduler's
 * runs are taken out of it at once (hf_sched_cancel); a run a worker or the
 * writer holds cannot be touched, so its id goes into a small set that the
 * worker consults when it takes a run and when a step's commit hands the run
 * back: the running step finishes and commits, no later step runs. The store
 * keeps a cancelled run cancelled against those later writes (step writes do
 * not overwrite the status). Entries of the set that no worker consumes (the
 * run was not in memory) expire after CANCEL_KEEP_MS.
 *
 * Neighbours: worker.c (asks hf_cancel_take), api.c and cmd_admin.c (the
 * front ends), store_*_flow.c (the record). */
#include "hf_cancel.h"
#include "hf_limits.h"
#include "hf_metrics.h"
#include "hf_ops.h"
#include "hf_park.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CANCEL_KEEP_MS HF_CANCEL_KEEP_MS
#define CANCEL_MAX HF_CANCEL_PENDING

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char id[HF_ID_SIZE];
	int64_t at; /* mono ms */
} pending[CANCEL_MAX];
static atomic_int npending;

struct cancel_arg {
	const char *id;
	const char *reason;
	bool note;
	int result;
	char workflow[HF_NAME_MAX + 1];
};

static int cancel_call(struct hf_store *s, void *arg)
{
	struct cancel_arg *a = arg;
	a->result =
	    hf_store_cancel_run(s, a->id, a->reason, a->note, a->workflow);
	return a->result == -1 ? -1 : 0;
}

/* hf_cancel_store, with the run's workflow name in workflow. */
static int cancel_store(struct hf_store *s, const char *run_id,
			const char *reason, bool note,
			char workflow[HF_NAME_MAX + 1])
{
	struct cancel_arg a = {run_id, reason, note, -1, ""};
	struct hf_write w = {0};
	w.kind = HF_W_CALL;
	w.call = cancel_call;
	w.call_arg = &a;
	int rc = hf_ops_submit_wait(s, &w) == 0 ? a.result : -1;
	memcpy(workflow, a.workflow, sizeof a.workflow);
	return rc;
}

int hf_cancel_store(struct hf_store *s, const char *run_id, const char *reason,
		    bool note)
{
	char workflow[HF_NAME_MAX + 1];
	int rc = cancel_store(s, run_id, reason, note, workflow);
	return rc == 1 ? 0 : rc;
}

int hf_cancel_run(struct hf_engine *eng, const char *run_id, const char *reason)
{
	char workflow[HF_NAME_MAX + 1];
	int rc = cancel_store(eng->store, run_id, reason, false, workflow);
	if (rc == 1) /* it was parked: the waiting gauge */
		hf_park_unparked(eng->park, 1);
	if (rc == 0 || rc == 1)
		/* Counted here: a parked run or one on disk is never in
		 * memory to be counted when it ends. */
		hf_metrics_run(workflow, "cancelled");
	/* A parked run holds no memory, and no wake finds it now. */
	if (rc == 0)
		hf_cancel_committed(eng, run_id);
	return rc == 1 ? 0 : rc;
}

/* Remembers run_id for hf_cancel_take, dropping expired entries. */
static void remember(const char *run_id)
{
	int64_t now = hf_mono_ms();
	pthread_mutex_lock(&lock);
	int n = atomic_load(&npending), k = 0;
	for (int i = 0; i < n; i++)
		if (now - pending[i].at < CANCEL_KEEP_MS)
			pending[k++] = pending[i];
	if (k == CANCEL_MAX) /* full: the oldest goes */
		memmove(pending, pending + 1, (size_t)--k * sizeof *pending);
	snprintf(pending[k].id, sizeof pending[k].id, "%s", run_id);
	pending[k].at = now;
	atomic_store(&npending, k + 1);
	pthread_mutex_unlock(&lock);
}

void hf_cancel_committed(struct hf_engine *eng, const char *run_id)
{
	struct hf_run *run = hf_sched_cancel(eng->sched, run_id);
	if (run) {
		hf_cancel_drop(eng, run);
		return;
	}
	/* A worker or the writer holds it, or it is not in memory. A worker
	 * that pushes it back between the search and this line takes it out
	 * again at its next take. */
	remember(run_id);
}

bool hf_cancel_take(struct hf_run *run)
{
	if (atomic_load(&npending) == 0)
		return false;
	bool found = false;
	pthread_mutex_lock(&lock);
	int n = atomic_load(&npending);
	for (int i = 0; i < n && !found; i++) {
		if (strcmp(pending[i].id, run->id) != 0)
			continue;
		pending[i] = pending[n - 1];
		atomic_store(&npending, n - 1);
		found = true;
	}
	pthread_mutex_unlock(&lock);
	return found;
}

void hf_cancel_drop(struct hf_engine *eng, struct hf_run *run)
{
	/* hf_engine_run_finished without the count: counted at the cancel. */
	run->status = HF_RUN_CANCELLED;
	if (!run->error)
		run->error = hf_xstrdup("cancelled");
	hf_sched_release(eng->sched, run);
	hf_log(HF_LOG_INFO, "run %s (%s) cancelled", run->id,
	       run->wf ? run->wf->name : "?");
	if (run->waiter && eng->sync_finish)
		eng->sync_finish(run->waiter, run);
	hf_run_free(run);
}

/* --- notes of other processes --- */

struct notes {
	char (*ids)[HF_ID_SIZE];
	bool *waiting; /* parked when cancelled */
	size_t n, cap;
};

static void note(const char *run_id, bool was_waiting, void *arg)
{
	struct notes *ns = arg;
	if (!run_id || ns->n == ns->cap)
		return;
	ns->waiting[ns->n] = was_waiting;
	snprintf(ns->ids[ns->n++], HF_ID_SIZE, "%s", run_id);
}

static int notes_done_call(struct hf_store *s, void *arg)
{
	struct notes *ns = arg;
	for (size_t i = 0; i < ns->n; i++)
		if (hf_store_cancel_note_done(s, ns->ids[i]) < 0)
			return -1;
	return 0;
}

void hf_cancel_poll(struct hf_engine *eng)
{
	struct notes ns = {0};
	ns.cap = 1000;
	ns.ids = hf_xcalloc(ns.cap, sizeof *ns.ids);
	ns.waiting = hf_xcalloc(ns.cap, sizeof *ns.waiting);
	if (hf_store_cancel_notes(eng->store, note, &ns) > 0) {
		struct hf_write w = {0};
		w.kind = HF_W_CALL;
		w.call = notes_done_call;
		w.call_arg = &ns;
		bool done = hf_ops_submit_wait(eng->store, &w) == 0;
		for (size_t i = 0; done && i < ns.n; i++) {
			json_t *run = hf_store_run_json(eng->store, ns.ids[i]);
			const char *wf =
			    json_string_value(json_object_get(run, "workflow"));
			hf_metrics_run(wf ? wf : "", "cancelled");
			json_decref(run);
			if (ns.waiting[i]) /* the waiting gauge */
				hf_park_unparked(eng->park, 1);
			else /* a parked run holds no memory */
				hf_cancel_committed(eng, ns.ids[i]);
		}
	}
	free(ns.ids);
	free(ns.waiting);
}
