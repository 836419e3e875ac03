/* ingest_sync.c - a webhook request while its connection is suspended or
 * held (see hf_ingest.h): the write handed to the writer, the answer the commit
 * fills in (202, 200 for a duplicate, 503), and for a `respond: sync`
 * workflow the waiter that holds the request until its run ends, its timer
 * runs out (202 with "timeout") or the server stops.
 *
 * Not here: reading, routing, verifying and dispatching the request, the
 * daemon and its lifecycle (ingest.c).
 *
 * Threading: hf_ingest_submit on an HTTP thread; ingest_written on the writer
 * thread; sync_timeout on the scheduler thread (or, late, at its destroy);
 * hf_ingest_sync_finish on the thread ending the run; hf_ingest_answer_waiters
 * on the stopping thread. A waiter is answered once (waiter_claim, under its
 * lock) and freed by its last reference; the live waiters' list is under
 * hf_ingest.lock.
 *
 * Neighbours: ingest.c, ingest_int.h, store.c (the write), scheduler.c (the
 * runs, the timer), engine.c (hf_engine.sync_finish). */
#include "hf_flow.h"
#include "hf_limits.h"
#include "hf_metrics.h"
#include "ingest_int.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

struct hf_sync_waiter {
	pthread_mutex_t lock;
	int refs; /* the run's and the timer's */
	bool answered;
	struct req *req;
	struct hf_ingest *in;
	struct hf_sync_waiter *prev, *next; /* live waiters, for shutdown */
};

/* --- the commit's answer (writer thread) --- */

/* Resumes r's connection, or marks a held one committed, its answer set;
 * returns its HTTP thread, still to be woken (hf_http_wake). From here on,
 * r may be freed at any moment. */
static struct hf_http_loop *resume_conn(struct req *r)
{
	struct hf_http_loop *l = r->loop;
	if (r->held) {
		atomic_store_explicit(&r->committed, true,
				      memory_order_release);
		return l;
	}
	r->state = ANSWERING;
	MHD_resume_connection(r->conn);
	return l;
}

static void resume(struct req *r)
{
	struct hf_ingest *in = r->in;
	hf_http_wake(resume_conn(r));
	atomic_fetch_sub(&in->waiting, 1);
}

void hf_ingest_resume_now(struct req *r)
{
	resume(r);
}

static void waiter_unref(struct hf_sync_waiter *wt)
{
	pthread_mutex_lock(&wt->lock);
	int left = --wt->refs;
	pthread_mutex_unlock(&wt->lock);
	if (left)
		return;
	pthread_mutex_destroy(&wt->lock);
	free(wt);
}

/* Answers a sync waiter once; returns false when it was answered already. */
static bool waiter_claim(struct hf_sync_waiter *wt)
{
	pthread_mutex_lock(&wt->lock);
	bool mine = !wt->answered;
	wt->answered = true;
	pthread_mutex_unlock(&wt->lock);
	if (mine) {
		struct hf_ingest *in = wt->in;
		pthread_mutex_lock(&in->lock);
		if (wt->prev)
			wt->prev->next = wt->next;
		else
			in->waiters = wt->next;
		if (wt->next)
			wt->next->prev = wt->prev;
		pthread_mutex_unlock(&in->lock);
	}
	return mine;
}

static void sync_timeout(void *arg)
{
	struct hf_sync_waiter *wt = arg;
	if (waiter_claim(wt)) {
		struct req *r = wt->req;
		/* The run goes on: answer as an async workflow would, and say
		 * that the wait timed out. */
		hf_answer_json(&r->ans, 202,
			       json_pack("{s:s,s:[s],s:b}", "event", r->ev->id,
					 "runs", r->sync_run_id, "timeout", 1));
		resume(r);
	}
	waiter_unref(wt);
}

