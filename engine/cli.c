/* cli.c - the subcommand table and every command but `serve` (server.c):
 * check, run, runs, show, replay, retry, deliveries. Commands that read history
 * open the state database directly, so they work with or without a server; the
 * ones that write (replay, retry) leave new runs for a running server to pick
 * up within a second, or for the next `serve`. */
#include "hf_body.h"
#include "hf_cli.h"
#include "hf_limits.h"
#include "hf_worker.h"
#include "hf_yaml_json.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef HF_VERSION
#define HF_VERSION "0.1.0"
#endif

static const char usage[] =
    "usage: hookflow COMMAND [ARGS]\n"
    "\n"
    "  serve   [--listen HOST:PORT] [--workflows DIR] [--scripts DIR]\n"
    "          [--state FILE] [--data FILE] [--workers N] [--max-body SIZE]\n"
    "          [--admin-token TOKEN] [--sync full|normal] [--max-queue N]\n"
    "          [--drain-timeout DURATION] [--retain DURATION]\n"
    "          [--data-sync full|normal] [--log-format text|logfmt|json]\n"
    "  check   [PATH...]            validate workflow files or directories\n"
    "  check   --json FILE...       print each YAML file as one JSON line\n"
    "  run     WORKFLOW.yml --event FILE [--header 'Name: value']...\n"
    "          [--data FILE] [--scripts DIR]\n"
    "  runs    [--workflow NAME] [--status STATUS] [--limit N] [--json]\n"
    "          [--state FILE] [--follow]\n"
    "  show    RUN_ID [--json] [--state FILE]\n"
    "  replay  EVENT_ID [--state FILE] [--workflows DIR] [--scripts DIR]\n"
    "  retry   RUN_ID [--state FILE]\n"
    "  deliveries [--status STATUS] [--json] [--state FILE]\n"
    "  deliveries show ID [--json] [--state FILE]\n"
    "  deliveries retry ID [--state FILE]   send a delivery again\n"
    "  --help | --version\n"
    "\n"
    "Every flag can also come from the environment as HOOKFLOW_<FLAG>\n"
    "(HOOKFLOW_LISTEN, HOOKFLOW_STATE, ...); a flag wins.\n";

int hf_flags_parse(const char *cmd, int argc, char **argv, int first,
		   struct hf_flag *flags, size_t nflags, const char **pos,
		   size_t maxpos, size_t *npos)
{
	*npos = 0;
	for (int i = first; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (*npos >= maxpos) {
				fprintf(stderr,
					"hookflow %s: unexpected argument "
					"'%s'\n",
					cmd, a);
				return 2;
			}
			pos[(*npos)++] = a;
			continue;
		}
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		struct hf_flag *f = NULL;
		for (size_t k = 0; k < nflags; k++)
			if (strlen(flags[k].name) == len &&
			    strncmp(flags[k].name, name, len) == 0)
				f = &flags[k];
		if (!f) {
			fprintf(stderr,
				"hookflow %s: unknown flag '--%.*s' (see "
				"hookflow --help)\n",
				cmd, (int)len, name);
			return 2;
		}
		f->seen = true;
		if (!f->takes_value) {
			if (eq) {
				fprintf(stderr,
					"hookflow %s: --%s takes no value\n",
					cmd, f->name);
				return 2;
			}
			continue;
		}
		const char *val = eq ? eq + 1 : NULL;
		if (!val) {
			if (i + 1 >= argc) {
				fprintf(stderr,
					"hookflow %s: --%s needs a value\n",
					cmd, f->name);
				return 2;
			}
			val = argv[++i];
		}
		f->value = val;
		if (f->repeat) {
			f->values =
			    hf_xrealloc((void *)f->values,
					(f->nvalues + 1) * sizeof *f->values);
			f->values[f->nvalues++] = val;
		}
	}
	return 0;
}

/* The value of a flag, else of HOOKFLOW_<NAME>, else def. */
static const char *flag_or_env(const struct hf_flag *f, const char *def)
{
	if (f->value)
		return f->value;
	char env[128] = "HOOKFLOW_";
	size_t n = strlen(env);
	for (const char *p = f->name; *p && n + 1 < sizeof env; p++)
		env[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	env[n] = '\0';
	const char *e = getenv(env);
	return e && *e ? e : def;
}

static void print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
	if (s)
		puts(s);
	free(s);
}

