/* api.c - the reserved paths (see hf_api.h): /healthz, /metrics, the admin API
 * and the dashboard page. Everything under /api and /ui needs the admin token.
 * Reads use the store's read connections; replay and the retries go through
 * the operations layer (ops.c) and wait for their commits. The admin routes
 * are one table of {method, path pattern, handler}. */
#include "hf_api.h"
#include "hf_backlog.h"
#include "hf_cancel.h"
#include "hf_limits.h"
#include "hf_metrics.h"
#include "hf_ops.h"
#include "hf_outbox.h"
#include "hf_worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The dashboard, generated from ui.html, ui.js and ui.css (embed.c). */
extern const char hf_ui_html[], hf_ui_js[], hf_ui_css[];

/* The dashboard's headers: scripts and styles from its own files only, no
 * framing, no Referer; X-Content-Type-Options goes on every answer. */
#define UI_CSP                                                                 \
	"default-src 'self'; script-src 'self'; style-src 'self';"             \
	" img-src 'self' data:; object-src 'none'; base-uri 'none';"           \
	" form-action 'self'; frame-ancestors 'none'"

/* GET /ui, /ui/app.js, /ui/app.css (any other /ui/… is the page). The page
 * holds no data: it asks for the token and sends it with each API call. */
static void ui(const char *url, struct hf_answer *out)
{
	const char *body = hf_ui_html;
	out->ctype = "text/html; charset=utf-8";
	if (strcmp(url, "/ui/app.js") == 0) {
		body = hf_ui_js;
		out->ctype = "text/javascript; charset=utf-8";
	} else if (strcmp(url, "/ui/app.css") == 0) {
		body = hf_ui_css;
		out->ctype = "text/css; charset=utf-8";
	}
	out->status = 200;
	out->body = hf_xstrdup(body);
	out->len = strlen(out->body);
	out->headers = json_pack("{s:s,s:s,s:s}", "Content-Security-Policy",
				 UI_CSP, "X-Frame-Options", "DENY",
				 "Referrer-Policy", "no-referrer");
}

/* "Authorization: Bearer TOKEN": the scheme in any case (RFC 7235), one or
 * more spaces, then the token, compared in constant time. serve refuses a
 * token with whitespace around it (cmd_serve.c), so skipping the spaces
 * cannot make a blank token match. */
static bool authorized(struct hf_engine *eng, const char *auth)
{
	static const char scheme[] = "Bearer";
	size_t n = sizeof scheme - 1;
	if (!auth || strncasecmp(auth, scheme, n) != 0 || auth[n] != ' ')
		return false;
	const char *token = auth + n;
	while (*token == ' ')
		token++;
	return hf_ct_equal(token, strlen(token), eng->opt.admin_token,
			   strlen(eng->opt.admin_token));
}

static json_t *workflow_json(const struct hf_workflow *wf)
{
	char methods[64];
	hf_methods_format(wf->methods, methods, sizeof methods);
	json_t *steps = json_array();
	for (size_t i = 0; i < wf->nsteps; i++)
		json_array_append_new(steps, json_string(wf->steps[i].id));
	/* Secrets never leave the process: only the scheme is shown. */
	json_t *o = json_pack(
	    "{s:s,s:s?,s:s,s:s,s:s?,s:s?,s:s,s:s,s:o,s:I}", "name", wf->name,
	    "description", wf->description, "file", wf->file, "version",
	    wf->version, "path", wf->path, "verify",
	    wf->verify.scheme ? hf_verify_scheme_name(wf->verify.scheme) : NULL,
	    "methods", methods, "respond", wf->respond_sync ? "sync" : "async",
	    "steps", steps, "timeout_ms", (json_int_t)wf->timeout_ms);
	if (o && wf->nschedules) {
		json_t *sc = json_array();
		for (size_t i = 0; i < wf->nschedules; i++)
			json_array_append_new(
			    sc, json_pack("{s:s?,s:s?,s:i}", "cron",
					  wf->schedules[i].cron, "timezone",
					  wf->schedules[i].timezone, "catch_up",
					  wf->schedules[i].catch_up));
		json_object_set_new(o, "schedule", sc);
	}
	return o;
}

/* --- handlers: id is the path's {id} segment ("" when it has none) --- */

typedef void (*route_fn)(struct hf_engine *eng, const char *id, hf_arg_fn arg,
			 void *ctx, struct hf_answer *out);

