/* outbox.c - the delivery thread: it reads due deliveries a page at a time
 * into the ready list, starts them under the bounds (in flight, per host,
 * uncommitted records), drives the libcurl multi handle, reaps finished
 * attempts and sleeps until the next due time or a kick. The multi handle
 * and the wait are outbox_poll.c's; one attempt's request,
 * outbox_attempt.c's; its outcome and record, outbox_record.c's.
 *
 * A delivery is "busy" (outbox_busy.c) from the moment a scan reads it into
 * the ready list until the writer has
 * committed the attempt's record and a later scan has begun: until then the
 * database (or the snapshot a running scan reads) still shows it due, so each
 * scan skips busy ids. The writer's done() callback only marks an id done;
 * the outbox thread drops done ids just before a scan opens its snapshot,
 * which therefore sees their commits. The busy set and the count of
 * uncommitted records are shared with the writer thread under `lock`;
 * everything else belongs to the outbox thread. Threading: one thread;
 * hf_outbox_kick from any thread.
 *
 * While the state database cannot write (hf_store_writable), no attempt
 * starts. A record the writer could not commit is kept, its delivery busy,
 * and submitted again once the database writes: an attempt whose record is
 * not stored is never followed by another, so that no delivery is sent more
 * often than its attempts (short of a crash).
 *
 * On PostgreSQL several nodes read the same due deliveries: each scan
 * takes the store's lease on what it put in the ready list
 * (hf_store_lease_deliveries: due again only after an attempt's timeout
 * and a node lease), and what another node leased first leaves the list,
 * so that two nodes never send one delivery at once.
 *
 * Neighbours: store.c (hf_store_pending_deliveries, HF_W_DELIVERY, the
 * schema), verify.c (Standard Webhooks signature), worker.c and api.c (kick),
 * server.c (start and stop), egress.c (where a connection may go: checked
 * in the open-socket callback, outbox_attempt.c). <curl/curl.h> stays in
 * the outbox's files and lua_http.c. */
#include "hf_limits.h"
#include "hf_outbox.h"
#include "hf_store.h"
#include "outbox_int.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* ---- the loop ---- */

struct scan {
	struct hf_outbox *ob;
	int64_t now;
	int64_t wake; /* wall ms of the next due delivery; 0 = unknown */
	bool quick;   /* stop at the first row of a host at its cap */
	bool partial; /* from the cursor: stop after a run of such rows */
	int capped;   /* rows in a row of hosts at their cap */
	int rows;     /* seen */
	int64_t last; /* next_at of the last row seen */
	int64_t left; /* next_at of the first row left due (INT64_MAX: none) */
	int64_t last_seq, left_seq; /* and their seq (hf_delivery) */
};

/* A due row the scan leaves (or, at the first row not due, now and
 * INT64_MIN): rows from the earliest of these on, in the order of
 * (next_at, seq), are what a later scan from the cursor reads. */
static void leave(struct scan *sc, int64_t at, int64_t seq)
{
	if (at < sc->left || (at == sc->left && seq < sc->left_seq)) {
		sc->left = at;
		sc->left_seq = seq;
	}
}

static int scan_row(const struct hf_delivery *d, void *arg)
{
	struct scan *sc = arg;
	struct hf_outbox *ob = sc->ob;
	sc->rows++;
	sc->last = d->next_at;
	sc->last_seq = d->seq;
	pthread_mutex_lock(&ob->lock);
	bool busy = hf_busy_has(&ob->busy, d->id);
	pthread_mutex_unlock(&ob->lock);
	if (busy)
		return 0;
	if (d->next_at > sc->now) {
		sc->wake = d->next_at;
		leave(sc, sc->now, INT64_MIN);
		return 1;
	}
	if (ob->nready >= HF_OUTBOX_READY ||
	    ob->ready_bytes >= HF_OUTBOX_READY_BYTES) {
		leave(sc, d->next_at, d->seq);
		return 1;
	}
	/* A host gets at most a few rounds of its cap in the ready list, so
	 * that one slow receiver cannot fill it and hold the others up. */
	char name[256];
	hf_host_of(d->url, name, sizeof name);
	struct hf_host *h = hf_hosts_get(&ob->hosts, name);
	if (h->inflight + h->ready >= 4 * HF_OUTBOX_MAX_PER_HOST) {
		hf_hosts_put(&ob->hosts, h);
		leave(sc, d->next_at, d->seq);
		return sc->quick ||
		       (sc->partial && ++sc->capped >= HF_OUTBOX_READY_WALK);
	}
	sc->capped = 0;
	h->ready++;
	struct job *j = hf_outbox_prepare(ob, d, name);
	*ob->ready_tail = j;
	ob->ready_tail = &j->next;
	ob->nready++;
	ob->ready_bytes += j->len;
	pthread_mutex_lock(&ob->lock);
	hf_busy_add(&ob->busy, j->id);
	pthread_mutex_unlock(&ob->lock);
	return 0;
}

