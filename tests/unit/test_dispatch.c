/* test_dispatch.c - turning an event into runs: a workflow's `if:` (true,
 * false, failing), the dedupe key (an expression, or the default of github,
 * stripe and standard-webhooks), the concurrency key as the run's lane, and
 * replay (matched again by path and method, no dedupe), and a schedule's
 * fire (its event, `if:` and lane; its key in place of the webhook's dedupe).
 * Everything runs on a thread of its own so that the thread's expression
 * runtime is freed at its exit, as on the server's threads. */
#include "hf_dispatch.h"
#include "hf_limits.h"
#include "hf_router.h"
#include "hf_schedule.h"
#include "tap.h"
#include "wf_fixture.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static struct hf_event *new_event(const char *path, const char *body,
				  json_t *headers)
{
	struct hf_event *ev = hf_event_new();
	hf_id_new(ev->id, "ev");
	ev->method = hf_xstrdup("POST");
	ev->path = hf_xstrdup(path);
	ev->query = json_object();
	ev->headers = headers ? headers : json_object();
	json_object_set_new(ev->headers, "content-type",
			    json_string("application/json"));
	ev->body = hf_xstrdup(body);
	ev->body_len = strlen(body);
	ev->decoded = json_loads(body, 0, NULL);
	ev->received_at = hf_now_ms();
	return ev;
}

static void free_runs(struct hf_run **runs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		hf_run_free(runs[i]);
}

static const char *skip_field(const struct hf_event *ev, size_t i,
			      const char *key)
{
	return json_string_value(
	    json_object_get(json_array_get(ev->skipped, i), key));
}

static struct hf_workflow *wf_if, *wf_iferr, *wf_plain, *wf_dedupe, *wf_github,
    *wf_stripe, *wf_standard, *wf_lane, *wf_other_path, *wf_get_only;

static void test_if(struct hf_luart *rt)
{
	struct hf_run *out[4];
	struct hf_workflow *wfs[1] = {wf_if};

	struct hf_event *ev = new_event("/a", "{\"go\":true}", NULL);
	size_t n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK(n == 1);
	CHECK(n == 1 && out[0]->wf == wf_if);
	CHECK(n == 1 && out[0]->event == ev);
	CHECK(n == 1 && out[0]->status == HF_RUN_QUEUED);
	CHECK(n == 1 && out[0]->dedupe_key == NULL && out[0]->lane == NULL);
	CHECK(ev->skipped == NULL); /* made on the first skip only */
	free_runs(out, n);
	hf_event_unref(ev);

	ev = new_event("/a", "{\"go\":false}", NULL);
	n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK(n == 0);
	CHECK(json_array_size(ev->skipped) == 1);
	CHECK(json_object_size(json_array_get(ev->skipped, 0)) == 2);
	CHECK_STR(skip_field(ev, 0, "workflow"), "gated");
	CHECK_STR(skip_field(ev, 0, "reason"), "if: condition is false");
	free_runs(out, n);
	hf_event_unref(ev);

	/* A failing `if:` skips with the error as the reason. */
	struct hf_workflow *err_wfs[2] = {wf_iferr, wf_plain};
	ev = new_event("/a", "{}", NULL);
	n = hf_dispatch(rt, ev, err_wfs, 2, out);
	CHECK(n == 1);
	CHECK(n == 1 && out[0]->wf == wf_plain);
	CHECK(json_array_size(ev->skipped) == 1);
	CHECK_STR(skip_field(ev, 0, "workflow"), "broken");
	const char *reason = skip_field(ev, 0, "reason");
	CHECK(reason && strncmp(reason, "if: ", 4) == 0);
	CHECK(reason && strstr(reason, "attempt to index a nil value"));
	free_runs(out, n);
	hf_event_unref(ev);

	/* Without a runtime an expression cannot be evaluated: skipped. */
	ev = new_event("/a", "{\"go\":true}", NULL);
	n = hf_dispatch(NULL, ev, wfs, 1, out);
	CHECK(n == 0);
	CHECK_STR(skip_field(ev, 0, "reason"), "if: no Lua runtime");
	hf_event_unref(ev);
}

