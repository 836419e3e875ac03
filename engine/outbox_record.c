/* outbox_record.c - an attempt's outcome: decided (outbox_schedule.c's
 * rules, Retry-After, the egress refusal), logged, counted in /metrics and
 * submitted to the writer as an HF_W_DELIVERY record; the writer's done()
 * callback marks the delivery's id done in the busy set, or keeps a record
 * the writer could not commit to submit it again once the database writes
 * (an attempt whose record is not stored is never followed by another).
 *
 * Threading: hf_outbox_finish and hf_outbox_record_again on the outbox
 * thread; recorded() on the writer thread, under the outbox's lock.
 * Neighbours: outbox.c, store.c (HF_W_DELIVERY). */
#include "hf_metrics.h"
#include "hf_outbox.h"
#include "hf_redact.h"
#include "hf_store.h"
#include "outbox_int.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Uniform in [0, 1) for the retry jitter: xorshift64*, seeded once from
 * getrandom (a system call per attempt cost more than the rest of it).
 * Outbox thread only. */
static double random_unit(void)
{
	static uint64_t x;
	if (!x && (getrandom(&x, sizeof x, 0) != sizeof x || !x))
		x = (uint64_t)hf_mono_ms() * 2654435761u | 1;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	return (double)((x * 2685821657736338717ULL) >> 11) /
	       9007199254740992.0;
}

/* The writer committed (or failed to commit) an attempt's record. */
static void recorded(struct hf_write *w)
{
	struct record *r = (struct record *)w;
	struct hf_outbox *ob = r->ob;
	pthread_mutex_lock(&ob->lock);
	/* Kept, its delivery busy, while the database cannot write (the
	 * store logs that), or for a few tries when it refused this write. */
	if (w->rc < 0 && !ob->closed && !atomic_load(&ob->stop) &&
	    (!hf_store_writable(ob->store, NULL, 0) ||
	     ++r->tries < HF_OUTBOX_RECORD_TRIES)) {
		r->again = ob->unsaved;
		ob->unsaved = r;
		atomic_store(&ob->kicked, true);
		hf_outbox_wake(ob);
		pthread_mutex_unlock(&ob->lock);
		return;
	}
	if (w->rc < 0)
		hf_log(HF_LOG_WARN,
		       "delivery %s: cannot record attempt %d; it will be "
		       "sent again",
		       w->delivery_id, w->attempts);
	else if (w->fenced)
		hf_log(HF_LOG_WARN,
		       "delivery %s: attempt %d not recorded: this node lost "
		       "its lease and another node has the delivery",
		       w->delivery_id, w->attempts);
	hf_busy_done(&ob->busy, w->delivery_id);
	/* Woken, not kicked, and only when a start waits for the bound on
	 * uncommitted records (want_wake); a retry due soon is found by the
	 * timed scan. Inside the lock: hf_outbox_stop frees the multi handle
	 * once writes reaches 0. */
	if (ob->want_wake) {
		ob->want_wake = false;
		hf_outbox_wake(ob);
	}
	ob->writes--;
	pthread_cond_broadcast(&ob->cond);
	pthread_mutex_unlock(&ob->lock);
	free(w->delivery_error);
	free(r);
}

/* Those dropped are made again at the next start. */
void hf_outbox_record_again(struct hf_outbox *ob, bool drop)
{
	bool can = hf_store_writable(ob->store, NULL, 0);
	pthread_mutex_lock(&ob->lock);
	ob->closed = drop;
	struct record *r = can || drop ? ob->unsaved : NULL;
	if (r)
		ob->unsaved = NULL;
	pthread_mutex_unlock(&ob->lock);
	while (r) {
		struct record *next = r->again;
		r->again = NULL;
		if (can) {
			hf_store_submit(ob->store, &r->w);
		} else {
			pthread_mutex_lock(&ob->lock);
			ob->writes--;
			pthread_cond_broadcast(&ob->cond);
			pthread_mutex_unlock(&ob->lock);
			free(r->w.delivery_error);
			free(r);
		}
		r = next;
	}
}

void hf_outbox_finish(struct hf_outbox *ob, struct job *j, CURLcode rc)
{
	long code = 0;
	if (rc == CURLE_OK)
		curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
	int64_t now = hf_now_ms();
	struct record *r = hf_xcalloc(1, sizeof *r);
	r->ob = ob;
	struct hf_write *w = &r->w;
	w->kind = HF_W_DELIVERY;
	w->done = recorded;
	snprintf(w->delivery_id, sizeof w->delivery_id, "%s", j->id);
	w->http_status = (int)code;
	w->duration_ms = hf_mono_ms() - j->started_mono;
	w->attempt_at = j->started_wall;
	w->attempts = j->attempts + 1;
	if (rc != CURLE_OK && j->refused[0]) {
		w->delivery_error = hf_xstrdup(j->refused);
	} else if (rc != CURLE_OK) {
		const char *what = curl_easy_strerror(rc);
		w->delivery_error =
		    j->errbuf[0] && strcmp(j->errbuf, what)
			? hf_xasprintf("%s: %s", what, j->errbuf)
			: hf_xstrdup(what);
	} else if (code >= 300 && code < 400) {
		w->delivery_error = hf_xstrdup("redirects are not followed");
	}
	int64_t ra = hf_outbox_retry_after(
	    j->retry_after[0] ? j->retry_after : NULL, now);
	w->delivery_status = hf_outbox_next_attempt(
	    (int)code, w->attempts, j->max_attempts, j->backoff_ms, ra,
	    random_unit(), now, &w->next_at);
	if (rc != CURLE_OK && j->refused[0]) {
		/* The policy refuses it: not retried (as a 410). */
		w->delivery_status = "failed";
		w->next_at = now;
	}
	hf_metrics_delivery(strcmp(w->delivery_status, "pending") == 0
				? "retry"
				: w->delivery_status);
	if (hf_log_structured()) {
		/* One line per attempt: pending means another is scheduled. */
		char http[8], n[16], ms[24];
		snprintf(http, sizeof http, "%ld", code);
		snprintf(n, sizeof n, "%d", w->attempts);
		snprintf(ms, sizeof ms, "%lld", (long long)w->duration_ms);
		char *url = hf_redact_url(j->url); /* no credentials in logs */
		hf_log_kv(strcmp(w->delivery_status, "failed") == 0
			      ? HF_LOG_WARN
			      : HF_LOG_INFO,
			  "delivery attempt", "delivery", j->id, "url", url,
			  "status", w->delivery_status, "http_status",
			  code ? http : NULL, "attempt", n, "duration_ms", ms,
			  "error", w->delivery_error, (const char *)NULL);
		free(url);
	} else if (strcmp(w->delivery_status, "failed") == 0) {
		hf_log(HF_LOG_INFO, "delivery %s failed after %d attempt%s",
		       j->id, w->attempts, w->attempts == 1 ? "" : "s");
	}
	pthread_mutex_lock(&ob->lock);
	ob->writes++;
	pthread_mutex_unlock(&ob->lock);
	hf_store_submit(ob->store, w);
}