static struct hf_store *open_state(const char *path)
{
	if (access(path, F_OK) != 0) {
		fprintf(stderr,
			"hookflow: no state database at '%s' (use --state "
			"FILE)\n",
			path);
		return NULL;
	}
	struct hf_error err = {0};
	struct hf_store *s = hf_store_open(path, true, false, &err);
	if (!s) {
		char line[2048];
		hf_error_format(&err, line, sizeof line);
		fprintf(stderr, "hookflow: %s\n", line);
	}
	return s;
}

/* The state database named by a command's --state flag (or HOOKFLOW_STATE). */
static struct hf_store *open_state_flag(const struct hf_flag *state)
{
	return open_state(flag_or_env(state, "./hookflow.db"));
}

/* Parses the flags of a command that takes exactly one id. Returns 0 with *id
 * set, or 2 after printing the problem or "usage: hookflow SYNOPSIS". */
static int parse_id(const char *cmd, int argc, char **argv, int first,
		    struct hf_flag *flags, size_t nflags, const char *synopsis,
		    const char **id)
{
	const char *pos[1];
	size_t npos;
	int rc = hf_flags_parse(cmd, argc, argv, first, flags, nflags, pos, 1,
				&npos);
	if (rc)
		return rc;
	if (npos != 1) {
		fprintf(stderr, "usage: hookflow %s\n", synopsis);
		return 2;
	}
	*id = pos[0];
	return 0;
}

/* --- check --- */

static int check_path(const char *path, const char *scripts, int *nfiles,
		      struct hf_diags *diags)
{
	size_t len = strlen(path);
	bool yaml = (len > 4 && strcmp(path + len - 4, ".yml") == 0) ||
		    (len > 5 && strcmp(path + len - 5, ".yaml") == 0);
	if (yaml) {
		struct hf_workflow *wf = hf_workflow_load(path, scripts, diags);
		(*nfiles)++;
		hf_workflow_unref(wf);
		return 0;
	}
	size_t before = diags->n;
	struct hf_workflow_set *set =
	    hf_workflow_set_load(path, scripts, NULL, diags);
	if (!set) {
		hf_diags_add(diags, path, 0, 0,
			     "cannot read (not a directory or a .yml file)");
		return -1;
	}
	*nfiles += (int)set->n + (int)(diags->n > before);
	hf_workflow_set_unref(set);
	return 0;
}

/* The scripts directory that goes with a workflows path: --scripts, else the
 * "scripts" directory beside the workflows directory, else ./scripts. */
static char *scripts_for(const char *path, const char *flag)
{
	if (flag)
		return hf_xstrdup(flag);
	char *copy = hf_xstrdup(path);
	size_t len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	bool is_file = (len > 4 && strcmp(copy + len - 4, ".yml") == 0) ||
		       (len > 5 && strcmp(copy + len - 5, ".yaml") == 0);
	if (is_file) {
		char *slash = strrchr(copy, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(copy, len + 1, ".");
	}
	char *slash = strrchr(copy, '/');
	char *cand =
	    slash ? hf_xasprintf("%.*s/scripts", (int)(slash - copy), copy)
		  : hf_xstrdup("scripts");
	free(copy);
	if (access(cand, F_OK) == 0)
		return cand;
	free(cand);
	return hf_xstrdup("./scripts");
}

/* `check --json FILE...`: each file's YAML document as one JSON line, as a
 * YAML editor would see it, for JSON Schema tools. Does not validate. */
static int check_json(const char **files, size_t n)
{
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		struct hf_diags diags = {0};
		size_t len;
		char *text = hf_read_file(files[i], &len);
		json_t *v = NULL;
		if (!text)
			hf_diags_add(&diags, files[i], 0, 0, "cannot read: %s",
				     strerror(errno));
		else
			v = hf_yaml_to_json(text, len, files[i], &diags);
		char *s =
		    v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		if (s)
			printf("%s\n", s);
		for (size_t k = 0; k < diags.n; k++) {
			char line[2048];
			hf_error_format(&diags.items[k], line, sizeof line);
			fprintf(stderr, "%s\n", line);
		}
		if (!s)
			rc = 1;
		free(s);
		json_decref(v);
		free(text);
		hf_diags_release(&diags);
	}
	return rc;
}

