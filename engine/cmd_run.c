/* cmd_run.c - `hookflow run`: runs one workflow on an event read from a file,
 * in this process and at once, printing each step's outcome as a line of JSON
 * (and its logs on stderr). Nothing is stored and nothing is delivered: the
 * deliveries a step emits are shown instead.
 *
 * The step context and the run's progress come from the operations layer
 * (ops.c), as in the workers. Main thread. Neighbours: cli.c, flags.c,
 * dispatch.c (if:), luart.c. */
#include "cli_int.h"
#include "hf_body.h"
#include "hf_crypto.h"
#include "hf_dispatch.h"
#include "hf_egress.h"
#include "hf_limits.h"
#include "hf_ops.h"
#include "hf_park.h"
#include "hf_redact.h"
#include "hf_schedule.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
	O_EVENT,
	O_HEADER,
	O_DATA,
	O_SCRIPTS,
	O_METHOD,
	O_EGRESS_DENY,
	O_EGRESS_ALLOW,
	O_MAX_VALUE,
	O_NOW,
	O_SIGNAL,
};

static const struct hf_opt run_opts[] = {
    {"event", O_EVENT, HF_OPT_STRING,
     .help = "the request body to run on, a file (or --now)", .meta = "FILE"},
    {"now", O_NOW, HF_OPT_STRING,
     .help = "fire its first on.schedule entry at TIME "
	     "(ISO 8601, Unix seconds or 'now')",
     .meta = "TIME"},
    {"signal", O_SIGNAL, HF_OPT_STRING,
     .help = "the body of a signal that satisfies a wait_for step (its "
	     "if: permitting); without it a wait_for times out at once",
     .meta = "FILE"},
    {"header", O_HEADER, HF_OPT_REPEAT, .help = "a request header",
     .meta = "'Name: value'"},
    {"data", O_DATA, HF_OPT_STRING, "./data.db",
     .help = "the database of db.*: a file or postgres://…", .meta = "FILE",
     .flags = HF_OPT_ENV},
    {"scripts", O_SCRIPTS, HF_OPT_STRING,
     .help = "scripts directory (else the one beside the workflows)",
     .meta = "DIR", .flags = HF_OPT_ENV},
    {"method", O_METHOD, HF_OPT_STRING,
     .help = "request method (else the workflow's first)", .meta = "METHOD"},
    {"egress-deny", O_EGRESS_DENY, HF_OPT_STRING,
     .help = "http.*: also refuse these ranges (as serve)", .meta = "CIDR,...",
     .flags = HF_OPT_ENV},
    {"egress-allow", O_EGRESS_ALLOW, HF_OPT_STRING,
     .help = "http.*: allow these ranges (as serve)", .meta = "CIDR,...",
     .flags = HF_OPT_ENV},
    {"max-value", O_MAX_VALUE, HF_OPT_SIZE, .ndef = HF_DEFAULT_MAX_VALUE,
     .help = "largest value or row a step's SQL may make", .meta = "SIZE",
     .min = HF_DB_MAX_VALUE_MIN, .max = HF_DB_MAX_VALUE_MAX,
     .flags = HF_OPT_ENV},
};

static const struct hf_cmd_spec run_spec = {
    HF_CMD("run", "WORKFLOW.yml", 1, 1, run_opts),
    .about =
	"Runs one workflow on an event, here and now, without storing anything "
	"or\ndelivering what it emits; prints each step as a line of JSON.",
};

static struct hf_workflow *load(const char *path, const char *scripts)
{
	struct hf_diags diags = {0};
	/* `run` verifies no signature: it needs no secrets, as `check`. */
	hf_workflow_set_env_optional(true);
	struct hf_workflow *wf = hf_workflow_load(path, scripts, &diags);
	hf_cli_print_diags(&diags, stderr);
	hf_diags_release(&diags);
	return wf;
}

