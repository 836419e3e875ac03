/* cmd_history.c - the commands that read history from the state database:
 * `runs` (and `runs --follow`), `show`, `deliveries` and `deliveries show`.
 * They open the database directly, with or without a server running, and
 * write nothing.
 *
 * Main thread (`runs --follow` polls until SIGINT/SIGTERM). Neighbours:
 * cli.c (table, helpers), flags.c (options), store.c (the queries);
 * `deliveries retry` is in cmd_admin.c. */
#include "cli_int.h"
#include "hf_esc.h"
#include "hf_limits.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- runs --- */

enum { R_WORKFLOW, R_STATUS, R_LIMIT, R_JSON, R_STATE, R_FOLLOW };

static const struct hf_opt runs_opts[] = {
    {"workflow", R_WORKFLOW, HF_OPT_STRING, .help = "only this workflow's",
     .meta = "NAME"},
    {"status", R_STATUS, HF_OPT_CHOICE, .help = "only runs in this status",
     .choices = "queued|running|succeeded|failed|waiting|cancelled"},
    {"limit", R_LIMIT, HF_OPT_INT, .ndef = 20, .help = "how many, newest first",
     .meta = "N", .min = 1, .max = INT32_MAX},
    {"json", R_JSON, HF_OPT_FLAG, .help = "print JSON"},
    HF_OPT_STATE(R_STATE),
    {"follow", R_FOLLOW, HF_OPT_FLAG,
     .help = "print runs as they finish, like tail -f"},
};

static const struct hf_cmd_spec runs_spec = {
    HF_CMD("runs", "", 0, 0, runs_opts),
    .about = "Lists recent runs, newest first.",
};

static volatile sig_atomic_t follow_stop;

static void on_follow_signal(int sig)
{
	(void)sig;
	follow_stop = 1;
}

static int by_finished_at(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c =
	    strcmp(hf_cli_str(x, "finished_at"), hf_cli_str(y, "finished_at"));
	return c ? c : strcmp(hf_cli_str(x, "id"), hf_cli_str(y, "id"));
}

static void print_run_line(json_t *r, bool as_json, const char *when)
{
	if (as_json) {
		char *s = json_dumps(r, JSON_COMPACT);
		if (s)
			printf("%s\n", s);
		free(s);
		return;
	}
	struct hf_cli_text t = {0};
	printf("%-30s %-20s %-10s %-25s %s\n", hf_cli_text(&t, r, "id"),
	       hf_cli_text(&t, r, "workflow"), hf_cli_text(&t, r, "status"),
	       hf_cli_text(&t, r, when),
	       json_is_string(json_object_get(r, "error"))
		   ? hf_cli_text(&t, r, "error")
		   : "");
	hf_cli_text_release(&t);
}

/* One poll of `runs --follow`: prints (unless baseline) the runs that
 * finished after mark, or at mark but not among at_mark's ids, in the order
 * they finished, and moves the mark. */
static void follow_poll(struct hf_store *s, const char *wf, const char *status,
			bool as_json, bool baseline, char mark[32],
			json_t *at_mark)
{
	json_t *v = hf_store_runs_json(s, wf, status, HF_FOLLOW_WINDOW, true);
	json_t *runs = json_object_get(v, "runs");
	json_t **fresh = hf_xcalloc(json_array_size(runs) + 1, sizeof *fresh);
	size_t n = 0, i;
	json_t *r;
	json_array_foreach(runs, i, r)
	{
		const char *fin =
		    json_string_value(json_object_get(r, "finished_at"));
		int c = fin ? strcmp(fin, mark) : -1;
		if (c > 0 ||
		    (c == 0 && !json_object_get(at_mark, hf_cli_str(r, "id"))))
			fresh[n++] = r;
	}
	qsort(fresh, n, sizeof *fresh, by_finished_at);
	for (i = 0; i < n; i++) {
		const char *fin = hf_cli_str(fresh[i], "finished_at");
		if (strcmp(fin, mark) != 0) {
			snprintf(mark, 32, "%s", fin);
			json_object_clear(at_mark);
		}
		json_object_set_new(at_mark, hf_cli_str(fresh[i], "id"),
				    json_true());
		if (!baseline)
			print_run_line(fresh[i], as_json, "finished_at");
	}
	free(fresh);
	json_decref(v);
}

/* `runs --follow`: prints runs as they finish, in the order they finished,
 * like `tail -f` (nothing from before it started). Polls the newest
 * HF_FOLLOW_WINDOW runs: a run finishing again after a retry is printed again.
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
		follow_poll(s, wf, status, as_json, baseline, mark, at_mark);
		if (baseline)
			fprintf(stderr,
				"hookflow: following runs as they finish "
				"(Ctrl-C to stop)\n");
		baseline = false;
		if (fflush(stdout) != 0) {
			rc = 1; /* stdout is gone: nobody is reading */
			break;
		}
		struct timespec ts = {0, HF_FOLLOW_POLL_MS * 1000000L};
		nanosleep(&ts, NULL); /* a signal cuts it short */
	}
	json_decref(at_mark);
	return rc;
}

