/* ingest.c - the libmicrohttpd daemon (see hf_ingest.h).
 *
 * A webhook request goes through three calls of the access handler: the first
 * routes it (404, 405, 413 by Content-Length, 503 when draining or full), the
 * middle ones append the body (refusing past --max-body while reading), the
 * last verifies, dispatches and submits the event to the writer, then holds
 * the connection (or suspends it: ingest_sync.c). The writer's done() fills in
 * the answer and marks it committed (or resumes it); the handler, called on
 * each turn of the loop meanwhile, then queues the answer. So an HTTP thread
 * never waits for a commit, and a 2xx always follows the commit.
 *
 * Not here: the held or suspended request - its write, the sync waiters, the
 * answers filled in by the writer, the scheduler's timer or the end of a run
 * (ingest_sync.c); the framing checks themselves (http_frame.c).
 *
 * Threading: the HTTP threads of ingest_loop.c, each with a daemon of its
 * own (hf_ingest_daemon; --http-io poll: libmicrohttpd's own thread pool).
 * The writer thread and the scheduler thread touch a request only through
 * resume (ingest_sync.c).
 *
 * Neighbours: ingest_loop.c (the HTTP threads, their start and stop),
 * ingest_int.h (the request, shared with ingest_sync.c),
 * ingest_event.c (the event made from the request, its headers), api.c
 * (the reserved paths), answer.c, router.c, verify.c, body.c, dispatch.c. */
#include "hf_api.h"
#include "hf_body.h"
#include "hf_dispatch.h"
#include "hf_http_frame.h"
#include "hf_json_check.h"
#include "hf_limits.h"
#include "hf_metrics.h"
#include "hf_park.h"
#include "hf_redact.h"
#include "hf_verify.h"
#include "ingest_int.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

static enum MHD_Result send_answer(struct MHD_Connection *c,
				   struct hf_answer *a)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    a->len, a->body ? a->body : (void *)"",
	    a->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	a->body = NULL;
	if (!resp)
		return MHD_NO;
	if (a->ctype)
		MHD_add_response_header(resp, "Content-Type", a->ctype);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (a->allow[0])
		MHD_add_response_header(resp, "Allow", a->allow);
	if (a->retry_after) {
		char v[16];
		snprintf(v, sizeof v, "%d", a->retry_after);
		MHD_add_response_header(resp, "Retry-After", v);
	}
	const char *name;
	json_t *val;
	json_object_foreach(a->headers, name, val)
	{
		if (json_is_string(val))
			MHD_add_response_header(resp, name,
						json_string_value(val));
	}
	enum MHD_Result rc = MHD_queue_response(c, (unsigned)a->status, resp);
	MHD_destroy_response(resp);
	return rc;
}

/* The answer to a head too large for libmicrohttpd's pool (HF_HEAD_MAX):
 * MHD 0.9.75 builds an answer's header in what the head left of the pool and,
 * with too little left, closes the connection without a word. So this answer
 * is written to the socket here, whole (a few hundred bytes into an idle
 * socket's buffer), and the connection closed (MHD_NO); nothing of the
 * request is kept. */
static enum MHD_Result send_raw(struct MHD_Connection *c, struct hf_answer *a)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	char date[40], head[256];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	int n =
	    snprintf(head, sizeof head,
		     "HTTP/1.1 %d %s\r\nDate: %s\r\nConnection: close\r\n"
		     "Content-Type: %s\r\nX-Content-Type-Options: "
		     "nosniff\r\nContent-Length: %zu\r\n\r\n",
		     a->status, MHD_get_reason_phrase_for((unsigned)a->status),
		     date, a->ctype ? a->ctype : "application/json", a->len);
	if (ci && n > 0 && (size_t)n < sizeof head) {
		struct iovec iov[2] = {{head, (size_t)n},
				       {a->body ? a->body : "", a->len}};
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
		(void)!sendmsg(ci->connect_fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	return MHD_NO;
}

/* --- request helpers --- */

/* A query parameter for verify (a token scheme's `query:`), or NULL; ctx is
 * the query tree. A value that holds a NUL (hf_query_decode keeps it) is
 * none: compared as a C string it would match on its part before the NUL. */
static const char *query_get(void *ctx, const char *name)
{
	json_t *v = json_object_get(ctx, name);
	const char *s = json_string_value(v);
	return s && strlen(s) == json_string_length(v) ? s : NULL;
}

static const char *arg_get(void *ctx, const char *name)
{
	return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, name);
}

