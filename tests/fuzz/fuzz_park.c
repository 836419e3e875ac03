/* fuzz_park.c - the parked runs' parsers of untrusted input (hf_park.h): an
 * `until:` time (hf_park_parse_time: a workflow's literal, or an expression's
 * value from a request) and a resume URL's path (hf_park_resume_check: any
 * client's). No reads past the end; a time is never negative past parsing;
 * a path that checks names a run id of the right shape, and the URL made for
 * that run and step checks again. */
#include "hf_park.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool keyed;
	if (!keyed) {
		unsigned char key[32] = {1, 2, 3};
		hf_park_set_resume(key, "http://h");
		keyed = true;
	}
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	int64_t ms = 0;
	(void)hf_park_parse_time(s, size, &ms);
	char run_id[HF_ID_SIZE];
	int step = -1;
	if (hf_park_resume_check(s, run_id, &step)) {
		if (step < 0 || strlen(run_id) >= HF_ID_SIZE)
			abort();
	}
	/* A URL this process makes for a run checks. */
	struct hf_workflow wf = {0};
	struct hf_step steps[2] = {{0}};
	steps[1].park = HF_PARK_WAIT_FOR;
	wf.steps = steps;
	wf.nsteps = 2;
	struct hf_run run = {0};
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_");
	if (n == 0 || n >= HF_ID_SIZE)
		snprintf(run.id, sizeof run.id, "run_x");
	else
		snprintf(run.id, sizeof run.id, "%.*s", (int)n, s);
	run.wf = &wf;
	char *url = hf_park_resume_url(&run, 0);
	if (!url || strncmp(url, "http://h/resume/", 16) != 0 ||
	    !hf_park_resume_check(url + 8, run_id, &step) || step != 1 ||
	    strcmp(run_id, run.id) != 0)
		abort();
	free(url);
	free(s);
	return 0;
}
