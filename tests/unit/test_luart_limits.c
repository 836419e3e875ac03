/* test_luart_limits.c - the runtime's limits hold everywhere Lua runs (issue
 * 11): while a failing step unwinds (<close> handlers, __tostring, error
 * handlers), in expressions, and in C that works hard (json.encode of a table
 * reusing a sub-table, the step's output, json.decode, table.sort); the
 * runtime works after each. Small timeouts; messages only, no timings. */
#include "hf_luart.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAG "local x = {} for i = 1, 21 do x = {x, x} end "
#define LOOP "while true do end"

static json_t *g_event;

static struct hf_step_result run(struct hf_luart *rt, const char *code,
				 int64_t timeout_ms)
{
	struct hf_step st = {.id = "s",
			     .code = (char *)code,
			     .code_name = "=test",
			     .retry_attempts = 1};
	struct hf_workflow wf = {
	    .name = "t", .file = "t.yml", .version = "v1", .steps = &st};
	wf.nsteps = 1;
	struct hf_step_ctx ctx = {.wf = &wf,
				  .step = 0,
				  .event = g_event,
				  .run_id = "run_1",
				  .attempt = 1,
				  .timeout_ms = timeout_ms};
	struct hf_step_result res;
	CHECK(hf_luart_run_step(rt, &ctx, &res) == 0);
	return res;
}

/* The step fails with an error starting with want (a limit's message). */
static void expect_limit_t(struct hf_luart *rt, const char *code,
			   const char *want, int64_t timeout_ms)
{
	struct hf_step_result res = run(rt, code, timeout_ms);
	bool ok = res.status == HF_STEP_FAILED && res.error &&
		  strncmp(res.error, want, strlen(want)) == 0;
	if (!ok)
		fprintf(stderr, "code: %s\n  got:  %s\n  want: %s\n", code,
			res.error ? res.error : "(none)", want);
	CHECK(ok);
	hf_step_result_release(&res);
	/* and the runtime is fine afterwards */
	res = run(rt,
		  "local t = {} for i = 1, 1000 do t[i] = i end "
		  "return #json.encode(t)",
		  2000);
	CHECK(res.status == HF_STEP_SUCCEEDED);
	hf_step_result_release(&res);
}

/* Loops get a short timeout; memory bombs a long one, so that the memory
 * limit is hit first even on a loaded machine. */
static void expect_limit(struct hf_luart *rt, const char *code,
			 const char *want)
{
	expect_limit_t(rt, code, want, strstr(want, "memory") ? 10000 : 300);
}

static void test_unwinding(struct hf_luart *rt)
{
	expect_limit(rt,
		     "local x <close> = setmetatable({}, {__close = "
		     "function() " LOOP " end}) error('boom')",
		     "step timed out after 300ms");
	expect_limit(rt,
		     "local x <close> = setmetatable({}, {__close = "
		     "function() local t, s = {}, ('x'):rep(1000000) "
		     "for i = 1, 1e9 do t[i] = s .. i end end}) error('boom')",
		     "memory limit exceeded (64 MiB)");
	expect_limit(rt,
		     "local e = setmetatable({}, {__tostring = function() " LOOP
		     " end}) local x <close> = setmetatable({}, {__close = "
		     "function() tostring(e) end}) error(e)",
		     "step timed out after 300ms");
	expect_limit(rt,
		     "local x <close> = setmetatable({}, {__close = "
		     "function() xpcall(error, function() " LOOP " end) end}) "
		     "error('boom')",
		     "step timed out after 300ms");
	/* killed, the kill caught by pcall in a <close> handler: still dead */
	expect_limit(rt,
		     "local x <close> = setmetatable({}, {__close = "
		     "function() while true do pcall(function() " LOOP
		     " end) end end}) " LOOP,
		     "step timed out after 300ms");
	/* a <close> handler that is a C function doing hard work */
	expect_limit(rt,
		     DAG "local y <close> = setmetatable(x, {__close = "
			 "json.encode}) error('boom')",
		     "memory limit exceeded (64 MiB)");
	/* a long error message is cut, and the step still fails cleanly */
	struct hf_step_result res =
	    run(rt, "error(('x'):rep(1000000) .. 'END')", 2000);
	CHECK(res.status == HF_STEP_FAILED);
	CHECK(res.error && strlen(res.error) < 20000 &&
	      !strstr(res.error, "END"));
	hf_step_result_release(&res);
}