/* Freed requests kept for the next ones on the same HTTP thread: a request
 * is made (on_target) and freed (on_completed) on its connection's thread,
 * and a struct req is a few KiB, which glibc serves from its large bins
 * after consolidating the small ones, then zeroes: per request. A short list
 * per thread (a pthread key, whose destructor frees it when MHD's thread
 * ends). */
#define REQ_CACHE 16
struct req_cache {
	struct req *items[REQ_CACHE];
	size_t n;
};
static pthread_key_t req_cache_key;
static pthread_once_t req_cache_once = PTHREAD_ONCE_INIT;

static void req_destroy(struct req *r)
{
	hf_buf_release(&r->headers.arena);
	hf_buf_release(&r->headers.text);
	hf_buf_release(&r->body);
	free(r);
}

static void req_cache_free(void *arg)
{
	struct req_cache *c = arg;
	for (size_t i = 0; i < c->n; i++)
		req_destroy(c->items[i]);
	free(c);
}

static void req_cache_init(void)
{
	pthread_key_create(&req_cache_key, req_cache_free);
}

static struct req *req_new(void)
{
	pthread_once(&req_cache_once, req_cache_init);
	struct req_cache *c = pthread_getspecific(req_cache_key);
	if (!c || !c->n)
		return hf_xcalloc(1, sizeof(struct req));
	struct req *r = c->items[--c->n];
	/* Kept: the headers' buffers (ingest_event.c, past REQ_CLEARED), the
	 * body's. */
	struct hf_buf body = r->body;
	memset(r, 0, REQ_CLEARED);
	r->headers.n = 0;
	r->body.data = body.data;
	r->body.cap = body.cap;
	if (body.data)
		body.data[0] = '\0';
	return r;
}

static void req_recycle(struct req *r)
{
	struct req_cache *c = pthread_getspecific(req_cache_key);
	if (!c) {
		c = hf_xcalloc(1, sizeof *c);
		if (pthread_setspecific(req_cache_key, c) != 0) {
			free(c);
			req_destroy(r);
			return;
		}
	}
	if (c->n < REQ_CACHE)
		c->items[c->n++] = r;
	else
		req_destroy(r);
}

static void req_free(struct req *r)
{
	if (!r)
		return;
	hf_snapshot_unref(r->snap);
	if (r->body.cap > HF_BODY_KEEP) /* else kept for the next request */
		hf_buf_release(&r->body);
	hf_answer_release(&r->ans);
	/* What this thread made and the writer no longer needs: the runs that
	 * did not go to the scheduler. The event's texts stay with it: they
	 * are its headers and query until a tree is parsed from them. */
	for (size_t i = 0; i < r->nruns; i++)
		hf_run_free(r->runs[i]);
	hf_event_unref(r->ev);
	json_decref(r->resumed);
	hf_ingest_signal_free(r);
	free(r->target);
	req_recycle(r);
}

/* The workflow a request's metrics name: its first, or none (a signal to a
 * wait_for path that no workflow declares). */
static const char *wf0(const struct req *r)
{
	return r->nwfs ? r->wfs[0]->name : NULL;
}

/* --- the webhook path --- */

