/* on_failure.c - a workflow's on_failure steps at run time (see
 * hf_on_failure.h): entering them when a run fails, advancing through them,
 * and after a restart reading back what the `failure` global held.
 *
 * Neighbours: ops.c (hf_run_advance calls in here), worker.c (restores a
 * loaded run before its step), wf_flow.c (the steps). */
#include "hf_on_failure.h"

#include <stdlib.h>
#include <string.h>

bool hf_on_failure_enter(struct hf_run *run, const char *step_id,
			 const char *error, int attempt)
{
	const struct hf_workflow *wf = run->wf;
	if (!wf || wf->nfailure_steps == 0 || run->next_step >= wf->nsteps)
		return false;
	json_decref(run->failure);
	/* The error's first line: the traceback stays in the step's record. */
	json_t *line = json_stringn_nocheck(error ? error : "",
					    strcspn(error ? error : "", "\n"));
	run->failure = json_pack("{s:s,s:o,s:i}", "step", step_id, "error",
				 line, "attempt", attempt);
	run->next_step = wf->nsteps;
	run->step_attempt = 1;
	run->due_at = 0;
	run->status = HF_RUN_RUNNING;
	return true;
}

bool hf_on_failure_advance(struct hf_run *run, const struct hf_step_result *res)
{
	(void)res; /* recorded by the step's write; the next one runs anyway */
	run->due_at = 0;
	run->next_step++;
	run->step_attempt = 1;
	if (run->next_step < hf_workflow_nall(run->wf))
		return false;
	run->status = HF_RUN_FAILED;
	return true;
}

/* The last failed step of the run's own steps in a RUN's "steps". */
static json_t *last_failed(json_t *steps)
{
	json_t *found = NULL, *s;
	size_t i;
	json_array_foreach(steps, i, s)
	{
		const char *id = json_string_value(json_object_get(s, "id"));
		const char *st =
		    json_string_value(json_object_get(s, "status"));
		if (id && st && strcmp(st, "failed") == 0 &&
		    strncmp(id, "on_failure.", 11) != 0)
			found = s;
	}
	return found;
}

void hf_on_failure_restore(struct hf_store *s, struct hf_run *run)
{
	if (run->failure || !run->wf || run->next_step < run->wf->nsteps)
		return;
	json_t *rec = hf_store_run_json(s, run->id);
	const char *error = json_string_value(json_object_get(rec, "error"));
	json_t *step = last_failed(json_object_get(rec, "steps"));
	if (error && !run->error)
		run->error = hf_xstrdup(error);
	json_t *serr = json_object_get(step, "error");
	json_t *attempts = json_object_get(step, "attempts");
	const char *e = json_is_string(serr) ? json_string_value(serr)
			: error		     ? error
					     : "";
	run->failure = json_pack(
	    "{s:s?,s:s%,s:I}", "step",
	    json_string_value(json_object_get(step, "id")), "error", e,
	    strcspn(e, "\n"), "attempt",
	    json_is_integer(attempts) ? json_integer_value(attempts) : 1);
	json_decref(rec);
}
