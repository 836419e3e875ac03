/* store_writer.c - the writer thread with group commit that both state
 * backends share (see store_writer.h): writes queue up (hf_writer_submit),
 * the thread takes up to HF_WRITER_BATCH of them and has the backend apply
 * them in one transaction (which may take in those queued meanwhile, up to
 * the same bound: hf_writer_more); when that fails, each write again in a
 * transaction of its own, so that one bad write fails alone; when the
 * database cannot write (a disk full, an I/O error, a lost server), every
 * write of the batch fails at once: hf_store_writable turns false, one log
 * line at most every HF_STORE_FAULT_LOG_MS says so, and a tiny write every
 * HF_STORE_PROBE_MS finds when it can again. done() is called for each write
 * after its commit (or its failure), then the batch-end notice. Also the
 * one step of applying a write that both backends share: an ingest write's
 * dedupe pass (hf_writer_dedupe).
 *
 * Not here: what a transaction is and how each write applies (the backends:
 * store_sqlite.c, store_pg.c and their siblings).
 *
 * Neighbours: store_int.h (struct hf_write), store_sqlite.c and store_pg.c,
 * which embed struct hf_store_writer. */
#include "store_writer.h"
#include "hf_limits.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* --- whether the database can write --- */

/* The database cannot write (msg says why). */
static void health_fault(struct hf_store_writer *wr, const char *msg)
{
	int64_t now = hf_mono_ms();
	pthread_mutex_lock(&wr->health_lock);
	snprintf(wr->why, sizeof wr->why, "%s", msg);
	pthread_mutex_unlock(&wr->health_lock);
	if (!atomic_exchange(&wr->unwritable, true))
		wr->fault_since = now;
	if (wr->fault_logged_at &&
	    now - wr->fault_logged_at < HF_STORE_FAULT_LOG_MS)
		return;
	wr->fault_logged_at = now;
	wr->fault_logged = true;
	hf_log(HF_LOG_ERROR,
	       "state database cannot write: %s (%llu writes failed so far); "
	       "webhooks get 503, steps and deliveries wait until it can",
	       msg, (unsigned long long)wr->stats.write_errors);
}

/* A write committed: the database writes (again). */
static void health_ok(struct hf_store_writer *wr)
{
	if (!atomic_exchange(&wr->unwritable, false) || !wr->fault_logged)
		return;
	wr->fault_logged = false;
	hf_log(HF_LOG_INFO, "state database writes again (after %llds)",
	       (long long)((hf_mono_ms() - wr->fault_since + 999) / 1000));
}

bool hf_writer_writable(struct hf_store_writer *wr, char *why, size_t size)
{
	if (!atomic_load(&wr->unwritable))
		return true;
	if (why && size) {
		pthread_mutex_lock(&wr->health_lock);
		snprintf(why, size, "%s", wr->why);
		pthread_mutex_unlock(&wr->health_lock);
	}
	return false;
}

/* --- batches --- */

static size_t counts(const struct hf_store_writer *wr, const struct hf_write *w)
{
	return wr->ops->counts ? wr->ops->counts(w) : 1;
}

/* Applies a batch (n: what its writes count for) in one transaction; when it
 * fails, each write again in one of its own, unless the database cannot
 * write. */
static void apply_batch(struct hf_store_writer *wr, struct hf_write *batch,
			size_t n)
{
	assert(hf_writer_applying(wr));
	bool fault = false;
	char msg[160];
	wr->taken = n;
	int rc =
	    wr->ops->transact(wr->store, batch, NULL, &fault, msg, sizeof msg);
	wr->growing = false;
	n = wr->taken; /* with what hf_writer_more added */
	for (struct hf_write *w = batch; w; w = w->next)
		w->rc = rc;
	if (rc == 0) {
		wr->stats.commits++;
		wr->stats.writes += n;
		health_ok(wr);
		return;
	}
	if (fault) {
		wr->stats.write_errors += n;
		health_fault(wr, msg);
		return;
	}
	bool alone = !batch->next; /* once is enough */
	if (!alone)
		hf_log(HF_LOG_WARN,
		       "state database: batch failed (%s); applying its writes "
		       "one by one",
		       msg);
	bool any_fault = false, committed = false;
	for (struct hf_write *w = batch; w; w = w->next) {
		w->rc = alone ? -1
			      : wr->ops->transact(wr->store, w, w->next, &fault,
						  msg, sizeof msg);
		if (w->rc == 0) {
			wr->stats.commits++;
			wr->stats.writes += counts(wr, w);
			committed = true;
			continue;
		}
		wr->stats.write_errors++;
		if (fault)
			any_fault = true;
		else
			hf_log(HF_LOG_ERROR, "state database: write failed: %s",
			       msg);
	}
	if (any_fault)
		health_fault(wr, msg);
	else if (committed)
		health_ok(wr);
}

