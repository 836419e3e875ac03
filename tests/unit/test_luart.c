/* test_luart.c - the Lua runtime: step outputs, globals, `if:` and `with:`,
 * log/env/crypto/json/db/require, one test per sandbox escape attempt, the
 * time and memory kills (and that the runtime works after each), the pattern
 * matcher against stock Lua, and workflow-level expressions.
 *
 * Workflows are built by hand (no YAML) so that this tests the runtime only. */
#include "hf_luart.h"
#include "tap.h"
#include "tmpdir.h"

#include <lauxlib.h>
#include <lualib.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXSTEPS 4

/* A hand-built workflow of up to MAXSTEPS steps. */
struct wfb {
	struct hf_workflow wf;
	struct hf_step steps[MAXSTEPS];
	struct hf_expr ifs[MAXSTEPS];
	char ifchunks[MAXSTEPS][512];
};

static void wf_init(struct wfb *b)
{
	memset(b, 0, sizeof *b);
	b->wf.name = "test";
	b->wf.file = "workflows/test.yml";
	b->wf.version = "v1";
	b->wf.steps = b->steps;
}

static struct hf_step *wf_add(struct wfb *b, const char *id, const char *code)
{
	struct hf_step *st = &b->steps[b->wf.nsteps++];
	st->id = (char *)id;
	st->code = (char *)code;
	st->code_name = "=workflows/test.yml";
	st->retry_attempts = 1;
	return st;
}

static void wf_if(struct wfb *b, struct hf_step *st, const char *src)
{
	size_t i = (size_t)(st - b->steps);
	snprintf(b->ifchunks[i], sizeof b->ifchunks[i], "return (%s)", src);
	b->ifs[i].src = (char *)src;
	b->ifs[i].chunk = b->ifchunks[i];
	st->if_expr = &b->ifs[i];
}

static json_t *test_event(void)
{
	json_error_t je;
	return json_loads("{\"id\":\"ev_1\",\"method\":\"POST\","
			  "\"path\":\"/hook\",\"query\":{\"q\":\"1\"},"
			  "\"headers\":{\"x-delivery\":\"d1\"},"
			  "\"body\":{\"ticket\":{\"id\":7,\"status\":\"new\"},"
			  "\"tags\":[\"a\",null,\"b\"]},"
			  "\"raw\":\"{}\",\"received_at\":1700000000000}",
			  0, &je);
}

static json_t *g_event;
static json_t *g_steps;

static struct hf_step_result run_wf(struct hf_luart *rt, struct wfb *b,
				    size_t step, int64_t timeout_ms)
{
	struct hf_step_ctx ctx = {
	    .wf = &b->wf,
	    .step = step,
	    .event = g_event,
	    .steps = g_steps,
	    .run_id = "run_1",
	    .attempt = 2,
	    .timeout_ms = timeout_ms,
	};
	struct hf_step_result res;
	int rc = hf_luart_run_step(rt, &ctx, &res);
	CHECK(rc == 0);
	return res;
}

/* Runs code as a one-step workflow (timeout 2 s unless given). */
static struct hf_step_result run_code_t(struct hf_luart *rt, const char *code,
					int64_t timeout_ms)
{
	struct wfb b;
	if (getenv("HF_TEST_TRACE"))
		fprintf(stderr, "-- %s\n", code);
	wf_init(&b);
	wf_add(&b, "s", code);
	return run_wf(rt, &b, 0, timeout_ms);
}

static struct hf_step_result run_code(struct hf_luart *rt, const char *code)
{
	return run_code_t(rt, code, 2000);
}

