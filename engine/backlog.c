/* backlog.c - the disk backlog (see hf_backlog.h): where ingest puts new runs
 * (the scheduler's window or the database, unclaimed), the loader thread that
 * brings pages of unclaimed runs into memory as the window frees up, and the
 * hand-off of a commit's runs to the scheduler once per batch.
 *
 * Counts: `reserved` runs were placed on disk by ingest and their write is not
 * done yet; `disk` runs are committed unclaimed and not yet claimed. Both
 * change only in done() calls on the writer thread (in commit order) but for
 * ingest's placing, so that a recount (hf_backlog_rescan: an HF_W_CALL that
 * counts inside its own transaction) is exact. Ingest puts runs in memory
 * only while both are zero: runs never overtake the backlog.
 *
 * A page: the loader reads up to a page of unclaimed runs on a read
 * connection, counts them in the scheduler's depth, and submits the write
 * that claims them; that write's done() takes them off `disk` and the batch's
 * end pushes them, with ingest's runs of the same commit, in order. The loader
 * waits for it before reading the next page (it would read the same rows; on
 * SQLite the claim is one row and the runs are claimed in memory:
 * store_sqlite_backlog.c).
 *
 * Threading: the loader thread; ingest's HTTP threads (hf_backlog_place); the
 * writer (done() calls, hf_backlog_batch_end); any thread releasing a run
 * (the scheduler's room callback). Lock order: the loader's lock, then the
 * scheduler's; the room callback is called with no lock held. */
#include "hf_backlog.h"

#include "hf_limits.h"

#include <stdlib.h>
#include <string.h>

/* Most runs read into memory at once. */
#define PAGE_MAX 512

struct hf_backlog {
	struct hf_engine *eng;
	size_t window; /* --max-queue */
	int64_t max;   /* --max-backlog */
	int64_t found; /* on disk at start (hf_backlog_found) */
	size_t step;   /* the loader waits for this much room */
	atomic_llong reserved, disk;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping, kicked;

	/* The page being claimed (the loader's, then the writer's). */
	struct hf_write claim;
	struct hf_run *page[PAGE_MAX];
	size_t npage;
	bool claim_done; /* under lock */

	/* Recounting (HF_W_CALL); when a page last found nothing (the
	 * loader's, mono ms). */
	struct hf_write rescan;
	int64_t recounted;
	atomic_bool rescanning;
	int64_t counted;

	/* The writer thread's own. */
	struct hf_run *push_head, **push_tail;
	bool wake;	  /* runs went to disk in this batch */
	bool page_landed; /* the page's claim was done in this batch */
};