static int verify_all(struct req *r, const char *method, json_t *query,
		      struct hf_workflow **passed, size_t *npassed,
		      const char **reason, char *buf, size_t size)
{
	int64_t now_s = hf_now_ms() / 1000;
	size_t n = 0, failed = 0;
	/* The target as received: the raw path and query ({path}, {query}). */
	const char *target = r->target ? r->target : "";
	size_t plen = strcspn(target, "?");
	/* On the stack when short (nearly always): one allocation less. */
	char small[256];
	char *path = plen < sizeof small ? small : hf_xmalloc(plen + 1);
	memcpy(path, target, plen);
	path[plen] = '\0';
	struct hf_verify_req vr = {
	    method,
	    path,
	    target[plen] ? target + plen + 1 : "",
	    r->in->eng->opt.public_url,
	    query_get,
	    query,
	};
	/* A signal to a wait_for path (hf_park.h) passes its wait_for's
	 * verify first, whatever the workflows on the path say. */
	const struct hf_verify_conf *sv =
	    r->signal ? &r->signal->wait_verify : NULL;
	if (sv && sv->scheme != HF_VERIFY_NONE &&
	    hf_verify_request_ex(sv, &vr, hf_req_header, &r->headers,
				 r->body.data ? r->body.data : "", r->body.len,
				 now_s, reason, buf, size) != 0) {
		hf_log(HF_LOG_WARN, "%s %s: wait_for signal rejected: %s",
		       method, r->signal->wait_path, *reason);
		if (path != small)
			free(path);
		*npassed = 0;
		return -1;
	}
	for (size_t i = 0; i < r->nwfs; i++) {
		struct hf_workflow *wf = r->wfs[i];
		const char *why = NULL;
		if (hf_verify_request_ex(
			&wf->verify, &vr, hf_req_header, &r->headers,
			r->body.data ? r->body.data : "", r->body.len, now_s,
			&why, buf, size) == 0) {
			passed[n++] = wf;
			continue;
		}
		failed++;
		*reason = why;
		hf_metrics_verify_failure(wf->name);
		hf_log(HF_LOG_WARN,
		       "%s %s: workflow '%s': signature rejected: %s", method,
		       wf->path, wf->name, why);
	}
	if (path != small)
		free(path);
	*npassed = n;
	return n == 0 && failed > 0 ? -1 : 0;
}

static bool any_sync(struct hf_workflow *const *wfs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (wfs[i]->respond_sync)
			return true;
	return false;
}

/* A token that verify checked (scheme token) is stored redacted, so that
 * nothing ever shows it: its query parameter (query:), or its header when
 * named (header:; a bearer token's Authorization is redacted by name when
 * shown, and kept for replays). A wait_for's verify the same. */
static void keep_token_out(const struct hf_verify_conf *v,
			   struct hf_req_headers *h, json_t *query)
{
	if (v->scheme != HF_VERIFY_TOKEN)
		return;
	if (v->query && json_object_get(query, v->query))
		json_object_set_new(query, v->query, json_string(HF_REDACTED));
	else if (!v->query && v->header)
		hf_req_headers_redact(h, v->header);
}

