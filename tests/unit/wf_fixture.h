/* wf_fixture.h - a workflow from YAML text for the unit tests of the layers
 * above the loader (dispatch, scheduler, store): parse_workflow() returns it
 * with a reference taken, or exits 2 naming the first problem. Header-only,
 * like tap.h. */
#ifndef WF_FIXTURE_H
#define WF_FIXTURE_H

#include "hf_workflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline struct hf_workflow *parse_workflow(const char *text)
{
	struct hf_diags d = {0};
	struct hf_workflow *wf =
	    hf_workflow_parse("wf.yml", text, strlen(text), "/nonexistent", &d);
	if (!wf) {
		char msg[2048];
		hf_error_format(d.n ? &d.items[0] : &(struct hf_error){0}, msg,
				sizeof msg);
		fprintf(stderr, "parse: %s\n", msg);
		exit(2);
	}
	hf_diags_release(&d);
	return wf;
}

#endif
