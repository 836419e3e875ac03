/* test_park.c - one parked run (park_step.c) and the loader's park keys
 * (wf_park.c): until: times, what a park step makes of a run (waiting,
 * wake_at, "waiting" JSON, a past time going on at once, a value that is not
 * a time failing the step), the woken result (nil, or a signal's body), the
 * wait_for path lookup, and resume URLs (round trip, tampering, shape). */
#include "hf_park.h"
#include "tap.h"
#include "wf_fixture.h"

#include <stdlib.h>
#include <string.h>

static const char WF[] = "name: p\n"
			 "on: {webhook: {path: /p}}\n"
			 "steps:\n"
			 "  - id: ask\n"
			 "    run: return run.resume_url\n"
			 "  - id: nap\n"
			 "    sleep: 30s\n"
			 "  - id: hold\n"
			 "    until: \"${{ event.body.at }}\"\n"
			 "  - id: lit\n"
			 "    until: 2026-12-24T18:00:00+01:00\n"
			 "  - id: approval\n"
			 "    wait_for: {path: /approvals/, timeout: 1h}\n";

static void test_times(void)
{
	int64_t ms = 0;
	CHECK(hf_park_parse_time("2026-12-24T17:00:00Z", 20, &ms) == 0);
	CHECK(ms == 1798131600000LL);
	CHECK(hf_park_parse_time(" 1798131600 ", 12, &ms) == 0);
	CHECK(ms == 1798131600000LL);
	CHECK(hf_park_parse_time("2026-12-24T18:00:00.5+01:00", 27, &ms) == 0);
	CHECK(ms == 1798131600500LL);
	CHECK(hf_park_parse_time("tomorrow", 8, &ms) < 0);
	CHECK(hf_park_parse_time("2026-12-24T17:00:00", 19, &ms) < 0);
	CHECK(hf_park_parse_time("", 0, &ms) < 0);
}

static struct hf_run *new_run(struct hf_workflow *wf, size_t step)
{
	struct hf_run *run = hf_run_new(NULL, wf);
	run->next_step = step;
	return run;
}

static void ok_result(struct hf_step_result *res, json_t *out)
{
	memset(res, 0, sizeof *res);
	res->status = HF_STEP_SUCCEEDED;
	res->output = out;
	res->logs = json_array();
}

static void test_park_step(struct hf_workflow *wf)
{
	struct hf_step_result res;
	int64_t now = 1798131600000LL;
	struct hf_run *run = new_run(wf, 1); /* sleep: 30s */
	ok_result(&res, json_null());
	CHECK(hf_park_step(run, &res, now) == 1);
	CHECK(run->status == HF_RUN_WAITING);
	CHECK(run->wake_at == now + 30000);
	CHECK(run->wait_path == NULL);
	json_t *w = json_loads(run->waiting, 0, NULL);
	CHECK_STR(json_string_value(json_object_get(w, "for")), "sleep");
	CHECK_STR(json_string_value(json_object_get(w, "step")), "nap");
	CHECK_STR(json_string_value(json_object_get(w, "until")),
		  "2026-12-24T17:00:30.000Z");
	json_decref(w);
	hf_step_result_release(&res);
	hf_run_free(run);

	run = new_run(wf, 2); /* until: the expression's value */
	ok_result(&res, json_string("2026-12-24T17:00:00Z"));
	CHECK(hf_park_step(run, &res, now - 1) == 1);
	CHECK(run->wake_at == now && json_is_null(res.output));
	hf_step_result_release(&res);
	hf_run_free(run);

	run = new_run(wf, 2); /* a time already past: on at once */
	ok_result(&res, json_integer(1000));
	CHECK(hf_park_step(run, &res, now) == 0);
	CHECK(run->status == HF_RUN_QUEUED && json_is_null(res.output));
	hf_step_result_release(&res);
	hf_run_free(run);

	run = new_run(wf, 2); /* not a time: the step fails */
	ok_result(&res, json_true());
	CHECK(hf_park_step(run, &res, now) == -1);
	CHECK(res.status == HF_STEP_FAILED && strstr(res.error, "not a time"));
	hf_step_result_release(&res);
	hf_run_free(run);

	run = new_run(wf, 3); /* a literal until */
	ok_result(&res, json_null());
	CHECK(hf_park_step(run, &res, 0) == 1);
	CHECK(run->wake_at == 1798131600000LL);
	hf_step_result_release(&res);
	hf_run_free(run);

	run = new_run(wf, 4); /* wait_for: its timeout, its path */
	ok_result(&res, json_null());
	CHECK(hf_park_step(run, &res, now) == 1);
	CHECK(run->wake_at == now + 3600000);
	CHECK_STR(run->wait_path, "/approvals/");
	hf_step_result_release(&res);
	/* woken by a signal: its body is the output */
	run->status = HF_RUN_QUEUED;
	run->woken = true;
	json_object_set_new(run->outputs, "approval",
			    json_pack("{s:i}", "ok", 1));
	hf_park_woken_result(run, &res, now);
	CHECK(res.status == HF_STEP_SUCCEEDED && !run->woken);
	CHECK(json_integer_value(json_object_get(res.output, "ok")) == 1);
	CHECK(run->waiting == NULL && run->wait_path == NULL);
	hf_step_result_release(&res);
	hf_run_free(run);
}

static void test_lookup_and_urls(struct hf_workflow *wf)
{
	struct hf_workflow_set set = {.items = &wf, .n = 1, .refs = 1};
	const struct hf_step *st = hf_workflow_set_wait_for(&set, "/approvals");
	CHECK(st && strcmp(st->id, "approval") == 0);
	CHECK(hf_workflow_set_wait_for(&set, "/approvals//") == st);
	CHECK(hf_workflow_set_wait_for(&set, "/approval") == NULL);
	CHECK(wf->has_wait_for);

	unsigned char key[32] = {7};
	hf_park_set_resume(key, "https://hooks.example.com/");
	struct hf_run *run = new_run(wf, 0);
	char *url = hf_park_resume_url(run, 0);
	CHECK(url &&
	      strncmp(url, "https://hooks.example.com/resume/", 33) == 0);
	char id[HF_ID_SIZE];
	int step = -1;
	const char *path = url ? url + strlen("https://hooks.example.com") : "";
	CHECK(hf_park_resume_check(path, id, &step));
	CHECK(step == 4 && strcmp(id, run->id) == 0);
	char *bad = hf_xstrdup(path);
	bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
	CHECK(!hf_park_resume_check(bad, id, &step));
	free(bad);
	char *other =
	    hf_xasprintf("/resume/%s/2/%s", run->id, strrchr(path, '/') + 1);
	CHECK(!hf_park_resume_check(other, id, &step)); /* another step */
	free(other);
	other =
	    hf_xasprintf("/resume/%s/04/%s", run->id, strrchr(path, '/') + 1);
	CHECK(!hf_park_resume_check(other, id, &step)); /* one spelling */
	free(other);
	CHECK(!hf_park_resume_check("/resume/x", id, &step));
	CHECK(hf_park_resume_url(run, 5) == NULL); /* no wait_for ahead */
	free(url);
	hf_run_free(run);
}

int main(void)
{
	struct hf_workflow *wf = parse_workflow(WF);
	test_times();
	test_park_step(wf);
	test_lookup_and_urls(wf);
	hf_workflow_unref(wf);
	return tap_done();
}