/* Takes the store's lease on the jobs a scan added to the ready list (from
 * *first on), in one call; those another node leased first (PostgreSQL:
 * several nodes share the outbox) leave the list. */
static void lease_new(struct hf_outbox *ob, struct job **first)
{
	size_t n = 0;
	for (struct job *j = *first; j; j = j->next)
		n++;
	if (n == 0)
		return;
	const char **ids = hf_xcalloc(n, sizeof *ids);
	bool *leased = hf_xcalloc(n, sizeof *leased);
	size_t i = 0;
	for (struct job *j = *first; j; j = j->next)
		ids[i++] = j->id;
	hf_store_lease_deliveries(ob->store, ids, n, leased);
	i = 0;
	for (struct job **p = first; *p; i++) {
		struct job *j = *p;
		if (leased[i]) {
			p = &j->next;
			continue;
		}
		*p = j->next;
		ob->nready--;
		ob->ready_bytes -= j->len;
		struct hf_host *h = hf_hosts_get(&ob->hosts, j->host);
		h->ready--;
		hf_hosts_put(&ob->hosts, h);
		pthread_mutex_lock(&ob->lock);
		hf_busy_done(&ob->busy, j->id);
		pthread_mutex_unlock(&ob->lock);
		hf_outbox_job_free(ob, j);
	}
	ob->ready_tail = &ob->ready;
	while (*ob->ready_tail)
		ob->ready_tail = &(*ob->ready_tail)->next;
	free(ids);
	free(leased);
}

/* Reads a page of due deliveries into the ready list; returns the poll
 * timeout in ms (until the next due row, at most HF_OUTBOX_POLL_MS).
 *
 * A complete scan reads from the first pending row; the others read from
 * the cursor, the next_at and seq of the first due row the last scan left
 * (rows before it were taken then: the busy ones are not read again, even
 * among the rows of one next_at, as the emits of one step are). A row that
 * falls behind the cursor without being sent (not started, leased by
 * another node, or committed with a due time computed before the cursor
 * was) is found by the next complete scan: on a kick (new rows, a retry)
 * and at the timed scan, at most HF_OUTBOX_POLL_MS apart. A scan from the
 * cursor stops after HF_OUTBOX_READY_WALK rows in a row of hosts at their
 * cap (a complete scan reads its whole page past them). A quick scan
 * (the ready list ran dry between two full scans) also stops at the first
 * row of a host at its cap instead of reading the whole page past it: the
 * rows of other hosts behind it are found by the next full scan, at most
 * HF_OUTBOX_RESCAN_MS later. */
static int scan(struct hf_outbox *ob, bool complete, bool quick)
{
	struct scan sc = {.ob = ob,
			  .now = hf_now_ms(),
			  .quick = quick,
			  .partial = !complete,
			  .left = INT64_MAX};
	pthread_mutex_lock(&ob->lock);
	hf_busy_sweep(
	    &ob->busy); /* before the snapshot: it sees their commits */
	int limit = (int)ob->busy.n + HF_OUTBOX_READY;
	pthread_mutex_unlock(&ob->lock);
	struct job **first = ob->ready_tail;
	int64_t from = complete ? INT64_MIN : ob->cursor;
	int64_t from_seq = complete ? INT64_MIN : ob->cursor_seq;
	int n = hf_store_pending_deliveries(ob->store, from, from_seq, limit,
					    scan_row, &sc);
	/* Every row read taken (or busy): from the last one on when the
	 * limit cut the page short, else from now. */
	if (n < 0) {
		ob->cursor = ob->cursor_seq = INT64_MIN;
	} else if (sc.left != INT64_MAX) {
		ob->cursor = sc.left;
		ob->cursor_seq = sc.left_seq;
	} else if (sc.rows >= limit) {
		ob->cursor = sc.last;
		ob->cursor_seq = sc.last_seq;
	} else {
		ob->cursor = sc.now;
		ob->cursor_seq = INT64_MIN;
	}
	lease_new(ob, first);
	int64_t t = HF_OUTBOX_POLL_MS;
	if (sc.wake) {
		int64_t left = sc.wake - hf_now_ms();
		if (left < t)
			t = left > 0 ? left : 0;
	}
	return (int)t;
}