static enum MHD_Result process(struct req *r, struct MHD_Connection *c,
			       const char *url, const char *method)
{
	struct hf_engine *eng = r->in->eng;
	hf_req_headers_collect(&r->headers, c);
	json_t *query = hf_req_query(r->target);

	struct hf_workflow *passed[MAX_MATCH];
	size_t npassed = 0;
	const char *reason = "signature mismatch";
	char why[HF_VERIFY_HEADER_NAME_MAX + 64];
	if (verify_all(r, method, query, passed, &npassed, &reason, why,
		       sizeof why) < 0) {
		json_decref(query);
		hf_answer_error(&r->ans, 401,
				"signature verification failed: %s", reason);
		hf_metrics_event(wf0(r), 401);
		return send_answer(c, &r->ans);
	}
	for (size_t i = 0; i < npassed; i++)
		keep_token_out(&passed[i]->verify, &r->headers, query);
	if (r->signal)
		keep_token_out(&r->signal->wait_verify, &r->headers, query);
	struct hf_event *ev = hf_req_event(r, url, method, query);

	/* Parsed once at most: a JSON body only validated here unless a
	 * workflow-level expression needs the tree (then the runs share it);
	 * else whoever needs it decodes the raw bytes (hf_event_body). */
	bool lua = hf_dispatch_needs_lua(passed, npassed);
	const char *ctype = hf_req_header(&r->headers, "content-type");
	bool checked = !lua && ev->body_len > 0 &&
		       hf_body_kind_of(ctype) == HF_BODY_JSON &&
		       hf_json_check(ev->body, ev->body_len);
	char err[512];
	if (!checked &&
	    hf_body_decode_sent(
		ctype, hf_req_header(&r->headers, "x-github-event") != NULL,
		ev->body, ev->body_len, &ev->decoded, err, sizeof err) < 0) {
		hf_answer_error(&r->ans, 400, "%s", err);
		hf_metrics_event(wf0(r), 400);
		return send_answer(c, &r->ans);
	}
	/* A signal (ingest_signal.c): 413 or 503 before anything is stored. */
	if (r->signal && !hf_ingest_signal_admit(r))
		return send_answer(c, &r->ans);

	struct hf_luart *rt = lua ? hf_dispatch_runtime() : NULL;
	size_t nruns = hf_dispatch(rt, ev, passed, npassed, r->runs);
	r->sync_declined = nruns == 0 && any_sync(passed, npassed);
	r->nruns = nruns;
	/* Counted before the drain is checked, as hf_ingest_stop sets draining
	 * before it waits for `waiting` to reach 0: either this request sees
	 * the drain, or the drain waits for its commit. The daemon must not
	 * stop with a connection suspended. */
	atomic_fetch_add(&r->in->waiting, 1);
	if (atomic_load(&eng->draining)) {
		atomic_fetch_sub(&r->in->waiting, 1);
		hf_answer_error(&r->ans, 503, "shutting down");
		r->ans.retry_after = 5;
		return send_answer(c, &r->ans);
	}
	/* In memory while the window has room and nothing waits on disk;
	 * else on disk (unclaimed) until --max-backlog. A respond: sync run
	 * holds its connection: it stays in memory. */
	bool sync = false;
	for (size_t i = 0; i < nruns; i++)
		sync = sync || r->runs[i]->wf->respond_sync;
	r->place = hf_backlog_place(eng->backlog, nruns, sync);
	if (r->place == HF_PLACE_FULL) {
		atomic_fetch_sub(&r->in->waiting, 1);
		hf_answer_error(&r->ans, 503,
				"overloaded: %lld runs wait on disk, try again "
				"later",
				(long long)hf_backlog_size(eng->backlog));
		r->ans.retry_after = 1;
		hf_metrics_event(wf0(r), 503);
		return send_answer(c, &r->ans);
	}
	if (r->place == HF_PLACE_MEMORY)
		for (size_t i = 0; i < nruns; i++)
			r->runs[i]->admitted = true;
	hf_ingest_submit(r, nruns);
	return MHD_YES;
}

static bool is_reserved(const char *url)
{
	return hf_path_is_reserved(url) || strcmp(url, "/") == 0;
}

/* --- framing (RFC 9112; the checks are http_frame.c's) --- */

/* libmicrohttpd calls this with the request target as received, before it
 * cuts the query off at '?' and percent-decodes the path in place: the one
 * place to see the raw path. The request's state starts here (MHD hands the
 * return value to on_request as *con_cls; on_completed frees it). */
static void *on_target(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct hf_http_loop *l = cls;
	struct req *r = req_new();
	r->in = l->in;
	r->loop = l;
	r->conn = c;
	hf_frame_init(&r->frame);
	if (!uri)
		return r;
	size_t len = strlen(uri), query;
	r->target_end = uri + len;
	/* The origin form ("/p?q"), also of an absolute-form target: routed,
	 * checked and signed ({path}, {query}) like any other. */
	size_t at = hf_frame_origin(uri, len);
	const char *t = uri + at;
	size_t tlen = len - at;
	bool slash = at && *t != '/';
	r->target = hf_xmalloc(tlen + slash + 1);
	r->target[0] = '/';
	memcpy(r->target + slash, t, tlen + 1);
	tlen += slash;
	hf_frame_head(&r->frame, len - tlen, 0); /* the bytes left out */
	if (hf_frame_target(&r->frame, r->target, tlen, &query) &&
	    query < tlen) {
		/* Refused: empty the query. uri is the request line in MHD's
		 * read buffer, where MHD itself writes a NUL over the '?' next;
		 * MHD 0.9.75 never answers a query whose parameters overflow
		 * its pool (see HF_MAX_QUERY_PARAMS), so none is parsed. */
		((char *)t)[query - slash + 1] = '\0';
	}
	if (at) {
		/* MHD routes on uri, and parses the query where it found it
		 * (past the path, so untouched here): uri becomes the path. */
		memcpy((char *)uri, r->target, query);
		((char *)uri)[query] = '\0';
	}
	return r;
}