static void test_dedupe(struct hf_luart *rt)
{
	struct hf_run *out[4];
	struct hf_workflow *wfs[1] = {wf_dedupe};

	struct hf_event *ev = new_event("/a", "{\"id\":\"abc\"}", NULL);
	size_t n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK(n == 1);
	CHECK_STR(n == 1 ? out[0]->dedupe_key : NULL, "abc");
	free_runs(out, n);
	hf_event_unref(ev);

	/* A number in its JSON form; nil: no key. */
	ev = new_event("/a", "{\"id\":42}", NULL);
	n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK_STR(n == 1 ? out[0]->dedupe_key : NULL, "42");
	free_runs(out, n);
	hf_event_unref(ev);
	ev = new_event("/a", "{}", NULL);
	n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK(n == 1 && out[0]->dedupe_key == NULL);
	free_runs(out, n);
	hf_event_unref(ev);

	/* github: the x-github-delivery header. */
	wfs[0] = wf_github;
	ev = new_event("/a", "{\"id\":\"body-id\"}",
		       json_pack("{s:s}", "x-github-delivery", "gh-123"));
	n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK_STR(n == 1 ? out[0]->dedupe_key : NULL, "gh-123");
	free_runs(out, n);
	hf_event_unref(ev);
	ev = new_event("/a", "{\"id\":\"body-id\"}", NULL);
	n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK(n == 1 && out[0]->dedupe_key == NULL);
	free_runs(out, n);
	hf_event_unref(ev);

	/* stripe: the body's id, no header involved. */
	wfs[0] = wf_stripe;
	ev = new_event("/a", "{\"id\":\"evt_1\",\"type\":\"charge\"}",
		       json_pack("{s:s}", "x-github-delivery", "gh-123"));
	n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK_STR(n == 1 ? out[0]->dedupe_key : NULL, "evt_1");
	free_runs(out, n);
	hf_event_unref(ev);

	/* standard-webhooks: webhook-id. */
	wfs[0] = wf_standard;
	ev = new_event("/a", "{}", json_pack("{s:s}", "webhook-id", "msg_9"));
	n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK_STR(n == 1 ? out[0]->dedupe_key : NULL, "msg_9");
	free_runs(out, n);
	hf_event_unref(ev);

	/* No scheme, no expression: no key even with such headers. */
	wfs[0] = wf_plain;
	ev = new_event("/a", "{\"id\":\"x\"}",
		       json_pack("{s:s}", "x-github-delivery", "gh-123"));
	n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK(n == 1 && out[0]->dedupe_key == NULL);
	free_runs(out, n);
	hf_event_unref(ev);
}

static void test_lane(struct hf_luart *rt)
{
	struct hf_run *out[4];
	struct hf_workflow *wfs[1] = {wf_lane};

	struct hf_event *ev = new_event("/a", "{\"tenant\":\"acme\"}", NULL);
	size_t n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK(n == 1);
	CHECK_STR(n == 1 ? out[0]->lane : NULL, "acme");
	CHECK(n == 1 && out[0]->dedupe_key == NULL);
	free_runs(out, n);
	hf_event_unref(ev);

	ev = new_event("/a", "{\"tenant\":7}", NULL);
	n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK_STR(n == 1 ? out[0]->lane : NULL, "7");
	free_runs(out, n);
	hf_event_unref(ev);

	ev = new_event("/a", "{}", NULL);
	n = hf_dispatch(rt, ev, wfs, 1, out);
	CHECK(n == 1 && out[0]->lane == NULL);
	free_runs(out, n);
	hf_event_unref(ev);
}

static void test_needs_lua(void)
{
	struct hf_workflow *plain[2] = {wf_plain, wf_github};
	CHECK(!hf_dispatch_needs_lua(plain, 2));
	struct hf_workflow *some[3] = {wf_plain, wf_lane, wf_github};
	CHECK(hf_dispatch_needs_lua(some, 3));
	CHECK(hf_dispatch_needs_lua(&wf_if, 1));
	CHECK(hf_dispatch_needs_lua(&wf_dedupe, 1));
	CHECK(!hf_dispatch_needs_lua(NULL, 0));
}

static void test_replay(void)
{
	struct hf_workflow *items[] = {wf_dedupe,     wf_if,	 wf_lane,
				       wf_other_path, wf_github, wf_get_only};
	struct hf_workflow_set set = {items, sizeof items / sizeof items[0], 1};
	struct hf_router *router = hf_router_create(&set);
	CHECK(router != NULL);
	struct hf_run *out[HF_MAX_MATCH];

	struct hf_event *ev =
	    new_event("/a", "{\"id\":\"abc\",\"go\":false,\"tenant\":\"acme\"}",
		      json_pack("{s:s}", "x-github-delivery", "gh-1"));
	size_t n = hf_dispatch_replay(router, ev, out);
	/* dedupe, lane and github match /a and POST; `if:` is false again;
	 * /b and GET-only do not match. */
	CHECK(n == 3);
	if (n == 3) {
		CHECK(out[0]->wf == wf_dedupe);
		CHECK(out[1]->wf == wf_lane);
		CHECK(out[2]->wf == wf_github);
		for (size_t i = 0; i < n; i++)
			CHECK(out[i]->dedupe_key == NULL);
		CHECK_STR(out[1]->lane, "acme");
	}
	CHECK(json_array_size(ev->skipped) == 1);
	CHECK_STR(skip_field(ev, 0, "workflow"), "gated");
	free_runs(out, n);
	hf_event_unref(ev);

	/* The same event dispatched normally does carry the keys. */
	ev = new_event("/a", "{\"id\":\"abc\",\"go\":true}",
		       json_pack("{s:s}", "x-github-delivery", "gh-1"));
	struct hf_workflow *wfs[2] = {wf_dedupe, wf_github};
	n = hf_dispatch(hf_dispatch_runtime(), ev, wfs, 2, out);
	CHECK(n == 2);
	CHECK_STR(n == 2 ? out[0]->dedupe_key : NULL, "abc");
	CHECK_STR(n == 2 ? out[1]->dedupe_key : NULL, "gh-1");
	free_runs(out, n);
	hf_event_unref(ev);

	/* A path nobody declares: no runs. */
	ev = new_event("/none", "{}", NULL);
	CHECK(hf_dispatch_replay(router, ev, out) == 0);
	hf_event_unref(ev);
	hf_router_destroy(router);
}

