/* cmd_admin.c - the commands that change history: `replay` (new runs for a
 * stored event), `retry` (a failed run again from its failed step) and
 * `deliveries retry` (an emitted webhook sent again), and `cancel` (a run
 * ended, status cancelled). They go through the
 * operations layer (ops.c), as the admin API does, on the state database
 * opened without a writer thread: a running server picks the new runs up
 * within a second (or the next `serve` does).
 *
 * Main thread. Neighbours: cli.c (table, helpers), flags.c (options), ops.c. */
#include "cli_int.h"
#include "hf_cancel.h"
#include "hf_ops.h"

#include <stdlib.h>
#include <string.h>

/* --- replay --- */

enum { P_STATE, P_WORKFLOWS, P_SCRIPTS, P_JSON };

static const struct hf_opt replay_opts[] = {
    HF_OPT_STATE(P_STATE),
    {"workflows", P_WORKFLOWS, HF_OPT_STRING,
     .help = "match against DIR's workflows, not the stored ones",
     .meta = "DIR"},
    {"scripts", P_SCRIPTS, HF_OPT_STRING, "./scripts",
     .help = "scripts directory (with --workflows)", .meta = "DIR",
     .flags = HF_OPT_ENV},
    {"json", P_JSON, HF_OPT_FLAG, .help = "print JSON"},
};

static const struct hf_cmd_spec replay_spec = {
    HF_CMD("replay", "EVENT_ID", 1, 1, replay_opts),
    .about =
	"Runs the workflows that match a stored event again, as new runs, and\n"
	"prints their ids. The event is matched against the newest version of "
	"each\nworkflow stored in the state database (no secrets needed: "
	"nothing is\nverified again); exits 1 when no workflow matched.",
};

/* The new runs' ids, as --json or one a line. Returns how many. */
static size_t print_replay(json_t *v, bool as_json)
{
	json_t *ids = json_object_get(v, "runs");
	if (as_json) {
		hf_cli_print_json(v);
		return json_array_size(ids);
	}
	size_t i;
	json_t *run_id;
	json_array_foreach(ids, i, run_id)
	    printf("%s\n", json_string_value(run_id));
	return json_array_size(ids);
}

/* The workflows to match against: --workflows, else the stored versions. */
static struct hf_workflow_set *replay_set(struct hf_store *s,
					  const struct hf_args *a)
{
	if (!a->v[P_WORKFLOWS].str) {
		struct hf_workflow_set *set = hf_store_stored_workflows(s);
		if (!set)
			fprintf(stderr, "hookflow replay: cannot read the "
					"stored workflow versions\n");
		return set;
	}
	struct hf_diags diags = {0};
	struct hf_workflow_set *set = hf_workflow_set_load(
	    a->v[P_WORKFLOWS].str, a->v[P_SCRIPTS].str, NULL, &diags);
	hf_cli_print_diags(&diags, stderr);
	hf_diags_release(&diags);
	if (!set)
		fprintf(stderr, "hookflow replay: cannot read workflows\n");
	return set;
}

/* Replays the event a names: returns the exit status (1 also when no
 * workflow matched). */
static int replay(struct hf_store *s, const struct hf_args *a)
{
	const char *id = a->pos[0];
	/* Nothing is verified again: the secrets' ${NAME} need not be set. */
	hf_workflow_set_env_optional(true);
	struct hf_workflow_set *set = replay_set(s, a);
	if (!set)
		return 1;
	struct hf_router *router = hf_router_create(set);
	json_t *v = NULL;
	int rc = hf_ops_replay(s, NULL, router, id, &v);
	size_t nruns = 0;
	if (rc == 0)
		nruns = print_replay(v, a->v[P_JSON].set);
	else if (rc == HF_STORE_NOT_FOUND)
		fprintf(stderr, "hookflow replay: no event '%s'\n", id);
	else
		fprintf(stderr, "hookflow replay: cannot store the runs\n");
	if (rc == 0 && nruns == 0)
		fprintf(stderr,
			"hookflow replay: no workflow matched the event "
			"(%zu workflow%s)\n",
			set->n, set->n == 1 ? "" : "s");
	json_decref(v);
	hf_router_destroy(router);
	hf_workflow_set_unref(set);
	return rc == 0 && nruns > 0 ? 0 : 1;
}