static enum MHD_Result frame_header(void *cls, enum MHD_ValueKind kind,
				    const char *key, size_t key_size,
				    const char *value, size_t value_size)
{
	hf_frame_header(cls, key, key_size, value ? value : "",
			value ? value_size : 0);
	return MHD_YES;
}

/* The first call for a request: refuses what a proxy in front could frame
 * differently, with the connection closed (an answer queued now makes MHD
 * discard the rest of the input). Returns true when an answer was set. */
static bool refuse_framing(struct req *r, struct MHD_Connection *c,
			   const char *method, const char *version)
{
	struct hf_frame *f = &r->frame;
	/* A NUL in the raw target ends the string MHD routes on: the
	 * version follows the target's own NUL, or the target held one. */
	if (r->target_end && version != r->target_end + 1 && !f->status) {
		f->status = 400;
		snprintf(f->error, sizeof f->error,
			 "invalid character in the request target");
	}
	MHD_get_connection_values_n(c, MHD_HEADER_KIND, frame_header, f);
	/* the request line's method, spaces, version and CRLF, the blank line
	 * after the headers, and a record for each cookie */
	hf_frame_head(
	    f, strlen(method) + strlen(version) + 6,
	    (size_t)MHD_get_connection_values(c, MHD_COOKIE_KIND, NULL, NULL));
	if (!hf_frame_finish(f, strcmp(version, "HTTP/1.0") != 0))
		return false;
	hf_answer_error(&r->ans, f->status, "%s", f->error);
	r->ans.headers = json_pack("{s:s}", "Connection", "close");
	hf_metrics_event(NULL, f->status);
	return true;
}

/* A 503 set in r->ans is answered once the body has been read (and
 * discarded), so that the keep-alive connection survives it: a client that
 * backs off reuses it. Returns false (no answer now). */
static bool refuse(struct req *r)
{
	r->refuse = true;
	r->body.max = (size_t)r->in->eng->opt.max_body;
	return false;
}

/* The body's buffer in one allocation of Content-Length bytes, rather than
 * the 3 or 4 of hf_buf_append's doubling from 256 (up to HF_BODY_RESERVE). */
static void reserve_body(struct req *r, const char *cl)
{
	long long n = cl ? strtoll(cl, NULL, 10) : 0;
	if (n <= 0 || (size_t)n > r->body.max || n > HF_BODY_RESERVE ||
	    r->body.cap > (size_t)n)
		return;
	free(r->body.data);
	r->body.data = hf_xmalloc((size_t)n + 1);
	r->body.data[0] = '\0';
	r->body.cap = (size_t)n + 1;
}

/* The first call for a request: route and refuse what can be refused before
 * reading the body. Returns true when an answer was set. */