/* Starts ready jobs, oldest first, while attempts in flight and records not
 * yet committed are under their bounds, skipping hosts at their cap. Looks
 * at most HF_OUTBOX_READY_WALK jobs deep, so a full list of one saturated
 * host costs little per call. Returns how many it started. When the bound
 * on uncommitted records stops it, the next commit wakes the thread
 * (want_wake); other commits do not. */
static int launch(struct hf_outbox *ob)
{
	pthread_mutex_lock(&ob->lock);
	int writes = ob->writes;
	pthread_mutex_unlock(&ob->lock);
	int walked = 0, started = 0;
	for (struct job **p = &ob->ready;
	     *p && ob->njobs < HF_OUTBOX_MAX_INFLIGHT &&
	     writes + ob->njobs < 2 * HF_OUTBOX_MAX_INFLIGHT &&
	     walked < HF_OUTBOX_READY_WALK;
	     walked++) {
		struct job *j = *p;
		struct hf_host *h = hf_hosts_get(&ob->hosts, j->host);
		if (h->inflight >= HF_OUTBOX_MAX_PER_HOST) {
			p = &j->next;
			continue;
		}
		*p = j->next;
		if (!*p)
			ob->ready_tail = p;
		ob->nready--;
		ob->ready_bytes -= j->len;
		h->ready--;
		if (hf_outbox_begin(ob, j) == 0) {
			h->inflight++;
			started++;
			continue;
		}
		/* Not started: due again at the next scan. */
		hf_hosts_put(&ob->hosts, h);
		pthread_mutex_lock(&ob->lock);
		hf_busy_done(&ob->busy, j->id);
		pthread_mutex_unlock(&ob->lock);
		hf_outbox_job_free(ob, j);
	}
	if (ob->ready && ob->njobs < HF_OUTBOX_MAX_INFLIGHT &&
	    writes + ob->njobs >= 2 * HF_OUTBOX_MAX_INFLIGHT) {
		/* Checked again under the lock: a commit since is not missed.
		 */
		pthread_mutex_lock(&ob->lock);
		bool bound =
		    ob->writes + ob->njobs >= 2 * HF_OUTBOX_MAX_INFLIGHT;
		ob->want_wake = bound;
		pthread_mutex_unlock(&ob->lock);
		if (!bound)
			return started + launch(ob);
	}
	return started;
}

/* Frees the ready list (stop: they are due again at the next start). */
static void drop_ready(struct hf_outbox *ob)
{
	while (ob->ready) {
		struct job *j = ob->ready;
		ob->ready = j->next;
		hf_outbox_job_free(ob, j);
	}
	ob->ready_tail = &ob->ready;
	ob->nready = 0;
	ob->ready_bytes = 0;
}