/* The step must succeed with output equal to the JSON text want. */
static void expect_output(struct hf_luart *rt, const char *code,
			  const char *want)
{
	struct hf_step_result res = run_code(rt, code);
	char *got = json_dumps(res.output,
			       JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
	if (res.status != HF_STEP_SUCCEEDED)
		fprintf(stderr, "step failed: %s\n  code: %s\n", res.error,
			code);
	CHECK(res.status == HF_STEP_SUCCEEDED);
	CHECK_STR(got, want);
	free(got);
	hf_step_result_release(&res);
}

/* The step must fail with an error containing want. */
static void expect_error_t(struct hf_luart *rt, const char *code,
			   const char *want, int64_t timeout_ms)
{
	struct hf_step_result res = run_code_t(rt, code, timeout_ms);
	CHECK(res.status == HF_STEP_FAILED);
	CHECK(res.error != NULL);
	if (!res.error || !strstr(res.error, want))
		fprintf(stderr, "error for %s\n  got:  %s\n  want: %s\n", code,
			res.error ? res.error : "(none)", want);
	CHECK(res.error && strstr(res.error, want));
	CHECK(json_is_null(res.output));
	hf_step_result_release(&res);
}

static void expect_error(struct hf_luart *rt, const char *code,
			 const char *want)
{
	expect_error_t(rt, code, want, 2000);
}

/* The runtime still runs an ordinary step. */
static void expect_healthy(struct hf_luart *rt)
{
	expect_output(rt,
		      "local t = {} for i = 1, 100 do t[i] = i end "
		      "return {n = #t, s = ('abc'):upper(), "
		      "r = string.rep('ab', 3), id = event.id}",
		      "{\"id\":\"ev_1\",\"n\":100,\"r\":\"ababab\",\"s\":"
		      "\"ABC\"}");
}

/* ---- outputs and globals ---- */

static void test_outputs(struct hf_luart *rt)
{
	expect_output(rt, "return 42", "42");
	expect_output(rt, "return 1.5", "1.5");
	expect_output(rt, "return 'x'", "\"x\"");
	expect_output(rt, "return true", "true");
	expect_output(rt, "return nil", "null");
	expect_output(rt, "local x = 1", "null");
	expect_output(rt, "return {a = 1, b = {1, 2, 3}, c = json.null}",
		      "{\"a\":1,\"b\":[1,2,3],\"c\":null}");
	expect_output(rt, "return 1, 2", "1");
	expect_output(rt, "return {}", "{}");
	expect_output(rt, "return json.array()", "[]");
	expect_error(rt, "return {f = function() end}",
		     "step output is not JSON-shaped: output.f: cannot "
		     "convert a function to JSON");
	expect_error(rt, "return {x = {1, 2, print}}",
		     "step output is not JSON-shaped: output.x[3]: cannot "
		     "convert a function to JSON");
	expect_error(rt, "return string.rep('x', 2 * 1024 * 1024)",
		     "step output is too large");
	expect_error(rt, "error('boom')", "workflows/test.yml:1: boom");
	expect_error(rt, "error('boom')", "stack traceback:");
	expect_error(rt, "error({code = 1})",
		     "(error object is a table value)");
	expect_error(rt, "return (", "workflows/test.yml:1:");
}

static void test_globals(struct hf_luart *rt)
{
	expect_output(rt,
		      "return {event.id, event.method, event.path, "
		      "event.query.q, event.headers['x-delivery'], "
		      "event.body.ticket.id, event.raw, event.received_at}",
		      "[\"ev_1\",\"POST\",\"/hook\",\"1\",\"d1\",7,\"{}\","
		      "1700000000000]");
	expect_output(rt, "return event.body.tags[2] == json.null", "true");
	expect_output(rt, "return #event.body.tags", "3");
	expect_output(rt, "return {run.id, run.workflow, run.attempt}",
		      "[\"run_1\",\"test\",2]");
	expect_output(rt, "return steps.first.value", "10");
	expect_output(rt, "return steps.nothing", "null");
	expect_output(rt, "return steps.skipped == nil", "true");
	expect_output(rt, "return args", "{}");
	expect_output(rt, "return _G == _ENV", "true");
	expect_output(rt, "return ... == args", "true");
	expect_output(rt, "x = 5 return x", "5");
	/* Globals die with the step. */
	expect_error(rt, "return x", "attempt to read undefined global 'x'");
	expect_output(rt, "_G.y = 1 return rawget(_G, 'y')", "1");
	expect_error(rt, "return y", "attempt to read undefined global 'y'");
	expect_error(rt, "return nope",
		     "workflows/test.yml:1: attempt to read undefined global "
		     "'nope'");
	expect_output(rt,
		      "return type(os.time()) .. type(os.clock()) .. "
		      "type(os.date('%Y'))",
		      "\"numbernumberstring\"");
}

static void test_if_with(struct hf_luart *rt)
{
	struct wfb b;
	wf_init(&b);
	struct hf_step *a = wf_add(&b, "a", "return 'ran'");
	wf_if(&b, a, "event.body.ticket.status == 'new'");
	struct hf_step *s2 = wf_add(&b, "b", "return 'ran'");
	wf_if(&b, s2, "event.body.ticket.status == 'closed'");
	struct hf_step *s3 = wf_add(&b, "c", "return 'ran'");
	wf_if(&b, s3, "steps.nothing");
	struct hf_step *s4 = wf_add(&b, "d",
				    "return {args.team, args.ticket, "
				    "args.first, select('#', ...)}");
	s4->with_chunk = "return { team = \"support\", "
			 "ticket = (event.body.ticket.id), "
			 "first = (steps.first.value) }";

	struct hf_step_result r = run_wf(rt, &b, 0, 1000);
	CHECK(r.status == HF_STEP_SUCCEEDED);
	CHECK(json_is_string(r.output) &&
	      strcmp(json_string_value(r.output), "ran") == 0);
	hf_step_result_release(&r);

	r = run_wf(rt, &b, 1, 1000);
	CHECK(r.status == HF_STEP_SKIPPED);
	CHECK(json_is_null(r.output));
	CHECK(r.error == NULL);
	CHECK_STR(hf_step_status_name(r.status), "skipped");
	hf_step_result_release(&r);

	r = run_wf(rt, &b, 2, 1000);
	CHECK(r.status == HF_STEP_SKIPPED);
	hf_step_result_release(&r);

	r = run_wf(rt, &b, 3, 1000);
	CHECK(r.status == HF_STEP_SUCCEEDED);
	char *s = json_dumps(r.output, JSON_COMPACT);
	CHECK_STR(s, "[\"support\",7,10,1]");
	free(s);
	hf_step_result_release(&r);

	/* An error in if: fails the step, naming the YAML file. */
	wf_init(&b);
	struct hf_step *e = wf_add(&b, "e", "return 1");
	wf_if(&b, e, "event.nope.x");
	r = run_wf(rt, &b, 0, 1000);
	CHECK(r.status == HF_STEP_FAILED);
	CHECK(r.error && strstr(r.error, "workflows/test.yml:1:"));
	hf_step_result_release(&r);

	/* with: must give a table. */
	wf_init(&b);
	e = wf_add(&b, "e", "return 1");
	e->with_chunk = "return 5";
	r = run_wf(rt, &b, 0, 1000);
	CHECK(r.status == HF_STEP_FAILED);
	CHECK(r.error && strstr(r.error, "with: must be a table"));
	hf_step_result_release(&r);

	CHECK_STR(hf_step_status_name(HF_STEP_SUCCEEDED), "succeeded");
	CHECK_STR(hf_step_status_name(HF_STEP_FAILED), "failed");
}

/* ---- libraries ---- */

static void test_log(struct hf_luart *rt)
{
	struct hf_step_result r =
	    run_code(rt, "log.info('a', 1, true, nil) log.warn('w') "
			 "log.error('e', {}) print('p', 2) return 1");
	CHECK(r.status == HF_STEP_SUCCEEDED);
	CHECK(json_array_size(r.logs) == 4);
	json_t *l0 = json_array_get(r.logs, 0);
	CHECK_STR(json_string_value(json_object_get(l0, "level")), "info");
	CHECK_STR(json_string_value(json_object_get(l0, "message")),
		  "a 1 true nil");
	CHECK(json_integer_value(json_object_get(l0, "at")) > 1600000000000);
	CHECK_STR(json_string_value(
		      json_object_get(json_array_get(r.logs, 1), "level")),
		  "warn");
	json_t *l2 = json_array_get(r.logs, 2);
	CHECK_STR(json_string_value(json_object_get(l2, "level")), "error");
	CHECK(strncmp(json_string_value(json_object_get(l2, "message")),
		      "e table: ", 9) == 0);
	CHECK_STR(json_string_value(
		      json_object_get(json_array_get(r.logs, 3), "message")),
		  "p 2");
	hf_step_result_release(&r);

	/* Logs are kept with failed steps too, capped in number and size. */
	r = run_code(rt, "for i = 1, 3000 do log.info(i) end "
			 "log.info(string.rep('x', 10000)) error('stop')");
	CHECK(r.status == HF_STEP_FAILED);
	CHECK(json_array_size(r.logs) == 1000);
	CHECK_STR(json_string_value(
		      json_object_get(json_array_get(r.logs, 998), "message")),
		  "999");
	CHECK(strstr(json_string_value(json_object_get(
			 json_array_get(r.logs, 999), "message")),
		     "log limit") != NULL);
	hf_step_result_release(&r);

	r = run_code(rt, "log.info(string.rep('x', 10000)) "
			 "log.info('bad \\xff utf8') return 1");
	CHECK(strlen(json_string_value(json_object_get(
		  json_array_get(r.logs, 0), "message"))) == 4096);
	CHECK_STR(json_string_value(
		      json_object_get(json_array_get(r.logs, 1), "message")),
		  "bad ? utf8");
	hf_step_result_release(&r);
}

static void test_env_crypto_json(struct hf_luart *rt)
{
	setenv("HF_TEST_VAR", "hello", 1);
	setenv("HOOKFLOW_ADMIN_TOKEN", "secret", 1);
	expect_output(rt, "return env('HF_TEST_VAR')", "\"hello\"");
	expect_output(rt, "return env('HF_TEST_UNSET_VAR')", "null");
	expect_output(rt, "return env('HOOKFLOW_ADMIN_TOKEN')", "null");
	expect_output(rt, "return crypto.sha256('abc')",
		      "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb4"
		      "10ff61f20015ad\"");
	expect_output(rt,
		      "return crypto.hmac_sha256('key', 'The quick brown fox "
		      "jumps over the lazy dog')",
		      "\"f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997"
		      "479dbc2d1a3cd8\"");
	expect_output(rt, "return crypto.base64_encode('hello\\0world')",
		      "\"aGVsbG8Ad29ybGQ=\"");
	expect_output(rt,
		      "return crypto.base64_decode('aGVsbG8Ad29ybGQ=') == "
		      "'hello\\0world'",
		      "true");
	expect_error(rt, "return crypto.base64_decode('!!!')",
		     "crypto.base64_decode: input is not base64");
	expect_output(rt,
		      "local t = json.decode('{\"a\":[1,2,null],\"b\":1.5}') "
		      "return {json.encode(t), t.a[3] == json.null, "
		      "math.type(t.a[1])}",
		      "[\"{\\\"a\\\":[1,2,null],\\\"b\\\":1.5}\",true,"
		      "\"integer\"]");
	expect_error(rt, "return json.decode('{')",
		     "json.decode: invalid JSON");
	expect_error(rt, "return json.encode({1, x = 2})",
		     "json.encode: value: cannot convert a table with both");
}

static void test_db(struct hf_luart *rt)
{
	expect_output(rt,
		      "db.exec('CREATE TABLE agents (id INTEGER PRIMARY KEY, "
		      "name TEXT, load REAL, note TEXT, pic BLOB)') "
		      "return db.exec('INSERT INTO agents (name, load, note) "
		      "VALUES (?, ?, ?), (?, ?, ?)', 'ann', 1.5, json.null, "
		      "'bob', 0.5, nil)",
		      "2");
	expect_output(rt,
		      "return db.query('SELECT id, name, load, note FROM "
		      "agents ORDER BY id')",
		      "[{\"id\":1,\"load\":1.5,\"name\":\"ann\"},{\"id\":2,"
		      "\"load\":0.5,\"name\":\"bob\"}]");
	expect_output(rt,
		      "return db.one('SELECT name FROM agents ORDER BY "
		      "load LIMIT 1')",
		      "{\"name\":\"bob\"}");
	expect_output(rt,
		      "return db.one('SELECT name FROM agents WHERE id = "
		      "?', 99)",
		      "null");
	expect_output(rt,
		      "return db.query('SELECT * FROM agents WHERE id > "
		      "?', 100)",
		      "[]");
	/* Bound, never spliced. */
	expect_output(rt,
		      "db.exec('INSERT INTO agents (name) VALUES (?)', "
		      "\"x'); DROP TABLE agents; --\") "
		      "return db.one('SELECT count(*) AS n FROM agents').n",
		      "3");
	expect_output(rt,
		      "return db.one('SELECT ? AS t, ? AS f, ? AS i, "
		      "? AS s', true, false, 7, 'z')",
		      "{\"f\":0,\"i\":7,\"s\":\"z\",\"t\":1}");
	expect_output(rt,
		      "db.exec('UPDATE agents SET pic = ? WHERE id = 1', "
		      "'\\0\\1') return #db.one('SELECT pic FROM agents WHERE "
		      "id = 1').pic",
		      "2");
	expect_output(rt,
		      "return db.exec('UPDATE agents SET load = load + 1 "
		      "WHERE id < 3')",
		      "2");
	/* Several statements without parameters. */
	expect_output(rt,
		      "return db.exec([[CREATE TABLE t2 (x); INSERT INTO t2 "
		      "VALUES (1); INSERT INTO t2 VALUES (2), (3);]])",
		      "3");
	expect_error(rt, "return db.exec('DELETE FROM t2; SELECT ?', 1)",
		     "db.exec: parameters cannot be used with several "
		     "statements");
	expect_error(rt, "return db.query('SELECT 1; SELECT 2')",
		     "db.query: takes a single statement");
	expect_error(rt, "return db.exec('SELECT * FROM nope')",
		     "db.exec: no such table: nope");
	expect_error(rt, "return db.query('SELEC 1')", "db.query: near");
	expect_error(rt, "return db.one('SELECT ?, ?', 1)",
		     "db.one: statement has 2 parameters, 1 given");
	expect_error(rt, "return db.one('SELECT ?', {})",
		     "db.one: cannot bind a table (parameter 1)");
	expect_error(rt, "db.exec('ATTACH DATABASE \\'/tmp/hf_x.db\\' AS x')",
		     "db.exec:");
	/* Errors in a cached statement leave it usable. */
	expect_output(rt,
		      "for i = 1, 3 do pcall(db.one, 'SELECT ?', {}) end "
		      "return db.one('SELECT ? AS v', 5).v",
		      "5");

	/* Transactions. */
	expect_output(rt,
		      "local a, b = db.tx(function() db.exec('INSERT INTO t2 "
		      "VALUES (10)') return 'ok', 2 end) return {a, b}",
		      "[\"ok\",2]");
	expect_error(rt,
		     "db.tx(function() db.exec('INSERT INTO t2 VALUES (11)') "
		     "error('nope') end)",
		     "nope");
	expect_output(rt,
		      "return db.one('SELECT count(*) AS n FROM t2 WHERE "
		      "x >= 10').n",
		      "1");
	/* A caught error inside tx rolls back only that tx. */
	expect_output(
	    rt,
	    "local ok = pcall(db.tx, function() db.exec('INSERT INTO "
	    "t2 VALUES (12)') error('x') end) "
	    "return {ok, db.one('SELECT count(*) AS n FROM t2 WHERE x "
	    "= 12').n}",
	    "[false,0]");
	/* Nested: the inner failure rolls back to its savepoint. */
	expect_output(rt,
		      "db.tx(function() db.exec('INSERT INTO t2 VALUES (20)') "
		      "pcall(db.tx, function() db.exec('INSERT INTO t2 VALUES "
		      "(21)') error('inner') end) "
		      "db.tx(function() db.exec('INSERT INTO t2 VALUES (22)') "
		      "end) end) "
		      "local r = db.query('SELECT x FROM t2 WHERE x >= 20 "
		      "ORDER BY x') return {r[1].x, r[2].x, #r}",
		      "[20,22,2]");
	/* A step killed inside db.tx: rolled back before the next step, and
	 * the lock is gone. */
	expect_error_t(rt,
		       "db.tx(function() db.exec('INSERT INTO t2 VALUES (30)') "
		       "while true do end end)",
		       "step timed out after 200ms", 200);
	expect_output(rt,
		      "db.exec('INSERT INTO t2 VALUES (31)') return "
		      "db.one('SELECT count(*) AS n FROM t2 WHERE x IN (30, "
		      "31)').n",
		      "1");
	/* A BEGIN left open fails the step and is rolled back. */
	expect_error(rt,
		     "db.exec('BEGIN') db.exec('INSERT INTO t2 VALUES (40)')",
		     "step left a database transaction open");
	expect_output(rt,
		      "return db.one('SELECT count(*) AS n FROM t2 WHERE "
		      "x = 40').n",
		      "0");
	/* A runaway query ends at the deadline. */
	expect_error_t(rt,
		       "return db.one('WITH RECURSIVE c(x) AS (SELECT 1 UNION "
		       "ALL SELECT x + 1 FROM c) SELECT count(*) FROM c')",
		       "step timed out after 200ms", 200);
	expect_output(rt, "return db.one('SELECT 1 AS one').one", "1");
}

/* Another connection holds the write lock: the wait ends at the step's
 * deadline, not after the 5 s busy timeout. */
static void test_db_locked(struct hf_luart *rt, const char *data)
{
	sqlite3 *db = NULL;
	CHECK(sqlite3_open(data, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) ==
	      SQLITE_OK);
	int64_t t0 = hf_mono_ms();
	expect_error_t(rt, "db.exec('INSERT INTO t2 VALUES (50)')",
		       "step timed out after 300ms", 300);
	CHECK(hf_mono_ms() - t0 < 3000);
	CHECK(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	expect_output(rt, "return db.exec('INSERT INTO t2 VALUES (50)')", "1");
}

static void test_require(struct hf_luart *rt, const char *dir)
{
	expect_output(rt, "return require('mod').x", "1");
	expect_output(rt, "return require('lib.util').who()", "\"ev_1\"");
	expect_output(rt, "return require('mod') == require('mod')", "true");
	expect_output(rt, "return require('noret')", "true");
	expect_error(rt, "return require('../x')",
		     "require: invalid module name '../x'");
	expect_error(rt, "return require('/etc/passwd')",
		     "require: invalid module name '/etc/passwd'");
	expect_error(rt, "return require('lib..util')", "invalid module name");
	expect_error(rt, "return require('missing')",
		     "require: cannot open 'scripts/missing.lua'");
	expect_error(rt, "return require('bad')", "scripts/bad.lua:2:");
	(void)dir;
}

/* ---- sandbox escapes: each fails with a clear error ---- */

static void test_sandbox(struct hf_luart *rt)
{
	expect_error(rt, "return io.open('/etc/passwd')",
		     "undefined global 'io'");
	expect_error(rt, "os.execute('touch /tmp/hf_pwned')",
		     "attempt to call a nil value (field 'execute')");
	expect_error(rt, "os.remove('/tmp/x')",
		     "attempt to call a nil value (field 'remove')");
	expect_error(rt, "os.exit(1)",
		     "attempt to call a nil value (field 'exit')");
	expect_error(rt, "return os.getenv('HOME')",
		     "attempt to call a nil value (field 'getenv')");
	expect_error(rt, "return debug.getregistry()",
		     "undefined global 'debug'");
	expect_error(rt, "return package.loadlib('libc.so.6', 'system')",
		     "undefined global 'package'");
	expect_error(rt, "return string.dump(function() end)",
		     "attempt to call a nil value (field 'dump')");
	expect_output(
	    rt,
	    "local f, e = load('\\27Lua\\84\\0\\25\\147\\r\\n\\26\\n') "
	    "return {f == nil, e}",
	    "[true,\"attempt to load a binary chunk (mode is 't')\"]");
	expect_output(rt,
		      "local f, e = load('\\27Lua', 'x', 'b') return f == nil",
		      "true");
	expect_output(rt, "return load('return event.id')()", "\"ev_1\"");
	expect_output(rt, "load('z = 1')() return z", "1");
	expect_error(rt, "return z", "undefined global 'z'");
	expect_error(rt, "dofile('/etc/passwd')", "undefined global 'dofile'");
	expect_error(rt, "loadfile('/etc/passwd')",
		     "undefined global 'loadfile'");
	expect_error(rt, "warn('@on')", "undefined global 'warn'");
	expect_error(rt,
		     "setmetatable(_G, {__index = function() return 1 end})",
		     "cannot change a protected metatable");
	expect_output(rt, "return getmetatable(_G)", "false");
	expect_error(rt, "rawset(string, 'rep', nil)",
		     "attempt to modify a read-only table");
	expect_error(rt, "rawset(getmetatable(''), '__index', {})",
		     "bad argument #1 to 'rawset'");
	expect_error(rt, "local _, t = pairs(string) rawset(t, 'upper', nil)",
		     "attempt to modify a read-only table");
	expect_error(rt, "local f, t = pairs(table) t.concat = nil",
		     "read-only table 'table'");
	expect_output(rt,
		      "local f, t = pairs(math) local k, v = f(t, nil) "
		      "return type(k) == 'string' and v ~= nil",
		      "true");
	expect_error(rt, "string.rep = nil",
		     "attempt to modify read-only table 'string'");
	expect_output(rt,
		      "pcall(function() string.rep = nil end) "
		      "pcall(function() table.insert = nil end) "
		      "return string.rep('a', 2)",
		      "\"aa\"");
	expect_output(rt, "return string.rep('a', 3) .. ('b'):rep(2)",
		      "\"aaabb\"");
	expect_output(rt, "return getmetatable('')", "false");
	expect_error(rt, "getmetatable('').__index = {}",
		     "attempt to index a boolean value");
	expect_error(rt, "setmetatable(string, {})",
		     "cannot change a protected metatable");
	expect_error(rt, "json.null = 1", "read-only table 'json'");
	expect_error(rt, "db.exec = print", "read-only table 'db'");
	expect_error(rt, "table.insert(math, 1)", "read-only table 'math'");
	expect_output(rt, "return ('x'):upper() .. math.floor(2.5)", "\"X2\"");
	expect_output(rt,
		      "local n = 0 for k in pairs(string) do n = n + 1 "
		      "end return n > 10",
		      "true");
	expect_error(rt, "setmetatable({}, {__gc = function() end})",
		     "__gc metamethods are not allowed");
	expect_output(rt, "return collectgarbage('stop')", "0");
	expect_output(rt, "return collectgarbage('isrunning')", "true");
	expect_output(rt, "return type(collectgarbage('count'))", "\"number\"");
	expect_output(rt, "return math.type(collectgarbage())", "\"integer\"");
	expect_error(rt, "collectgarbage('bogus')", "invalid option 'bogus'");
	/* A coroutine does not escape the environment either. */
	expect_output(rt,
		      "return coroutine.wrap(function() return event.id "
		      "end)()",
		      "\"ev_1\"");
	expect_healthy(rt);
}

/* ---- the reused environment, the event from the in-memory event ---- */

/* Runs step i of b with the event given as the worker gives it (ctx.ev). */
static struct hf_step_result run_ev(struct hf_luart *rt, struct wfb *b,
				    size_t step, const struct hf_event *ev)
{
	struct hf_step_ctx ctx = {
	    .wf = &b->wf,
	    .step = step,
	    .ev = ev,
	    .steps = g_steps,
	    .run_id = "run_2",
	    .attempt = 1,
	    .timeout_ms = 2000,
	};
	struct hf_step_result res;
	CHECK(hf_luart_run_step(rt, &ctx, &res) == 0);
	return res;
}

static void expect_ev(struct hf_luart *rt, struct wfb *b, size_t step,
		      const struct hf_event *ev, const char *want)
{
	struct hf_step_result res = run_ev(rt, b, step, ev);
	char *got = json_dumps(res.output,
			       JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
	if (res.status != HF_STEP_SUCCEEDED)
		fprintf(stderr, "step %zu failed: %s\n", step, res.error);
	CHECK(res.status == HF_STEP_SUCCEEDED);
	CHECK_STR(got, want);
	free(got);
	hf_step_result_release(&res);
}

static struct hf_event *mem_event(const char *id, const char *ctype,
				  const char *body)
{
	struct hf_event *ev = hf_event_new();
	snprintf(ev->id, sizeof ev->id, "%s", id);
	ev->method = hf_xstrdup("POST");
	ev->path = hf_xstrdup("/t/42");
	ev->query = json_pack("{s:s}", "page", "2");
	ev->headers = ctype ? json_pack("{s:s,s:s}", "content-type", ctype,
					"x-github-event", "push")
			    : json_object();
	ev->body = hf_xstrdup(body);
	ev->body_len = strlen(body);
	ev->received_at = 1700000000123;
	return ev;
}

static void test_isolation(struct hf_luart *rt)
{
	/* A global of one step is gone in the next, whatever the workflow,
	 * and however it was set. */
	expect_output(rt,
		      "leak = 1 rawset(_ENV, 'leak2', 2) _G.leak3 = 3 "
		      "return leak + leak2 + leak3",
		      "6");
	expect_error(rt, "return leak", "undefined global 'leak'");
	expect_error(rt, "return leak2", "undefined global 'leak2'");
	expect_error(rt, "return leak3", "undefined global 'leak3'");
	struct wfb other;
	wf_init(&other);
	other.wf.name = "other";
	other.wf.version = "v9";
	wf_add(&other, "s",
	       "return rawget(_ENV, 'leak') == nil and "
	       "rawget(_G, 'leak2') == nil");
	struct hf_step_result r = run_wf(rt, &other, 0, 2000);
	CHECK(r.status == HF_STEP_SUCCEEDED && json_is_true(r.output));
	hf_step_result_release(&r);
	/* Sandbox globals cannot be taken away from later steps. */
	expect_output(rt, "json = nil string = nil _G.table = nil return 1",
		      "1");
	expect_output(rt,
		      "return json.encode({string.upper('a'), "
		      "table.concat({'b'})})",
		      "\"[\\\"A\\\",\\\"b\\\"]\"");
	expect_error(rt, "string.upper = nil", "read-only table 'string'");
	expect_error(rt, "json.decode = nil", "read-only table 'json'");
	expect_output(rt,
		      "pcall(function() string.upper = nil end) "
		      "return string.upper('x')",
		      "\"X\"");
	expect_output(rt, "_G = nil return 1", "1");
	expect_output(rt, "return _G == _ENV and _G.json ~= nil", "true");
	expect_output(rt, "_G = {json = 1} return type(_G.json)", "\"number\"");
	expect_output(rt, "return type(_G.json)", "\"table\"");
	expect_error(rt, "setmetatable(_ENV, {})",
		     "cannot change a protected metatable");
	/* Many globals: the environment is dropped, not kept big. */
	expect_output(rt,
		      "for i = 1, 1000 do _ENV['g' .. i] = i end "
		      "return g1000",
		      "1000");
	expect_error(rt, "return g1", "undefined global 'g1'");
	/* An environment captured by a closure reads nothing of later steps
	 * (a coroutine left suspended dies with its step). */
	expect_output(rt,
		      "local co = coroutine.wrap(function() "
		      "coroutine.yield(1) return secret end) co() "
		      "secret = 1 return 1",
		      "1");
	expect_error(rt, "return secret", "undefined global 'secret'");
	/* A chunk gets the globals its source names, or all of them when it
	 * can reach the environment. */
	expect_output(rt, "return _G['ev' .. 'ent'].id", "\"ev_1\"");
	expect_output(rt, "return _ENV['st' .. 'eps'].first.value", "10");
	expect_output(rt, "return load('return event.id')()", "\"ev_1\"");
	expect_output(rt,
		      "local n = 0 for k in pairs(_G) do n = n + 1 end "
		      "return n",
		      "5"); /* _G, event, steps, run, args */
	/* Memory stays bounded without a full collection per step. */
	for (int i = 0; i < 300; i++) {
		struct hf_step_result g = run_code(
		    rt, "local t = {} for i = 1, 2000 do t[i] = {i, 'x' .. i} "
			"end return #t");
		CHECK(g.status == HF_STEP_SUCCEEDED);
		hf_step_result_release(&g);
	}
	expect_output(rt, "return collectgarbage('count') < 8192", "true");
	expect_healthy(rt);
}

static void test_mem_event(struct hf_luart *rt)
{
	struct wfb b;
	wf_init(&b);
	b.wf.path = "/t/{id}";
	wf_add(&b, "a",
	       "local b = event.body event.body.ticket.id = 99 "
	       "b.tags[1] = 'changed' event.extra = 1 "
	       "return {b.ticket.id, b.missing == nil, b.tags[2] == json.null, "
	       "#b.tags, getmetatable(b.tags) ~= nil, event.params.id, "
	       "event.query.page, event.raw, event.received_at, event.id, "
	       "event.method, event.path, event.headers['content-type']}");
	wf_add(&b, "b",
	       "return {event.body.ticket.id, event.body.tags[1], "
	       "event.extra == nil, json.encode(event.body.empty)}");
	wf_add(&b, "c", "return event.body.ticket.id");
	const char *body = "{\"ticket\":{\"id\":7},\"missing\":null,"
			   "\"tags\":[\"a\",null],\"empty\":[]}";
	struct hf_event *ev = mem_event("ev_mem1", "application/json", body);
	char want[512];
	json_t *jbody = json_string(body);
	char *qbody = json_dumps(jbody, JSON_ENCODE_ANY);
	snprintf(want, sizeof want,
		 "[99,true,true,2,true,\"42\",\"2\",%s,"
		 "\"2023-11-14T22:13:20.123Z\",\"ev_mem1\",\"POST\",\"/t/42\","
		 "\"application/json\"]",
		 qbody);
	free(qbody);
	json_decref(jbody);
	expect_ev(rt, &b, 0, ev, want);
	/* The next steps of the run see the body as received. */
	expect_ev(rt, &b, 1, ev, "[7,\"a\",true,\"[]\"]");
	expect_ev(rt, &b, 0, ev, want); /* a retry of step a, too */
	expect_ev(rt, &b, 2, ev, "7");
	/* Another event: its own body. */
	struct hf_event *ev2 =
	    mem_event("ev_mem2", "application/json", "{\"ticket\":{\"id\":8}}");
	expect_ev(rt, &b, 2, ev2, "8");
	expect_ev(rt, &b, 1, ev, "[7,\"a\",true,\"[]\"]");
	hf_event_unref(ev2);
	hf_event_unref(ev);
	/* No body for other types, for JSON null and for invalid JSON; a
	 * form; a GitHub form's payload. */
	wf_init(&b);
	wf_add(&b, "a", "return {event.body == nil, #event.raw}");
	ev = mem_event("ev_mem3", "text/plain", "{\"a\":1}");
	expect_ev(rt, &b, 0, ev, "[true,7]");
	hf_event_unref(ev);
	ev = mem_event("ev_mem4", "application/json", "null");
	expect_ev(rt, &b, 0, ev, "[true,4]");
	hf_event_unref(ev);
	ev = mem_event("ev_mem5", "application/json", "{\"a\":");
	expect_ev(rt, &b, 0, ev, "[true,5]");
	hf_event_unref(ev);
	wf_init(&b);
	wf_add(&b, "a", "return event.body");
	ev = mem_event("ev_mem6", "application/x-www-form-urlencoded",
		       "a=1&b=x+y");
	json_decref(ev->headers);
	ev->headers = json_pack("{s:s}", "content-type",
				"application/x-www-form-urlencoded");
	expect_ev(rt, &b, 0, ev, "{\"a\":\"1\",\"b\":\"x y\"}");
	hf_event_unref(ev);
	ev = mem_event("ev_mem7", "application/x-www-form-urlencoded",
		       "payload=%7B%22n%22%3A1%7D");
	expect_ev(rt, &b, 0, ev, "{\"n\":1}");
	hf_event_unref(ev);
	ev = mem_event("ev_mem8", "application/json", "[1,null,2.5]");
	expect_ev(rt, &b, 0, ev, "[1,null,2.5]");
	hf_event_unref(ev);
	/* `if: false` needs no event at all. */
	wf_init(&b);
	struct hf_step *st = wf_add(&b, "a", "return event.body.x");
	wf_if(&b, st, "false");
	ev = mem_event("ev_mem9", "application/json", "{\"x\":1}");
	struct hf_step_result r = run_ev(rt, &b, 0, ev);
	CHECK(r.status == HF_STEP_SKIPPED);
	hf_step_result_release(&r);
	hf_event_unref(ev);
}

/* ---- limits ---- */

static void test_timeouts(struct hf_luart *rt)
{
	expect_error_t(rt, "while true do end", "step timed out after 200ms",
		       200);
	expect_healthy(rt);
	expect_error_t(rt,
		       "while true do pcall(function() while true do end "
		       "end) end",
		       "step timed out after 200ms", 200);
	expect_healthy(rt);
	expect_error_t(rt,
		       "local function f() return pcall(f) end "
		       "while true do f() end",
		       "step timed out", 200);
	expect_healthy(rt);
	expect_error_t(rt,
		       "while true do xpcall(function() while true do end "
		       "end, function() while true do end end) end",
		       "step timed out after 200ms", 200);
	expect_healthy(rt);
	expect_error_t(rt,
		       "local co = coroutine.wrap(function() while true do "
		       "pcall(function() while true do end end) end end) co()",
		       "step timed out after 200ms", 200);
	expect_healthy(rt);
	expect_error_t(rt,
		       "return string.find(string.rep('a', 50000), "
		       "'.-.-.-.-.-.-.-b')",
		       "step timed out after 200ms", 200);
	expect_healthy(rt);
	expect_error_t(rt,
		       "return (string.rep('a', 50000)):gsub('.-.-.-.-b', '')",
		       "step timed out", 200);
	expect_error_t(rt,
		       "for w in (string.rep('a', 50000)):gmatch('.-.-.-b') "
		       "do end",
		       "step timed out", 200);
	expect_error_t(rt,
		       "return pcall(string.match, string.rep('a', 50000), "
		       "'.-.-.-.-b')",
		       "step timed out", 200);
	expect_output(rt, "return (''):rep(1e15)", "\"\"");
	expect_error_t(rt, "table.move({}, 1, 1e12, 2)", "too many elements",
		       200);
	expect_error_t(rt,
		       "local t = setmetatable({}, {__len = function() "
		       "return 1e12 end}) table.insert(t, 1, 'x')",
		       "table too long", 200);
	expect_healthy(rt);
	/* The 30 s default is named as such. */
	struct wfb b;
	wf_init(&b);
	struct hf_step *s = wf_add(&b, "s", "while true do end");
	s->timeout_ms = 1000;
	struct hf_step_result r = run_wf(rt, &b, 0, 0);
	CHECK(r.error && strstr(r.error, "step timed out after 1s"));
	hf_step_result_release(&r);
}

/* Memory bombs get a long timeout: the kill must be the memory limit even
 * under valgrind, where filling 64 MiB takes seconds. */
static void expect_error_m(struct hf_luart *rt, const char *code,
			   const char *want)
{
	expect_error_t(rt, code, want, 60000);
}

static void expect_output_m(struct hf_luart *rt, const char *code,
			    const char *want)
{
	struct hf_step_result res = run_code_t(rt, code, 60000);
	char *got = json_dumps(res.output, JSON_ENCODE_ANY | JSON_COMPACT);
	if (res.status != HF_STEP_SUCCEEDED)
		fprintf(stderr, "step failed: %s\n", res.error);
	CHECK(res.status == HF_STEP_SUCCEEDED);
	CHECK_STR(got, want);
	free(got);
	hf_step_result_release(&res);
}

static void test_memory(struct hf_luart *rt)
{
	expect_error_m(rt,
		       "local t = {} while true do t[#t + 1] = "
		       "string.rep('x', 1e6) end",
		       "memory limit exceeded (64 MiB)");
	expect_healthy(rt);
	expect_error_m(rt, "local s = string.rep('x', 1e9)",
		       "memory limit exceeded (64 MiB)");
	expect_healthy(rt);
	expect_error_m(rt, "local t = {} for i = 1, 1e9 do t[i] = i end",
		       "memory limit exceeded (64 MiB)");
	expect_healthy(rt);
	/* A memory error can be caught like any other. */
	expect_output_m(rt,
			"local ok, e = pcall(string.rep, 'x', 1e9) "
			"return {ok, (e:gsub('^.*: ', ''))}",
			"[false,\"memory limit exceeded (64 MiB)\"]");
	expect_output_m(
	    rt,
	    "local t = {} local ok, e = pcall(function() while true "
	    "do t[#t + 1] = {} end end) t = nil return {ok, e}",
	    "[false,\"not enough memory\"]");
	expect_healthy(rt);
	expect_error_m(rt, "local s = 'x' while true do s = s .. s end",
		       "memory limit exceeded (64 MiB)");
	expect_healthy(rt);
	expect_error_m(rt,
		       "local t = {} for i = 1, 40 do t[i] = string.rep('y', "
		       "1e6) end return table.concat(t)",
		       "memory limit exceeded (64 MiB)");
	expect_healthy(rt);
	/* Memory is returned between steps: the same big step runs twice. */
	expect_output_m(rt,
			"local t = {} for i = 1, 30 do t[i] = string.rep('z', "
			"1e6) end return #t",
			"30");
	expect_output_m(rt,
			"local t = {} for i = 1, 30 do t[i] = string.rep('z', "
			"1e6) end return #t",
			"30");
}

/* ---- the pattern matcher against stock Lua ---- */

static const char *pattern_script =
    "local cases = {\n"
    " {'hello world', 'o w'}, {'hello', 'l+'}, {'hello', 'l*'},\n"
    " {'key = value', '(%w+)%s*=%s*(%w+)'}, {'  trim  ', '^%s*(.-)%s*$'},\n"
    " {'THE (quick) fox', '%((%a+)%)'}, {'x(a(b)c)y', '%b()'},\n"
    " {'hello', '()ll()'}, {'say \"hi\" ok', '([\"\\'])(.-)%1'},\n"
    " {'a.b', '.', 1, true}, {'a.b', '%.'}, {'hello', 'l', -2},\n"
    " {'abc', '.-$'}, {'a1-B', '[%d%-]'}, {'x', '[a'}, {'x', '%'},\n"
    " {'x', '(x'}, {'x', 'x)'}, {'x', '%1'}, {'aaa', '^a'}, {'', ''},\n"
    " {'abc', ''}, {'abc', 'x*'}, {'abc', '[^%s]+'}, {'a]b', '[]]'},\n"
    " {'a^b', '[%^]'}, {'a-b', '[a-]+'}, {'date 2024-01-05', "
    "'(%d+)-(%d+)-(%d+)'},\n"
    " {'THE (quick) fox', '%f[%a]%a+'}, {'abc', '%f[%l]'}, {'x', "
    "'%fx'},\n"
    " {'aXb', '%u'}, {'a b\\tc', '%S+'}, {'0x1F', '^0[xX](%x+)$'},\n"
    " {'caf\\195\\169', '[\\128-\\255]+'}, {'abc', 'b?c'}, {'ac', "
    "'ab?c'},\n"
    " {'[[x]]', '%[%[(.-)%]%]'}, {'a.b.c', '^(.-)%.'}, {'a.b.c', "
    "'^(.*)%.'},\n"
    " {'hello', 'h(e)(l)(l)(o)'}, {'hello', '(h)(e)(l)(l)(o)()'},\n"
    " {'abc', 'b', 10}, {'abc', 'b', -10}, {'abc', '', 4}, {'abc', '', "
    "5},\n"
    " {'x$y', '$y'}, {'xy$', 'y$'}, {'a+b', 'a+b', 1, true}, {'x', "
    "'%g'},\n"
    " {'ab', '%bab'}, {'((a)', '%b()'}, {'a', '%b'}, {'aaa', 'a-b'},\n"
    "}\n"
    "local out = {}\n"
    "local function ser(...) local t = {} for i = 1, select('#', ...) do "
    "t[#t+1] = tostring((select(i, ...))) end return "
    "table.concat(t, ',') end\n"
    "for i, c in ipairs(cases) do\n"
    " out[#out+1] = i .. ' find ' .. ser(pcall(string.find, c[1], c[2], "
    "c[3], c[4]))\n"
    " out[#out+1] = i .. ' match ' .. ser(pcall(string.match, c[1], c[2], "
    "c[3]))\n"
    " out[#out+1] = i .. ' gsub ' .. ser(pcall(string.gsub, c[1], c[2], "
    "'<%0>'))\n"
    " out[#out+1] = i .. ' gsubf ' .. ser(pcall(string.gsub, c[1], c[2], "
    "function(a, b) return b and (a .. '|' .. tostring(b)) end, 3))\n"
    " out[#out+1] = i .. ' gmatch ' .. ser(pcall(function() local r = {} "
    "for a, b in string.gmatch(c[1], c[2]) do r[#r+1] = tostring(a) .. "
    "'/' .. tostring(b) end return table.concat(r, ';') end))\n"
    "end\n"
    "out[#out+1] = ser(('$name is $age'):gsub('%$(%w+)', {name = 'bob', "
    "age = 3}))\n"
    "out[#out+1] = ser(('abc'):gsub('%w', '%0%0'))\n"
    "out[#out+1] = ser(('abc'):gsub('(b)', '[%1%%]'))\n"
    "out[#out+1] = ser(pcall(string.gsub, 'abc', 'b', '%2'))\n"
    "out[#out+1] = ser(pcall(string.gsub, 'abc', 'b', '%'))\n"
    "out[#out+1] = ser(pcall(string.gsub, 'abc', 'b', {b = true}))\n"
    "out[#out+1] = ser(pcall(string.gsub, 'abc', 'b', 1))\n"
    "out[#out+1] = ser(('abc'):gsub('', '-'))\n"
    "out[#out+1] = ser(('hello world'):gsub('o', '0', 1))\n"
    "out[#out+1] = ser(string.gmatch('abcabc', 'b', 3)())\n"
    "out[#out+1] = ser(('x'):rep(3, ','))\n"
    "out[#out+1] = ser(pcall(string.rep))\n"
    "out[#out+1] = ser(pcall(string.gsub, 'x', 'x'))\n"
    "return table.concat(out, '\\n')\n";

static void test_patterns(struct hf_luart *rt)
{
	/* Stock Lua's answers. */
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	CHECK(luaL_loadbuffer(L, pattern_script, strlen(pattern_script),
			      "=workflows/test.yml") == LUA_OK &&
	      lua_pcall(L, 0, 1, 0) == LUA_OK);
	const char *want = lua_tostring(L, -1);

	struct hf_step_result r = run_code(rt, pattern_script);
	CHECK(r.status == HF_STEP_SUCCEEDED);
	const char *got = json_string_value(r.output);
	if (want && got && strcmp(want, got) != 0) {
		/* Print the first differing line. */
		const char *a = want, *b = got;
		while (*a && *a == *b)
			a++, b++;
		while (a > want && a[-1] != '\n')
			a--, b--;
		fprintf(stderr,
			"pattern mismatch:\n  lua:  %.200s\n  ours: "
			"%.200s\n",
			a, b);
	}
	CHECK_STR(got, want);
	hf_step_result_release(&r);
	lua_close(L);
}

/* ---- expressions ---- */

static void test_eval(void)
{
	struct hf_luart_config cfg = {.expr_only = true};
	struct hf_error err;
	struct hf_luart *rt = hf_luart_create(&cfg, &err);
	CHECK(rt != NULL);
	struct hf_expr e = {.src = "event.body.ticket.status == 'new'",
			    .chunk = "return (event.body.ticket.status == "
				     "'new')"};
	json_t *v;
	char *msg;
	CHECK(hf_luart_eval(rt, "v1:if", &e, g_event, &v, &msg) == 0);
	CHECK(json_is_true(v));
	CHECK(hf_json_truthy(v));
	json_decref(v);

	e.chunk = "return event.headers['x-delivery']";
	CHECK(hf_luart_eval(rt, "v1:dedupe", &e, g_event, &v, &msg) == 0);
	CHECK(json_is_string(v) && strcmp(json_string_value(v), "d1") == 0);
	json_decref(v);

	e.chunk = "return event.nothing";
	CHECK(hf_luart_eval(rt, "v1:x", &e, g_event, &v, &msg) == 0);
	CHECK(json_is_null(v) && !hf_json_truthy(v));
	json_decref(v);

	e.chunk = "return crypto.sha256(json.encode(event.body.tags)):sub(1, "
		  "4)";
	CHECK(hf_luart_eval(rt, "v1:y", &e, g_event, &v, &msg) == 0);
	CHECK(json_is_string(v));
	json_decref(v);

	e.chunk = "return db";
	CHECK(hf_luart_eval(rt, "v1:db", &e, g_event, &v, &msg) == -1);
	CHECK(msg && strstr(msg, "undefined global 'db'"));
	free(msg);
	e.chunk = "return log";
	CHECK(hf_luart_eval(rt, "v1:log", &e, g_event, &v, &msg) == -1);
	CHECK(msg && strstr(msg, "undefined global 'log'"));
	free(msg);
	e.chunk = "return require";
	CHECK(hf_luart_eval(rt, "v1:req", &e, g_event, &v, &msg) == -1);
	free(msg);

	e.chunk = "local i = 0 while true do i = i + 1 end";
	CHECK(hf_luart_eval(rt, "v1:loop", &e, g_event, &v, &msg) == -1);
	CHECK(msg && strstr(msg, "expression exceeded its budget of 1000000 "
				 "instructions"));
	free(msg);
	e.chunk = "return string.find(string.rep('a', 50000), "
		  "'.-.-.-.-.-.-.-b')";
	CHECK(hf_luart_eval(rt, "v1:pat", &e, g_event, &v, &msg) == -1);
	/* The budget, or (slow machines, valgrind) the wall-clock backstop. */
	CHECK(msg && (strstr(msg, "expression exceeded its budget") ||
		      strstr(msg, "expression timed out after 1s")));
	free(msg);
	e.chunk = "local u = ('x'):rep(1000) local a = u:rep(5000) "
		  "local b = u:rep(5000)";
	CHECK(hf_luart_eval(rt, "v1:mem", &e, g_event, &v, &msg) == -1);
	if (!msg || !strstr(msg, "memory limit exceeded (8 MiB)"))
		fprintf(stderr, "expression memory: %s\n", msg);
	CHECK(msg && strstr(msg, "memory limit exceeded (8 MiB)"));
	free(msg);
	e.chunk = "return function() end";
	CHECK(hf_luart_eval(rt, "v1:fn", &e, g_event, &v, &msg) == -1);
	CHECK(msg && strstr(msg, "expression value is not JSON-shaped: "
				 "value: cannot convert a function"));
	free(msg);
	e.chunk = "return (";
	CHECK(hf_luart_eval(rt, "v1:syn", &e, g_event, &v, &msg) == -1);
	CHECK(msg != NULL);
	free(msg);
	/* Still fine after all that. */
	e.chunk = "return 1 + 1";
	CHECK(hf_luart_eval(rt, "v1:ok", &e, g_event, &v, &msg) == 0);
	CHECK(json_integer_value(v) == 2);
	json_decref(v);

	struct hf_step_ctx ctx = {0};
	struct hf_step_result res;
	CHECK(hf_luart_run_step(rt, &ctx, &res) == -1);
	CHECK(res.status == HF_STEP_FAILED);
	hf_step_result_release(&res);
	hf_luart_destroy(rt);

	CHECK(!hf_json_truthy(NULL));
	json_t *f = json_false();
	CHECK(!hf_json_truthy(f));
	json_t *z = json_integer(0);
	CHECK(hf_json_truthy(z)); /* 0 is true in Lua */
	json_decref(z);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* ---- retry.after, retry.never ---- */

/* The step must fail with want in its error and the retry request given
 * (after: delay >= 0; never: delay -2; neither: -1). */
static void expect_retry(struct hf_luart *rt, const char *code,
			 const char *want, int64_t delay)
{
	struct hf_step_result res = run_code(rt, code);
	CHECK(res.status == HF_STEP_FAILED);
	if (!res.error || !strstr(res.error, want))
		fprintf(stderr, "retry error for %s\n  got: %s\n", code,
			res.error ? res.error : "(none)");
	CHECK(res.error && strstr(res.error, want));
	CHECK(res.retry_never == (delay == -2));
	CHECK(res.retry_after == (delay >= 0));
	if (delay >= 0)
		CHECK(res.retry_delay_ms == delay);
	hf_step_result_release(&res);
}

static void test_retry(struct hf_luart *rt)
{
	expect_retry(rt, "retry.after(2, 'rate limited')", "rate limited",
		     2000);
	expect_retry(rt, "retry.after('2')", "retry.after: retry in 2s", 2000);
	expect_retry(rt, "retry.after('1.5m', 'x')", "x", 90000);
	expect_retry(rt, "retry.after(0.25)", "retry in 250ms", 250);
	expect_retry(rt, "retry.after('Sun, 06 Nov 1994 08:49:37 GMT')",
		     "retry in 0s", 0);
	expect_retry(rt, "retry.never('gone for good')", "gone for good", -2);
	expect_retry(rt, "retry.never()", "retry.never", -2);
	/* Caught by pcall, the request still fails the attempt. */
	expect_retry(rt, "pcall(retry.after, 5, 'caught') return 1", "caught",
		     5000);
	expect_retry(rt, "pcall(retry.after, 5) retry.never('last wins')",
		     "last wins", -2);
	/* Bad delays fail the step like any error, with no request. */
	expect_retry(rt, "retry.after(-1)", "retry.after: negative delay", -1);
	expect_retry(rt, "retry.after('-3s')",
		     "retry.after: negative delay '-3s'", -1);
	expect_retry(rt, "retry.after('soon')",
		     "retry.after: invalid delay 'soon'", -1);
	expect_retry(rt, "retry.after(0/0)", "not a number", -1);
	expect_retry(rt, "retry.after({})", "(got table)", -1);
	expect_retry(rt, "retry.after()", "(got nil)", -1);
	/* Nothing is left over for the next step. */
	expect_output(rt, "return 1", "1");
	expect_error(rt, "retry.after = nil", "read-only");
}

int main(void)
{
	char scripts[512], data[512], path[600];
	tmpdir_create("luart");
	tmpdir_file(scripts, sizeof scripts, "scripts");
	tmpdir_file(data, sizeof data, "data.db");
	mkdir(scripts, 0700);
	snprintf(path, sizeof path, "%s/lib", scripts);
	mkdir(path, 0700);
	snprintf(path, sizeof path, "%s/mod.lua", scripts);
	write_file(path, "return {x = 1}\n");
	snprintf(path, sizeof path, "%s/lib/util.lua", scripts);
	write_file(path, "local M = {}\nfunction M.who() return event.id end\n"
			 "return M\n");
	snprintf(path, sizeof path, "%s/noret.lua", scripts);
	write_file(path, "local x = 1\n");
	snprintf(path, sizeof path, "%s/bad.lua", scripts);
	write_file(path, "return (\n");

	g_event = test_event();
	json_error_t je;
	g_steps =
	    json_loads("{\"first\":{\"value\":10},\"nothing\":null}", 0, &je);

	struct hf_luart_config cfg = {
	    .scripts_dir = scripts,
	    .data_path = data,
	    .data_sync_full = false,
	};
	struct hf_error err;
	struct hf_luart *rt = hf_luart_create(&cfg, &err);
	CHECK(rt != NULL);
	if (!rt)
		return tap_done();

	test_outputs(rt);
	test_globals(rt);
	test_if_with(rt);
	test_log(rt);
	test_env_crypto_json(rt);
	test_db(rt);
	test_db_locked(rt, data);
	test_require(rt, scripts);
	test_sandbox(rt);
	test_timeouts(rt);
	test_memory(rt);
	test_patterns(rt);
	test_retry(rt);
	test_isolation(rt);
	test_mem_event(rt);
	expect_healthy(rt);
	hf_luart_destroy(rt);

	/* A bad data path is reported. */
	cfg.data_path = "/nonexistent/dir/data.db";
	CHECK(hf_luart_create(&cfg, &err) == NULL);
	CHECK(strstr(err.msg, "cannot open data database") != NULL);

	test_eval();

	json_decref(g_event);
	json_decref(g_steps);
	CHECK(tmpdir_remove() == 0);
	return tap_done();
}