/* Adds the --header values to ev. Returns 0, or 2 after printing a bad one. */
static int add_headers(struct hf_event *ev, const struct hf_optval *h)
{
	for (size_t i = 0; i < h->n; i++) {
		const char *colon = strchr(h->list[i], ':');
		if (!colon) {
			fprintf(stderr,
				"hookflow run: --header '%s' is not 'Name: "
				"value'\n",
				h->list[i]);
			return 2;
		}
		char *name =
		    hf_xstrndup(h->list[i], (size_t)(colon - h->list[i]));
		for (char *p = name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		const char *val = colon + 1;
		while (*val == ' ')
			val++;
		json_object_set_new(ev->headers, name, json_string(val));
		free(name);
	}
	return 0;
}

/* The event: --event's body, --method (or the workflow's first method),
 * --header. Returns 0 with *out, else 1 or 2 after printing why not. */
static int make_event(const struct hf_workflow *wf, const struct hf_args *a,
		      struct hf_event **out)
{
	const char *file = a->v[O_EVENT].str;
	size_t blen = 0;
	char *body = hf_read_file(file, &blen);
	if (!body) {
		fprintf(stderr, "hookflow run: cannot read '%s': %s\n", file,
			strerror(errno));
		return 1;
	}
	struct hf_event *ev = hf_event_new();
	hf_id_new(ev->id, "ev");
	char methods[64];
	hf_methods_format(wf->methods, methods, sizeof methods);
	methods[strcspn(methods, ",")] = '\0';
	const char *method = a->v[O_METHOD].str;
	ev->method = hf_xstrdup(method ? method : methods);
	ev->path = hf_xstrdup(wf->path ? wf->path : wf->name);
	ev->query = json_object();
	ev->headers = json_object();
	ev->skipped = json_array();
	ev->body = body;
	ev->body_len = blen;
	ev->received_at = hf_now_ms();
	json_object_set_new(ev->headers, "content-type",
			    json_string("application/json"));
	int rc = add_headers(ev, &a->v[O_HEADER]);
	char err[512];
	if (!rc && hf_body_decode_event(ev->headers, body, blen, &ev->decoded,
					err, sizeof err) < 0) {
		fprintf(stderr, "hookflow run: %s: %s\n", file, err);
		rc = 1;
	}
	if (rc)
		hf_event_unref(ev);
	else
		*out = ev;
	return rc;
}

/* --now: the event of a fire of the first schedule at that time. Returns 0
 * with *out, else 1 or 2 after printing why not. */
static int make_schedule_event(const struct hf_workflow *wf, const char *now,
			       struct hf_event **out)
{
	int64_t at;
	if (strcmp(now, "now") == 0) {
		at = hf_now_ms() / 1000;
	} else if (hf_cron_parse_time(now, &at) < 0) {
		fprintf(stderr,
			"hookflow run: --now '%s' is not a time (expected "
			"ISO 8601 such as 2026-12-07T02:00:00Z, Unix seconds "
			"or 'now')\n",
			now);
		return 2;
	}
	if (!wf->nschedules) {
		fprintf(stderr,
			"hookflow run: workflow '%s' has no on.schedule (use "
			"--event)\n",
			wf->name);
		return 1;
	}
	*out = hf_schedule_event(wf, 0, at);
	return 0;
}

/* One step's outcome: its logs on stderr, a line of JSON on stdout. */
static void print_step(const struct hf_workflow *wf,
		       const struct hf_step_result *res,
		       const struct hf_ops_step *done)
{
	const char *id = wf->steps[done->index].id;
	struct hf_cli_text t = {0};
	for (size_t i = 0; i < json_array_size(res->logs); i++) {
		json_t *l = json_array_get(res->logs, i);
		fprintf(stderr, "[%s] %s: %s\n", hf_cli_text_of(&t, id),
			hf_cli_text(&t, l, "level"),
			hf_cli_text(&t, l, "message"));
	}
	hf_cli_text_release(&t);
	json_t *line = json_pack("{s:s,s:s,s:O,s:s?,s:i}", "step", id, "status",
				 hf_step_status_name(res->status), "output",
				 res->output ? res->output : json_null(),
				 "error", res->error, "attempt", done->attempt);
	/* Nothing is delivered from here: show what would be. */
	if (res->nemits) {
		json_t *emits = json_array();
		for (size_t i = 0; i < res->nemits; i++) {
			const struct hf_emit *e = &res->emits[i];
			json_t *p =
			    json_loads(e->payload, JSON_DECODE_ANY, NULL);
			char *url = hf_redact_url(e->url); /* as shown */
			json_array_append_new(
			    emits, json_pack("{s:s,s:s,s:o}", "id", e->id,
					     "url", url, "payload",
					     p ? p : json_string(e->payload)));
			free(url);
		}
		json_object_set_new(line, "emits", emits);
	}
	char *s = json_dumps(line, JSON_COMPACT | JSON_ENCODE_ANY);
	puts(s);
	fflush(stdout);
	free(s);
	json_decref(line);
}

/* --signal's event for the wait_for step st (NULL without --signal, or
 * when its body does not read: printed). */
static struct hf_event *signal_event(const char *file, const struct hf_step *st)
{
	size_t len = 0;
	char err[512], *body = file ? hf_read_file(file, &len) : NULL;
	if (!body) {
		if (file)
			fprintf(stderr, "hookflow run: cannot read '%s': %s\n",
				file, strerror(errno));
		return NULL;
	}
	struct hf_event *ev = hf_event_new();
	hf_id_new(ev->id, "ev");
	ev->method = hf_xstrdup("POST");
	ev->path = hf_xstrdup(st->wait_path ? st->wait_path : "/");
	ev->query = json_object();
	ev->headers = json_pack("{s:s}", "content-type", "application/json");
	ev->skipped = json_array();
	ev->body = body;
	ev->body_len = len;
	ev->received_at = hf_now_ms();
	if (hf_body_decode_event(ev->headers, body, len, &ev->decoded, err,
				 sizeof err) < 0) {
		fprintf(stderr, "hookflow run: %s: %s\n", file, err);
		hf_event_unref(ev);
		return NULL;
	}
	return ev;
}

/* The run parked at its next step (hf_park.h): nothing waits here. A sleep or
 * until is skipped, a wait_for gets --signal's body when its if: matches,
 * else times out at once; a note says which on stderr. The run is then woken:
 * its next hf_ops_step ends the step. */
static void unpark(struct hf_run *run, const char *signal_file)
{
	const struct hf_step *st = &run->wf->steps[run->next_step];
	char until[32];
	hf_time_iso(run->wake_at, until);
	struct hf_event *sig =
	    st->park == HF_PARK_WAIT_FOR ? signal_event(signal_file, st) : NULL;
	bool match = sig != NULL;
	if (sig && st->wait_if) {
		json_t *v = NULL;
		char *err = NULL;
		match = hf_luart_eval_signal(
			    hf_dispatch_runtime(), "run:wait_if", st->wait_if,
			    run->event, run->wf, sig, &v, &err) == 0 &&
			hf_json_truthy(v);
		if (err)
			fprintf(stderr, "hookflow run: wait_for if: %s\n", err);
		json_decref(v);
		free(err);
	}
	if (st->park != HF_PARK_WAIT_FOR)
		fprintf(stderr,
			"hookflow run: step '%s' would wait until %s "
			"(%s): skipped here\n",
			st->id, until,
			st->park == HF_PARK_SLEEP ? "sleep" : "until");
	else if (match)
		fprintf(stderr,
			"hookflow run: step '%s' is satisfied by --signal\n",
			st->id);
	else
		fprintf(stderr,
			"hookflow run: step '%s' would wait for a signal to %s "
			"until %s: %s, so it times out here\n",
			st->id, st->wait_path, until,
			sig ? "--signal does not match its if:"
			    : "no --signal");
	if (match)
		json_object_set(run->outputs, st->id, hf_event_body(sig));
	hf_event_unref(sig);
	run->status = HF_RUN_RUNNING;
	run->woken = true;
	free(run->waiting);
	free(run->wait_path);
	run->waiting = run->wait_path = NULL;
}

/* Runs run's steps, waiting out retry backoffs. Returns the exit status. */
static int run_steps(struct hf_run *run, const char *scripts, const char *data,
		     const struct hf_egress *egress, int64_t max_value,
		     const char *signal_file)
{
	struct hf_error e = {0};
	struct hf_luart_config cfg = {
	    .scripts_dir = scripts,
	    .data_path = data,
	    .data_sync_full = false,
	    .egress = egress,
	    .max_value = max_value,
	};
	struct hf_luart *rt = hf_luart_create(&cfg, &e);
	if (!rt) {
		char line[2048];
		hf_error_format(&e, line, sizeof line);
		fprintf(stderr, "hookflow run: %s\n", line);
		return 1;
	}
	run->status = HF_RUN_RUNNING;
	run->started_at = hf_now_ms();
	if (run->wf->debounce) { /* a burst of one: the event given */
		json_t *o = hf_event_to_lua_json(run->event);
		hf_event_json_params(o, run->event, run->wf);
		run->events = json_pack("[o]", o);
	}
	for (;;) {
		int64_t wait = run->due_at - hf_now_ms();
		if (wait > 0) {
			struct timespec ts = {wait / 1000,
					      (wait % 1000) * 1000000};
			nanosleep(&ts, NULL);
		}
		struct hf_step_result res = {0};
		struct hf_ops_step done;
		if (hf_ops_step(rt, run, hf_now_ms(), &res, &done) < 0) {
			fprintf(stderr, "hookflow run: run timed out\n");
			run->status = HF_RUN_FAILED;
			break;
		}
		if (run->status == HF_RUN_WAITING) { /* hf_park.h */
			hf_step_result_release(&res);
			unpark(run, signal_file);
			continue;
		}
		print_step(run->wf, &res, &done);
		hf_step_result_release(&res);
		if (done.over)
			break;
	}
	hf_luart_destroy(rt);
	return run->status == HF_RUN_SUCCEEDED ? 0 : 1;
}

/* The event did not get a run (`if:` false or failing): say why. */
static void print_skipped(const struct hf_workflow *wf, struct hf_event *ev)
{
	json_t *skip = json_array_get(ev->skipped, 0);
	json_t *line =
	    json_pack("{s:s,s:s,s:O}", "workflow", wf->name, "status",
		      "skipped", "reason", json_object_get(skip, "reason"));
	char *s = json_dumps(line, JSON_COMPACT);
	puts(s);
	free(s);
	json_decref(line);
}

int hf_cmd_run(int argc, char **argv)
{
	struct hf_args a;
	int rc;
	if (!hf_args_parse(&run_spec, argc, argv, 2, &a, &rc))
		return rc;
	if (!a.v[O_EVENT].set == !a.v[O_NOW].set) {
		if (a.v[O_EVENT].set)
			fprintf(stderr, "hookflow run: use --event or --now, "
					"not both\n");
		else
			hf_args_usage(&run_spec, stderr);
		hf_args_release(&a);
		return 2;
	}
	if (!hf_lua_db_global_init())
		fprintf(stderr,
			"hookflow run: db: SQLite memory is not counted "
			"per call\n");
	char why[512];
	struct hf_egress *egress = hf_egress_parse(
	    a.v[O_EGRESS_DENY].str, a.v[O_EGRESS_ALLOW].str, why, sizeof why);
	if (!egress) {
		fprintf(stderr, "hookflow run: %s\n", why);
		hf_args_release(&a);
		return 2;
	}
	const char *proxy = hf_cli_proxy_var();
	if (proxy)
		fprintf(stderr, "hookflow run: " HF_CLI_PROXY_WARNING "\n",
			proxy);
	char *scripts = hf_cli_scripts_for(a.pos[0], a.v[O_SCRIPTS].str);
	/* run.resume_url: the shape a server gives, resuming nothing here. */
	unsigned char key[32] = {0};
	hf_random_bytes(key, sizeof key);
	hf_park_set_resume(key, "http://127.0.0.1:8080");
	struct hf_workflow *wf = load(a.pos[0], scripts);
	struct hf_event *ev = NULL;
	rc = !wf	      ? 1
	     : a.v[O_NOW].set ? make_schedule_event(wf, a.v[O_NOW].str, &ev)
			      : make_event(wf, &a, &ev);
	struct hf_run *runs[1];
	struct hf_workflow *wfs[1] = {wf};
	if (rc == 0 && a.v[O_NOW].set) {
		runs[0] = hf_dispatch_schedule(hf_dispatch_runtime(), ev, wf,
					       "schedule:0");
		if (runs[0]) {
			rc =
			    run_steps(runs[0], scripts, a.v[O_DATA].str, egress,
				      a.v[O_MAX_VALUE].num, a.v[O_SIGNAL].str);
			hf_run_free(runs[0]);
		} else {
			print_skipped(wf, ev);
		}
	} else if (rc == 0 &&
		   hf_dispatch(hf_dispatch_runtime(), ev, wfs, 1, runs)) {
		rc = run_steps(runs[0], scripts, a.v[O_DATA].str, egress,
			       a.v[O_MAX_VALUE].num, a.v[O_SIGNAL].str);
		hf_run_free(runs[0]);
	} else if (rc == 0) {
		print_skipped(wf, ev);
	}
	hf_event_unref(ev);
	hf_workflow_unref(wf);
	free(scripts);
	hf_egress_free(egress);
	hf_args_release(&a);
	return rc;
}
