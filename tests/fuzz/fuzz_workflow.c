/* fuzz_workflow.c - hf_workflow_parse on arbitrary bytes (an exact-size copy,
 * so that any read past the end shows). Checks the loader's contract: NULL with
 * at least one problem, or a complete workflow with none. Scripts are looked up
 * in a directory that does not exist. */
#include "hf_workflow.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_workflow(const struct hf_workflow *wf)
{
	if (!wf->name || (!wf->path && !wf->nschedules) ||
	    (wf->path && wf->path[0] != '/') || !wf->version ||
	    strlen(wf->version) != 64 || !wf->nsteps || !wf->methods ||
	    wf->concurrency_max < 1)
		abort();
	if (wf->verify.scheme != HF_VERIFY_NONE && !wf->verify.nsecrets)
		abort();
	for (size_t i = 0; i < wf->nschedules; i++)
		if (!wf->schedules[i].cron || !wf->schedules[i].timezone ||
		    wf->schedules[i].catch_up < 0)
			abort();
	for (size_t i = 0; i < wf->nsteps; i++) {
		const struct hf_step *st = &wf->steps[i];
		if (!st->id || !st->code || !st->code_name ||
		    st->retry_attempts < 1 ||
		    hf_workflow_step_index(wf, st->id) != (int)i)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	struct hf_diags d = {0};
	char line[2048];
	memcpy(text, data, size);
	struct hf_workflow *wf = hf_workflow_parse(
	    "fuzz.yml", text, size, "/nonexistent/hookflow-scripts", &d);
	if (wf) {
		if (d.n)
			abort();
		check_workflow(wf);
	} else if (!d.n) {
		abort();
	}
	for (size_t i = 0; i < d.n; i++)
		hf_error_format(&d.items[i], line, sizeof line);
	hf_workflow_unref(wf);
	hf_diags_release(&d);
	free(text);
	return 0;
}
