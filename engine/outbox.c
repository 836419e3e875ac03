/* outbox.c - the delivery thread: due deliveries out through a libcurl multi
 * handle, outcomes and the next due time back through the writer.
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
 * in the open-socket callback). <curl/curl.h> stays here and in lua_http.c. */
#include "hf_egress.h"
#include "hf_limits.h"
#include "hf_metrics.h"
#include "hf_outbox.h"
#include "hf_redact.h"
#include "hf_store.h"
#include "hf_verify.h"
#include "outbox_int.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

/* One attempt in flight. */
struct job {
	char id[HF_DELIVERY_ID_SIZE];
	char host[256]; /* host:port, lower-case, for the per-host cap */
	char *url;
	char *payload;
	size_t len;
	char *hjson;  /* the emit's headers (JSON object text), or NULL */
	char *secret; /* NULL: unsigned */
	int64_t timeout_ms;
	struct curl_slist *headers; /* built when the attempt starts */
	int attempts;		    /* made before this one */
	int max_attempts;
	int64_t backoff_ms;
	CURL *easy;
	int64_t started_mono;
	int64_t started_wall;
	char retry_after[64];
	char errbuf[CURL_ERROR_SIZE];
	const struct hf_egress *egress;
	char refused[160]; /* why the policy refused a connection; "" = not */
	struct job *next;
};

struct hf_outbox {
	struct hf_store *store;
	const struct hf_egress *egress; /* NULL: the default policy */
	/* Made on the first attempt (ensure_multi): curl's global set-up loads
	 * OpenSSL's providers (about 2 MiB), which a server that never emits
	 * does not need. Until then the thread waits on idle_cond. Set once,
	 * by the outbox thread; read by any thread to wake it. */
	_Atomic(CURLM *) multi;
	pthread_mutex_t idle_lock;
	pthread_cond_t idle_cond;
	pthread_t thread;
	atomic_bool stop;
	atomic_bool kicked;
	struct job *jobs; /* in flight: outbox thread only */
	int njobs;
	/* Due, read by a scan, not started yet (oldest first): a scan reads a
	 * page of due rows at once instead of one query per free slot. Bounded
	 * by HF_OUTBOX_READY rows and HF_OUTBOX_READY_BYTES of payload. Outbox
	 * thread only. */
	struct job *ready, **ready_tail;
	int nready;
	size_t ready_bytes;
	/* Easy handles of finished attempts, reset, for the next ones (their
	 * allocations cost as much as the request). Outbox thread only. */
	CURL *spare[HF_OUTBOX_MAX_INFLIGHT];
	int nspare;
	/* Attempts in flight and ready, per host (outbox thread only). */
	struct hf_hosts hosts;

	pthread_mutex_t lock; /* busy, writes */
	pthread_cond_t cond;
	struct hf_busy busy;
	int writes; /* attempt records submitted, not yet committed */
	/* Records the writer could not commit, to submit again (counted in
	 * writes); closed: the thread left, nobody will. */
	struct record *unsaved;
	bool closed;
};

/* The record of one attempt on its way to the writer. */
struct record {
	struct hf_write w;
	struct hf_outbox *ob;
	int tries;	      /* refused while the database could write */
	struct record *again; /* in ob->unsaved */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Wakes the outbox thread: its multi handle's poll, or, before it has one,
 * its wait on idle_cond. Callers set kicked or stop first; the thread checks
 * both under idle_lock before waiting, and kicked again before each poll, so
 * no wake-up is lost while the handle is being made. Any thread. */
static void wake(struct hf_outbox *ob)
{
	CURLM *m = atomic_load(&ob->multi);
	if (m) {
		curl_multi_wakeup(m);
		return;
	}
	pthread_mutex_lock(&ob->idle_lock);
	pthread_cond_broadcast(&ob->idle_cond);
	pthread_mutex_unlock(&ob->idle_lock);
}

/* The multi handle, made on first use. Outbox thread only. */
static CURLM *ensure_multi(struct hf_outbox *ob)
{
	CURLM *m = atomic_load(&ob->multi);
	if (m)
		return m;
	pthread_once(&curl_once, curl_init_once);
	m = curl_multi_init();
	if (!m)
		return NULL;
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)HF_OUTBOX_MAX_PER_HOST);
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			  (long)HF_OUTBOX_MAX_INFLIGHT);
	atomic_store(&ob->multi, m);
	return m;
}