/* A query argument, NULL when absent or empty. */
static const char *nonempty_arg(hf_arg_fn arg, void *ctx, const char *name)
{
	const char *v = arg(ctx, name);
	return v && *v ? v : NULL;
}

/* The "limit" argument: def when absent or empty, else a whole number from
 * 1 to HF_LIST_MAX written in decimal digits alone. Returns -1 after
 * answering 400 for anything else ("5abc", "-1", "0", "+5", too large). */
static int limit_arg(hf_arg_fn arg, void *ctx, int def, struct hf_answer *out)
{
	const char *s = nonempty_arg(arg, ctx, "limit");
	if (!s)
		return def;
	long v = 0;
	const char *p = s;
	while (*p >= '0' && *p <= '9' && v <= HF_LIST_MAX)
		v = v * 10 + (*p++ - '0');
	if (*p || v < 1 || v > HF_LIST_MAX) {
		hf_answer_error(out, 400,
				"invalid limit '%s' (expected an integer from "
				"1 to %d)",
				s, HF_LIST_MAX);
		return -1;
	}
	return (int)v;
}

/* The "status" argument, NULL when absent or empty; else one of names (n of
 * them) or *bad set after answering 400 naming them all. */
static const char *status_arg(hf_arg_fn arg, void *ctx,
			      const char *const *names, size_t n,
			      struct hf_answer *out, bool *bad)
{
	const char *s = nonempty_arg(arg, ctx, "status");
	*bad = false;
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return s;
	struct hf_buf b = {0};
	for (size_t i = 0; i < n; i++)
		hf_buf_printf(&b, "%s%s",
			      i == 0	  ? ""
			      : i + 1 < n ? ", "
					  : " or ",
			      names[i]);
	hf_answer_error(out, 400, "unknown status '%s' (expected %s)", s,
			b.data);
	hf_buf_release(&b);
	*bad = true;
	return NULL;
}

/* A list's "status" (one of names, n of them; NULL when absent) and "limit"
 * (def when absent). Returns false after answering 400 for either. */
static bool list_args(hf_arg_fn arg, void *ctx, const char *const *names,
		      size_t n, int def, struct hf_answer *out,
		      const char **status, int *limit)
{
	bool bad;
	*status = status_arg(arg, ctx, names, n, out, &bad);
	if (bad)
		return false;
	*limit = limit_arg(arg, ctx, def, out);
	return *limit >= 0;
}

/* Answers 200 with v, or 404 "no WHAT 'ID'" when v is NULL. */
static void found(struct hf_answer *out, json_t *v, const char *what,
		  const char *id)
{
	if (v)
		hf_answer_json(out, 200, v);
	else
		hf_answer_error(out, 404, "no %s '%s'", what, id);
}

/* A JSON string of s, its bytes outside UTF-8 (a message quoting a broken
 * file) replaced by '?'. */
static json_t *text_json(const char *s)
{
	json_t *v = json_string(s);
	if (v)
		return v;
	char *copy = hf_xstrdup(s);
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return v;
}

/* The files that failed to load: {"file","line","col","message","path"}. */
static json_t *load_errors_json(const struct hf_workflow_set *set)
{
	json_t *list = json_array();
	for (size_t i = 0; i < set->nerrors; i++) {
		const struct hf_load_error *e = &set->errors[i];
		json_array_append_new(
		    list,
		    json_pack("{s:o,s:i,s:i,s:o,s:o?}", "file",
			      text_json(e->file), "line", e->line, "col",
			      e->col, "message", text_json(e->message), "path",
			      e->path ? text_json(e->path) : NULL));
	}
	return list;
}

static void get_workflows(struct hf_engine *eng, const char *id, hf_arg_fn arg,
			  void *ctx, struct hf_answer *out)
{
	struct hf_snapshot *snap = hf_engine_snapshot(eng);
	json_t *list = json_array();
	for (size_t i = 0; i < snap->set->n; i++)
		json_array_append_new(list, workflow_json(snap->set->items[i]));
	json_t *errors = load_errors_json(snap->set);
	hf_snapshot_unref(snap);
	hf_answer_json(
	    out, 200,
	    json_pack("{s:o,s:o}", "workflows", list, "errors", errors));
}

