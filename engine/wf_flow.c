/* wf_flow.c - the flow-control keys of a workflow file (CONTRACT §6):
 * `on_failure:` (steps run once after the run failed). The keys are listed in
 * workflow.c's tables; this file reads their values into the hf_workflow
 * model, with FILE:LINE:COL errors.
 *
 * on_failure steps are parsed as steps (workflow.c's wf_parse_step) and kept
 * after the run's own steps in wf->steps, ids prefixed "on_failure.", so that
 * their records, outputs and the RUN JSON tell them apart. They are never
 * retried: `retry:` is refused there.
 *
 * Threading: a parse owns its struct wf_ctx. Neighbours: workflow.c, ops.c
 * (hf_run_advance enters them), on_failure.c (the `failure` global). */
#include "hf_limits.h"
#include "wf_int.h"

#include <stdlib.h>
#include <string.h>

#define ON_FAILURE_PREFIX "on_failure."

void wf_parse_on_failure(struct wf_ctx *c, const yaml_node_t *n)
{
	struct hf_workflow *wf = &c->p->pub;
	if (n->type != YAML_SEQUENCE_NODE) {
		wf_nerr(c, n, "'on_failure' must be a list of steps");
		return;
	}
	size_t cnt =
	    (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt == 0) {
		wf_nerr(c, n, "'on_failure' must not be empty");
		return;
	}
	if (cnt > HF_MAX_STEPS) {
		wf_nerr(c, n, "too many on_failure steps (%zu, at most %d)",
			cnt, HF_MAX_STEPS);
		return;
	}
	if (!wf->steps)
		return; /* `steps:` failed: said already */
	size_t base = wf->nsteps;
	wf->steps = hf_xrealloc(wf->steps, (base + cnt) * sizeof *wf->steps);
	memset(wf->steps + base, 0, cnt * sizeof *wf->steps);
	wf->nfailure_steps = cnt;
	const yaml_node_t **ids = hf_xcalloc(cnt, sizeof *ids);
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *it = node_of(c, n->data.sequence.items.start[i]);
		if (!it)
			continue;
		struct hf_step *st = &wf->steps[base + i];
		wf_parse_step(c, it, i, st, &ids[i]);
		const yaml_node_t *x;
		if (it->type == YAML_MAPPING_NODE &&
		    (x = wf_get(c, it, "retry")))
			wf_nerr(c, x,
				"'retry' is not allowed in on_failure: its "
				"steps run once");
		st->retry_attempts = 1;
		for (size_t j = 0; j < i && ids[i]; j++)
			if (ids[j] &&
			    strcmp(st->id, wf->steps[base + j].id) == 0) {
				wf_nerr(c, ids[i],
					"duplicate step id '%s' (first used on "
					"line %d)",
					st->id,
					(int)ids[j]->start_mark.line + 1);
				break;
			}
	}
	for (size_t i = 0; i < cnt; i++) {
		struct hf_step *st = &wf->steps[base + i];
		if (!st->id)
			continue;
		char *id = hf_xasprintf(ON_FAILURE_PREFIX "%s", st->id);
		free(st->id);
		st->id = id;
	}
	free(ids);
}
