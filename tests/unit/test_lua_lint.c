/* test_lua_lint.c - the unknown-global lint (lua_lint.c): what its lexer
 * skips (strings, long brackets, comments, fields, table keys), what counts as
 * declared, the did-you-mean, and that its list of globals is exactly what
 * real runtimes define (a step's, with db and require; an expression's). */
#include "../../engine/luart_int.h"
#include "hf_lua_lint.h"
#include "hf_run.h"
#include "tap.h"
#include "tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct found {
	char text[2048];
	size_t len;
};

static void collect(void *ud, const struct hf_lua_unknown *u)
{
	struct found *f = ud;
	int n = snprintf(f->text + f->len, sizeof f->text - f->len,
			 "%s%.*s@%d:%d%s%s", f->len ? " " : "", (int)u->len,
			 u->name, u->line, u->col, u->suggest ? ">" : "",
			 u->suggest ? u->suggest : "");
	if (n > 0 && (size_t)n < sizeof f->text - f->len)
		f->len += (size_t)n;
}

/* The unknown globals of src as "name@line:col>suggestion ...". */
static const char *lint(const char *src, unsigned where)
{
	static struct found f;
	memset(&f, 0, sizeof f);
	size_t n = hf_lua_lint(src, strlen(src), where, collect, &f);
	CHECK(n == 0 || f.len > 0);
	return f.text;
}

static const char *step(const char *src)
{
	return lint(src, HF_LUA_IN_STEP);
}

static void test_typos(void)
{
	CHECK_STR(step("return evnt.body.x"), "evnt@1:8>event");
	CHECK_STR(step("local x = 1\nreturn jsn.encode(x)"), "jsn@2:8>json");
	CHECK_STR(step("return stirng.upper('a')"), "stirng@1:8>string");
	CHECK_STR(step("return ipairz"), "ipairz@1:8>ipairs");
	/* far from every global: no suggestion; each read is reported */
	CHECK_STR(step("return frobnicate(frobnicate)"),
		  "frobnicate@1:8 frobnicate@1:19");
	/* short names get no far-fetched suggestion */
	CHECK_STR(step("return q"), "q@1:8");
	/* io, debug, dofile are not in the sandbox */
	CHECK_STR(step("io.write(1) debug.traceback() dofile('x')"),
		  "io@1:1 debug@1:13 dofile@1:31");
}

static void test_not_reads(void)
{
	/* fields, methods, table keys */
	CHECK_STR(step("return event.evnt, event:evnt(), { evnt = 1 }"), "");
	CHECK_STR(step("local t = { a = 1, b = { c = 2 }; d = 3 }\n"
		       "return t.a, t['zz'], {[1] = 2}"),
		  "");
	/* strings and comments of every form */
	CHECK_STR(step("-- evnt\n--[[ evnt\nevnt ]]\n--[==[ evnt ]] ]==]\n"
		       "return 'evnt', \"ev\\\"nt evnt\", [[evnt]], "
		       "[=[ ]] evnt ]=]"),
		  "");
	CHECK_STR(step("return \"a\\z\n   b\", evnt"), "evnt@2:8>event");
	/* a key after a comma in a call is a read, not a key */
	CHECK_STR(step("f = print\nf(1, evnt)"), "evnt@2:6>event");
	/* numbers are not names */
	CHECK_STR(step("return 0x1fp3 + 1e-5 + 3.25E+2 + .5"), "");
	/* shebang line */
	CHECK_STR(step("#!/usr/bin/lua evnt\nreturn 1"), "");
}