static void get_runs(struct hf_engine *eng, const char *id, hf_arg_fn arg,
		     void *ctx, struct hf_answer *out)
{
	const char *names[HF_RUN_CANCELLED + 1];
	for (int i = HF_RUN_QUEUED; i <= HF_RUN_CANCELLED; i++)
		names[i] = hf_run_status_name(i);
	const char *status;
	int limit;
	if (!list_args(arg, ctx, names, sizeof names / sizeof names[0],
		       HF_LIST_DEFAULT_RUNS, out, &status, &limit))
		return;
	/* summary=1: the runs without their steps and history, whose outputs
	 * and logs may be 1 MiB each (the dashboard's Workflows page). */
	const char *summary = nonempty_arg(arg, ctx, "summary");
	if (summary && strcmp(summary, "0") != 0 && strcmp(summary, "1") != 0) {
		hf_answer_error(out, 400,
				"invalid summary '%s' (expected 0 or 1)",
				summary);
		return;
	}
	bool steps = !summary || strcmp(summary, "1") != 0;
	hf_answer_json(out, 200,
		       hf_store_runs_json(eng->store,
					  nonempty_arg(arg, ctx, "workflow"),
					  status, limit, steps));
}

static void get_run(struct hf_engine *eng, const char *id, hf_arg_fn arg,
		    void *ctx, struct hf_answer *out)
{
	found(out, hf_store_run_json(eng->store, id), "run", id);
}

/* GET /api/events/ID, with "params": the event's path parameters as the
 * workflows in force read them. */
static void get_event(struct hf_engine *eng, const char *id, hf_arg_fn arg,
		      void *ctx, struct hf_answer *out)
{
	json_t *ev = hf_store_event_json(eng->store, id);
	if (ev) {
		struct hf_snapshot *snap = hf_engine_snapshot(eng);
		const char *path =
		    json_string_value(json_object_get(ev, "path"));
		json_object_set_new(ev, "params",
				    hf_router_params(snap->router, path));
		hf_snapshot_unref(snap);
	}
	found(out, ev, "event", id);
}

/* POST /api/events/ID/replay: new runs with the workflows in force. */
static void post_replay(struct hf_engine *eng, const char *id, hf_arg_fn arg,
			void *ctx, struct hf_answer *out)
{
	struct hf_snapshot *snap = hf_engine_snapshot(eng);
	json_t *v = NULL;
	int rc = hf_ops_replay(eng->store, eng->sched, snap->router, id, &v);
	hf_snapshot_unref(snap);
	if (rc == 0)
		hf_answer_json(out, 202, v);
	else if (rc == HF_STORE_NOT_FOUND)
		hf_answer_error(out, 404, "no event '%s'", id);
	else
		hf_answer_error(out, 503, "cannot store the runs now");
}

/* POST /api/runs/ID/retry: a failed run queued again from its failed step.
 * The update goes through a connection of its own, as `hookflow retry` does,
 * because the main loop notices commits of other connections only
 * (hf_store_changed): it picks the unclaimed run up within a second. */
static void post_retry_run(struct hf_engine *eng, const char *id, hf_arg_fn arg,
			   void *ctx, struct hf_answer *out)
{
	struct hf_error err = {0};
	struct hf_store *conn =
	    hf_store_open(eng->opt.state_path, eng->opt.sync_full, false, &err);
	if (!conn) {
		hf_answer_error(out, 503, "cannot retry the run now: %s",
				err.msg);
		return;
	}
	int rc = hf_ops_retry_run(conn, id, &err);
	hf_store_close(conn);
	if (rc == 0)
		hf_answer_json(out, 202, json_pack("{s:s}", "run", id));
	else
		hf_answer_error(out, rc == HF_STORE_NOT_FOUND ? 404 : 409, "%s",
				err.msg);
}

/* POST /api/runs/ID/cancel: the run ends cancelled (cancel.c); 202 with the
 * RUN as committed. */
static void post_cancel_run(struct hf_engine *eng, const char *id,
			    hf_arg_fn arg, void *ctx, struct hf_answer *out)
{
	int rc = hf_cancel_run(eng, id, "cancelled by the admin API");
	json_t *run = rc == -1 ? NULL : hf_store_run_json(eng->store, id);
	const char *st = json_string_value(json_object_get(run, "status"));
	if (rc == 0 && run)
		hf_answer_json(out, 202, json_incref(run));
	else if (rc == 0)
		hf_answer_json(out, 202, json_pack("{s:s}", "id", id));
	else if (rc == HF_STORE_NOT_FOUND)
		hf_answer_error(out, 404, "no run '%s'", id);
	else if (rc == HF_STORE_CONFLICT)
		hf_answer_error(out, 409, "run '%s' already finished (%s)", id,
				st ? st : "?");
	else
		hf_answer_error(out, 503, "cannot cancel the run now");
	json_decref(run);
}