struct hf_write *hf_writer_more(struct hf_store_writer *wr,
				struct hf_write *last)
{
	assert(hf_writer_applying(wr));
	if (!wr->growing || wr->taken >= HF_WRITER_BATCH)
		return NULL;
	pthread_mutex_lock(&wr->lock);
	struct hf_write *first = wr->head, *end = first;
	if (first) {
		wr->taken += counts(wr, first);
		while (end->next && wr->taken < HF_WRITER_BATCH) {
			end = end->next;
			wr->taken += counts(wr, end);
		}
		wr->head = end->next;
		if (!wr->head)
			wr->tail = NULL;
		end->next = NULL;
		last->next = first;
	}
	pthread_mutex_unlock(&wr->lock);
	return first;
}

static void finish_batch(struct hf_write *batch)
{
	while (batch) {
		struct hf_write *next = batch->next;
		batch->next = NULL;
		if (batch->done)
			batch->done(batch);
		batch = next;
	}
}

/* Applies a batch holding wlock, this thread marked as the one applying
 * (hf_writer_applying). */
static void apply_locked(struct hf_store_writer *wr, struct hf_write *batch,
			 size_t n)
{
	pthread_mutex_lock(&wr->wlock);
	wr->applier = pthread_self();
	wr->applying = true;
	apply_batch(wr, batch, n);
	wr->applying = false;
	pthread_mutex_unlock(&wr->wlock);
}

/* The batch-end notice (lock held; released while it runs). */
static void batch_end(struct hf_store_writer *wr)
{
	if (!wr->batch_end)
		return;
	void (*end)(void *) = wr->batch_end;
	void *end_arg = wr->batch_end_arg;
	pthread_mutex_unlock(&wr->lock);
	end(end_arg);
	pthread_mutex_lock(&wr->lock);
}

/* --- the writer thread --- */

/* Waits (lock held) for a write to apply or the stop. While the database
 * cannot write, tries a tiny write every HF_STORE_PROBE_MS meanwhile: nobody
 * else may write before it can (workers and the outbox pause), and its
 * commit is what lets them go on. */
static void writer_wait(struct hf_store_writer *wr)
{
	while (!wr->head && !wr->stopping) {
		if (!atomic_load(&wr->unwritable)) {
			pthread_cond_wait(&wr->cond, &wr->lock);
			continue;
		}
		struct timespec ts;
		hf_deadline_in(HF_STORE_PROBE_MS, &ts);
		if (pthread_cond_timedwait(&wr->cond, &wr->lock, &ts) !=
			ETIMEDOUT ||
		    wr->head || wr->stopping)
			continue;
		pthread_mutex_unlock(&wr->lock);
		struct hf_write w = {.kind = HF_W_CALL, .call = wr->ops->probe};
		apply_locked(wr, &w, 1);
		pthread_mutex_lock(&wr->lock);
	}
}

static void *writer_main(void *arg)
{
	struct hf_store_writer *wr = arg;
	wr->writer_id = pthread_self(); /* read by this thread only */
	pthread_mutex_lock(&wr->lock);
	for (;;) {
		writer_wait(wr);
		if (!wr->head && wr->stopping)
			break;
		/* Take up to HF_WRITER_BATCH waiting writes (not counting
		 * those that will write nothing). */
		struct hf_write *batch = wr->head, *last = wr->head;
		size_t n = counts(wr, batch);
		while (last->next && n < HF_WRITER_BATCH) {
			last = last->next;
			n += counts(wr, last);
		}
		wr->head = last->next;
		if (!wr->head)
			wr->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&wr->lock);

		wr->growing = true; /* hf_writer_more, in transact() */
		apply_locked(wr, batch, n);
		finish_batch(batch);

		pthread_mutex_lock(&wr->lock);
		batch_end(wr);
		if (wr->ops->after_batch) {
			pthread_mutex_unlock(&wr->lock);
			wr->ops->after_batch(
			    wr->store); /* after the hand-offs */
			pthread_mutex_lock(&wr->lock);
		}
	}
	pthread_mutex_unlock(&wr->lock);
	return NULL;
}