/* Waits up to ms for a wake-up. Outbox thread only. */
static void idle(struct hf_outbox *ob, int ms)
{
	CURLM *m = atomic_load(&ob->multi);
	if (m) {
		curl_multi_poll(m, NULL, 0, ms, NULL);
		return;
	}
	struct timespec ts;
	hf_deadline_in(ms, &ts);
	pthread_mutex_lock(&ob->idle_lock);
	while (!atomic_load(&ob->kicked) && !atomic_load(&ob->stop) &&
	       pthread_cond_timedwait(&ob->idle_cond, &ob->idle_lock, &ts) == 0)
		;
	pthread_mutex_unlock(&ob->idle_lock);
}

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

/* ---- one attempt ---- */

static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct job *j = ud;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	if (len > sizeof name - 1 &&
	    strncasecmp(p, name, sizeof name - 1) == 0) {
		size_t vl = len - (sizeof name - 1);
		const char *v = p + sizeof name - 1;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
			vl--;
		if (vl >= sizeof j->retry_after)
			vl = sizeof j->retry_after - 1;
		memcpy(j->retry_after, v, vl);
		j->retry_after[vl] = '\0';
	}
	return len;
}

/* Opens a connection's socket only when the egress policy allows its
 * address (after DNS): a refused attempt sends nothing. */
static curl_socket_t on_open(void *ud, curlsocktype purpose,
			     struct curl_sockaddr *a)
{
	struct job *j = ud;
	(void)purpose;
	if (!hf_egress_check(j->egress, &a->addr, a->addrlen, j->refused,
			     sizeof j->refused))
		return CURL_SOCKET_BAD;
	return socket(a->family, a->socktype, a->protocol);
}

static void job_free(struct hf_outbox *ob, struct job *j)
{
	if (!j)
		return;
	if (j->easy && ob && ob->nspare < HF_OUTBOX_MAX_INFLIGHT) {
		curl_easy_reset(j->easy);
		ob->spare[ob->nspare++] = j->easy;
	} else if (j->easy) {
		curl_easy_cleanup(j->easy);
	}
	curl_slist_free_all(j->headers);
	free(j->url);
	free(j->payload);
	free(j->hjson);
	free(j->secret);
	free(j);
}

static bool append(struct curl_slist **list, const char *line)
{
	struct curl_slist *l = curl_slist_append(*list, line);
	if (!l)
		return false;
	*list = l;
	return true;
}

/* The request headers: Content-Type, the emit's headers, and the Standard
 * Webhooks ones (webhook-id and webhook-timestamp always, so receivers can
 * deduplicate; webhook-signature when there is a secret). */
static bool build_headers(struct job *j)
{
	char line[1024];
	bool ctype = false, ok = true;
	json_t *h = j->hjson ? json_loads(j->hjson, 0, NULL) : NULL;
	const char *k;
	json_t *v;
	json_object_foreach(h, k, v)
	{
		if (!json_is_string(v))
			continue;
		char *l = hf_xasprintf("%s: %s", k, json_string_value(v));
		if (!json_string_length(v)) {
			free(l);
			l = hf_xasprintf("%s;", k);
		}
		ok = ok && append(&j->headers, l);
		free(l);
		if (strcasecmp(k, "content-type") == 0)
			ctype = true;
	}
	json_decref(h);
	if (!ctype)
		ok =
		    ok && append(&j->headers, "Content-Type: application/json");
	ok = ok && append(&j->headers, "User-Agent: hookflow");
	ok = ok && append(&j->headers, "Expect:");
	int64_t ts = hf_now_ms() / 1000;
	snprintf(line, sizeof line, "webhook-id: %s", j->id);
	ok = ok && append(&j->headers, line);
	snprintf(line, sizeof line, "webhook-timestamp: %lld", (long long)ts);
	ok = ok && append(&j->headers, line);
	if (j->secret && *j->secret) {
		const char *s = j->secret;
		size_t slen = strlen(s), klen = 0;
		unsigned char *key = NULL;
		if (strncmp(s, "whsec_", 6) == 0)
			key = hf_base64_decode(s + 6, slen - 6, &klen);
		char *sig = key ? hf_standard_webhooks_sign(
				      key, klen, j->id, ts, j->payload, j->len)
				: hf_standard_webhooks_sign(s, slen, j->id, ts,
							    j->payload, j->len);
		free(key);
		char *l = hf_xasprintf("webhook-signature: %s", sig ? sig : "");
		ok = ok && sig && append(&j->headers, l);
		free(l);
		free(sig);
	}
	return ok;
}