static bool route(struct req *r, struct MHD_Connection *c, const char *url,
		  const char *method)
{
	struct hf_engine *eng = r->in->eng;
	if (atomic_load(&eng->draining)) {
		hf_answer_error(&r->ans, 503, "shutting down");
		r->ans.retry_after = 5;
		return refuse(r);
	}
	if (is_reserved(url)) {
		r->ops = true;
		r->body.max = 64 * 1024;
		return false;
	}
	if (hf_park_is_resume_path(url)) { /* run.resume_url (hf_park.h) */
		if (strcmp(method, "POST") != 0) {
			snprintf(r->ans.allow, sizeof r->ans.allow, "POST");
			hf_answer_error(&r->ans, 405,
					"method %s not allowed for a resume "
					"URL (allowed: POST)",
					method);
			return true;
		}
		r->resume = true;
		r->body.max = (size_t)eng->opt.max_body;
		return false;
	}
	r->snap = hf_engine_snapshot(eng);
	int known = 0;
	unsigned allowed = 0;
	size_t n =
	    hf_router_match(r->snap->router, url, hf_method_from_name(method),
			    r->wfs, MAX_MATCH, &known, &allowed);
	r->nwfs = n < MAX_MATCH ? n : MAX_MATCH;
	/* A wait_for path needs no workflow of its own (hf_park.h). */
	r->signal = hf_workflow_set_wait_for(r->snap->set, url);
	if (r->signal)
		known = 1;
	/* So does a cancel_on path (flow.c). */
	r->cancel_on = hf_workflow_set_cancel_on(r->snap->set, url);
	if (r->cancel_on)
		known = 1;
	if (!known && hf_workflow_set_failed_path(r->snap->set, url)) {
		/* Its workflow did not load: the sender retries meanwhile. */
		hf_answer_error(&r->ans, 503,
				"the workflow of '%s' failed to load", url);
		r->ans.retry_after = HF_LOAD_ERROR_RETRY_AFTER_S;
		hf_metrics_event(NULL, 503);
		return refuse(r);
	}
	if (!known) {
		hf_answer_error(&r->ans, 404, "no workflow has the path '%s'",
				url);
		hf_metrics_event(NULL, 404);
		return true;
	}
	if (n == 0 && !r->signal && !r->cancel_on) {
		hf_methods_format(allowed, r->ans.allow, sizeof r->ans.allow);
		hf_answer_error(&r->ans, 405,
				"method %s not allowed for '%s' (allowed: %s)",
				method, url, r->ans.allow);
		hf_metrics_event(NULL, 405);
		return true;
	}
	const char *cl =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	if (cl && strtoll(cl, NULL, 10) > eng->opt.max_body) {
		hf_answer_error(&r->ans, 413, "body larger than %lld bytes",
				(long long)eng->opt.max_body);
		hf_metrics_event(wf0(r), 413);
		return true;
	}
	/* Sure to be refused: spare the verification and the write (the
	 * exact check is hf_backlog_place's, once the runs are known). */
	if (hf_backlog_full(eng->backlog)) {
		hf_answer_error(&r->ans, 503,
				"overloaded: %lld runs wait on disk, try again "
				"later",
				(long long)hf_backlog_size(eng->backlog));
		r->ans.retry_after = 1;
		hf_metrics_event(wf0(r), 503);
		return refuse(r);
	}
	char why[160];
	if (!hf_store_writable(eng->store, why, sizeof why)) {
		hf_answer_error(&r->ans, 503, "state database cannot write: %s",
				why);
		r->ans.retry_after = HF_STORE_RETRY_AFTER_S;
		hf_metrics_event(wf0(r), 503);
		return refuse(r);
	}
	r->body.max = (size_t)eng->opt.max_body;
	reserve_body(r, cl);
	return false;
}

/* A request resumed after its commit (or its run, its signal): the answer,
 * on its HTTP thread. */
