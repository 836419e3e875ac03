/* store_writer.h - the writer thread that both state backends share
 * (store_writer.c): the queue of writes, the batches taken from it and their
 * group commit, a failed batch applied again write by write, the done()
 * calls after the commit, whether the database can write (and the probe that
 * finds when it can again), the counts behind hf_store_stats, and an ingest
 * write's dedupe pass, which both backends apply alike. Included by
 * store_sqlite.h and store_pg.h only; each backend embeds a struct
 * hf_store_writer and gives it its transaction (struct hf_writer_ops).
 *
 * Threading: hf_writer_submit on any thread; with a writer thread the
 * batches apply on it, without one (the CLI) on the submitting thread, under
 * wlock in both cases. wlock also guards the backend's writer connection for
 * the few callers that use it directly. */
#ifndef HF_STORE_WRITER_H
#define HF_STORE_WRITER_H

#include "store_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hf_writer_ops {
	/* Applies the writes from w up to end (NULL: the list's end) in one
	 * transaction, on the thread applying (hf_writer_applying). Returns
	 * 0, or -1 rolled back with the reason in msg and *fault set when the
	 * database cannot write at all (every write would fail alike). */
	int (*transact)(struct hf_store *s, struct hf_write *w,
			const struct hf_write *end, bool *fault, char *msg,
			size_t size);
	/* What w counts for in a batch's bound and in the writes counted: 1,
	 * or 0 for a write that will write nothing. NULL: always 1. */
	size_t (*counts)(const struct hf_write *w);
	/* The probe's write, a tiny row (an HF_W_CALL), tried every
	 * HF_STORE_PROBE_MS while the database cannot write. */
	int (*probe)(struct hf_store *s, void *arg);
	/* After each batch, its done() calls and the batch-end notice, on the
	 * writer thread (e.g. a checkpoint). NULL: nothing. */
	void (*after_batch)(struct hf_store *s);
};

struct hf_store_writer {
	struct hf_store *store;
	const struct hf_writer_ops *ops;

	pthread_mutex_t lock; /* guards the queue, stopping, batch_end */
	/* Guards the backend's writer connection: the writer thread and the
	 * few callers that use it directly never at once. */
	pthread_mutex_t wlock;
	pthread_cond_t cond;
	struct hf_write *head, *tail;
	bool stopping;
	bool threaded;
	pthread_t thread;

	/* Who applies writes, for assert(): the writer thread records itself
	 * in writer_id; applier is the thread applying a batch (under wlock):
	 * the writer thread, or without it the caller of hf_writer_submit. */
	pthread_t writer_id;
	pthread_t applier;
	bool applying;
	/* The writer thread's batch being applied, while it may grow
	 * (hf_writer_more): what its writes count for so far. */
	bool growing;
	size_t taken;

	struct hf_store_stats stats; /* under wlock */
	/* hf_store_on_batch_end: called by the writer after each batch's
	 * done() calls (set before the first write), under lock. */
	void (*batch_end)(void *arg);
	void *batch_end_arg;

	/* Whether the database can write (hf_store_writable): set by the
	 * thread applying writes; the reason under health_lock. */
	atomic_bool unwritable;
	pthread_mutex_t health_lock;
	char why[128];
	/* The applying thread's own: since when, the rate limit of the
	 * fault's log lines (mono ms; 0: none yet), whether this fault's line
	 * was written (then its end is logged too). */
	int64_t fault_since;
	int64_t fault_logged_at;
	bool fault_logged;
};

/* Sets wr up for the store s (its locks); no thread yet. */
void hf_writer_init(struct hf_store_writer *wr, struct hf_store *s,
		    const struct hf_writer_ops *ops);
/* Starts the writer thread ("hf-writer"): 0, or -1. */
int hf_writer_start(struct hf_store_writer *wr);
/* Applies what is queued, then stops and joins the writer thread (nothing
 * without one). Returns whether there was one. */
bool hf_writer_stop(struct hf_store_writer *wr);
/* Frees what hf_writer_init took; after hf_writer_stop. */
void hf_writer_destroy(struct hf_store_writer *wr);

/* hf_store_submit: queues w (its done() called after its commit, or its
 * failure); without a writer thread, applies it now. */
void hf_writer_submit(struct hf_store_writer *wr, struct hf_write *w);
/* For a backend's transact(), after it has applied the writes up to last,
 * before its COMMIT: the writes queued since the writer thread took its
 * batch, linked after last (and applied by the caller, in the same
 * transaction), up to the batch's bound; NULL when there are none, or when
 * this transaction is not the writer thread's batch (a write retried alone,
 * the probe, a store without a writer thread). Writes that arrived while the
 * batch was being applied then commit with it rather than wait for the next
 * commit. */
struct hf_write *hf_writer_more(struct hf_store_writer *wr,
				struct hf_write *last);
/* hf_store_on_batch_end. */
void hf_writer_on_batch_end(struct hf_store_writer *wr, void (*fn)(void *arg),
			    void *arg);
/* hf_store_stats. */
void hf_writer_stats(struct hf_store_writer *wr, struct hf_store_stats *out);
/* hf_store_writable, as far as the writes go: false with the reason in why
 * while the last write failed for a fault of the database. */
bool hf_writer_writable(struct hf_store_writer *wr, char *why, size_t size);

/* The dedupe pass of an ingest write (HF_W_INGEST), as both backends apply
 * it in its transaction: each run with a dedupe key is checked by check(ctx,
 * run, dup) (1: a duplicate of event dup, 0: the first, -1: an error); a
 * duplicate is marked in w->dropped, w->dup_of and the event's skipped list
 * (the skip reasons of an earlier, rolled-back try taken back first).
 * Returns 0 to store the event, 1 when every run was a duplicate (nothing
 * to store; w->dup_of says of which event), -1 on an error. */
int hf_writer_dedupe(struct hf_write *w,
		     int (*check)(void *ctx, const struct hf_run *run,
				  char dup[HF_ID_SIZE]),
		     void *ctx);

/* The invariant behind a backend's writer connection, its prepared
 * statements and transactions: only the thread applying a batch uses them -
 * the writer thread when it runs, else the caller of hf_writer_submit, under
 * wlock. For assert() in the paths that apply writes (HF_W_CALL maintenance
 * included). */
static inline bool hf_writer_applying(const struct hf_store_writer *wr)
{
	pthread_t self = pthread_self();
	if (wr->threaded && !pthread_equal(self, wr->writer_id))
		return false;
	return wr->applying && pthread_equal(self, wr->applier);
}

#endif