static int cmd_check(int argc, char **argv)
{
	struct hf_flag flags[] = {{"scripts", true}, {"json", false}};
	const char *pos[256];
	size_t npos;
	int rc =
	    hf_flags_parse("check", argc, argv, 2, flags, 2, pos, 256, &npos);
	if (rc)
		return rc;
	if (flags[1].seen) {
		if (npos == 0) {
			fprintf(stderr, "usage: hookflow check --json "
					"FILE...\n");
			return 2;
		}
		return check_json(pos, npos);
	}
	if (npos == 0)
		pos[npos++] = "./workflows";
	hf_workflow_set_env_optional(true);
	struct hf_diags diags = {0};
	int nfiles = 0;
	for (size_t i = 0; i < npos; i++) {
		char *scripts = scripts_for(pos[i], flags[0].value);
		check_path(pos[i], scripts, &nfiles, &diags);
		free(scripts);
	}
	for (size_t i = 0; i < diags.n; i++) {
		char line[2048];
		hf_error_format(&diags.items[i], line, sizeof line);
		printf("%s\n", line);
	}
	rc = diags.n ? 1 : 0;
	if (!diags.n)
		fprintf(stderr, "hookflow: %d workflow%s valid\n", nfiles,
			nfiles == 1 ? "" : "s");
	else
		fprintf(stderr, "hookflow: %zu problem%s found\n", diags.n,
			diags.n == 1 ? "" : "s");
	hf_diags_release(&diags);
	return rc;
}

/* --- run --- */

