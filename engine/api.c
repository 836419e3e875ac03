/* api.c - the reserved paths (see hf_api.h): /healthz, /metrics, the admin API
 * and the dashboard page. Everything under /api and /ui needs the admin token.
 * Reads use the store's read connections; replay waits for its commit. */
#include "hf_api.h"
#include "hf_limits.h"
#include "hf_metrics.h"
#include "hf_outbox.h"
#include "hf_worker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

extern const char hf_ui_html[]; /* ui.c, generated from ui/index.html */

static bool authorized(struct hf_server *srv, const char *auth)
{
	static const char prefix[] = "Bearer ";
	if (!auth || strncmp(auth, prefix, sizeof prefix - 1) != 0)
		return false;
	const char *token = auth + sizeof prefix - 1;
	return hf_ct_equal(token, strlen(token), srv->opt.admin_token,
			   strlen(srv->opt.admin_token));
}

static json_t *workflow_json(const struct hf_workflow *wf)
{
	char methods[64];
	hf_methods_format(wf->methods, methods, sizeof methods);
	json_t *steps = json_array();
	for (size_t i = 0; i < wf->nsteps; i++)
		json_array_append_new(steps, json_string(wf->steps[i].id));
	/* Secrets never leave the process: only the scheme is shown. */
	return json_pack(
	    "{s:s,s:s?,s:s,s:s,s:s,s:s?,s:s,s:s,s:o,s:I}", "name", wf->name,
	    "description", wf->description, "file", wf->file, "version",
	    wf->version, "path", wf->path, "verify",
	    wf->verify.scheme ? hf_verify_scheme_name(wf->verify.scheme) : NULL,
	    "methods", methods, "respond", wf->respond_sync ? "sync" : "async",
	    "steps", steps, "timeout_ms", (json_int_t)wf->timeout_ms);
}