static void test_schedule(void)
{
	/* The webhook's dedupe expression would fail on a nil body: a fire
	 * does not evaluate it. */
	struct hf_workflow *wf = parse_workflow(
	    "name: nightly\n"
	    "on:\n  webhook: {path: /n, dedupe: event.body.id}\n"
	    "  schedule: [{cron: '0 2 * * MON-FRI', timezone: Europe/Berlin}]\n"
	    "if: event.schedule.at ~= '2026-12-08T01:00:00Z'\n"
	    "concurrency: {key: event.schedule.cron .. '@' .. "
	    "event.schedule.at}\n"
	    "steps: [{id: s, run: return 1}]\n");
	struct hf_event *ev = hf_schedule_event(wf, 0, 1796605200);
	CHECK_STR(ev->method, "SCHEDULE");
	CHECK_STR(ev->path, "nightly");
	CHECK(ev->body_len == 0 && ev->decoded == NULL);
	CHECK_STR(json_string_value(json_object_get(ev->query, "at")),
		  "2026-12-07T01:00:00Z");
	json_t *lua = hf_event_to_lua_json(ev);
	CHECK_STR(json_string_value(json_object_get(
		      json_object_get(lua, "schedule"), "cron")),
		  "0 2 * * MON-FRI");
	CHECK(json_object_get(lua, "body") == NULL);
	json_decref(lua);
	struct hf_run *run = hf_dispatch_schedule(
	    hf_dispatch_runtime(), ev, wf, "schedule:0:2026-12-07T01:00:00Z");
	CHECK(run != NULL);
	CHECK_STR(run ? run->dedupe_key : NULL,
		  "schedule:0:2026-12-07T01:00:00Z");
	CHECK_STR(run ? run->lane : NULL,
		  "0 2 * * MON-FRI@2026-12-07T01:00:00Z");
	hf_run_free(run);
	hf_event_unref(ev);
	/* `if:` false: no run, the reason recorded. */
	ev = hf_schedule_event(wf, 0, 1796691600);
	CHECK(hf_dispatch_schedule(hf_dispatch_runtime(), ev, wf, "k") == NULL);
	CHECK_STR(skip_field(ev, 0, "reason"), "if: condition is false");
	hf_event_unref(ev);
	hf_workflow_unref(wf);
}

static void *tests_main(void *arg)
{
	(void)arg;
	struct hf_luart *rt = hf_dispatch_runtime();
	CHECK(rt != NULL);
	CHECK(hf_dispatch_runtime() == rt); /* one per thread */
	test_if(rt);
	test_dedupe(rt);
	test_lane(rt);
	test_needs_lua();
	test_replay();
	test_schedule();
	return NULL;
}

#define ON "on: {webhook: {path: /a}}\n"
#define STEPS "steps: [{id: s, run: return 1}]\n"

int main(void)
{
	wf_if = parse_workflow("name: gated\n" ON
			       "if: event.body.go == true\n" STEPS);
	wf_iferr = parse_workflow("name: broken\n" ON
				  "if: event.body.x.y == 1\n" STEPS);
	wf_plain = parse_workflow("name: plain\n" ON STEPS);
	wf_dedupe =
	    parse_workflow("name: deduped\n"
			   "on: {webhook: {path: /a, dedupe: event.body.id}}\n"
			   "steps: [{id: s, run: return 1}]\n");
	wf_github =
	    parse_workflow("name: gh\n"
			   "on: {webhook: {path: /a, verify: {scheme: github, "
			   "secret: plain}}}\n" STEPS);
	wf_stripe =
	    parse_workflow("name: st\n"
			   "on: {webhook: {path: /a, verify: {scheme: stripe, "
			   "secret: whsec_x}}}\n" STEPS);
	wf_standard =
	    parse_workflow("name: sw\n"
			   "on: {webhook: {path: /a, verify: {scheme: "
			   "standard-webhooks, secret: whsec_eA==}}}\n" STEPS);
	wf_lane = parse_workflow(
	    "name: laned\n" ON
	    "concurrency: {key: event.body.tenant, max: 2}\n" STEPS);
	wf_other_path = parse_workflow("name: other\n"
				       "on: {webhook: {path: /b}}\n" STEPS);
	wf_get_only =
	    parse_workflow("name: getter\n"
			   "on: {webhook: {path: /a, methods: [GET]}}\n" STEPS);

	pthread_t t;
	if (pthread_create(&t, NULL, tests_main, NULL) != 0)
		return 2;
	pthread_join(t, NULL);

	struct hf_workflow *all[] = {
	    wf_if,     wf_iferr,    wf_plain, wf_dedupe,     wf_github,
	    wf_stripe, wf_standard, wf_lane,  wf_other_path, wf_get_only};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		CHECK(all[i]->refs == 1); /* every run let go of it */
		hf_workflow_unref(all[i]);
	}
	return tap_done();
}