void hf_ingest_sync_finish(struct hf_sync_waiter *wt, const struct hf_run *run)
{
	if (waiter_claim(wt)) {
		struct req *r = wt->req;
		json_t *out = run->last_output;
		json_t *st = json_object_get(out, "status");
		json_t *body = json_object_get(out, "body");
		json_t *headers = json_object_get(out, "headers");
		if (run->status == HF_RUN_WAITING) {
			/* The run parked (hf_park.h): it goes on later, as
			 * after a sync timeout. */
			hf_answer_json(&r->ans, 202,
				       json_pack("{s:s,s:[s],s:b}", "event",
						 r->ev->id, "runs", run->id,
						 "waiting", 1));
		} else if (run->status == HF_RUN_FAILED) {
			/* The error itself (a Lua message, a path, SQL)
			 * stays in the admin API. */
			hf_answer_json(&r->ans, 500,
				       json_pack("{s:s,s:s,s:s}", "error",
						 "run failed", "event",
						 r->ev->id, "run", run->id));
		} else if (json_is_object(out) &&
			   (json_is_integer(st) || body || headers)) {
			int status = json_is_integer(st)
					 ? (int)json_integer_value(st)
					 : 200;
			if (status < 100 || status > 599)
				status = 200;
			if (json_is_string(body)) {
				free(r->ans.body);
				r->ans.status = status;
				r->ans.body =
				    hf_xstrndup(json_string_value(body),
						json_string_length(body));
				r->ans.len = json_string_length(body);
				r->ans.ctype = "text/plain; charset=utf-8";
			} else {
				hf_answer_json(
				    &r->ans, status,
				    json_incref(body ? body : json_null()));
			}
			if (json_is_object(headers)) {
				r->ans.headers = json_deep_copy(headers);
				if (json_object_get(headers, "Content-Type") ||
				    json_object_get(headers, "content-type"))
					r->ans.ctype = NULL;
			}
		} else {
			hf_answer_json(&r->ans, 200,
				       json_incref(out ? out : json_null()));
		}
		resume(r);
	}
	waiter_unref(wt);
}

/* With --log-format logfmt or json: one line per event answered here, with
 * the status of that answer (a respond: sync caller gets its answer from the
 * run later). With ids, the runs stored (r->ids); nothing is built when the
 * log is plain text (the hot path). */
static void log_answered(const struct req *r, int status, const char *dup_of,
			 bool ids)
{
	const char *msg = status == 202	  ? "event stored"
			  : status == 200 ? "event is a duplicate"
			  : status == 404
			      ? "event stored, no sync workflow matched"
			      : "event not stored";
	if (!hf_log_structured())
		return;
	char code[8];
	snprintf(code, sizeof code, "%d", status);
	struct hf_buf runs = {0};
	hf_buf_append(&runs, "", 0);
	for (size_t i = 0; ids && i < r->nids; i++)
		hf_buf_printf(&runs, "%s%s", i ? "," : "", r->ids[i]);
	hf_log_kv(status >= 500 ? HF_LOG_WARN : HF_LOG_INFO, msg, "event",
		  dup_of ? NULL : r->ev->id, "method", r->ev->method, "path",
		  r->ev->path, "status", code, "duplicate_of", dup_of, "runs",
		  ids ? runs.data : NULL, (const char *)NULL);
	hf_buf_release(&runs);
}

/* The 202's body, {"event":ID,"runs":[ID,...]}, written directly: the ids
 * are ASCII letters, digits and '_' (hf_id_new), nothing to escape, and
 * jansson's tree and dump cost a dozen allocations per request (snprintf,
 * a few thousand instructions more). */
static void answer_stored(struct req *r)
{
	size_t cap = 32 + (r->nids + 1) * (HF_ID_SIZE + 3);
	char *b = hf_xmalloc(cap);
	size_t n = 0;
#define PUT(s, len) (memcpy(b + n, (s), (len)), n += (len))
	PUT("{\"event\":\"", 10);
	PUT(r->ev->id, strlen(r->ev->id));
	PUT("\",\"runs\":[", 10);
	for (size_t i = 0; i < r->nids; i++) {
		if (i)
			PUT(",", 1);
		PUT("\"", 1);
		PUT(r->ids[i], strnlen(r->ids[i], HF_ID_SIZE));
		PUT("\"", 1);
	}
	PUT("]}", 2);
#undef PUT
	b[n] = '\0';
	free(r->ans.body);
	r->ans.status = 202;
	r->ans.body = b;
	r->ans.len = n;
	r->ans.ctype = "application/json";
}

/* The request will not wait for a run after all: its waiter goes, with both
 * the run's and the timer's references. */
static void drop_waiter(struct req *r)
{
	if (!r->waiter)
		return;
	waiter_claim(r->waiter);
	waiter_unref(r->waiter);
	waiter_unref(r->waiter);
	r->waiter = NULL;
}

/* Requests answered by the commit, marked committed (held) or resumed
 * (suspended) once the batch's done() calls are over (writer thread only),
 * each HTTP thread then woken once for all of its own (ingest_loop.c), not
 * once per request. */
static struct req *to_resume;