static void reap(struct hf_outbox *ob, bool *freed)
{
	CURLMsg *m;
	int left;
	CURLM *multi = atomic_load(&ob->multi);
	while (multi && (m = curl_multi_info_read(multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *e = m->easy_handle;
		CURLcode rc = m->data.result;
		struct job *j = NULL;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&j);
		curl_multi_remove_handle(multi, e);
		if (!j)
			continue;
		hf_outbox_finish(ob, j, rc);
		struct hf_host *h = hf_hosts_get(&ob->hosts, j->host);
		h->inflight--;
		hf_hosts_put(&ob->hosts, h);
		for (struct job **p = &ob->jobs; *p; p = &(*p)->next) {
			if (*p == j) {
				*p = j->next;
				break;
			}
		}
		ob->njobs--;
		hf_outbox_job_free(ob, j);
		*freed = true;
	}
}

static void *outbox_main(void *arg)
{
	struct hf_outbox *ob = arg;
	/* Named for top -H, perf and gdb. */
	int64_t next_scan = 0, last_scan = 0; /* mono ms */
	int64_t drain_until = 0;
	for (;;) {
		bool freed = false;
		reap(ob, &freed);
		if (atomic_load(&ob->stop)) {
			if (!drain_until)
				drain_until = hf_mono_ms() + HF_OUTBOX_DRAIN_MS;
			if (!ob->jobs || hf_mono_ms() >= drain_until)
				break;
			hf_outbox_idle(ob, 100);
			continue;
		}
		/* Start what is ready. Scan at the next due time or tick, and
		 * when told (new rows) or a slot freed: at once if the ready
		 * list is empty, else at most every HF_OUTBOX_RESCAN_MS (its
		 * jobs may all wait on hosts at their cap). A slot freed with
		 * the ready list empty, sooner than that since the last full
		 * scan, makes a quick scan (scan()). */
		bool kicked = atomic_exchange(&ob->kicked, false);
		bool can = hf_store_writable(ob->store, NULL, 0);
		int started = 0;
		if (can) {
			hf_outbox_record_again(ob, false);
			started += launch(ob);
		}
		int64_t now = hf_mono_ms();
		bool full = now - last_scan >= HF_OUTBOX_RESCAN_MS;
		bool soon = ob->nready == 0 || full;
		if (((kicked || freed) && soon) || now >= next_scan) {
			bool complete = kicked || now >= next_scan;
			full = full || complete;
			int64_t next = now + (can ? scan(ob, complete, !full)
						  : HF_STORE_PROBE_MS);
			if (full)
				last_scan = now;
			if (complete || next < next_scan)
				next_scan = next;
			if (can)
				started += launch(ob);
		}
		/* New transfers: begun now (curl's timer is due at once); those
		 * that ended meanwhile are reaped before any wait. */
		if (started > 0) {
			hf_outbox_run_timers(ob);
			continue;
		}
		int64_t wait = next_scan - hf_mono_ms();
		if (atomic_load(&ob->kicked))
			wait = 0;
		hf_outbox_idle(ob, wait > 0 ? (int)wait : 0);
	}
	/* Cut short: not recorded, sent again at the next start. */
	while (ob->jobs) {
		struct job *j = ob->jobs;
		ob->jobs = j->next;
		curl_multi_remove_handle(atomic_load(&ob->multi), j->easy);
		hf_outbox_job_free(ob, j);
	}
	ob->njobs = 0;
	drop_ready(ob);
	hf_outbox_record_again(ob, true);
	return NULL;
}

struct hf_outbox *hf_outbox_start(struct hf_store *store,
				  const struct hf_egress *egress,
				  struct hf_error *err)
{
	struct hf_outbox *ob = hf_xcalloc(1, sizeof *ob);
	ob->store = store;
	ob->egress = egress;
	pthread_mutex_init(&ob->lock, NULL);
	pthread_cond_init(&ob->cond, NULL);
	pthread_mutex_init(&ob->idle_lock, NULL);
	ob->ready_tail = &ob->ready;
	ob->epfd = ob->evfd = -1;
	ob->curl_due = -1;
	pthread_cond_init(&ob->idle_cond, NULL);
	if (hf_thread_start(&ob->thread, "hf-outbox", outbox_main, ob) != 0) {
		hf_error_set(err, NULL, 0, 0, "cannot start the outbox thread");
		pthread_mutex_destroy(&ob->lock);
		pthread_cond_destroy(&ob->cond);
		pthread_mutex_destroy(&ob->idle_lock);
		pthread_cond_destroy(&ob->idle_cond);
		free(ob);
		return NULL;
	}
	return ob;
}

void hf_outbox_kick(struct hf_outbox *ob)
{
	if (!ob)
		return;
	atomic_store(&ob->kicked, true);
	hf_outbox_wake(ob);
}

void hf_outbox_stop(struct hf_outbox *ob)
{
	if (!ob)
		return;
	atomic_store(&ob->stop, true);
	hf_outbox_wake(ob);
	pthread_join(ob->thread, NULL);
	pthread_mutex_lock(&ob->lock);
	while (ob->writes > 0)
		pthread_cond_wait(&ob->cond, &ob->lock);
	pthread_mutex_unlock(&ob->lock);
	while (ob->nspare > 0)
		curl_easy_cleanup(ob->spare[--ob->nspare]);
	CURLM *m = atomic_load(&ob->multi);
	if (m)
		curl_multi_cleanup(m);
	if (ob->epfd >= 0)
		close(ob->epfd);
	if (ob->evfd >= 0)
		close(ob->evfd);
	free(ob->fds);
	pthread_mutex_destroy(&ob->lock);
	pthread_cond_destroy(&ob->cond);
	pthread_mutex_destroy(&ob->idle_lock);
	pthread_cond_destroy(&ob->idle_cond);
	hf_busy_free(&ob->busy);
	free(ob->hosts.items);
	free(ob);
}