static int cmd_run(int argc, char **argv)
{
	struct hf_flag flags[] = {
	    {"event", true},   {"header", true, true}, {"data", true},
	    {"scripts", true}, {"method", true},
	};
	const char *pos[1];
	size_t npos;
	int rc = hf_flags_parse("run", argc, argv, 2, flags, 5, pos, 1, &npos);
	if (rc)
		goto out;
	rc = 2;
	if (npos != 1 || !flags[0].value) {
		fprintf(stderr, "usage: hookflow run WORKFLOW.yml --event FILE "
				"[--header 'Name: value']... [--data FILE]\n");
		goto out;
	}
	rc = 1;
	char *scripts = scripts_for(pos[0], flag_or_env(&flags[3], NULL));
	struct hf_diags diags = {0};
	struct hf_workflow *wf = hf_workflow_load(pos[0], scripts, &diags);
	for (size_t i = 0; i < diags.n; i++) {
		char line[2048];
		hf_error_format(&diags.items[i], line, sizeof line);
		fprintf(stderr, "%s\n", line);
	}
	hf_diags_release(&diags);
	if (!wf) {
		free(scripts);
		goto out;
	}
	size_t blen = 0;
	char *body = hf_read_file(flags[0].value, &blen);
	if (!body) {
		fprintf(stderr, "hookflow run: cannot read '%s'\n",
			flags[0].value);
		hf_workflow_unref(wf);
		free(scripts);
		goto out;
	}
	struct hf_event *ev = hf_event_new();
	hf_id_new(ev->id, "ev");
	char methods[64];
	hf_methods_format(wf->methods, methods, sizeof methods);
	methods[strcspn(methods, ",")] = '\0';
	ev->method = hf_xstrdup(flags[4].value ? flags[4].value : methods);
	ev->path = hf_xstrdup(wf->path);
	ev->query = json_object();
	ev->headers = json_object();
	ev->skipped = json_array();
	ev->body = body;
	ev->body_len = blen;
	ev->received_at = hf_now_ms();
	json_object_set_new(ev->headers, "content-type",
			    json_string("application/json"));
	for (size_t i = 0; i < flags[1].nvalues; i++) {
		const char *h = flags[1].values[i];
		const char *colon = strchr(h, ':');
		if (!colon) {
			fprintf(stderr,
				"hookflow run: --header '%s' is not 'Name: "
				"value'\n",
				h);
			rc = 2;
			goto done;
		}
		char *name = hf_xstrndup(h, (size_t)(colon - h));
		for (char *p = name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		const char *val = colon + 1;
		while (*val == ' ')
			val++;
		json_object_set_new(ev->headers, name, json_string(val));
		free(name);
	}
	char err[512];
	enum hf_body_kind kind = hf_body_kind_of(
	    json_string_value(json_object_get(ev->headers, "content-type")));
	if (hf_body_decode(kind, body, blen, &ev->decoded, err, sizeof err) <
	    0) {
		fprintf(stderr, "hookflow run: %s: %s\n", flags[0].value, err);
		goto done;
	}

	struct hf_run *runs[1];
	struct hf_workflow *wfs[1] = {wf};
	if (hf_dispatch(hf_dispatch_runtime(), ev, wfs, 1, runs) == 0) {
		json_t *skip = json_array_get(ev->skipped, 0);
		json_t *line = json_pack("{s:s,s:s,s:O}", "workflow", wf->name,
					 "status", "skipped", "reason",
					 json_object_get(skip, "reason"));
		char *s = json_dumps(line, JSON_COMPACT);
		puts(s);
		free(s);
		json_decref(line);
		rc = 0;
		goto done;
	}
	struct hf_run *run = runs[0];
	struct hf_error e = {0};
	struct hf_luart_config cfg = {
	    .scripts_dir = scripts,
	    .data_path = flag_or_env(&flags[2], "./data.db"),
	    .data_sync_full = false,
	};
	struct hf_luart *rt = hf_luart_create(&cfg, &e);
	if (!rt) {
		char line[2048];
		hf_error_format(&e, line, sizeof line);
		fprintf(stderr, "hookflow run: %s\n", line);
		hf_run_free(run);
		goto done;
	}
	json_t *evjson = hf_event_to_lua_json(ev);
	run->status = HF_RUN_RUNNING;
	run->started_at = hf_now_ms();
	for (;;) {
		int64_t now = hf_now_ms();
		if (run->due_at > now) {
			int64_t wait = run->due_at - now;
			struct timespec ts = {wait / 1000,
					      (wait % 1000) * 1000000};
			nanosleep(&ts, NULL);
		}
		int64_t budget = hf_step_budget(run, hf_now_ms());
		if (budget <= 0) {
			fprintf(stderr, "hookflow run: run timed out\n");
			run->status = HF_RUN_FAILED;
			break;
		}
		struct hf_step_ctx ctx = {
		    .wf = wf,
		    .step = run->next_step,
		    .event = evjson,
		    .steps = run->outputs,
		    .run_id = run->id,
		    .attempt = run->step_attempt,
		    .timeout_ms = budget,
		};
		struct hf_step_result res = {0};
		hf_luart_run_step(rt, &ctx, &res);
		for (size_t i = 0; i < json_array_size(res.logs); i++) {
			json_t *l = json_array_get(res.logs, i);
			fprintf(
			    stderr, "[%s] %s: %s\n", wf->steps[ctx.step].id,
			    json_string_value(json_object_get(l, "level")),
			    json_string_value(json_object_get(l, "message")));
		}
		json_t *line = json_pack(
		    "{s:s,s:s,s:O,s:s?,s:i}", "step", wf->steps[ctx.step].id,
		    "status", hf_step_status_name(res.status), "output",
		    res.output ? res.output : json_null(), "error", res.error,
		    "attempt", run->step_attempt);
		/* Nothing is delivered from here: show what would be. */
		if (res.nemits) {
			json_t *emits = json_array();
			for (size_t i = 0; i < res.nemits; i++) {
				json_t *p = json_loads(res.emits[i].payload,
						       JSON_DECODE_ANY, NULL);
				json_array_append_new(
				    emits,
				    json_pack(
					"{s:s,s:s,s:o}", "id", res.emits[i].id,
					"url", res.emits[i].url, "payload",
					p ? p
					  : json_string(res.emits[i].payload)));
			}
			json_object_set_new(line, "emits", emits);
		}
		char *s = json_dumps(line, JSON_COMPACT | JSON_ENCODE_ANY);
		puts(s);
		fflush(stdout);
		free(s);
		json_decref(line);
		bool over = hf_run_advance(run, &res, hf_now_ms());
		hf_step_result_release(&res);
		if (over)
			break;
	}
	rc = run->status == HF_RUN_SUCCEEDED ? 0 : 1;
	json_decref(evjson);
	hf_luart_destroy(rt);
	hf_run_free(run);
done:
	hf_event_unref(ev);
	hf_workflow_unref(wf);
	free(scripts);
out:
	free((void *)flags[1].values);
	return rc;
}

/* --- history --- */

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "-";
}