static void test_declared(void)
{
	CHECK_STR(step("local a, b <const> = 1, 2\nlocal function f(x, ...)"
		       " return x end\nreturn f(a + b)"),
		  "");
	CHECK_STR(step("for k, v in pairs(event) do print(k, v) end\n"
		       "for i = 1, 3 do print(i) end"),
		  "");
	CHECK_STR(step("function helper(p) return p end\nreturn helper(1)"),
		  "");
	CHECK_STR(step("local M = {}\nfunction M.f(a) return a end\n"
		       "function M:g() return self end\nreturn M"),
		  "");
	CHECK_STR(step("counter = 0\ncounter = counter + 1\nreturn counter"),
		  "");
	CHECK_STR(step("x, y = 1, 2\nreturn x + y"), "");
	CHECK_STR(step("::top:: goto top"), "");
	CHECK_STR(step("return function(a, b) return a + b end"), "");
	CHECK_STR(step("local t = {}\nt.x, u = 1, 2\nreturn u"), "");
	/* a method's table must exist */
	CHECK_STR(step("function Mod.f() end"), "Mod@1:10>load");
	CHECK_STR(step("return _ENV, _G, _VERSION"), "");
	/* a key inside a function inside a table is an assignment */
	CHECK_STR(step("local t = { f = function() z = 1 end }\nreturn z"), "");
}

static void test_where(void)
{
	/* a step's if: has no args; workflow-level expressions no db, log,
	 * steps, run */
	CHECK_STR(lint("args.x and steps.a", HF_LUA_IN_IF), "args@1:1");
	CHECK_STR(
	    lint("db and log and steps and run and event", HF_LUA_IN_EXPR),
	    "db@1:1 log@1:8 steps@1:16 run@1:26");
	CHECK_STR(lint("json.encode(event) .. crypto.sha256(env('X'))",
		       HF_LUA_IN_EXPR),
		  "");
	CHECK_STR(step("retry.after(5) http.get('x') webhook.emit() "
		       "db.query() require('m') log.info(args, steps, run)"),
		  "");
	/* a wait_for's or cancel_on's if: has `signal` and what expressions
	 * have; nothing else has `signal` */
	CHECK_STR(lint("signal.body.id == event.body.id and json and steps",
		       HF_LUA_IN_SIGNAL),
		  "steps@1:46");
	CHECK_STR(lint("signal", HF_LUA_IN_EXPR), "signal@1:1");
	CHECK_STR(lint("signal", HF_LUA_IN_STEP), "signal@1:1");
	unsigned w = hf_lua_global_where("args", 4);
	CHECK(w == HF_LUA_IN_STEP);
	CHECK(hf_lua_global_where("retry", 5) ==
	      (HF_LUA_IN_IF | HF_LUA_IN_STEP));
	CHECK(hf_lua_global_where("io", 2) == 0);
}

static void on_req(void *ud, const char *name, size_t n)
{
	struct found *f = ud;
	int k = snprintf(f->text + f->len, sizeof f->text - f->len, "%s%.*s",
			 f->len ? " " : "", (int)n, name);
	if (k > 0 && (size_t)k < sizeof f->text - f->len)
		f->len += (size_t)k;
}

static void test_requires(void)
{
	struct found f = {0};
	const char *src = "local a = require('lib.util')\nlocal b = require "
			  "\"mod\"\nlocal c = require(name)\nx.require('no')";
	hf_lua_lint_requires(src, strlen(src), on_req, &f);
	CHECK_STR(f.text, "lib.util mod");
}

/* Robustness: unfinished strings, comments, brackets; NUL bytes. */
static void test_total(void)
{
	static const char *const bad[] = {
	    "return 'abc", "--[[ open", "[==[ x ]=]", "((((({{{{",
	    "end end",	   "local",	"function",   "for",
	    "local x <",   "a.",	"::",	      "= = ="};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		lint(bad[i], HF_LUA_IN_STEP);
	const char nul[] = "a\0b = c";
	struct found f = {0};
	hf_lua_lint(nul, sizeof nul - 1, HF_LUA_IN_STEP, collect, &f);
	CHECK(f.len > 0);
	CHECK_STR(step("return 'unfinished\nevnt"), "evnt@2:1>event");
}

