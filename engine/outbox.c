/* outbox.c - the delivery thread: due deliveries out through a libcurl multi
 * handle, outcomes and the next due time back through the writer.
 *
 * A delivery is "busy" from the moment an attempt starts until the writer has
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
	struct curl_slist *headers;
	int attempts; /* made before this one */
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

	pthread_mutex_t lock; /* busy, nbusy, writes */
	pthread_cond_t cond;
	struct busy *busy;
	size_t nbusy, busycap;
	int writes; /* attempt records submitted, not yet committed */
	/* Records the writer could not commit, to submit again (counted in
	 * writes); closed: the thread left, nobody will. */
	struct record *unsaved;
	bool closed;
};

struct busy {
	char id[HF_DELIVERY_ID_SIZE];
	bool done; /* its record is committed: dropped before the next scan */
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

/* ---- the schedule (pure) ---- */

#define SECOND 1000LL
#define MINUTE (60 * SECOND)
#define HOUR (60 * MINUTE)

/* Delays before attempts 2..8, after Standard Webhooks / Svix. */
static const int64_t schedule[] = {
    5 * SECOND, 5 * MINUTE, 30 * MINUTE, 2 * HOUR,
    5 * HOUR,	10 * HOUR,  10 * HOUR,
};

const char *hf_outbox_next_attempt(int status, int attempts, int max_attempts,
				   int64_t backoff_ms, int64_t retry_after_ms,
				   double rnd, int64_t now, int64_t *next_at)
{
	*next_at = now;
	if (status >= 200 && status < 300)
		return "delivered";
	if (status == 410 || attempts >= max_attempts)
		return "failed";
	if (rnd < 0)
		rnd = 0;
	if (rnd >= 1)
		rnd = 0.999999;
	int64_t delay;
	if (backoff_ms > 0) {
		/* Full jitter: uniform over [0, min(cap, base * 2^(n-1))]. */
		double d = (double)backoff_ms;
		for (int i = 1; i < attempts && d < HF_DELIVERY_MAX_BACKOFF_MS;
		     i++)
			d *= 2;
		if (d > HF_DELIVERY_MAX_BACKOFF_MS)
			d = HF_DELIVERY_MAX_BACKOFF_MS;
		delay = (int64_t)(d * rnd);
	} else {
		size_t n = sizeof schedule / sizeof schedule[0];
		size_t i = attempts >= 1 ? (size_t)attempts - 1 : 0;
		int64_t base = schedule[i < n ? i : n - 1];
		delay = (int64_t)((double)base * (0.8 + 0.4 * rnd));
	}
	if (retry_after_ms > delay)
		delay = retry_after_ms < HF_DELIVERY_MAX_BACKOFF_MS
			    ? retry_after_ms
			    : HF_DELIVERY_MAX_BACKOFF_MS;
	*next_at = now + delay;
	return "pending";
}

int64_t hf_outbox_retry_after(const char *value, int64_t now)
{
	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (!*value)
		return -1;
	if (isdigit((unsigned char)*value)) {
		char *end;
		long long s = strtoll(value, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (*end || s < 0)
			return -1;
		if (s > HF_DELIVERY_MAX_BACKOFF_MS / 1000)
			s = HF_DELIVERY_MAX_BACKOFF_MS / 1000;
		return s * 1000;
	}
	time_t t = curl_getdate(value, NULL);
	if (t < 0)
		return -1;
	int64_t ms = (int64_t)t * 1000 - now;
	return ms > 0 ? ms : 0;
}

static double random_unit(void)
{
	uint32_t r = 0;
	if (getrandom(&r, sizeof r, 0) != sizeof r)
		r = (uint32_t)hf_mono_ms() * 2654435761u;
	return (double)r / 4294967296.0;
}

/* ---- the busy set (shared with the writer thread) ---- */

/* All under ob->lock. */
static struct busy *busy_find(struct hf_outbox *ob, const char *id)
{
	for (size_t i = 0; i < ob->nbusy; i++)
		if (strcmp(ob->busy[i].id, id) == 0)
			return &ob->busy[i];
	return NULL;
}

static void busy_add(struct hf_outbox *ob, const char *id)
{
	if (ob->nbusy == ob->busycap) {
		ob->busycap = ob->busycap ? ob->busycap * 2 : 64;
		ob->busy =
		    hf_xrealloc(ob->busy, ob->busycap * sizeof *ob->busy);
	}
	struct busy *b = &ob->busy[ob->nbusy++];
	snprintf(b->id, sizeof b->id, "%s", id);
	b->done = false;
}

static void busy_mark_done(struct hf_outbox *ob, const char *id)
{
	struct busy *b = busy_find(ob, id);
	if (b)
		b->done = true;
}

/* Drops the ids whose records are committed. */
static void busy_sweep(struct hf_outbox *ob)
{
	for (size_t i = 0; i < ob->nbusy;) {
		if (ob->busy[i].done)
			ob->busy[i] = ob->busy[--ob->nbusy];
		else
			i++;
	}
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

static void host_of(const char *url, char *out, size_t size)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	size_t n = strcspn(p, "/?#");
	const char *at = memchr(p, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	if (n >= size)
		n = size - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)p[i]);
	out[n] = '\0';
}

static int host_load(struct hf_outbox *ob, const char *host)
{
	int n = 0;
	for (struct job *j = ob->jobs; j; j = j->next)
		n += strcmp(j->host, host) == 0;
	return n;
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	if (j->easy)
		curl_easy_cleanup(j->easy);
	curl_slist_free_all(j->headers);
	free(j->url);
	free(j->payload);
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
static bool build_headers(struct job *j, const struct hf_delivery *d)
{
	char line[1024];
	bool ctype = false, ok = true;
	json_t *h = d->headers ? json_loads(d->headers, 0, NULL) : NULL;
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
	snprintf(line, sizeof line, "webhook-id: %s", d->id);
	ok = ok && append(&j->headers, line);
	snprintf(line, sizeof line, "webhook-timestamp: %lld", (long long)ts);
	ok = ok && append(&j->headers, line);
	if (d->secret && *d->secret) {
		const char *s = d->secret;
		size_t slen = strlen(s), klen = 0;
		unsigned char *key = NULL;
		if (strncmp(s, "whsec_", 6) == 0)
			key = hf_base64_decode(s + 6, slen - 6, &klen);
		char *sig =
		    key ? hf_standard_webhooks_sign(key, klen, d->id, ts,
						    d->payload, d->payload_len)
			: hf_standard_webhooks_sign(s, slen, d->id, ts,
						    d->payload, d->payload_len);
		free(key);
		char *l = hf_xasprintf("webhook-signature: %s", sig ? sig : "");
		ok = ok && sig && append(&j->headers, l);
		free(l);
		free(sig);
	}
	return ok;
}

/* Starts an attempt of d. Returns 0, or -1 (nothing kept). */
static int start(struct hf_outbox *ob, const struct hf_delivery *d,
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
	j->attempts = d->attempts;
	j->max_attempts = d->max_attempts;
	j->backoff_ms = d->backoff_ms;
	j->egress = ob->egress;
	if (!build_headers(j, d))
		goto fail;
	CURLM *multi = ensure_multi(ob);
	j->easy = multi ? curl_easy_init() : NULL;
	if (!j->easy)
		goto fail;
	int64_t timeout =
	    d->timeout_ms > 0 ? d->timeout_ms : HF_DELIVERY_TIMEOUT_MS;
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
	pthread_mutex_lock(&ob->lock);
	busy_add(ob, j->id);
	pthread_mutex_unlock(&ob->lock);
	return 0;
fail:
	hf_log(HF_LOG_WARN, "delivery %s: cannot start an attempt", d->id);
	job_free(j);
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
	busy_mark_done(ob, w->delivery_id);
	atomic_store(&ob->kicked, true); /* it may be due again soon */
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
	bool busy = busy_find(ob, d->id) != NULL;
	size_t nbusy = ob->nbusy;
	pthread_mutex_unlock(&ob->lock);
	if (busy)
		return 0;
	if (d->next_at > sc->now) {
		sc->wake = d->next_at;
		return 1;
	}
	/* Attempts in flight, and records not yet committed, are bounded. */
	if (ob->njobs >= HF_OUTBOX_MAX_INFLIGHT ||
	    nbusy >= 2 * HF_OUTBOX_MAX_INFLIGHT)
		return 1;
	char host[256];
	host_of(d->url, host, sizeof host);
	if (host_load(ob, host) >= HF_OUTBOX_MAX_PER_HOST)
		return 0;
	start(ob, d, host);
	return 0;
}

/* Starts what is due; returns the poll timeout in ms. */
static int scan(struct hf_outbox *ob)
{
	struct scan sc = {.ob = ob, .now = hf_now_ms()};
	pthread_mutex_lock(&ob->lock);
	busy_sweep(ob); /* before the snapshot: it sees their commits */
	int limit = (int)ob->nbusy + HF_OUTBOX_MAX_INFLIGHT * 2;
	pthread_mutex_unlock(&ob->lock);
	hf_store_pending_deliveries(ob->store, limit, scan_row, &sc);
	int64_t t = HF_OUTBOX_POLL_MS;
	if (sc.wake) {
		int64_t left = sc.wake - hf_now_ms();
		if (left < t)
			t = left > 0 ? left : 0;
	}
	return (int)t;
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
		for (struct job **p = &ob->jobs; *p; p = &(*p)->next) {
			if (*p == j) {
				*p = j->next;
				break;
			}
		}
		ob->njobs--;
		job_free(j);
		*freed = true;
	}
}

static void *outbox_main(void *arg)
{
	struct hf_outbox *ob = arg;
	/* Named for top -H, perf and gdb. */
	pthread_setname_np(pthread_self(), "hf-outbox");
	int64_t next_scan = 0; /* mono ms */
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
		/* Scan when told (new rows, a record committed), when a slot
		 * freed, and at the next due time or tick. */
		bool kicked = atomic_exchange(&ob->kicked, false);
		bool can = hf_store_writable(ob->store, NULL, 0);
		if (can)
			record_again(ob, false);
		if (kicked || freed || hf_mono_ms() >= next_scan)
			next_scan =
			    hf_mono_ms() + (can ? scan(ob) : HF_STORE_PROBE_MS);
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
		job_free(j);
	}
	ob->njobs = 0;
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
	CURLM *m = atomic_load(&ob->multi);
	if (m)
		curl_multi_cleanup(m);
	pthread_mutex_destroy(&ob->lock);
	pthread_cond_destroy(&ob->cond);
	pthread_mutex_destroy(&ob->idle_lock);
	pthread_cond_destroy(&ob->idle_cond);
	free(ob->busy);
	free(ob);
}