void hf_ingest_batch_end(void)
{
	struct req *r = to_resume;
	to_resume = NULL;
	if (!r)
		return;
	struct hf_ingest *in = r->in;
	int n = 0;
	while (r) {
		struct req *next = r->resume_next;
		resume_conn(r)->woken = true;
		n++;
		r = next;
	}
	for (int i = 0; i < in->nloops; i++) {
		if (in->loops[i].woken) {
			in->loops[i].woken = false;
			hf_http_wake(&in->loops[i]);
		}
	}
	/* Last: hf_ingest_stop waits for this count before the loops go. */
	atomic_fetch_sub(&in->waiting, n);
}

static void resume_later(struct req *r)
{
	r->resume_next = to_resume;
	to_resume = r;
}

/* Takes back the window slots or backlog places of the runs that will not go
 * on: all of them, or only those the writer dropped as duplicates. */
static void unplace(struct req *r, size_t n, size_t stored)
{
	struct hf_engine *eng = r->in->eng;
	if (r->place == HF_PLACE_DISK) {
		hf_backlog_stored(eng->backlog, n, stored);
		return;
	}
	size_t drop = n - stored;
	for (size_t i = 0; i < r->nruns; i++)
		if (r->runs[i] && (stored == 0 || r->dropped[i]))
			r->runs[i]->admitted = false;
	hf_sched_unadmit(eng->sched, drop);
}

void hf_ingest_answer_commit(struct req *r)
{
	const char *wf_name = r->nwfs ? r->wfs[0]->name : NULL;
	int outcome = r->outcome;
	r->outcome = OUT_NONE;
	if (outcome == OUT_STORED && r->signal_failed) {
		/* Stored, but no waiting run could be resumed (hf_park.h):
		 * the sender's retry will. */
		if (r->signal_why) { /* past the signal's limits (park.c) */
			hf_answer_error(&r->ans, 503,
					"the event is stored but resumed "
					"nothing: %s",
					r->signal_why);
			r->ans.retry_after = HF_PARK_SIGNAL_RETRY_AFTER_S;
		} else {
			hf_answer_error(&r->ans, 503,
					"the event is stored but the runs "
					"waiting for it cannot be resumed now");
			r->ans.retry_after = 1;
		}
		hf_metrics_event(wf_name, 503);
		log_answered(r, 503, NULL, false);
		return;
	}
	if (outcome == OUT_FAILED) {
		hf_answer_error(&r->ans, 503, "cannot store the event now");
		r->ans.retry_after = 1;
	} else if (outcome == OUT_DUPLICATE) {
		hf_answer_json(&r->ans, 200,
			       json_pack("{s:s,s:b}", "event", r->w.dup_of,
					 "duplicate", 1));
	}
	if (outcome != OUT_STORED) {
		hf_metrics_event(wf_name, r->ans.status);
		log_answered(r, r->ans.status,
			     outcome == OUT_FAILED ? NULL : r->w.dup_of, false);
		return;
	}
	if (r->sync_declined && r->nids == 0 && !r->signal) {
		/* A sync caller waits for an answer that no run will give:
		 * 404, as for an unknown path (the event is stored, with why
		 * each workflow declined under "skipped"). Not a signal: it
		 * was matched against the runs waiting on its path, and its
		 * answer says which it resumed. */
		log_answered(r, 404, NULL, true);
		hf_answer_error(&r->ans, 404, "no matching workflow");
		hf_metrics_event(wf_name, 404);
		return;
	}
	log_answered(r, 202, NULL, true);
	if (r->signal) { /* hf_park.h: the runs this signal resumed */
		json_t *ids = json_array();
		for (size_t i = 0; i < r->nids; i++)
			json_array_append_new(ids, json_string(r->ids[i]));
		json_t *body =
		    json_pack("{s:s,s:o}", "event", r->ev->id, "runs", ids);
		json_object_set_new(body, "resumed",
				    r->resumed ? json_incref(r->resumed)
					       : json_array());
		hf_answer_json(&r->ans, 202, body);
	} else {
		answer_stored(r);
	}
	hf_metrics_event(wf_name, 202);
}

