/* outbox_attempt.c - one delivery attempt as a libcurl easy handle: the job
 * copied out of its row, its request headers (Content-Type, the emit's
 * headers, webhook-id, webhook-timestamp and, with a secret, the Standard
 * Webhooks signature made when the attempt starts), the egress check as the
 * socket opens, Retry-After read from the answer, and the easy handles kept
 * for reuse.
 *
 * Threading: the outbox thread only (outbox.c drives the multi handle).
 * Neighbours: verify.c (signature), egress.c (the policy), outbox.c. */
#include "hf_egress.h"
#include "hf_limits.h"
#include "hf_verify.h"
#include "outbox_int.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

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
	curl_socket_t fd = socket(a->family, a->socktype, a->protocol);
	if (fd != CURL_SOCKET_BAD)
		hf_outbox_socket_opened(j->ob, fd);
	return fd;
}

/* An easy handle kept for the next attempt: the options every attempt
 * sets alike stay set; those pointing into the job are cleared, so that an
 * idle handle points at nothing freed. */
static void keep_handle(struct hf_outbox *ob, CURL *c)
{
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c, CURLOPT_PRIVATE, NULL);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, NULL);
	ob->spare[ob->nspare++] = c;
}

void hf_outbox_job_free(struct hf_outbox *ob, struct job *j)
{
	if (!j)
		return;
	if (j->easy && ob && ob->nspare < HF_OUTBOX_MAX_INFLIGHT)
		keep_handle(ob, j->easy);
	else if (j->easy)
		curl_easy_cleanup(j->easy);
	if (j->custom_last)
		j->custom_last->next = NULL; /* the rest is the job's */
	curl_slist_free_all(j->custom);
	free(j->sig_line);
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

/* The emit's own headers (j->hjson) as a curl list (j->custom); *ctype:
 * one of them is Content-Type. */
static bool custom_headers(struct job *j, bool *ctype)
{
	bool ok = true;
	json_t *h = json_loads(j->hjson, 0, NULL);
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
		ok = ok && append(&j->custom, l);
		free(l);
		if (strcasecmp(k, "content-type") == 0)
			*ctype = true;
	}
	json_decref(h);
	return ok;
}

/* The Standard Webhooks signature's header line, or NULL. */
static char *signature_line(const struct job *j, int64_t ts)
{
	const char *s = j->secret;
	size_t slen = strlen(s), klen = 0;
	unsigned char *key = NULL;
	if (strncmp(s, "whsec_", 6) == 0)
		key = hf_base64_decode(s + 6, slen - 6, &klen);
	char *sig = key ? hf_standard_webhooks_sign(key, klen, j->id, ts,
						    j->payload, j->len)
			: hf_standard_webhooks_sign(s, slen, j->id, ts,
						    j->payload, j->len);
	free(key);
	char *l = sig ? hf_xasprintf("webhook-signature: %s", sig) : NULL;
	free(sig);
	return l;
}

/* The request headers: Content-Type, the emit's headers, and the Standard
 * Webhooks ones (webhook-id and webhook-timestamp always, so receivers can
 * deduplicate; webhook-signature when there is a secret). hookflow's own
 * lines and nodes are the job's: an attempt allocates none of them but the
 * signature's. */
static bool build_headers(struct job *j)
{
	bool ctype = false;
	if (j->hjson && !custom_headers(j, &ctype))
		return false;
	int64_t ts = hf_now_ms() / 1000;
	snprintf(j->id_line, sizeof j->id_line, "webhook-id: %s", j->id);
	snprintf(j->ts_line, sizeof j->ts_line, "webhook-timestamp: %lld",
		 (long long)ts);
	if (j->secret && *j->secret && !(j->sig_line = signature_line(j, ts)))
		return false;
	char *lines[HF_JOB_HEADERS];
	int n = 0;
	if (!ctype)
		lines[n++] = (char *)"Content-Type: application/json";
	lines[n++] = (char *)"User-Agent: hookflow";
	lines[n++] = (char *)"Expect:";
	lines[n++] = j->id_line;
	lines[n++] = j->ts_line;
	if (j->sig_line)
		lines[n++] = j->sig_line;
	for (int i = 0; i < n; i++) {
		j->own[i].data = lines[i];
		j->own[i].next = i + 1 < n ? &j->own[i + 1] : NULL;
	}
	for (j->custom_last = j->custom;
	     j->custom_last && j->custom_last->next;)
		j->custom_last = j->custom_last->next;
	if (j->custom_last)
		j->custom_last->next = &j->own[0];
	j->headers = j->custom ? j->custom : &j->own[0];
	return true;
}

/* Copies s (n bytes, then a NUL) to *at; moves *at on. */
static char *put(const char *s, size_t n, char **at)
{
	char *p = *at;
	memcpy(p, s, n);
	p[n] = '\0';
	*at += n + 1;
	return p;
}

struct job *hf_outbox_prepare(struct hf_outbox *ob, const struct hf_delivery *d,
			      const char *host)
{
	size_t ul = strlen(d->url);
	size_t hl = d->headers ? strlen(d->headers) : 0;
	size_t sl = d->secret ? strlen(d->secret) : 0;
	struct job *j =
	    hf_xmalloc(sizeof *j + ul + d->payload_len + hl + sl + 4);
	memset(j, 0, sizeof *j);
	char *at = (char *)(j + 1);
	snprintf(j->id, sizeof j->id, "%s", d->id);
	snprintf(j->host, sizeof j->host, "%s", host);
	j->url = put(d->url, ul, &at);
	j->payload = put(d->payload, d->payload_len, &at);
	j->len = d->payload_len;
	j->hjson = d->headers ? put(d->headers, hl, &at) : NULL;
	j->secret = d->secret ? put(d->secret, sl, &at) : NULL;
	j->timeout_ms =
	    d->timeout_ms > 0 ? d->timeout_ms : HF_DELIVERY_TIMEOUT_MS;
	j->attempts = d->attempts;
	j->max_attempts = d->max_attempts;
	j->backoff_ms = d->backoff_ms;
	j->egress = ob->egress;
	j->ob = ob;
	return j;
}

/* A new easy handle with the options every attempt sets alike. */
static CURL *new_handle(struct hf_outbox *ob)
{
	CURL *c = curl_easy_init();
	if (!c)
		return NULL;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_open);
	curl_easy_setopt(c, CURLOPT_CLOSESOCKETFUNCTION,
			 hf_outbox_close_socket);
	curl_easy_setopt(c, CURLOPT_CLOSESOCKETDATA, ob);
	return c;
}

int hf_outbox_begin(struct hf_outbox *ob, struct job *j)
{
	if (!build_headers(j))
		goto fail;
	CURLM *multi = hf_outbox_multi(ob);
	j->easy = !multi       ? NULL
		  : ob->nspare ? ob->spare[--ob->nspare]
			       : new_handle(ob);
	if (!j->easy)
		goto fail;
	int64_t timeout = j->timeout_ms;
	CURL *c = j->easy;
	curl_easy_setopt(c, CURLOPT_URL, j->url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(timeout < 10000 ? timeout : 10000));
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->len);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->payload);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, j->headers);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(c, CURLOPT_PRIVATE, j);
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