/* A due delivery as a job, not started: everything copied out of the row. */
static struct job *prepare(struct hf_outbox *ob, const struct hf_delivery *d,
			   const char *host)
{
	struct job *j = hf_xcalloc(1, sizeof *j);
	snprintf(j->id, sizeof j->id, "%s", d->id);
	snprintf(j->host, sizeof j->host, "%s", host);
	j->url = hf_xstrdup(d->url);
	j->payload = hf_xmalloc(d->payload_len + 1);
	memcpy(j->payload, d->payload, d->payload_len);
	j->payload[d->payload_len] = '\0';
	j->len = d->payload_len;
	j->hjson = d->headers ? hf_xstrdup(d->headers) : NULL;
	j->secret = d->secret ? hf_xstrdup(d->secret) : NULL;
	j->timeout_ms =
	    d->timeout_ms > 0 ? d->timeout_ms : HF_DELIVERY_TIMEOUT_MS;
	j->attempts = d->attempts;
	j->max_attempts = d->max_attempts;
	j->backoff_ms = d->backoff_ms;
	j->egress = ob->egress;
	return j;
}

/* Starts an attempt of a prepared job: its headers (the signature's
 * timestamp is now) and its transfer. Returns 0, or -1 (j not kept). */
static int start(struct hf_outbox *ob, struct job *j)
{
	if (!build_headers(j))
		goto fail;
	CURLM *multi = ensure_multi(ob);
	j->easy = !multi       ? NULL
		  : ob->nspare ? ob->spare[--ob->nspare]
			       : curl_easy_init();
	if (!j->easy)
		goto fail;
	int64_t timeout = j->timeout_ms;
	CURL *c = j->easy;
	curl_easy_setopt(c, CURLOPT_URL, j->url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(timeout < 10000 ? timeout : 10000));
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->len);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->payload);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, j->headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(c, CURLOPT_PRIVATE, j);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_open);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, j);
	if (curl_multi_add_handle(multi, c) != CURLM_OK)
		goto fail;
	j->started_mono = hf_mono_ms();
	j->started_wall = hf_now_ms();
	j->next = ob->jobs;
	ob->jobs = j;
	ob->njobs++;
	return 0;
fail:
	hf_log(HF_LOG_WARN, "delivery %s: cannot start an attempt", j->id);
	return -1;
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
		wake(ob);
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
	/* Woken, not kicked: a start waiting for the bound on uncommitted
	 * records may go on; a retry due soon is found by the timed scan. */
	/* Inside the lock: hf_outbox_stop frees the multi handle once
	 * writes reaches 0. */
	wake(ob);
	ob->writes--;
	pthread_cond_broadcast(&ob->cond);
	pthread_mutex_unlock(&ob->lock);
	free(w->delivery_error);
	free(r);
}

/* Submits again the records the writer could not commit. With drop (the
 * thread is leaving), those it cannot take now are dropped: their attempts
 * are made again at the next start. */
static void record_again(struct hf_outbox *ob, bool drop)
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

/* An attempt ended: decide, record, count. */
static void finish(struct hf_outbox *ob, struct job *j, CURLcode rc)
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

/* ---- the loop ---- */

struct scan {
	struct hf_outbox *ob;
	int64_t now;
	int64_t wake; /* wall ms of the next due delivery; 0 = unknown */
};

static int scan_row(const struct hf_delivery *d, void *arg)
{
	struct scan *sc = arg;
	struct hf_outbox *ob = sc->ob;
	pthread_mutex_lock(&ob->lock);
	bool busy = hf_busy_has(&ob->busy, d->id);
	pthread_mutex_unlock(&ob->lock);
	if (busy)
		return 0;
	if (d->next_at > sc->now) {
		sc->wake = d->next_at;
		return 1;
	}
	if (ob->nready >= HF_OUTBOX_READY ||
	    ob->ready_bytes >= HF_OUTBOX_READY_BYTES)
		return 1;
	/* A host gets at most a few rounds of its cap in the ready list, so
	 * that one slow receiver cannot fill it and hold the others up. */
	char name[256];
	hf_host_of(d->url, name, sizeof name);
	struct hf_host *h = hf_hosts_get(&ob->hosts, name);
	if (h->inflight + h->ready >= 4 * HF_OUTBOX_MAX_PER_HOST) {
		hf_hosts_put(&ob->hosts, h);
		return 0;
	}
	h->ready++;
	struct job *j = prepare(ob, d, name);
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
		job_free(ob, j);
	}
	ob->ready_tail = &ob->ready;
	while (*ob->ready_tail)
		ob->ready_tail = &(*ob->ready_tail)->next;
	free(ids);
	free(leased);
}