static void get_deliveries(struct hf_engine *eng, const char *id, hf_arg_fn arg,
			   void *ctx, struct hf_answer *out)
{
	static const char *const names[] = {"pending", "delivered", "failed"};
	const char *status;
	int limit;
	if (!list_args(arg, ctx, names, sizeof names / sizeof names[0],
		       HF_LIST_DEFAULT_DELIVERIES, out, &status, &limit))
		return;
	hf_answer_json(out, 200,
		       hf_store_deliveries_json(eng->store, status, limit));
}

static void get_delivery(struct hf_engine *eng, const char *id, hf_arg_fn arg,
			 void *ctx, struct hf_answer *out)
{
	found(out, hf_store_delivery_json(eng->store, id), "delivery", id);
}

/* POST /api/deliveries/ID/retry: pending again, due now, then a kick. */
static void post_retry_delivery(struct hf_engine *eng, const char *id,
				hf_arg_fn arg, void *ctx, struct hf_answer *out)
{
	int rc = hf_ops_retry_delivery(eng->store, id);
	if (rc == HF_STORE_NOT_FOUND) {
		hf_answer_error(out, 404, "no delivery '%s'", id);
	} else if (rc == HF_STORE_CONFLICT) {
		hf_answer_error(out, 409, "delivery '%s' was already delivered",
				id);
	} else if (rc != 0) {
		hf_answer_error(out, 503, "cannot retry the delivery now");
	} else {
		hf_outbox_kick(eng->outbox);
		json_t *v = hf_store_delivery_json(eng->store, id);
		hf_answer_json(out, 202, v ? v : json_pack("{s:s}", "id", id));
	}
}

/* GET /api/nodes: the nodes sharing the state database (PostgreSQL), else
 * this server alone. */
static void get_nodes(struct hf_engine *eng, const char *id, hf_arg_fn arg,
		      void *ctx, struct hf_answer *out)
{
	(void)id;
	(void)arg;
	(void)ctx;
	json_t *nodes = hf_store_nodes_json(eng->store);
	if (!nodes) {
		char at[32], now[32];
		hf_time_iso(eng->started_at, at);
		hf_time_iso(hf_now_ms(), now);
		nodes = json_pack(
		    "{s:[{s:i,s:s,s:i,s:s,s:s,s:b}]}", "nodes", "id", 1, "name",
		    eng->opt.node_name ? eng->opt.node_name : "", "epoch", 1,
		    "heartbeat_at", now, "started_at", at, "alive", 1);
	}
	hf_answer_json(out, 200, nodes);
}

/* --- routing --- */

/* The admin API: a method (GET also answers HEAD) and a path pattern, where
 * "*" stands for one non-empty path segment, the id. */
static const struct {
	const char *method;
	const char *pattern;
	route_fn fn;
} routes[] = {
    {"GET", "/api/workflows", get_workflows},
    {"GET", "/api/runs", get_runs},
    {"GET", "/api/runs/*", get_run},
    {"POST", "/api/runs/*/retry", post_retry_run},
    {"POST", "/api/runs/*/cancel", post_cancel_run},
    {"GET", "/api/events/*", get_event},
    {"POST", "/api/events/*/replay", post_replay},
    {"GET", "/api/deliveries", get_deliveries},
    {"GET", "/api/deliveries/*", get_delivery},
    {"POST", "/api/deliveries/*/retry", post_retry_delivery},
    {"GET", "/api/nodes", get_nodes},
};

/* Matches url against pattern, copying the segment that "*" stands for into id
 * (size bytes; a longer one does not match). */
static bool match(const char *pattern, const char *url, char *id, size_t size)
{
	id[0] = '\0';
	const char *star = strchr(pattern, '*');
	if (!star)
		return strcmp(pattern, url) == 0;
	size_t pl = (size_t)(star - pattern);
	if (strncmp(url, pattern, pl) != 0)
		return false;
	const char *p = url + pl;
	size_t n = strcspn(p, "/");
	if (n == 0 || n >= size || strcmp(p + n, star + 1) != 0)
		return false;
	memcpy(id, p, n);
	id[n] = '\0';
	return true;
}