static void test_hard_c(struct hf_luart *rt)
{
	expect_limit(rt, DAG "return #json.encode(x)",
		     "memory limit exceeded (64 MiB)");
	expect_limit(rt, DAG "return x",
		     "memory limit exceeded (64 MiB) while converting the "
		     "step output to JSON");
	expect_limit(rt,
		     "return #json.decode('[' .. ('{},'):rep(3000000) .. "
		     "'{}]')",
		     "memory limit exceeded (64 MiB)");
	expect_limit(rt,
		     "local t = {} for i = 1, 2000000 do t[i] = (i * 7919) "
		     "% 2000003 end table.sort(t) return 1",
		     "step timed out after 300ms");
	/* sort still sorts, with and without a comparator */
	struct hf_step_result res =
	    run(rt,
		"local t = {5, 3, 9, 1} table.sort(t) "
		"local u = {'b', 'c', 'a'} table.sort(u, function(a, b) "
		"return a > b end) return {t, u}",
		2000);
	char *s = json_dumps(res.output, JSON_COMPACT);
	CHECK_STR(s, "[[1,3,5,9],[\"c\",\"b\",\"a\"]]");
	free(s);
	hf_step_result_release(&res);
	res = run(rt, "table.sort({1, 2, 3}, 5)", 2000);
	CHECK(res.status == HF_STEP_FAILED && res.error &&
	      strstr(res.error, "function expected"));
	hf_step_result_release(&res);
}

static void expect_expr(struct hf_luart *rt, const char *chunk,
			const char *want)
{
	struct hf_expr e = {.src = (char *)chunk, .chunk = (char *)chunk};
	json_t *v = NULL;
	char *msg = NULL;
	CHECK(hf_luart_eval(rt, chunk, &e, g_event, &v, &msg) == -1);
	if (!msg || !strstr(msg, want))
		fprintf(stderr, "expr: %s\n  got:  %s\n  want: %s\n", chunk,
			msg ? msg : "(none)", want);
	CHECK(msg && strstr(msg, want));
	free(msg);
	json_decref(v);
}

static void test_expressions(void)
{
	struct hf_luart_config cfg = {.expr_only = true};
	struct hf_error err;
	struct hf_luart *rt = hf_luart_create(&cfg, &err);
	CHECK(rt != NULL);
	if (!rt)
		return;
	expect_expr(rt,
		    "local x <close> = setmetatable({}, {__close = "
		    "function() " LOOP " end}) error('boom')",
		    "expression exceeded its budget of 1000000 instructions");
	expect_expr(rt,
		    "local t = {} for i = 1, 100000 do t[i] = (i * 7919) "
		    "% 100003 end table.sort(t) return true",
		    "expression exceeded its budget");
	expect_expr(rt, DAG "return x",
		    "memory limit exceeded (8 MiB) while converting the "
		    "expression value to JSON");
	struct hf_expr e = {.src = "1 + 1", .chunk = "return 1 + 1"};
	json_t *v = NULL;
	char *msg = NULL;
	CHECK(hf_luart_eval(rt, "ok", &e, g_event, &v, &msg) == 0);
	CHECK(json_integer_value(v) == 2);
	json_decref(v);
	hf_luart_destroy(rt);
}

int main(void)
{
	json_error_t je;
	g_event = json_loads("{\"id\":\"ev_1\"}", 0, &je);
	struct hf_luart_config cfg = {0};
	struct hf_error err;
	struct hf_luart *rt = hf_luart_create(&cfg, &err);
	CHECK(rt != NULL);
	if (!rt)
		return tap_done();
	test_unwinding(rt);
	test_hard_c(rt);
	hf_luart_destroy(rt);
	test_expressions();
	json_decref(g_event);
	return tap_done();
}