int hf_cmd_replay(int argc, char **argv)
{
	return hf_cli_with_state(&replay_spec, 2, argc, argv, replay);
}

/* --- retry, deliveries retry --- */

enum { T_STATE };

static const struct hf_opt retry_opts[] = {HF_OPT_STATE(T_STATE)};

static const struct hf_cmd_spec retry_spec = {
    HF_CMD("retry", "RUN_ID", 1, 1, retry_opts),
    .about =
	"Queues a failed run again from its failed step (the outputs of the\n"
	"steps before it are kept), with a fresh run timeout.",
};

static const struct hf_cmd_spec delivery_retry_spec = {
    HF_CMD("deliveries retry", "ID", 1, 1, retry_opts),
    .about =
	"Sends a delivery again: pending, due now, with one more attempt when\n"
	"every attempt was used.",
};

/* Each prints the id it was given once it is done. */

static int retry_run(struct hf_store *s, const struct hf_args *a)
{
	const char *id = a->pos[0];
	struct hf_error err = {0};
	if (hf_ops_retry_run(s, id, &err) != 0) {
		fprintf(stderr, "hookflow retry: %s\n", err.msg);
		return 1;
	}
	printf("%s\n", id);
	return 0;
}

static int retry_delivery(struct hf_store *s, const struct hf_args *a)
{
	const char *cmd = delivery_retry_spec.cmd, *id = a->pos[0];
	int result = hf_ops_retry_delivery(s, id);
	if (result == 0)
		printf("%s\n", id);
	else if (result == HF_STORE_NOT_FOUND)
		fprintf(stderr, "hookflow %s: no delivery '%s'\n", cmd, id);
	else if (result == HF_STORE_CONFLICT)
		fprintf(stderr,
			"hookflow %s: delivery '%s' was already delivered\n",
			cmd, id);
	else
		fprintf(stderr,
			"hookflow %s: cannot update the state database\n", cmd);
	return result == 0 ? 0 : 1;
}

int hf_cmd_retry(int argc, char **argv)
{
	return hf_cli_with_state(&retry_spec, 2, argc, argv, retry_run);
}

int hf_cmd_delivery_retry(int argc, char **argv)
{
	return hf_cli_with_state(&delivery_retry_spec, 3, argc, argv,
				 retry_delivery);
}

/* --- cancel --- */

static const struct hf_cmd_spec cancel_spec = {
    HF_CMD("cancel", "RUN_ID", 1, 1, retry_opts),
    .about =
	"Ends a run that has not finished with status cancelled: a queued or\n"
	"waiting run at once; a running one after its running step commits "
	"(no\n"
	"later step runs). A running server notices within a second. Exits 1\n"
	"when the run is unknown or already finished.",
};

static int cancel_run(struct hf_store *s, const struct hf_args *a)
{
	const char *id = a->pos[0];
	int rc = hf_cancel_store(s, id, "cancelled by hookflow cancel", true);
	if (rc == 0) {
		printf("%s\n", id);
	} else if (rc == HF_STORE_NOT_FOUND) {
		fprintf(stderr, "hookflow cancel: no run '%s'\n", id);
	} else if (rc == HF_STORE_CONFLICT) {
		json_t *run = hf_store_run_json(s, id);
		const char *st =
		    json_string_value(json_object_get(run, "status"));
		fprintf(stderr,
			"hookflow cancel: run '%s' already finished (%s)\n", id,
			st ? st : "?");
		json_decref(run);
	} else {
		fprintf(stderr,
			"hookflow cancel: cannot update the state database\n");
	}
	return rc == 0 ? 0 : 1;
}

int hf_cmd_cancel(int argc, char **argv)
{
	return hf_cli_with_state(&cancel_spec, 2, argc, argv, cancel_run);
}