static void print_runs(json_t *v)
{
	json_t *runs = json_object_get(v, "runs");
	size_t i;
	json_t *r;
	if (json_array_size(runs))
		printf("%-30s %-20s %-10s %-25s %s\n", "RUN", "WORKFLOW",
		       "STATUS", "CREATED", "ERROR");
	json_array_foreach(runs, i, r) print_run_line(r, false, "created_at");
	if (!json_array_size(runs))
		fprintf(stderr, "hookflow: no runs\n");
}

static int runs(struct hf_store *s, const struct hf_args *a)
{
	const char *wf = a->v[R_WORKFLOW].str, *status = a->v[R_STATUS].str;
	if (a->v[R_FOLLOW].set)
		return follow_runs(s, wf, status, a->v[R_JSON].set);
	hf_cli_show(
	    hf_store_runs_json(s, wf, status, (int)a->v[R_LIMIT].num, true),
	    a->v[R_JSON].set, print_runs);
	return 0;
}

int hf_cmd_runs(int argc, char **argv)
{
	return hf_cli_with_state(&runs_spec, 2, argc, argv, runs);
}

/* --- show --- */

enum { S_JSON, S_STATE };

static const struct hf_opt show_opts[] = {
    {"json", S_JSON, HF_OPT_FLAG, .help = "print JSON"},
    HF_OPT_STATE(S_STATE),
};

static const struct hf_cmd_spec show_spec = {
    HF_CMD("show", "RUN_ID", 1, 1, show_opts),
    .about =
	"Shows one run: its event, status, steps, logs and earlier attempts.",
};

/* The steps of a run's attempt, one a line (earlier attempts). */
static void print_history_steps(struct hf_cli_text *t, json_t *steps)
{
	size_t j;
	json_t *hs;
	json_array_foreach(steps, j, hs)
	{
		printf("    step %s: %s", hf_cli_text(t, hs, "id"),
		       hf_cli_text(t, hs, "status"));
		if (json_is_string(json_object_get(hs, "error")))
			printf(" (%s)", hf_cli_text(t, hs, "error"));
		printf("\n");
	}
}

/* One step of the run: status, output, logs (one a line), error. */
static void print_step(struct hf_cli_text *t, json_t *st)
{
	printf("\nstep %s: %s (attempts: %lld)\n", hf_cli_text(t, st, "id"),
	       hf_cli_text(t, st, "status"),
	       (long long)json_integer_value(json_object_get(st, "attempts")));
	printf("  output: %s\n",
	       hf_cli_text_json(t, json_object_get(st, "output")));
	size_t j;
	json_t *l;
	json_array_foreach(json_object_get(st, "logs"), j, l)
	    printf("  log %s: %s\n", hf_cli_text(t, l, "level"),
		   hf_cli_text(t, l, "message"));
	if (json_is_string(json_object_get(st, "error")))
		printf("  error: %s\n", hf_cli_text(t, st, "error"));
}

static void print_run(json_t *r)
{
	struct hf_cli_text t = {0};
	printf("run       %s\nworkflow  %s\nevent     %s\nstatus    %s\n"
	       "attempt   %lld\ncreated   %s\nfinished  %s\n",
	       hf_cli_text(&t, r, "id"), hf_cli_text(&t, r, "workflow"),
	       hf_cli_text(&t, r, "event"), hf_cli_text(&t, r, "status"),
	       (long long)json_integer_value(json_object_get(r, "attempt")),
	       hf_cli_text(&t, r, "created_at"),
	       hf_cli_text(&t, r, "finished_at"));
	if (json_is_string(json_object_get(r, "error")))
		printf("error     %s\n", hf_cli_text(&t, r, "error"));
	json_t *wait = json_object_get(r, "waiting"); /* hf_park.h */
	if (json_is_object(wait))
		printf("waiting   for %s until %s (step %s)\n",
		       hf_cli_text(&t, wait, "for"),
		       hf_cli_text(&t, wait, "until"),
		       hf_cli_text(&t, wait, "step"));
	size_t i;
	json_t *st;
	json_array_foreach(json_object_get(r, "steps"), i, st)
	    print_step(&t, st);
	json_t *hist = json_object_get(r, "history");
	if (json_array_size(hist))
		printf("\nearlier attempts\n");
	json_array_foreach(hist, i, st)
	{
		printf("  attempt %lld: %s, finished %s\n",
		       (long long)json_integer_value(
			   json_object_get(st, "attempt")),
		       hf_cli_text(&t, st, "status"),
		       hf_cli_text(&t, st, "finished_at"));
		if (json_is_string(json_object_get(st, "error")))
			printf("    error: %s\n", hf_cli_text(&t, st, "error"));
		print_history_steps(&t, json_object_get(st, "steps"));
	}
	hf_cli_text_release(&t);
}

/* Prints the record named by a's one positional argument, read with get: as
 * JSON with --json, else with print. Returns the exit status. */