/* Answers 405 with Allow: the methods that url serves (allow, e.g.
 * "GET, HEAD"), as ingest answers a workflow's path. */
static void not_allowed(struct hf_answer *out, const char *method,
			const char *url, const char *allow)
{
	hf_answer_error(out, 405,
			"method %s not allowed for '%s' (allowed: %s)", method,
			url, allow);
	snprintf(out->allow, sizeof out->allow, "%s", allow);
}

static bool is_get(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* The route of method and url; else 405 naming the methods of the routes
 * whose pattern url matches, else 404. */
static void api(struct hf_engine *eng, const char *method, const char *url,
		hf_arg_fn arg, void *ctx, struct hf_answer *out)
{
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
	char id[HF_DELIVERY_ID_SIZE]; /* the longest id: a delivery's */
	char allow[sizeof out->allow] = "";
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (!match(routes[i].pattern, url, id, sizeof id))
			continue;
		if (strcmp(routes[i].method, m) == 0) {
			routes[i].fn(eng, id, arg, ctx, out);
			return;
		}
		size_t n = strlen(allow);
		snprintf(allow + n, sizeof allow - n, "%s%s", n ? ", " : "",
			 strcmp(routes[i].method, "GET") == 0
			     ? "GET, HEAD"
			     : routes[i].method);
	}
	if (allow[0])
		not_allowed(out, method, url, allow);
	else
		hf_answer_error(out, 404, "no such endpoint: %s %s", method,
				url);
}

/* GET /healthz: 200 "ok" only while the state database writes and no worker
 * is stuck past its step's deadline; else 503 with a one-line reason. */
static void healthz(struct hf_engine *eng, struct hf_answer *out)
{
	char why[256];
	out->status = 503;
	if (!hf_store_writable(eng->store, why, sizeof why))
		out->body =
		    hf_xasprintf("state database cannot write: %s\n", why);
	else if (hf_workers_stuck(eng->workers, why, sizeof why))
		out->body = hf_xasprintf("%s\n", why);
	else {
		out->status = 200;
		out->body = hf_xstrdup("ok\n");
	}
	out->len = strlen(out->body);
	out->ctype = "text/plain; charset=utf-8";
}

void hf_api_handle(struct hf_engine *eng, const char *method, const char *url,
		   const char *authorization, hf_arg_fn arg, void *ctx,
		   struct hf_answer *out)
{
	/* The public paths serve GET and HEAD alone. */
	bool public_path = strcmp(url, "/healthz") == 0 ||
			   strcmp(url, "/metrics") == 0 ||
			   strcmp(url, "/") == 0 || strcmp(url, "/ui") == 0 ||
			   strncmp(url, "/ui/", 4) == 0;
	if (public_path && !is_get(method)) {
		not_allowed(out, method, url, "GET, HEAD");
		return;
	}
	if (strcmp(url, "/healthz") == 0) {
		healthz(eng, out);
		return;
	}
	if (strcmp(url, "/metrics") == 0) {
		struct hf_buf b = {0};
		hf_metrics_render(&b, hf_sched_depth(eng->sched),
				  hf_sched_ready(eng->sched),
				  hf_workers_busy(eng->workers));
		/* Which node these per-node gauges are (several nodes share
		 * a PostgreSQL state database; the name is checked at start:
		 * nothing to escape). */
		hf_buf_printf(&b,
			      "# HELP hookflow_node_info This node (--node).\n"
			      "# TYPE hookflow_node_info gauge\n"
			      "hookflow_node_info{node=\"%s\"} 1\n",
			      eng->opt.node_name ? eng->opt.node_name : "");
		struct hf_store_stats st;
		hf_store_stats(eng->store, &st);
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
		hf_buf_printf(&b,
			      "# HELP hookflow_backlog Runs accepted and "
			      "waiting on disk for room in memory.\n"
			      "# TYPE hookflow_backlog gauge\n"
			      "hookflow_backlog %lld\n",
			      (long long)hf_backlog_size(eng->backlog));
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
		ui(url, out);
		return;
	}
	if (!authorized(eng, authorization)) {
		hf_answer_error(out, 401,
				"missing or wrong admin token (send "
				"'Authorization: Bearer TOKEN')");
		out->headers = json_pack("{s:s}", "WWW-Authenticate",
					 "Bearer realm=\"hookflow\"");
		return;
	}
	api(eng, method, url, arg, ctx, out);
}