void hf_writer_submit(struct hf_store_writer *wr, struct hf_write *w)
{
	w->next = NULL;
	w->rc = 0;
	if (!wr->threaded) {
		/* No writer thread: applied here, on the caller's thread. */
		apply_locked(wr, w, 1);
		finish_batch(w);
		pthread_mutex_lock(&wr->lock);
		batch_end(wr);
		pthread_mutex_unlock(&wr->lock);
		return;
	}
	pthread_mutex_lock(&wr->lock);
	if (wr->tail)
		wr->tail->next = w;
	else
		wr->head = w;
	wr->tail = w;
	pthread_cond_signal(&wr->cond);
	pthread_mutex_unlock(&wr->lock);
}

void hf_writer_on_batch_end(struct hf_store_writer *wr, void (*fn)(void *arg),
			    void *arg)
{
	pthread_mutex_lock(&wr->lock);
	wr->batch_end_arg = arg;
	wr->batch_end = fn;
	pthread_mutex_unlock(&wr->lock);
}

void hf_writer_stats(struct hf_store_writer *wr, struct hf_store_stats *out)
{
	pthread_mutex_lock(&wr->wlock); /* apply_batch counts under it */
	*out = wr->stats;
	pthread_mutex_unlock(&wr->wlock);
}

/* --- what both backends' ingest writes share --- */

int hf_writer_dedupe(struct hf_write *w,
		     int (*check)(void *ctx, const struct hf_run *run,
				  char dup[HF_ID_SIZE]),
		     void *ctx)
{
	struct hf_event *ev = w->event;
	size_t kept = 0, dups = 0;
	/* A batch that failed is applied again write by write: take back the
	 * skip reasons the rolled-back attempt added. */
	if (!w->skip_base_set) {
		w->skip_base = json_array_size(ev->skipped);
		w->skip_base_set = true;
	}
	while (json_array_size(ev->skipped) > w->skip_base)
		json_array_remove(ev->skipped,
				  json_array_size(ev->skipped) - 1);
	w->dup_of[0] = '\0';
	for (size_t i = 0; i < w->nruns; i++) {
		w->dropped[i] = false;
		if (!w->runs[i]->dedupe_key) {
			kept++;
			continue;
		}
		char dup[HF_ID_SIZE];
		int rc = check(ctx, w->runs[i], dup);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			kept++;
			continue;
		}
		w->dropped[i] = true;
		dups++;
		memcpy(w->dup_of, dup, HF_ID_SIZE);
		json_t *skip = json_object();
		json_object_set_new(skip, "workflow",
				    json_string(w->runs[i]->wf->name));
		json_object_set_new(skip, "reason",
				    json_sprintf("duplicate of event %s", dup));
		if (!ev->skipped)
			ev->skipped = json_array();
		json_array_append_new(ev->skipped, skip);
	}
	if (kept == 0 && dups > 0)
		return 1; /* a pure duplicate: nothing to store */
	w->dup_of[0] = '\0';
	return 0;
}

/* --- lifecycle --- */

void hf_writer_init(struct hf_store_writer *wr, struct hf_store *s,
		    const struct hf_writer_ops *ops)
{
	wr->store = s;
	wr->ops = ops;
	pthread_mutex_init(&wr->lock, NULL);
	pthread_mutex_init(&wr->wlock, NULL);
	pthread_cond_init(&wr->cond, NULL);
	pthread_mutex_init(&wr->health_lock, NULL);
}

int hf_writer_start(struct hf_store_writer *wr)
{
	wr->threaded = true;
	if (hf_thread_start(&wr->thread, "hf-writer", writer_main, wr) != 0) {
		wr->threaded = false;
		return -1;
	}
	return 0;
}

bool hf_writer_stop(struct hf_store_writer *wr)
{
	if (!wr->threaded)
		return false;
	pthread_mutex_lock(&wr->lock);
	wr->stopping = true;
	pthread_cond_signal(&wr->cond);
	pthread_mutex_unlock(&wr->lock);
	pthread_join(wr->thread, NULL);
	return true;
}

void hf_writer_destroy(struct hf_store_writer *wr)
{
	pthread_mutex_destroy(&wr->lock);
	pthread_mutex_destroy(&wr->wlock);
	pthread_cond_destroy(&wr->cond);
	pthread_mutex_destroy(&wr->health_lock);
}