/* `runs --follow` polls this often, over this many of the newest runs. */
#define FOLLOW_POLL_MS 500
#define FOLLOW_WINDOW 200

static volatile sig_atomic_t follow_stop;

static void on_follow_signal(int sig)
{
	(void)sig;
	follow_stop = 1;
}

static int by_finished_at(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c = strcmp(str(x, "finished_at"), str(y, "finished_at"));
	return c ? c : strcmp(str(x, "id"), str(y, "id"));
}

static void print_run_line(json_t *r, bool as_json)
{
	if (as_json) {
		char *s = json_dumps(r, JSON_COMPACT);
		if (s)
			printf("%s\n", s);
		free(s);
		return;
	}
	printf("%-30s %-20s %-10s %-25s %s\n", str(r, "id"), str(r, "workflow"),
	       str(r, "status"), str(r, "finished_at"),
	       json_is_string(json_object_get(r, "error")) ? str(r, "error")
							   : "");
}

/* `runs --follow`: prints runs as they finish, in the order they finished,
 * like `tail -f` (nothing from before it started). Polls the newest
 * FOLLOW_WINDOW runs: a run finishing again after a retry is printed again.
 * Stops on SIGINT or SIGTERM (exit 0) or when stdout is closed. */
static int follow_runs(struct hf_store *s, const char *wf, const char *status,
		       bool as_json)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_follow_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	char mark[32] = ""; /* finished_at of the last run printed */
	json_t *at_mark = json_object(); /* ids printed with that finished_at */
	bool baseline = true;
	int rc = 0;
	while (!follow_stop) {
		json_t *v = hf_store_runs_json(s, wf, status, FOLLOW_WINDOW);
		json_t *runs = json_object_get(v, "runs");
		json_t **fresh =
		    hf_xcalloc(json_array_size(runs) + 1, sizeof *fresh);
		size_t n = 0, i;
		json_t *r;
		json_array_foreach(runs, i, r)
		{
			const char *fin = json_string_value(
			    json_object_get(r, "finished_at"));
			int c = fin ? strcmp(fin, mark) : -1;
			if (c > 0 ||
			    (c == 0 && !json_object_get(at_mark, str(r, "id"))))
				fresh[n++] = r;
		}
		qsort(fresh, n, sizeof *fresh, by_finished_at);
		for (i = 0; i < n; i++) {
			const char *fin = str(fresh[i], "finished_at");
			if (strcmp(fin, mark) != 0) {
				snprintf(mark, sizeof mark, "%s", fin);
				json_object_clear(at_mark);
			}
			json_object_set_new(at_mark, str(fresh[i], "id"),
					    json_true());
			if (!baseline)
				print_run_line(fresh[i], as_json);
		}
		free(fresh);
		json_decref(v);
		if (baseline)
			fprintf(stderr,
				"hookflow: following runs as they finish "
				"(Ctrl-C to stop)\n");
		baseline = false;
		if (fflush(stdout) != 0) {
			rc = 1; /* stdout is gone: nobody is reading */
			break;
		}
		struct timespec ts = {0, FOLLOW_POLL_MS * 1000000L};
		nanosleep(&ts, NULL); /* a signal cuts it short */
	}
	json_decref(at_mark);
	return rc;
}