/* Every string key of table idx is defined in `where`. */
static void keys_defined(lua_State *L, int idx, unsigned where)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		size_t n;
		const char *k = lua_tolstring(L, -1, &n);
		bool ok = lua_type(L, -1) == LUA_TSTRING &&
			  (hf_lua_global_where(k, n) & where);
		if (!ok)
			fprintf(stderr, "global '%s' is not in the list\n", k);
		CHECK(ok);
	}
}

/* Every name listed for `where` is a key of table idx or of extra[]. */
static void listed_exist(lua_State *L, int idx, unsigned where,
			 const char *const *extra)
{
	const char *name;
	unsigned w;
	for (size_t i = 0; hf_lua_global_at(i, &name, &w); i++) {
		if (!(w & where))
			continue;
		bool ok = lua_getfield(L, idx, name) != LUA_TNIL;
		lua_pop(L, 1);
		for (const char *const *e = extra; !ok && *e; e++)
			ok = strcmp(*e, name) == 0;
		if (!ok)
			fprintf(stderr, "listed global '%s' is not defined\n",
				name);
		CHECK(ok);
	}
}

/* The names a step's environment holds itself (luart.c), from a step. */
static void test_step_env(struct hf_luart *rt)
{
	static struct hf_workflow wf;
	static struct hf_step st;
	st.id = "s";
	st.code = "local t = {} for k in next, _G do t[#t + 1] = k end "
		  "return t";
	st.code_name = "=test";
	st.retry_attempts = 1;
	wf.name = "t";
	wf.file = "t.yml";
	wf.version = "v";
	wf.steps = &st;
	wf.nsteps = 1;
	struct hf_step_ctx ctx = {.wf = &wf, .run_id = "r", .timeout_ms = 2000};
	struct hf_step_result res;
	CHECK(hf_luart_run_step(rt, &ctx, &res) == 0);
	CHECK(json_is_array(res.output) && json_array_size(res.output) >= 4);
	size_t i;
	json_t *v;
	json_array_foreach(res.output, i, v)
	{
		const char *k = json_string_value(v);
		CHECK(k &&
		      (hf_lua_global_where(k, strlen(k)) & HF_LUA_IN_STEP));
	}
	hf_step_result_release(&res);
}

static void test_runtimes(void)
{
	char scripts[512], data[512];
	tmpdir_create("lua_lint");
	tmpdir_file(scripts, sizeof scripts, "scripts");
	tmpdir_file(data, sizeof data, "data.db");
	mkdir(scripts, 0700);
	struct hf_error err;
	struct hf_luart_config step_cfg = {.scripts_dir = scripts,
					   .data_path = data};
	struct hf_luart *rt = hf_luart_create(&step_cfg, &err);
	CHECK(rt != NULL);
	if (rt) {
		lua_State *L = rt->L;
		lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
		keys_defined(L, lua_gettop(L), HF_LUA_IN_STEP);
		static const char *const env[] = {"event",  "steps", "run",
						  "args",   "_G",    "failure",
						  "events", NULL};
		listed_exist(L, lua_gettop(L), HF_LUA_IN_STEP, env);
		lua_pop(L, 1);
		test_step_env(rt);
		hf_luart_destroy(rt);
	}
	struct hf_luart_config expr_cfg = {.expr_only = true};
	rt = hf_luart_create(&expr_cfg, &err);
	CHECK(rt != NULL);
	if (rt) {
		lua_State *L = rt->L;
		lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
		keys_defined(L, lua_gettop(L), HF_LUA_IN_EXPR);
		static const char *const env[] = {"event", "_G", NULL};
		listed_exist(L, lua_gettop(L), HF_LUA_IN_EXPR, env);
		lua_pop(L, 1);
		hf_luart_destroy(rt);
	}
	tmpdir_remove();
}

int main(void)
{
	test_typos();
	test_not_reads();
	test_declared();
	test_where();
	test_requires();
	test_total();
	test_runtimes();
	return tap_done();
}