static int show_record(struct hf_store *s, const struct hf_args *a,
		       const struct hf_cmd_spec *spec,
		       json_t *(*get)(struct hf_store *, const char *),
		       const char *what, void (*print)(json_t *))
{
	const char *id = a->pos[0];
	json_t *v = get(s, id);
	if (!v) {
		char *shown = hf_esc(id, HF_ESC_TEXT);
		fprintf(stderr, "hookflow %s: no %s '%s'\n", spec->cmd, what,
			shown);
		free(shown);
		return 1;
	}
	hf_cli_show(v, a->v[S_JSON].set, print);
	return 0;
}

static int show_run(struct hf_store *s, const struct hf_args *a)
{
	return show_record(s, a, &show_spec, hf_store_run_json, "run",
			   print_run);
}

int hf_cmd_show(int argc, char **argv)
{
	return hf_cli_with_state(&show_spec, 2, argc, argv, show_run);
}

/* --- deliveries --- */

enum { D_STATUS, D_JSON, D_STATE, D_LIMIT };

static const struct hf_opt deliveries_opts[] = {
    {"status", D_STATUS, HF_OPT_CHOICE,
     .help = "only deliveries in this status",
     .choices = "pending|delivered|failed"},
    {"json", D_JSON, HF_OPT_FLAG, .help = "print JSON"},
    HF_OPT_STATE(D_STATE),
    {"limit", D_LIMIT, HF_OPT_INT, .ndef = 50, .help = "how many, newest first",
     .meta = "N", .min = 1, .max = INT32_MAX},
};

static const struct hf_cmd_spec deliveries_spec = {
    HF_CMD("deliveries", "", 0, 0, deliveries_opts),
    .about =
	"Lists the webhooks that steps emitted (webhook.emit) and how their\n"
	"delivery went. 'deliveries show ID' shows one with its attempts;\n"
	"'deliveries retry ID' sends one again.",
};

static const struct hf_cmd_spec delivery_show_spec = {
    HF_CMD("deliveries show", "ID", 1, 1, show_opts), /* --json, --state */
    .about = "Shows one delivery and its attempts.",
};

static void print_delivery(json_t *d)
{
	struct hf_cli_text t = {0};
	printf(
	    "delivery %s  %s  %lld/%lld attempts\n", hf_cli_text(&t, d, "id"),
	    hf_cli_text(&t, d, "status"),
	    (long long)json_integer_value(json_object_get(d, "attempts")),
	    (long long)json_integer_value(json_object_get(d, "max_attempts")));
	printf("  url: %s\n  run: %s  step: %s\n  next: %s\n",
	       hf_cli_text(&t, d, "url"), hf_cli_text(&t, d, "run"),
	       hf_cli_text(&t, d, "step"), hf_cli_text(&t, d, "next_at"));
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
		       (long long)json_integer_value(json_object_get(a, "n")),
		       hf_cli_text(&t, a, "at"), sb,
		       (long long)json_integer_value(
			   json_object_get(a, "duration_ms")),
		       json_is_string(json_object_get(a, "error"))
			   ? hf_cli_text(&t, a, "error")
			   : "");
	}
	hf_cli_text_release(&t);
}

static void print_deliveries(json_t *v)
{
	size_t i;
	json_t *d;
	json_t *list = json_object_get(v, "deliveries");
	if (json_array_size(list))
		printf("%-30s %-10s %-8s %-6s %s\n", "DELIVERY", "STATUS",
		       "ATTEMPTS", "LAST", "URL");
	json_array_foreach(list, i, d)
	{
		json_t *last = json_object_get(d, "last_status");
		char lastbuf[16] = "-";
		if (json_is_integer(last))
			snprintf(lastbuf, sizeof lastbuf, "%lld",
				 (long long)json_integer_value(last));
		struct hf_cli_text t = {0};
		printf("%-30s %-10s %-8lld %-6s %s\n", hf_cli_text(&t, d, "id"),
		       hf_cli_text(&t, d, "status"),
		       (long long)json_integer_value(
			   json_object_get(d, "attempts")),
		       lastbuf, hf_cli_text(&t, d, "url"));
		hf_cli_text_release(&t);
	}
	if (!json_array_size(list))
		fprintf(stderr, "hookflow: no deliveries\n");
}

static int show_delivery(struct hf_store *s, const struct hf_args *a)
{
	return show_record(s, a, &delivery_show_spec, hf_store_delivery_json,
			   "delivery", print_delivery);
}

static int deliveries(struct hf_store *s, const struct hf_args *a)
{
	hf_cli_show(hf_store_deliveries_json(s, a->v[D_STATUS].str,
					     (int)a->v[D_LIMIT].num),
		    a->v[D_JSON].set, print_deliveries);
	return 0;
}

int hf_cmd_deliveries(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[2], "retry") == 0)
		return hf_cmd_delivery_retry(argc, argv);
	if (argc > 2 && strcmp(argv[2], "show") == 0)
		return hf_cli_with_state(&delivery_show_spec, 3, argc, argv,
					 show_delivery);
	return hf_cli_with_state(&deliveries_spec, 2, argc, argv, deliveries);
}