struct wait_write {
	struct hf_write w;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void wait_done(struct hf_write *w)
{
	struct wait_write *ww = (struct wait_write *)w;
	pthread_mutex_lock(&ww->lock);
	ww->done = true;
	pthread_cond_signal(&ww->cond);
	pthread_mutex_unlock(&ww->lock);
}

/* Submits w and waits for its commit. */
static int submit_wait(struct hf_server *srv, struct wait_write *ww)
{
	pthread_mutex_init(&ww->lock, NULL);
	pthread_cond_init(&ww->cond, NULL);
	ww->w.done = wait_done;
	hf_store_submit(srv->store, &ww->w);
	pthread_mutex_lock(&ww->lock);
	while (!ww->done)
		pthread_cond_wait(&ww->cond, &ww->lock);
	pthread_mutex_unlock(&ww->lock);
	pthread_mutex_destroy(&ww->lock);
	pthread_cond_destroy(&ww->cond);
	return ww->w.rc;
}

static void replay(struct hf_server *srv, const char *event_id,
		   struct hf_answer *out)
{
	struct hf_event *ev = hf_store_load_event(srv->store, event_id);
	if (!ev) {
		hf_answer_error(out, 404, "no event '%s'", event_id);
		return;
	}
	struct hf_snapshot *snap = hf_server_snapshot(srv);
	struct hf_run *runs[HF_MAX_MATCH];
	size_t nruns = hf_dispatch_replay(snap->router, ev, runs);
	struct wait_write ww = {0};
	ww.w.kind = HF_W_RUNS;
	ww.w.event = ev;
	ww.w.runs = runs;
	ww.w.nruns = nruns;
	int rc = submit_wait(srv, &ww);
	json_t *ids = json_array();
	for (size_t i = 0; i < nruns; i++) {
		if (rc == 0) {
			json_array_append_new(ids, json_string(runs[i]->id));
			hf_sched_push(srv->sched, runs[i]);
		} else {
			hf_run_free(runs[i]);
		}
	}
	if (rc == 0)
		hf_answer_json(
		    out, 202,
		    json_pack("{s:s,s:o}", "event", ev->id, "runs", ids));
	else {
		json_decref(ids);
		hf_answer_error(out, 503, "cannot store the runs now");
	}
	hf_event_unref(ev);
	hf_snapshot_unref(snap);
}

struct retry_arg {
	const char *id;
	int result;
};

static int retry_call(struct hf_store *s, void *arg)
{
	struct retry_arg *a = arg;
	a->result = hf_store_retry_delivery(s, a->id);
	return 0; /* the outcome is in a->result, not a failed write */
}

/* POST /api/deliveries/ID/retry: pending again, due now, then a kick. */
static void retry_delivery(struct hf_server *srv, const char *id,
			   struct hf_answer *out)
{
	struct retry_arg a = {id, -1};
	struct wait_write ww = {0};
	ww.w.kind = HF_W_CALL;
	ww.w.call = retry_call;
	ww.w.call_arg = &a;
	int rc = submit_wait(srv, &ww);
	if (rc == 0 && a.result == HF_STORE_NOT_FOUND) {
		hf_answer_error(out, 404, "no delivery '%s'", id);
	} else if (rc == 0 && a.result == HF_STORE_CONFLICT) {
		hf_answer_error(out, 409, "delivery '%s' was already delivered",
				id);
	} else if (rc != 0 || a.result != 0) {
		hf_answer_error(out, 503, "cannot retry the delivery now");
	} else {
		hf_outbox_kick(srv->outbox);
		json_t *v = hf_store_delivery_json(srv->store, id);
		hf_answer_json(out, 202, v ? v : json_pack("{s:s}", "id", id));
	}
}

/* POST /api/runs/ID/retry: a failed run queued again from its failed step.
 * The update goes through a connection of its own, as `hookflow retry` does,
 * because the main loop notices commits of other connections only
 * (hf_store_changed): it picks the unclaimed run up within a second. */
static void retry_run(struct hf_server *srv, const char *id,
		      struct hf_answer *out)
{
	json_t *run = hf_store_run_json(srv->store, id);
	if (!run) {
		hf_answer_error(out, 404, "no run '%s'", id);
		return;
	}
	const char *st = json_string_value(json_object_get(run, "status"));
	char status[16];
	snprintf(status, sizeof status, "%s", st ? st : "");
	json_decref(run);
	if (strcmp(status, "failed") != 0) {
		hf_answer_error(out, 409,
				"run '%s' is %s: only a failed run can be "
				"retried",
				id, status);
		return;
	}
	struct hf_error err = {0};
	struct hf_store *conn =
	    hf_store_open(srv->opt.state_path, srv->opt.sync_full, false, &err);
	if (!conn) {
		hf_answer_error(out, 503, "cannot retry the run now: %s",
				err.msg);
		return;
	}
	int rc = hf_store_retry_run(conn, id, &err);
	hf_store_close(conn);
	if (rc < 0)
		hf_answer_error(out, 409, "%s", err.msg);
	else
		hf_answer_json(out, 202, json_pack("{s:s}", "run", id));
}

static int limit_arg(hf_arg_fn arg, void *ctx, int def)
{
	const char *s = arg(ctx, "limit");
	if (!s)
		return def;
	long v = strtol(s, NULL, 10);
	return v > 0 && v <= 1000 ? (int)v : def;
}

/* Matches url against "/api/PREFIX/ID[/SUFFIX]"; returns the id (copied into
 * id) and the rest, or NULL. */
static const char *split_id(const char *url, const char *prefix, char *id,
			    size_t size)
{
	size_t pl = strlen(prefix);
	if (strncmp(url, prefix, pl) != 0 || url[pl] == '\0')
		return NULL;
	const char *p = url + pl;
	size_t n = strcspn(p, "/");
	if (n == 0 || n >= size)
		return NULL;
	memcpy(id, p, n);
	id[n] = '\0';
	return p + n;
}

static void api(struct hf_server *srv, const char *method, const char *url,
		hf_arg_fn arg, void *ctx, struct hf_answer *out)
{
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool post = strcmp(method, "POST") == 0;
	char id[128];
	const char *rest;
	json_t *v;

	if (strcmp(url, "/api/workflows") == 0 && get) {
		struct hf_snapshot *snap = hf_server_snapshot(srv);
		json_t *list = json_array();
		for (size_t i = 0; i < snap->set->n; i++)
			json_array_append_new(
			    list, workflow_json(snap->set->items[i]));
		hf_snapshot_unref(snap);
		hf_answer_json(out, 200, json_pack("{s:o}", "workflows", list));
	} else if (strcmp(url, "/api/runs") == 0 && get) {
		const char *status = arg(ctx, "status");
		if (status && *status && hf_run_status_parse(status) < 0) {
			hf_answer_error(out, 400,
					"unknown status '%s' (expected queued, "
					"running, succeeded or failed)",
					status);
			return;
		}
		const char *wf = arg(ctx, "workflow");
		hf_answer_json(
		    out, 200,
		    hf_store_runs_json(srv->store, wf && *wf ? wf : NULL,
				       status && *status ? status : NULL,
				       limit_arg(arg, ctx, 50)));
	} else if ((rest = split_id(url, "/api/runs/", id, sizeof id)) &&
		   !*rest && get) {
		if ((v = hf_store_run_json(srv->store, id)))
			hf_answer_json(out, 200, v);
		else
			hf_answer_error(out, 404, "no run '%s'", id);
	} else if ((rest = split_id(url, "/api/events/", id, sizeof id)) &&
		   !*rest && get) {
		if ((v = hf_store_event_json(srv->store, id)))
			hf_answer_json(out, 200, v);
		else
			hf_answer_error(out, 404, "no event '%s'", id);
	} else if (rest && strcmp(rest, "/replay") == 0 && post &&
		   strncmp(url, "/api/events/", 12) == 0) {
		replay(srv, id, out);
	} else if ((rest = split_id(url, "/api/runs/", id, sizeof id)) &&
		   strcmp(rest, "/retry") == 0 && post) {
		retry_run(srv, id, out);
	} else if (strcmp(url, "/api/deliveries") == 0 && get) {
		const char *status = arg(ctx, "status");
		hf_answer_json(
		    out, 200,
		    hf_store_deliveries_json(srv->store,
					     status && *status ? status : NULL,
					     limit_arg(arg, ctx, 100)));
	} else if ((rest = split_id(url, "/api/deliveries/", id, sizeof id)) &&
		   !*rest && get) {
		if ((v = hf_store_delivery_json(srv->store, id)))
			hf_answer_json(out, 200, v);
		else
			hf_answer_error(out, 404, "no delivery '%s'", id);
	} else if (rest && strcmp(rest, "/retry") == 0 && post &&
		   strncmp(url, "/api/deliveries/", 16) == 0) {
		retry_delivery(srv, id, out);
	} else {
		hf_answer_error(out, 404, "no such endpoint: %s %s", method,
				url);
	}
}

void hf_api_handle(struct hf_server *srv, const char *method, const char *url,
		   const char *authorization, hf_arg_fn arg, void *ctx,
		   struct hf_answer *out)
{
	if (strcmp(url, "/healthz") == 0) {
		out->status = 200;
		out->body = hf_xstrdup("ok\n");
		out->len = 3;
		out->ctype = "text/plain; charset=utf-8";
		return;
	}
	if (strcmp(url, "/metrics") == 0) {
		struct hf_buf b = {0};
		hf_metrics_render(&b, hf_sched_depth(srv->sched),
				  hf_sched_ready(srv->sched),
				  hf_workers_busy(srv->workers));
		struct hf_store_stats st;
		hf_store_stats(srv->store, &st);
		hf_buf_printf(
		    &b,
		    "# HELP hookflow_store_commits_total Transactions "
		    "committed by the writer (group commits).\n"
		    "# TYPE hookflow_store_commits_total counter\n"
		    "hookflow_store_commits_total %llu\n"
		    "# HELP hookflow_store_writes_total Writes "
		    "(events, step results, ...) committed.\n"
		    "# TYPE hookflow_store_writes_total counter\n"
		    "hookflow_store_writes_total %llu\n"
		    "# HELP hookflow_store_write_errors_total Writes "
		    "that failed.\n"
		    "# TYPE hookflow_store_write_errors_total counter\n"
		    "hookflow_store_write_errors_total %llu\n",
		    (unsigned long long)st.commits,
		    (unsigned long long)st.writes,
		    (unsigned long long)st.write_errors);
		out->status = 200;
		out->body = b.data;
		out->len = b.len;
		out->ctype = "text/plain; version=0.0.4; charset=utf-8";
		return;
	}
	if (strcmp(url, "/") == 0) {
		out->status = 302;
		out->headers = json_pack("{s:s}", "Location", "/ui");
		out->ctype = "text/plain";
		return;
	}
	if (strcmp(url, "/ui") == 0 || strncmp(url, "/ui/", 4) == 0) {
		/* The page itself holds no data: it asks for the token and
		 * sends it with each API call. */
		out->status = 200;
		out->body = hf_xstrdup(hf_ui_html);
		out->len = strlen(out->body);
		out->ctype = "text/html; charset=utf-8";
		out->headers = json_pack(
		    "{s:s,s:s}", "Content-Security-Policy",
		    "default-src 'self'; style-src 'self' 'unsafe-inline'; "
		    "script-src 'self' 'unsafe-inline'",
		    "X-Frame-Options", "DENY");
		return;
	}
	if (!authorized(srv, authorization)) {
		hf_answer_error(out, 401,
				"missing or wrong admin token (send "
				"'Authorization: Bearer TOKEN')");
		out->headers = json_pack("{s:s}", "WWW-Authenticate",
					 "Bearer realm=\"hookflow\"");
		return;
	}
	api(srv, method, url, arg, ctx, out);
}