static void kick(void *arg)
{
	struct hf_backlog *b = arg;
	pthread_mutex_lock(&b->lock);
	b->kicked = true;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

int64_t hf_backlog_size(struct hf_backlog *b)
{
	if (!b)
		return 0;
	int64_t n = atomic_load(&b->reserved) + atomic_load(&b->disk);
	return n > 0 ? n : 0;
}

int64_t hf_backlog_found(const struct hf_backlog *b)
{
	return b ? b->found : 0;
}

enum hf_place hf_backlog_place(struct hf_backlog *b, size_t n, bool in_memory)
{
	struct hf_sched *s = b->eng->sched;
	if (in_memory || n == 0) {
		hf_sched_admit(s, n, 0);
		return HF_PLACE_MEMORY;
	}
	int64_t total = atomic_load(&b->reserved) + atomic_load(&b->disk);
	if (total <= 0 && hf_sched_admit(s, n, b->window))
		return HF_PLACE_MEMORY;
	if (total + (int64_t)n > b->max)
		return HF_PLACE_FULL;
	atomic_fetch_add(&b->reserved, (long long)n);
	return HF_PLACE_DISK;
}

bool hf_backlog_full(struct hf_backlog *b)
{
	int64_t total = hf_backlog_size(b);
	return total >= b->max &&
	       (total > 0 || hf_sched_depth(b->eng->sched) >= b->window);
}

void hf_backlog_stored(struct hf_backlog *b, size_t reserved, size_t stored)
{
	/* disk first: the total never reads 0 while runs wait. */
	atomic_fetch_add(&b->disk, (long long)stored);
	atomic_fetch_sub(&b->reserved, (long long)reserved);
	if (stored)
		b->wake = true;
}

void hf_backlog_defer_push(struct hf_backlog *b, struct hf_run *run)
{
	run->next = NULL;
	if (b->push_head)
		*b->push_tail = run;
	else
		b->push_head = run;
	b->push_tail = &run->next;
}

void hf_backlog_batch_end(struct hf_backlog *b)
{
	if (!b)
		return;
	if (b->push_head) {
		struct hf_run *list = b->push_head;
		b->push_head = NULL;
		hf_sched_push_list(b->eng->sched, list);
	}
	bool landed = b->page_landed, wake = b->wake;
	b->page_landed = b->wake = false;
	if (!landed && !wake)
		return;
	pthread_mutex_lock(&b->lock);
	if (landed)
		b->claim_done = true;
	b->kicked = true;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

/* --- claiming a page (writer thread) --- */

static int claim_call(struct hf_store *s, void *arg)
{
	struct hf_backlog *b = arg;
	return hf_store_claim_runs(s, b->page, b->npage);
}

static void claim_done(struct hf_write *w)
{
	struct hf_backlog *b = w->call_arg;
	if (w->rc == 0) {
		atomic_fetch_sub(&b->disk, (long long)b->npage);
		for (size_t i = 0; i < b->npage; i++)
			hf_backlog_defer_push(b, b->page[i]);
	}
	b->page_landed = true;
}

/* --- recounting (writer thread) --- */

static int rescan_call(struct hf_store *s, void *arg)
{
	struct hf_backlog *b = arg;
	b->counted = hf_store_count_backlog(s);
	return b->counted < 0 ? -1 : 0;
}

static void rescan_done(struct hf_write *w)
{
	struct hf_backlog *b = w->call_arg;
	if (w->rc == 0)
		atomic_store(&b->disk, (long long)b->counted);
	b->wake = true;
	atomic_store(&b->rescanning, false);
}

void hf_backlog_rescan(struct hf_backlog *b)
{
	if (!b || atomic_exchange(&b->rescanning, true))
		return;
	memset(&b->rescan, 0, sizeof b->rescan);
	b->rescan.kind = HF_W_CALL;
	b->rescan.call = rescan_call;
	b->rescan.call_arg = b;
	b->rescan.done = rescan_done;
	hf_store_submit(b->eng->store, &b->rescan);
}

/* --- the loader --- */

static void collect(struct hf_run *run, void *arg)
{
	struct hf_backlog *b = arg;
	run->admitted = true; /* counted by the caller */
	b->page[b->npage++] = run;
}

/* Reads and claims one page of at most room runs (lock not held). Returns how
 * many were claimed, or -1. */
static int load_page(struct hf_backlog *b, size_t room)
{
	struct hf_engine *eng = b->eng;
	struct hf_snapshot *snap = hf_engine_snapshot(eng);
	b->npage = 0;
	int n =
	    hf_store_load_backlog(eng->store, snap->set, (int)room, collect, b);
	hf_snapshot_unref(snap);
	if (n <= 0 || b->npage == 0)
		return n < 0 ? -1 : 0;
	/* A run whose workflow is gone comes back failed (load_run). */
	hf_sched_admit(eng->sched, b->npage, 0);
	memset(&b->claim, 0, sizeof b->claim);
	b->claim.kind = HF_W_CALL;
	b->claim.call = claim_call;
	b->claim.call_arg = b;
	b->claim.done = claim_done;
	pthread_mutex_lock(&b->lock);
	b->claim_done = false;
	pthread_mutex_unlock(&b->lock);
	hf_store_submit(eng->store, &b->claim);
	pthread_mutex_lock(&b->lock);
	while (!b->claim_done)
		pthread_cond_wait(&b->cond, &b->lock);
	pthread_mutex_unlock(&b->lock);
	if (b->claim.rc == 0)
		return (int)b->npage;
	/* Not claimed: they stay on disk, for a later page (PostgreSQL
	 * claimed them as it read them: given back). */
	hf_sched_unadmit(eng->sched, b->npage);
	for (size_t i = 0; i < b->npage; i++) {
		hf_store_release(eng->store, b->page[i]->id);
		b->page[i]->admitted = false;
		hf_run_free(b->page[i]);
	}
	return -1;
}

static void *loader_main(void *arg)
{
	struct hf_backlog *b = arg;
	pthread_mutex_lock(&b->lock);
	while (!b->stopping) {
		if (!b->kicked) {
			/* A lost wake-up costs a second at most. */
			struct timespec ts;
			hf_deadline_in(1000, &ts);
			if (pthread_cond_timedwait(&b->cond, &b->lock, &ts) !=
			    0)
				b->kicked = true;
			continue;
		}
		b->kicked = false;
		if (atomic_load(&b->disk) <= 0)
			continue;
		size_t depth = hf_sched_depth(b->eng->sched);
		size_t room = depth < b->window ? b->window - depth : 0;
		if (room < b->step)
			continue; /* the room callback kicks */
		if (room > PAGE_MAX)
			room = PAGE_MAX;
		pthread_mutex_unlock(&b->lock);
		int n = load_page(b, room);
		pthread_mutex_lock(&b->lock);
		/* A full page: there may be more. None: what is counted is
		 * not committed yet (its commit kicks) or gone (a rescan
		 * fixes the count). */
		if (n == (int)room)
			b->kicked = true;
		else if (n == 0 && hf_mono_ms() - b->recounted >= 1000 &&
			 hf_store_writable(b->eng->store, NULL, 0)) {
			/* Counted but gone: claimed by another node
			 * (PostgreSQL) or ended. The recount kicks (once a
			 * second at most). */
			b->recounted = hf_mono_ms();
			pthread_mutex_unlock(&b->lock);
			hf_backlog_rescan(b);
			pthread_mutex_lock(&b->lock);
		} else if (n <= 0 && !b->stopping) {
			struct timespec ts;
			hf_deadline_in(HF_STORE_PROBE_MS, &ts);
			pthread_cond_timedwait(&b->cond, &b->lock, &ts);
		}
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

struct hf_backlog *hf_backlog_start(struct hf_engine *eng)
{
	struct hf_backlog *b = hf_xcalloc(1, sizeof *b);
	b->eng = eng;
	b->window = (size_t)eng->opt.max_queue;
	b->max = eng->opt.max_backlog;
	size_t step = b->window / 4;
	b->step = step < 1 ? 1 : step > PAGE_MAX / 2 ? PAGE_MAX / 2 : step;
	int64_t n = hf_store_count_backlog(eng->store);
	b->found = n > 0 ? n : 0;
	atomic_store(&b->disk, (long long)b->found);
	b->kicked = n > 0;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	/* Set before the loader runs: the writer's batch end (server.c) reads
	 * it to wake the loader once its first claim commits. */
	eng->backlog = b;
	if (hf_thread_start(&b->thread, "hf-backlog", loader_main, b) != 0) {
		eng->backlog = NULL;
		pthread_mutex_destroy(&b->lock);
		pthread_cond_destroy(&b->cond);
		free(b);
		return NULL;
	}
	hf_sched_on_room(eng->sched, b->window - b->step, kick, b);
	return b;
}

void hf_backlog_stop(struct hf_backlog *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	bool was = b->stopping;
	b->stopping = true;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	if (!was) {
		hf_sched_on_room(b->eng->sched, 0, NULL, NULL);
		pthread_join(b->thread, NULL);
	}
}

void hf_backlog_free(struct hf_backlog *b)
{
	if (!b)
		return;
	hf_backlog_stop(b);
	/* Pushes deferred by a last batch (the writer has stopped). */
	for (struct hf_run *r = b->push_head, *next; r; r = next) {
		next = r->next;
		hf_run_free(r);
	}
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	free(b);
}