static int cmd_runs(int argc, char **argv)
{
	struct hf_flag flags[] = {{"workflow", true}, {"status", true},
				  {"limit", true},    {"json", false},
				  {"state", true},    {"follow", false}};
	const char *pos[1];
	size_t npos;
	int rc = hf_flags_parse("runs", argc, argv, 2, flags, 6, pos, 0, &npos);
	if (rc)
		return rc;
	const char *status = flags[1].value;
	if (status && hf_run_status_parse(status) < 0) {
		fprintf(stderr,
			"hookflow runs: unknown status '%s' (expected queued, "
			"running, succeeded or failed)\n",
			status);
		return 2;
	}
	int limit = flags[2].value ? (int)strtol(flags[2].value, NULL, 10) : 20;
	if (limit < 1) {
		fprintf(stderr, "hookflow runs: --limit must be a positive "
				"number\n");
		return 2;
	}
	struct hf_store *s = open_state_flag(&flags[4]);
	if (!s)
		return 1;
	if (flags[5].seen) {
		rc = follow_runs(s, flags[0].value, status, flags[3].seen);
		hf_store_close(s);
		return rc;
	}
	json_t *v = hf_store_runs_json(s, flags[0].value, status, limit);
	if (flags[3].seen) {
		print_json(v);
	} else {
		json_t *runs = json_object_get(v, "runs");
		size_t i;
		json_t *r;
		if (json_array_size(runs))
			printf("%-30s %-20s %-10s %-25s %s\n", "RUN",
			       "WORKFLOW", "STATUS", "CREATED", "ERROR");
		json_array_foreach(runs, i, r)
		{
			printf("%-30s %-20s %-10s %-25s %s\n", str(r, "id"),
			       str(r, "workflow"), str(r, "status"),
			       str(r, "created_at"),
			       json_is_string(json_object_get(r, "error"))
				   ? str(r, "error")
				   : "");
		}
		if (!json_array_size(runs))
			fprintf(stderr, "hookflow: no runs\n");
	}
	json_decref(v);
	hf_store_close(s);
	return 0;
}

static int cmd_show(int argc, char **argv)
{
	struct hf_flag flags[] = {{"json", false}, {"state", true}};
	const char *id;
	int rc = parse_id("show", argc, argv, 2, flags, 2,
			  "show RUN_ID [--json] [--state FILE]", &id);
	if (rc)
		return rc;
	struct hf_store *s = open_state_flag(&flags[1]);
	if (!s)
		return 1;
	json_t *r = hf_store_run_json(s, id);
	hf_store_close(s);
	if (!r) {
		fprintf(stderr, "hookflow show: no run '%s'\n", id);
		return 1;
	}
	if (flags[0].seen) {
		print_json(r);
		json_decref(r);
		return 0;
	}
	printf("run       %s\nworkflow  %s\nevent     %s\nstatus    %s\n"
	       "attempt   %lld\ncreated   %s\nfinished  %s\n",
	       str(r, "id"), str(r, "workflow"), str(r, "event"),
	       str(r, "status"),
	       (long long)json_integer_value(json_object_get(r, "attempt")),
	       str(r, "created_at"), str(r, "finished_at"));
	if (json_is_string(json_object_get(r, "error")))
		printf("error     %s\n", str(r, "error"));
	size_t i;
	json_t *st;
	json_array_foreach(json_object_get(r, "steps"), i, st)
	{
		printf("\nstep %s: %s (attempts: %lld)\n", str(st, "id"),
		       str(st, "status"),
		       (long long)json_integer_value(
			   json_object_get(st, "attempts")));
		char *out = json_dumps(json_object_get(st, "output"),
				       JSON_COMPACT | JSON_ENCODE_ANY);
		printf("  output: %s\n", out ? out : "null");
		free(out);
		size_t j;
		json_t *l;
		json_array_foreach(json_object_get(st, "logs"), j, l) printf(
		    "  log %s: %s\n", str(l, "level"), str(l, "message"));
		if (json_is_string(json_object_get(st, "error")))
			printf("  error: %s\n", str(st, "error"));
	}
	json_decref(r);
	return 0;
}