static void ingest_written(struct hf_write *w)
{
	struct req *r = w->ctx;
	if (w->rc < 0 || w->dup_of[0]) {
		/* Not stored, or a duplicate: no run of this request goes on.
		 * Its runs are freed with the request, on its thread. */
		unplace(r, w->nruns, 0);
		r->outcome = w->rc < 0 ? OUT_FAILED : OUT_DUPLICATE;
		drop_waiter(r);
		resume_later(r);
		return;
	}
	struct hf_run *sync_run = NULL;
	size_t stored = 0;
	r->nids = 0;
	for (size_t i = 0; i < w->nruns; i++) {
		struct hf_run *run = w->runs[i];
		if (w->dropped[i])
			continue;
		stored++;
		memcpy(r->ids[r->nids++], run->id, HF_ID_SIZE);
		hf_flow_run_committed(run); /* cancel_in_progress */
		if (r->waiter && !sync_run && run->wf->respond_sync &&
		    r->place == HF_PLACE_MEMORY) {
			sync_run = run;
			run->waiter = r->waiter;
			memcpy(r->sync_run_id, run->id, HF_ID_SIZE);
		}
	}
	unplace(r, w->nruns, stored);
	r->outcome = OUT_STORED;
	if (!sync_run) /* its run was a duplicate */
		drop_waiter(r);
	struct hf_sync_waiter *wt = r->waiter;
	int64_t timeout = sync_run ? sync_run->wf->respond_timeout_ms : 0;
	if (wt) {
		/* Logged and counted now: the answer comes from the run. */
		log_answered(r, 202, NULL, true);
		hf_metrics_event(r->nwfs ? r->wfs[0]->name : NULL, 202);
		r->outcome = OUT_NONE;
	}
	if (r->place == HF_PLACE_MEMORY) {
		/* Handed to the scheduler at the end of the batch; the runs
		 * on disk come into memory from there (backlog.c). */
		struct hf_backlog *b = r->in->eng->backlog;
		for (size_t i = 0; i < w->nruns; i++) {
			if (w->dropped[i])
				continue;
			hf_backlog_defer_push(b, w->runs[i]);
			r->runs[i] = NULL;
		}
	}
	if (r->cancel_on) /* cancels what it matches, on hf-flow */
		hf_flow_signal(r->ev, r->snap);
	if (r->signal) /* wait_for's signal: resumed once matched */
		hf_ingest_signal_stored(r, !wt);
	if (wt)
		hf_sched_timer(r->in->eng->sched, hf_mono_ms() + timeout,
			       sync_timeout, wt);
	else if (!r->signal)
		resume_later(r); /* the answer is built on its thread */
}

/* --- suspending a request --- */

/* A request whose first run answers with `respond: sync` waits for it: its
 * waiter is made here and listed for shutdown. */
static void add_waiter(struct req *r, size_t nruns)
{
	for (size_t i = 0; i < nruns; i++) {
		if (!r->runs[i]->wf->respond_sync)
			continue;
		struct hf_sync_waiter *wt = hf_xcalloc(1, sizeof *wt);
		pthread_mutex_init(&wt->lock, NULL);
		wt->refs = 2;
		wt->req = r;
		wt->in = r->in;
		r->waiter = wt;
		pthread_mutex_lock(&r->in->lock);
		wt->next = r->in->waiters;
		if (wt->next)
			wt->next->prev = wt;
		r->in->waiters = wt;
		pthread_mutex_unlock(&r->in->lock);
		return;
	}
}

void hf_ingest_submit(struct req *r, size_t nruns)
{
	add_waiter(r, nruns);
	r->w.kind = HF_W_INGEST;
	r->w.event = r->ev;
	r->w.runs = r->runs;
	r->w.nruns = nruns;
	r->w.unclaimed = r->place == HF_PLACE_DISK;
	r->w.dropped = r->dropped;
	r->w.done = ingest_written;
	r->w.ctx = r;
	r->state = WAITING;
	/* On hookflow's own HTTP threads (ingest_loop.c) a request waiting
	 * only for its commit is held, not suspended: libmicrohttpd asks for
	 * its answer on each turn of the loop until the commit marks it
	 * (resume_conn), which spares the two epoll_ctl of a suspension and
	 * a resumption, and the writer's MHD_resume_connection. A held
	 * connection is not read (libmicrohttpd waits for the answer), so a
	 * client that half-closed still gets it. A request that waits for a
	 * run or a signal is suspended: that can last. */
	r->held = r->loop->wake_fd >= 0 && !r->waiter && !r->signal;
	if (r->held)
		r->loop->held++;
	else
		MHD_suspend_connection(r->conn);
	hf_store_submit(r->in->eng->store, &r->w);
}

void hf_ingest_answer_waiters(struct hf_ingest *in)
{
	for (;;) {
		pthread_mutex_lock(&in->lock);
		struct hf_sync_waiter *wt = in->waiters;
		if (wt) {
			pthread_mutex_lock(&wt->lock);
			wt->refs++;
			pthread_mutex_unlock(&wt->lock);
		}
		pthread_mutex_unlock(&in->lock);
		if (!wt)
			break;
		if (waiter_claim(wt)) {
			hf_answer_json(
			    &wt->req->ans, 202,
			    json_pack("{s:s}", "event", wt->req->ev->id));
			resume(wt->req);
		}
		waiter_unref(wt);
	}
}
