/* hf_backlog.h - the disk backlog: runs accepted while the in-memory window
 * (--max-queue runs in the scheduler) is full wait in the state database,
 * stored unclaimed, and come into memory in pages, oldest first, as room frees
 * up. Memory stays bounded whatever the backlog; webhooks get 503 only past
 * --max-backlog runs waiting on disk.
 *
 * Order: once a run waits on disk, every later run does too until the backlog
 * is empty, so the runs of a lane (concurrency key) keep their arrival order.
 * A run taken into memory is claimed by a write committed before it is pushed:
 * after a crash, hf_store_load_pending finds it among the claimed runs (its
 * step may have been in flight) and the rest stays in the backlog. SQLite
 * (one process owns the file) claims a page in memory instead, with one row
 * (store_sqlite_backlog.c): after a crash a run taken but not yet written is
 * at the head of the backlog again, its step marked as a possible repeat.
 *
 * One thread of its own loads the pages. The counts are atomics, read by any
 * thread; hf_backlog_stored and hf_backlog_batch_end run on the writer. */
#ifndef HF_BACKLOG_H
#define HF_BACKLOG_H

#include "hf_engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hf_backlog;

/* Starts the loader over eng (its store, scheduler, --max-queue and
 * --max-backlog), counting the runs already waiting on disk; sets
 * eng->backlog before the loader runs (the store's batch-end hook, which
 * wakes it after each claim, must be set before too). NULL on failure to
 * start the thread. */
struct hf_backlog *hf_backlog_start(struct hf_engine *eng);
/* Stops and joins the loader (runs on disk stay there); frees b. */
void hf_backlog_stop(struct hf_backlog *b); /* accepts NULL */
/* Stops it if need be and frees b: after the store closed (the writer calls
 * hf_backlog_batch_end until then). */
void hf_backlog_free(struct hf_backlog *b); /* accepts NULL */

enum hf_place {
	HF_PLACE_MEMORY, /* admitted in the scheduler's depth: push them */
	HF_PLACE_DISK,	 /* reserved in the backlog: store them unclaimed */
	HF_PLACE_FULL,	 /* past --max-backlog: answer 503 */
};
/* Where n new runs of one request go (HTTP thread). in_memory forces memory
 * (a respond: sync run, which holds its connection meanwhile). */
enum hf_place hf_backlog_place(struct hf_backlog *b, size_t n, bool in_memory);
/* True when a request is sure to get 503 (checked before reading its body). */
bool hf_backlog_full(struct hf_backlog *b);
/* Writer thread, in an ingest write's done(): of `reserved` runs placed on
 * disk, `stored` were committed (the rest failed or were duplicates). */
void hf_backlog_stored(struct hf_backlog *b, size_t reserved, size_t stored);
/* Writer thread: run goes to the scheduler at the end of this batch (after
 * every done() of the commit), with the others, under one lock. */
void hf_backlog_defer_push(struct hf_backlog *b, struct hf_run *run);
/* Writer thread, after the done() calls of a batch: the deferred pushes, the
 * pages claimed, a wake-up for the loader. */
void hf_backlog_batch_end(struct hf_backlog *b);
/* Unclaimed runs may have been stored by another process (the CLI): count
 * them again and look. Any thread. */
void hf_backlog_rescan(struct hf_backlog *b);
/* Runs waiting on disk, with those on their way there (the gauge). */
int64_t hf_backlog_size(struct hf_backlog *b);
/* The runs found waiting on disk when the backlog started (its loader may
 * have taken some since). */
int64_t hf_backlog_found(const struct hf_backlog *b);

#endif