static enum MHD_Result answer_resumed(struct req *r, struct MHD_Connection *c)
{
	if (r->outcome != OUT_NONE)
		hf_ingest_answer_commit(r);
	return send_answer(c, &r->ans);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct req *r = *con_cls;
	if (!r) /* on_target makes it; not when the target was empty */
		*con_cls = r = on_target(cls, NULL, c);
	if (!r->started) {
		r->started = true;
		if (refuse_framing(r, c, method, version) ||
		    route(r, c, url, method)) {
			r->answered_early = true;
			if (r->frame.head > HF_HEAD_MAX)
				return send_raw(c, &r->ans);
			return send_answer(c, &r->ans);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (r->refuse) { /* read and dropped */
			r->discarded += n;
			return r->discarded > r->body.max + HF_DISCARD_MAX
				   ? MHD_NO
				   : MHD_YES;
		}
		if (!r->too_large && hf_buf_append(&r->body, upload, n) == 0)
			return MHD_YES;
		/* Past --max-body: keep nothing, and answer 413 once the
		 * client stops sending. A client that goes on far past the
		 * limit is cut off. */
		if (!r->too_large)
			hf_buf_release(&r->body);
		r->too_large = true;
		r->discarded += n;
		return r->discarded > HF_DISCARD_MAX ? MHD_NO : MHD_YES;
	}
	if (r->state == ANSWERING)
		return answer_resumed(r, c);
	if (r->state == WAITING) {
		/* Held (ingest_sync.c): answered once committed; no answer
		 * yet makes libmicrohttpd ask again on the loop's next turn. */
		if (!r->held ||
		    !atomic_load_explicit(&r->committed, memory_order_acquire))
			return MHD_YES;
		r->loop->held--;
		r->state = ANSWERING;
		return answer_resumed(r, c);
	}
	if (r->refuse)
		return send_answer(c, &r->ans);
	if (r->too_large) {
		hf_answer_error(&r->ans, 413, "body larger than %zu bytes",
				r->body.max);
		if (!r->ops)
			hf_metrics_event(wf0(r), 413);
		return send_answer(c, &r->ans);
	}
	if (r->ops) {
		const char *auth = MHD_lookup_connection_value(
		    c, MHD_HEADER_KIND, "Authorization");
		hf_api_handle(r->in->eng, method, url, auth, arg_get, c,
			      &r->ans);
		return send_answer(c, &r->ans);
	}
	if (r->resume) /* ingest_signal.c */
		return hf_ingest_resume(r, url) == HF_INGEST_SUSPENDED
			   ? MHD_YES
			   : send_answer(c, &r->ans);
	return process(r, c, url, method);
}

/* A held request whose connection ends before its answer (a reset, the
 * idle timeout, the server stopping): once committed it is answered to no
 * one; before, the writer still has it, so it waits on its loop's abandoned
 * list (hf_ingest_reap). */
static bool abandon_held(struct req *r)
{
	struct hf_http_loop *l = r->loop;
	l->held--; /* r->held stays: the writer reads it */
	if (!atomic_load_explicit(&r->committed, memory_order_acquire)) {
		r->abandoned_next = l->abandoned;
		l->abandoned = r;
		return false;
	}
	r->state = ANSWERING;
	return true;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;
	*con_cls = NULL;
	if (r && r->state == WAITING && r->held && !abandon_held(r))
		return;
	/* Committed, but the sender hung up while the request waited for the
	 * commit: MHD ends it without asking for the answer. The event is
	 * stored and its runs go on: counted and logged all the same. */
	if (r && r->state == ANSWERING && r->outcome != OUT_NONE)
		hf_ingest_answer_commit(r);
	req_free(r);
}

void hf_ingest_reap(struct hf_http_loop *l)
{
	struct req **p = &l->abandoned;
	while (*p) {
		struct req *r = *p;
		if (!atomic_load_explicit(&r->committed,
					  memory_order_acquire)) {
			p = &r->abandoned_next;
			continue;
		}
		*p = r->abandoned_next;
		if (r->outcome != OUT_NONE)
			hf_ingest_answer_commit(r);
		req_free(r);
	}
}

/* --- the daemons (started and stopped by ingest_loop.c) --- */

struct MHD_Daemon *hf_ingest_daemon(struct hf_http_loop *l, unsigned flags,
				    const struct sockaddr_in *sa, int listen_fd,
				    unsigned pool, unsigned limit)
{
	/* No LISTENING_ADDRESS_REUSE: MHD's default is SO_REUSEADDR (restarts
	 * past TIME_WAIT) without SO_REUSEPORT, which would let a second
	 * process bind the same port and silently take a share of the
	 * webhooks. */
	struct MHD_OptionItem o[8];
	size_t n = 0;
	if (listen_fd >= 0)
		o[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET,
						 listen_fd, NULL};
	else
		o[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0,
						 (void *)sa};
	if (pool > 0)
		o[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
						 pool, NULL};
	o[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
					 HF_CONNECTION_MEMORY, NULL};
	o[n++] =
	    (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, limit, NULL};
	o[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
					 HF_CONNECTION_TIMEOUT_S, NULL};
	o[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	return MHD_start_daemon(flags, 0, NULL, NULL, on_request, l,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed,
				l->in, MHD_OPTION_URI_LOG_CALLBACK, on_target,
				l, MHD_OPTION_ARRAY, o, MHD_OPTION_END);
}