static int cmd_replay(int argc, char **argv)
{
	struct hf_flag flags[] = {{"state", true},
				  {"workflows", true},
				  {"scripts", true},
				  {"json", false}};
	const char *id;
	int rc = parse_id("replay", argc, argv, 2, flags, 4,
			  "replay EVENT_ID [--state FILE]", &id);
	if (rc)
		return rc;
	struct hf_store *s = open_state_flag(&flags[0]);
	if (!s)
		return 1;
	rc = 1;
	struct hf_event *ev = hf_store_load_event(s, id);
	struct hf_workflow_set *set = NULL;
	struct hf_router *router = NULL;
	if (!ev) {
		fprintf(stderr, "hookflow replay: no event '%s'\n", id);
		goto done;
	}
	struct hf_diags diags = {0};
	set = hf_workflow_set_load(flag_or_env(&flags[1], "./workflows"),
				   flag_or_env(&flags[2], "./scripts"), NULL,
				   &diags);
	for (size_t i = 0; i < diags.n; i++) {
		char line[2048];
		hf_error_format(&diags.items[i], line, sizeof line);
		fprintf(stderr, "%s\n", line);
	}
	hf_diags_release(&diags);
	if (!set) {
		fprintf(stderr, "hookflow replay: cannot read workflows\n");
		goto done;
	}
	router = hf_router_create(set);
	struct hf_run *runs[HF_MAX_MATCH];
	size_t nruns = hf_dispatch_replay(router, ev, runs);
	struct hf_write w = {0};
	w.kind = HF_W_RUNS;
	w.event = ev;
	w.runs = runs;
	w.nruns = nruns;
	w.unclaimed = true;
	hf_store_submit(s, &w);
	json_t *ids = json_array();
	for (size_t i = 0; i < nruns; i++) {
		json_array_append_new(ids, json_string(runs[i]->id));
		hf_run_free(runs[i]);
	}
	if (w.rc == 0) {
		if (flags[3].seen) {
			json_t *o = json_pack("{s:s,s:O}", "event", ev->id,
					      "runs", ids);
			print_json(o);
			json_decref(o);
		} else {
			size_t i;
			json_t *run_id;
			json_array_foreach(ids, i, run_id)
			    printf("%s\n", json_string_value(run_id));
			if (!nruns)
				fprintf(stderr, "hookflow replay: no workflow "
						"matched the event\n");
		}
		rc = 0;
	} else {
		fprintf(stderr, "hookflow replay: cannot store the runs\n");
	}
	json_decref(ids);
done:
	hf_router_destroy(router);
	hf_workflow_set_unref(set);
	hf_event_unref(ev);
	hf_store_close(s);
	return rc;
}

static int cmd_retry(int argc, char **argv)
{
	struct hf_flag flags[] = {{"state", true}};
	const char *id;
	int rc = parse_id("retry", argc, argv, 2, flags, 1,
			  "retry RUN_ID [--state FILE]", &id);
	if (rc)
		return rc;
	struct hf_store *s = open_state_flag(&flags[0]);
	if (!s)
		return 1;
	struct hf_error err = {0};
	rc = hf_store_retry_run(s, id, &err);
	hf_store_close(s);
	if (rc < 0) {
		fprintf(stderr, "hookflow retry: %s\n", err.msg);
		return 1;
	}
	printf("%s\n", id);
	return 0;
}

struct retry_arg {
	const char *id;
	int result;
};

static int retry_call(struct hf_store *s, void *arg)
{
	struct retry_arg *a = arg;
	a->result = hf_store_retry_delivery(s, a->id);
	return 0;
}

