/* cmd_admin.c - the commands that change history: `replay` (new runs for a
 * stored event), `retry` (a failed run again from its failed step) and
 * `deliveries retry` (an emitted webhook sent again). They go through the
 * operations layer (ops.c), as the admin API does, on the state database
 * opened without a writer thread: a running server picks the new runs up
 * within a second (or the next `serve` does).
 *
 * Main thread. Neighbours: cli.c (table, helpers), flags.c (options), ops.c. */
#include "cli_int.h"
#include "hf_ops.h"

#include <stdlib.h>
#include <string.h>

/* --- replay --- */

enum { P_STATE, P_WORKFLOWS, P_SCRIPTS, P_JSON };

static const struct hf_opt replay_opts[] = {
    HF_OPT_STATE(P_STATE),
    {"workflows", P_WORKFLOWS, HF_OPT_STRING, "./workflows",
     .help = "the workflows to match the event against", .meta = "DIR",
     .flags = HF_OPT_ENV},
    {"scripts", P_SCRIPTS, HF_OPT_STRING, "./scripts",
     .help = "scripts directory", .meta = "DIR", .flags = HF_OPT_ENV},
    {"json", P_JSON, HF_OPT_FLAG, .help = "print JSON"},
};

static const struct hf_cmd_spec replay_spec = {
    .cmd = "replay",
    .args = "EVENT_ID",
    .about =
	"Runs the workflows that match a stored event again, as new runs, and\n"
	"prints their ids.",
    .opts = replay_opts,
    .nopts = HF_COUNT(replay_opts),
    .minpos = 1,
    .maxpos = 1,
};

/* The new runs' ids, as --json or one a line. */
static void print_replay(json_t *v, bool as_json)
{
	json_t *ids = json_object_get(v, "runs");
	if (as_json) {
		hf_cli_print_json(v);
		return;
	}
	size_t i;
	json_t *run_id;
	json_array_foreach(ids, i, run_id)
	    printf("%s\n", json_string_value(run_id));
	if (!json_array_size(ids))
		fprintf(stderr, "hookflow replay: no workflow matched the "
				"event\n");
}

/* Replays id with the workflows in a: returns the exit status. */
static int replay(struct hf_store *s, const struct hf_args *a, const char *id)
{
	struct hf_diags diags = {0};
	struct hf_workflow_set *set = hf_workflow_set_load(
	    a->v[P_WORKFLOWS].str, a->v[P_SCRIPTS].str, NULL, &diags);
	hf_cli_print_diags(&diags, stderr);
	hf_diags_release(&diags);
	if (!set) {
		fprintf(stderr, "hookflow replay: cannot read workflows\n");
		return 1;
	}
	struct hf_router *router = hf_router_create(set);
	json_t *v = NULL;
	int rc = hf_ops_replay(s, NULL, router, id, &v);
	if (rc == 0)
		print_replay(v, a->v[P_JSON].set);
	else if (rc == HF_STORE_NOT_FOUND)
		fprintf(stderr, "hookflow replay: no event '%s'\n", id);
	else
		fprintf(stderr, "hookflow replay: cannot store the runs\n");
	json_decref(v);
	hf_router_destroy(router);
	hf_workflow_set_unref(set);
	return rc == 0 ? 0 : 1;
}

int hf_cmd_replay(int argc, char **argv)
{
	struct hf_args a;
	int rc;
	if (!hf_args_parse(&replay_spec, argc, argv, 2, &a, &rc))
		return rc;
	struct hf_store *s = hf_cli_open_state(a.v[P_STATE].str);
	rc = s ? replay(s, &a, a.pos[0]) : 1;
	hf_store_close(s);
	hf_args_release(&a);
	return rc;
}

/* --- retry, deliveries retry --- */

enum { T_STATE };

static const struct hf_opt retry_opts[] = {HF_OPT_STATE(T_STATE)};

static const struct hf_cmd_spec retry_spec = {
    .cmd = "retry",
    .args = "RUN_ID",
    .about =
	"Queues a failed run again from its failed step (the outputs of the\n"
	"steps before it are kept), with a fresh run timeout.",
    .opts = retry_opts,
    .nopts = 1,
    .minpos = 1,
    .maxpos = 1,
};

static const struct hf_cmd_spec delivery_retry_spec = {
    .cmd = "deliveries retry",
    .args = "ID",
    .about =
	"Sends a delivery again: pending, due now, with one more attempt when\n"
	"every attempt was used.",
    .opts = retry_opts,
    .nopts = 1,
    .minpos = 1,
    .maxpos = 1,
};

/* Parses a command that takes one id and --state, opens the state database
 * and runs op. Returns the exit status. */
static int with_id(const struct hf_cmd_spec *spec, int first, int argc,
		   char **argv, int (*op)(struct hf_store *, const char *))
{
	struct hf_args a;
	int rc;
	if (!hf_args_parse(spec, argc, argv, first, &a, &rc))
		return rc;
	struct hf_store *s = hf_cli_open_state(a.v[T_STATE].str);
	rc = s ? op(s, a.pos[0]) : 1;
	if (rc == 0)
		printf("%s\n", a.pos[0]);
	hf_store_close(s);
	hf_args_release(&a);
	return rc;
}

static int retry_run(struct hf_store *s, const char *id)
{
	struct hf_error err = {0};
	if (hf_ops_retry_run(s, id, &err) == 0)
		return 0;
	fprintf(stderr, "hookflow retry: %s\n", err.msg);
	return 1;
}

static int retry_delivery(struct hf_store *s, const char *id)
{
	const char *cmd = delivery_retry_spec.cmd;
	int result = hf_ops_retry_delivery(s, id);
	if (result == HF_STORE_NOT_FOUND)
		fprintf(stderr, "hookflow %s: no delivery '%s'\n", cmd, id);
	else if (result == HF_STORE_CONFLICT)
		fprintf(stderr,
			"hookflow %s: delivery '%s' was already delivered\n",
			cmd, id);
	else if (result != 0)
		fprintf(stderr,
			"hookflow %s: cannot update the state database\n", cmd);
	return result == 0 ? 0 : 1;
}

int hf_cmd_retry(int argc, char **argv)
{
	return with_id(&retry_spec, 2, argc, argv, retry_run);
}

int hf_cmd_delivery_retry(int argc, char **argv)
{
	return with_id(&delivery_retry_spec, 3, argc, argv, retry_delivery);
}