/* Reads a page of due deliveries into the ready list; returns the poll
 * timeout in ms (until the next due row, at most HF_OUTBOX_POLL_MS). */
static int scan(struct hf_outbox *ob)
{
	struct scan sc = {.ob = ob, .now = hf_now_ms()};
	pthread_mutex_lock(&ob->lock);
	hf_busy_sweep(
	    &ob->busy); /* before the snapshot: it sees their commits */
	int limit = (int)ob->busy.n + HF_OUTBOX_READY;
	pthread_mutex_unlock(&ob->lock);
	struct job **first = ob->ready_tail;
	hf_store_pending_deliveries(ob->store, limit, scan_row, &sc);
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
 * host costs little per call. */
static void launch(struct hf_outbox *ob)
{
	pthread_mutex_lock(&ob->lock);
	int writes = ob->writes;
	pthread_mutex_unlock(&ob->lock);
	int walked = 0;
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
		if (start(ob, j) == 0) {
			h->inflight++;
			continue;
		}
		/* Not started: due again at the next scan. */
		hf_hosts_put(&ob->hosts, h);
		pthread_mutex_lock(&ob->lock);
		hf_busy_done(&ob->busy, j->id);
		pthread_mutex_unlock(&ob->lock);
		job_free(ob, j);
	}
}

/* Frees the ready list (stop: they are due again at the next start). */
static void drop_ready(struct hf_outbox *ob)
{
	while (ob->ready) {
		struct job *j = ob->ready;
		ob->ready = j->next;
		job_free(ob, j);
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
		finish(ob, j, rc);
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
		job_free(ob, j);
		*freed = true;
	}
}

static void *outbox_main(void *arg)
{
	struct hf_outbox *ob = arg;
	/* Named for top -H, perf and gdb. */
	pthread_setname_np(pthread_self(), "hf-outbox");
	int64_t next_scan = 0, last_scan = 0; /* mono ms */
	int64_t drain_until = 0;
	for (;;) {
		int running = 0;
		CURLM *multi = atomic_load(&ob->multi);
		if (multi)
			curl_multi_perform(multi, &running);
		bool freed = false;
		reap(ob, &freed);
		if (atomic_load(&ob->stop)) {
			if (!drain_until)
				drain_until = hf_mono_ms() + HF_OUTBOX_DRAIN_MS;
			if (!ob->jobs || hf_mono_ms() >= drain_until)
				break;
			idle(ob, 100);
			continue;
		}
		/* Start what is ready. Scan at the next due time or tick, and
		 * when told (new rows) or a slot freed: at once if the ready
		 * list is empty, else at most every HF_OUTBOX_RESCAN_MS (its
		 * jobs may all wait on hosts at their cap). */
		bool kicked = atomic_exchange(&ob->kicked, false);
		bool can = hf_store_writable(ob->store, NULL, 0);
		if (can) {
			record_again(ob, false);
			launch(ob);
		}
		int64_t now = hf_mono_ms();
		bool soon =
		    ob->nready == 0 || now - last_scan >= HF_OUTBOX_RESCAN_MS;
		if (((kicked || freed) && soon) || now >= next_scan) {
			last_scan = now;
			next_scan = now + (can ? scan(ob) : HF_STORE_PROBE_MS);
			if (can)
				launch(ob);
		}
		int64_t wait = next_scan - hf_mono_ms();
		if (atomic_load(&ob->kicked))
			wait = 0;
		idle(ob, wait > 0 ? (int)wait : 0);
	}
	/* Cut short: not recorded, sent again at the next start. */
	while (ob->jobs) {
		struct job *j = ob->jobs;
		ob->jobs = j->next;
		curl_multi_remove_handle(atomic_load(&ob->multi), j->easy);
		job_free(ob, j);
	}
	ob->njobs = 0;
	drop_ready(ob);
	record_again(ob, true);
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
	pthread_cond_init(&ob->idle_cond, NULL);
	if (pthread_create(&ob->thread, NULL, outbox_main, ob) != 0) {
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
	wake(ob);
}

void hf_outbox_stop(struct hf_outbox *ob)
{
	if (!ob)
		return;
	atomic_store(&ob->stop, true);
	wake(ob);
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
	pthread_mutex_destroy(&ob->lock);
	pthread_cond_destroy(&ob->cond);
	pthread_mutex_destroy(&ob->idle_lock);
	pthread_cond_destroy(&ob->idle_cond);
	hf_busy_free(&ob->busy);
	free(ob->hosts.items);
	free(ob);
}