/* `deliveries show ID` and `deliveries retry ID`. */
static int delivery_cmd(int argc, char **argv, bool retry)
{
	const char *cmd = retry ? "deliveries retry" : "deliveries show";
	struct hf_flag flags[] = {{"state", true}, {"json", false}};
	const char *id;
	int rc = parse_id(cmd, argc, argv, 3, flags, 2,
			  retry ? "deliveries retry ID [--state FILE]"
				: "deliveries show ID [--json] [--state FILE]",
			  &id);
	if (rc)
		return rc;
	struct hf_store *s = open_state_flag(&flags[0]);
	if (!s)
		return 1;
	rc = 1;
	if (retry) {
		struct retry_arg a = {id, -1};
		struct hf_write w = {0};
		w.kind = HF_W_CALL;
		w.call = retry_call;
		w.call_arg = &a;
		hf_store_submit(s, &w); /* applied at once: no writer thread */
		int result = w.rc == 0 ? a.result : -1;
		if (result == 0) {
			printf("%s\n", id);
			rc = 0;
		} else if (result == HF_STORE_NOT_FOUND) {
			fprintf(stderr, "hookflow %s: no delivery '%s'\n", cmd,
				id);
		} else if (result == HF_STORE_CONFLICT) {
			fprintf(stderr,
				"hookflow %s: delivery '%s' was already "
				"delivered\n",
				cmd, id);
		} else {
			fprintf(stderr,
				"hookflow %s: cannot update the state "
				"database\n",
				cmd);
		}
		hf_store_close(s);
		return rc;
	}
	json_t *d = hf_store_delivery_json(s, id);
	hf_store_close(s);
	if (!d) {
		fprintf(stderr, "hookflow %s: no delivery '%s'\n", cmd, id);
		return 1;
	}
	if (flags[1].seen) {
		print_json(d);
	} else {
		printf("delivery %s  %s  %lld/%lld attempts\n", str(d, "id"),
		       str(d, "status"),
		       (long long)json_integer_value(
			   json_object_get(d, "attempts")),
		       (long long)json_integer_value(
			   json_object_get(d, "max_attempts")));
		printf("  url: %s\n  run: %s  step: %s\n  next: %s\n",
		       str(d, "url"), str(d, "run"), str(d, "step"),
		       str(d, "next_at"));
		size_t i;
		json_t *a;
		json_array_foreach(json_object_get(d, "attempts_log"), i, a)
		{
			json_t *st = json_object_get(a, "status");
			char sb[16] = "-";
			if (json_is_integer(st))
				snprintf(sb, sizeof sb, "%lld",
					 (long long)json_integer_value(st));
			printf("  #%lld %s  %s  %lldms  %s\n",
			       (long long)json_integer_value(
				   json_object_get(a, "n")),
			       str(a, "at"), sb,
			       (long long)json_integer_value(
				   json_object_get(a, "duration_ms")),
			       json_is_string(json_object_get(a, "error"))
				   ? str(a, "error")
				   : "");
		}
	}
	json_decref(d);
	return 0;
}

static int cmd_deliveries(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[2], "retry") == 0)
		return delivery_cmd(argc, argv, true);
	if (argc > 2 && strcmp(argv[2], "show") == 0)
		return delivery_cmd(argc, argv, false);
	struct hf_flag flags[] = {{"status", true},
				  {"json", false},
				  {"state", true},
				  {"limit", true}};
	const char *pos[1];
	size_t npos;
	int rc = hf_flags_parse("deliveries", argc, argv, 2, flags, 4, pos, 0,
				&npos);
	if (rc)
		return rc;
	const char *status = flags[0].value;
	if (status && strcmp(status, "pending") != 0 &&
	    strcmp(status, "delivered") != 0 && strcmp(status, "failed") != 0) {
		fprintf(stderr,
			"hookflow deliveries: unknown status '%s' (expected "
			"pending, delivered or failed)\n",
			status);
		return 2;
	}
	struct hf_store *s = open_state_flag(&flags[2]);
	if (!s)
		return 1;
	json_t *v = hf_store_deliveries_json(
	    s, status,
	    flags[3].value ? (int)strtol(flags[3].value, NULL, 10) : 50);
	hf_store_close(s);
	if (flags[1].seen) {
		print_json(v);
	} else {
		size_t i;
		json_t *d;
		json_t *list = json_object_get(v, "deliveries");
		if (json_array_size(list))
			printf("%-30s %-10s %-8s %-6s %s\n", "DELIVERY",
			       "STATUS", "ATTEMPTS", "LAST", "URL");
		json_array_foreach(list, i, d)
		{
			json_t *last = json_object_get(d, "last_status");
			char lastbuf[16] = "-";
			if (json_is_integer(last))
				snprintf(lastbuf, sizeof lastbuf, "%lld",
					 (long long)json_integer_value(last));
			printf("%-30s %-10s %-8lld %-6s %s\n", str(d, "id"),
			       str(d, "status"),
			       (long long)json_integer_value(
				   json_object_get(d, "attempts")),
			       lastbuf, str(d, "url"));
		}
		if (!json_array_size(list))
			fprintf(stderr, "hookflow: no deliveries\n");
	}
	json_decref(v);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
    {"serve", hf_cmd_serve}, {"check", cmd_check},
    {"run", cmd_run},	     {"runs", cmd_runs},
    {"show", cmd_show},	     {"replay", cmd_replay},
    {"retry", cmd_retry},    {"deliveries", cmd_deliveries},
};

int hf_cli_main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("hookflow %s\n", HF_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc, argv);
	fprintf(stderr, "hookflow: unknown command '%s'\n\n%s", argv[1], usage);
	return 2;
}
