/* luart.c - the Lua 5.4 runtime: one lua_State, its memory and time limits
 * (enforced by luart_limits.c), and the execution of steps and workflow-level
 * expressions.
 *
 * Limits: a counting lua_Alloc refuses allocations past the step's baseline +
 * memory limit; a count hf_luart_hook compares the clock with the deadline and,
 * once past it, fires on every instruction so pcall cannot swallow the kill. C
 * functions that could run long without reaching the hf_luart_hook are replaced
 * by the sandbox (lua_sandbox.c), the pattern functions by a matcher that
 * charges its backtracking here (lua_pattern.c).
 *
 * Steps share one environment table, emptied after each step; a chunk gets
 * only the globals its source can read (chunk_needs), so `if: false` builds
 * no event; the event of a worker's step is built from the in-memory event
 * (lua_event.c). The collector runs in generational mode, with a full
 * collection only after a failed step or past HF_LUA_GC_SLACK.
 *
 * Owns the lua_State, the cache of compiled chunks, the per-runtime db
 * connection (lua_db.c), http client and emit queue, and the step's log array
 * while the step runs; does not decide what a step may call (lua_sandbox.c).
 * Threading: a runtime is used by one thread only (assert()ed at the entry
 * points; it may be created on another thread and handed over before its first
 * use). Neighbours: lua_sandbox.c, lua_pattern.c, lua_json.c, lua_lib.c,
 * lua_db.c, lua_http.c, lua_webhook.c (a step's emits go to its result only
 * when it succeeds), lua_event.c, lua_json_decode.c, run.c (the result
 * types). */
#include "hf_limits.h"
#include "hf_lua_json.h"
#include "luart_int.h"

#include <assert.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Registry keys: those of luart_int.h, and the chunk cache's. */
const char hf_luart_envmt_key = 0;
const char hf_luart_env_key = 0;
const char hf_luart_loaded_key = 0;
static const char chunks_key = 0; /* compiled chunks by cache key */
static const char signal_key = 0; /* the kept `signal` (push_signal) */

/* ---- creation ---- */

/* Under lua_pcall: the sandbox, then the empty chunk cache. */
static int init(lua_State *L)
{
	struct hf_luart *rt = lua_touserdata(L, 1);
	lua_settop(L, 0);
	hf_lua_sandbox_open(L, rt);
	lua_newtable(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &chunks_key);
	return 0;
}

struct hf_luart *hf_luart_create(const struct hf_luart_config *cfg,
				 struct hf_error *err)
{
	struct hf_luart *rt = hf_xcalloc(1, sizeof *rt);
	rt->expr_only = cfg->expr_only;
	rt->memory_limit = cfg->memory_limit ? cfg->memory_limit
			   : cfg->expr_only  ? HF_EXPR_MEMORY
					     : HF_LUA_MEMORY;
	rt->budget = -1;
	if (!cfg->expr_only && cfg->scripts_dir)
		rt->scripts_dir = hf_xstrdup(cfg->scripts_dir);
	if (!cfg->expr_only && cfg->data_path) {
		rt->db = hf_lua_db_open(cfg->data_path, cfg->data_sync_full,
					cfg->max_value, err);
		if (!rt->db)
			goto fail;
	}
	if (!cfg->expr_only) {
		rt->http = hf_lua_http_create(cfg->egress);
		rt->webhook = hf_lua_webhook_create();
	}
	rt->L = lua_newstate(hf_luart_alloc, rt);
	if (!rt->L) {
		hf_error_set(err, NULL, 0, 0, "cannot create a Lua state");
		goto fail;
	}
	lua_pushcfunction(rt->L, init);
	lua_pushlightuserdata(rt->L, rt);
	if (lua_pcall(rt->L, 1, 0, 0) != LUA_OK) {
		hf_error_set(err, NULL, 0, 0,
			     "cannot set up the Lua sandbox: %s",
			     lua_tostring(rt->L, -1));
		goto fail;
	}
	lua_settop(rt->L, 0);
	lua_gc(rt->L, LUA_GCCOLLECT);
	lua_gc(rt->L, LUA_GCGEN, 0, 0);
	rt->gc_base = rt->used;
	return rt;
fail:
	hf_luart_destroy(rt);
	return NULL;
}

void hf_luart_destroy(struct hf_luart *rt)
{
	if (!rt)
		return;
	if (rt->L) {
		rt->limit = 0;
		lua_close(rt->L);
	}
	hf_lua_db_close(rt->db);
	hf_lua_http_destroy(rt->http);
	hf_lua_webhook_destroy(rt->webhook);
	free(rt->scripts_dir);
	free(rt);
}

/* ---- running ---- */

#ifndef NDEBUG
/* True when the calling thread is the runtime's owner: the first thread to
 * run something on it (the worker pool creates runtimes on the main thread,
 * then hands each to its worker before its first use). Debug builds only. */
static bool owned_by_caller(struct hf_luart *rt)
{
	pthread_t self = pthread_self();
	if (!rt->owned) {
		rt->owner = self;
		rt->owned = true;
	}
	return pthread_equal(rt->owner, self);
}
#endif

/* Message handler: the error with a traceback. It runs no script code (an
 * error object's __tostring is not called) and leaves the hf_luart_hook and the
 * memory limit on: Lua runs the pending __close handlers after it, and they
 * must stay under the step's limits. Only the traceback gets a small reserve
 * above the limit (reset, not added, at each call), and a long message is cut.
 */
static int msgh(lua_State *L)
{
	struct hf_luart *rt = hf_luart_of(L);
	if (rt->step_limit)
		rt->limit = rt->step_limit + HF_LUA_ERROR_RESERVE;
	size_t len = 0;
	const char *msg = lua_tolstring(L, 1, &len); /* no metamethods */
	if (!msg)
		msg = lua_pushfstring(L, "(error object is a %s value)",
				      luaL_typename(L, 1));
	else if (len > HF_LUA_ERROR_MAX)
		msg = lua_pushfstring(
		    L, "%s...", lua_pushlstring(L, msg, HF_LUA_ERROR_MAX));
	luaL_traceback(L, L, msg, 1);
	rt->limit = rt->step_limit;
	return 1;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* What a chunk may read of a step's globals, see set_step_globals. */
enum {
	NEED_EVENT = 1,
	NEED_STEPS = 2,
	NEED_RUN = 4,
	NEED_ALL = NEED_EVENT | NEED_STEPS | NEED_RUN,
};

/* The globals src can read: Lua reads a global by its name, which must then
 * be in the source, unless the code reaches the environment itself (_ENV,
 * _G) or runs code it does not show (load, require): then all of them.
 * Conservative: a name in a string or a comment counts too. */
static int chunk_needs(const char *src)
{
	static const char *const dynamic[] = {"_ENV", "_G", "load", "require",
					      NULL};
	for (int i = 0; dynamic[i]; i++)
		if (strstr(src, dynamic[i]))
			return NEED_ALL;
	return (strstr(src, "event") ? NEED_EVENT : 0) |
	       (strstr(src, "steps") ? NEED_STEPS : 0) |
	       (strstr(src, "run") ? NEED_RUN : 0);
}

/* Pushes the compiled chunk for src, from the cache or compiled now (text
 * mode), and returns what it needs (chunk_needs, cached with it:
 * cache[fn]). The key holds a hash of the source, so a stale entry is never
 * run even if two workflows share a version string. Raises on syntax
 * errors. */
static int push_chunk(lua_State *L, struct hf_luart *rt, const char *key,
		      const char *src, const char *chunkname)
{
	int base = lua_gettop(L);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &chunks_key);		   /* +1 */
	lua_pushfstring(L, "%s:%I", key, (lua_Integer)fnv1a(src)); /* +2 */
	lua_pushvalue(L, base + 2);
	if (lua_rawget(L, base + 1) == LUA_TFUNCTION) { /* +3 */
		lua_pushvalue(L, base + 3);
		lua_rawget(L, base + 1);
		int needs = (int)lua_tointeger(L, -1);
		lua_copy(L, base + 3, base + 1);
		lua_settop(L, base + 1);
		return needs;
	}
	lua_pop(L, 1);
	if (luaL_loadbufferx(L, src, strlen(src), chunkname, "t") != LUA_OK)
		lua_error(L);
	int needs = chunk_needs(src);
	if (++rt->nchunks > HF_LUA_CHUNK_CACHE) {
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &chunks_key);
		lua_replace(L, base + 1);
		rt->nchunks = 1;
	}
	lua_pushvalue(L, base + 2);
	lua_pushvalue(L, base + 3);
	lua_rawset(L, base + 1); /* cache[key] = fn */
	lua_pushvalue(L, base + 3);
	lua_pushinteger(L, needs);
	lua_rawset(L, base + 1); /* cache[fn] = needs */
	lua_copy(L, base + 3, base + 1);
	lua_settop(L, base + 1);
	return needs;
}

/* Pushes the runtime's step environment (made on first use) and makes it
 * the current one. It is emptied after each step (clear_env). */
static int push_env(lua_State *L)
{
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &hf_luart_env_key) == LUA_TTABLE)
		return lua_gettop(L);
	lua_pop(L, 1);
	lua_createtable(L, 0, 8);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &hf_luart_envmt_key);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	lua_setfield(L, -2, "_G");
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &hf_luart_env_key);
	return lua_gettop(L);
}

/* Empties the step environment after a step: every global it set goes, _G
 * stays (an environment whose _G the step changed is dropped, and so is one
 * that held more than HF_LUA_ENV_KEEP globals: the next step makes a small
 * one). Only clears fields: allocates nothing, never raises. */
static void clear_env(lua_State *L)
{
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &hf_luart_env_key) !=
	    LUA_TTABLE) {
		lua_pop(L, 1);
		return;
	}
	int env = lua_gettop(L), n = 0;
	bool g = false;
	lua_pushnil(L);
	while (lua_next(L, env)) {
		n++;
		if (lua_rawequal(L, -1, env) &&
		    lua_type(L, -2) == LUA_TSTRING &&
		    strcmp(lua_tostring(L, -2), "_G") == 0) {
			g = true;
			lua_pop(L, 1);
			continue;
		}
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_pushnil(L);
		lua_rawset(L, env);
	}
	if (!g || n > HF_LUA_ENV_KEEP) {
		lua_pushnil(L);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &hf_luart_env_key);
	}
	lua_settop(L, env - 1);
}

/* Makes env the _ENV (first upvalue) of the chunk at fidx. The cached
 * function is shared by every run, but steps run one at a time on a runtime,
 * so setting the upvalue before each call is enough. */
static void set_env(lua_State *L, int fidx, int env)
{
	fidx = lua_absindex(L, fidx);
	lua_pushvalue(L, env);
	lua_setupvalue(L, fidx, 1);
}

static bool lua_truthy(lua_State *L, int idx)
{
	return lua_toboolean(L, idx) && !hf_lua_is_null(L, idx);
}

static const char *yaml_chunkname(lua_State *L, const struct hf_workflow *wf)
{
	/* "@": Lua keeps the end of a long path ("...srv0/x.yml:9:"), where
	 * "=" would keep its beginning and lose the file name. */
	return lua_pushfstring(
	    L, "@%s", wf->file ? wf->file : (wf->name ? wf->name : "workflow"));
}

/* Sets those of the step's globals event, steps and run that want names and
 * *have does not, in the environment at env. */
static void set_step_globals(lua_State *L, int env,
			     const struct hf_step_ctx *ctx, int want, int *have)
{
	want &= ~*have;
	*have |= want;
	if (want & NEED_EVENT) {
		if (ctx->ev)
			hf_lua_push_event(L, hf_luart_of(L), ctx->ev, ctx->wf,
					  ctx->step + 1 < ctx->wf->nsteps,
					  false);
		else if (ctx->event)
			hf_lua_push_json(L, ctx->event);
		else
			lua_newtable(L);
		lua_setfield(L, env, "event");
	}

	if (want & NEED_STEPS) {
		lua_newtable(L);
		if (json_is_object(ctx->steps)) {
			const char *k;
			size_t klen;
			json_t *v;
			json_object_keylen_foreach(ctx->steps, k, klen, v)
			{
				if (json_is_null(v))
					continue; /* nil, like a skipped
						     step */
				lua_pushlstring(L, k, klen);
				hf_lua_push_json(L, v);
				lua_rawset(L, -3);
			}
		}
		lua_setfield(L, env, "steps");
	}

	if (want & NEED_RUN) {
		lua_createtable(L, 0, 3);
		lua_pushstring(L, ctx->run_id ? ctx->run_id : "");
		lua_setfield(L, -2, "id");
		lua_pushstring(L, ctx->wf->name ? ctx->wf->name : "");
		lua_setfield(L, -2, "workflow");
		lua_pushinteger(L, ctx->attempt > 0 ? ctx->attempt : 1);
		lua_setfield(L, -2, "attempt");
		if (ctx->resume_url) { /* hf_park.h */
			lua_pushstring(L, ctx->resume_url);
			lua_setfield(L, -2, "resume_url");
		}
		lua_setfield(L, env, "run");
	}
}

/* Under lua_pcall: builds the environment, evaluates `if:` and `with:`, runs
 * the code. Returns (ran, output). */
static int step_main(lua_State *L)
{
	struct hf_luart *rt = lua_touserdata(L, 1);
	const struct hf_step_ctx *ctx = rt->ctx;
	const struct hf_workflow *wf = ctx->wf;
	const struct hf_step *st = &wf->steps[ctx->step];
	const char *ver = wf->version ? wf->version : "";
	lua_settop(L, 0);
	int env = push_env(L), have = 0;
	if (ctx->failure) { /* an on_failure step's */
		hf_lua_push_json(L, ctx->failure);
		lua_setfield(L, env, "failure");
	}
	if (ctx->events) { /* a debounced run's (hf_debounce.h) */
		hf_lua_push_json(L, ctx->events);
		lua_setfield(L, env, "events");
	}

	if (st->if_expr && st->if_expr->chunk) {
		const char *key = lua_pushfstring(L, "%s:%s:if", ver, st->id);
		const char *name = yaml_chunkname(L, wf);
		int needs = push_chunk(L, rt, key, st->if_expr->chunk, name);
		set_step_globals(L, env, ctx, needs, &have);
		set_env(L, -1, env);
		lua_call(L, 0, 1);
		if (!lua_truthy(L, -1)) {
			lua_pushboolean(L, 0);
			lua_pushnil(L);
			return 2;
		}
		lua_settop(L, env);
	}

	if (st->with_chunk) {
		const char *key = lua_pushfstring(L, "%s:%s:with", ver, st->id);
		const char *name = yaml_chunkname(L, wf);
		int needs = push_chunk(L, rt, key, st->with_chunk, name);
		set_step_globals(L, env, ctx, needs, &have);
		set_env(L, -1, env);
		lua_call(L, 0, 1);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			lua_newtable(L);
		} else if (!lua_istable(L, -1)) {
			return luaL_error(L,
					  "step '%s': with: must be a table, "
					  "not a %s",
					  st->id, luaL_typename(L, -1));
		}
	} else {
		lua_newtable(L);
	}
	lua_setfield(L, env, "args");
	lua_settop(L, env);

	const char *key = lua_pushfstring(L, "%s:%s:code", ver, st->id);
	int needs = push_chunk(L, rt, key, st->code ? st->code : "",
			       st->code_name ? st->code_name : "=step");
	set_step_globals(L, env, ctx, needs, &have);
	set_env(L, -1, env);
	lua_getfield(L, env, "args");
	lua_call(L, 1, 1);
	lua_pushboolean(L, 1);
	lua_insert(L, -2);
	return 2;
}

/* Under lua_pcall: evaluates rt->expr against rt->expr_event. */
/* Pushes the `signal` of a wait_for's or cancel_on's `if:`. One signal is
 * evaluated against many runs in a row: its table is built once (headers,
 * query, the decoded body) and kept in the registry, and each evaluation
 * gets a deep copy of it (strings are shared, not copied), so that what one
 * `if:` does to it never reaches the next. The kept one is replaced by the
 * next signal's. */
static void push_signal(lua_State *L, struct hf_luart *rt)
{
	const struct hf_event *sig = rt->expr_signal;
	if (rt->signal_ev[0] && strcmp(rt->signal_ev, sig->id) == 0) {
		lua_rawgetp(L, LUA_REGISTRYINDEX, &signal_key);
		hf_lua_copy_value(L, -1);
		lua_remove(L, -2);
		return;
	}
	rt->signal_ev[0] = '\0';
	lua_pushnil(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &signal_key);
	hf_lua_push_event(L, rt, sig, NULL, false, true);
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &signal_key);
	snprintf(rt->signal_ev, sizeof rt->signal_ev, "%s", sig->id);
	hf_lua_copy_value(L, -1);
	lua_remove(L, -2);
}

static int expr_main(lua_State *L)
{
	struct hf_luart *rt = lua_touserdata(L, 1);
	lua_settop(L, 0);
	int env = push_env(L);
	int needs = push_chunk(L, rt, rt->expr_key,
			       rt->expr->chunk ? rt->expr->chunk : "return nil",
			       "=expression");
	if (needs & NEED_EVENT) {
		if (rt->expr_ev)
			hf_lua_push_event(L, rt, rt->expr_ev, rt->expr_wf,
					  false, true);
		else if (rt->expr_event)
			hf_lua_push_json(L, rt->expr_event);
		else
			lua_newtable(L);
		lua_setfield(L, env, "event");
	}
	if (rt->expr_signal) { /* a wait_for's if: (hf_park.h) */
		push_signal(L, rt);
		lua_setfield(L, env, "signal");
	}
	set_env(L, -1, env);
	lua_call(L, 0, 1);
	return 1;
}

/* Runs fn(rt) under the limits with the message handler. Leaves the results
 * (nres) or the error at the top, and the limits on (for the conversion of
 * the results): limits_off ends the run. */
static int run_limited(struct hf_luart *rt, lua_CFunction fn, int nres,
		       int64_t timeout_ms, long long budget)
{
	lua_State *L = rt->L;
	lua_settop(L, 0);
	lua_gc(L, LUA_GCRESTART);
	rt->killed = KILL_NONE;
	rt->mem_hit = false;
	rt->timeout_ms = timeout_ms;
	rt->deadline = hf_mono_ms() + timeout_ms;
	rt->budget = budget;
	rt->limit = rt->step_limit = rt->used + rt->memory_limit;
	hf_lua_db_begin_step(rt->db, rt->deadline);
	hf_lua_http_begin_step(rt->http, rt->deadline);
	hf_lua_webhook_discard(rt->webhook); /* nothing left from before */
	lua_sethook(L, hf_luart_hook, LUA_MASKCOUNT, HF_LUA_HOOK_INSTRUCTIONS);
	lua_pushcfunction(L, msgh);
	lua_pushcfunction(L, fn);
	lua_pushlightuserdata(L, rt);
	int status = lua_pcall(L, 1, nres, 1);
	/* A kill that a pcall caught just before the chunk returned (no
	 * instruction left for the hf_luart_hook to fire on) still fails the
	 * run. */
	if (status == LUA_OK && rt->killed != KILL_NONE) {
		lua_pushliteral(L, "killed");
		status = LUA_ERRRUN;
	}
	/* A failure past the deadline is a timeout, even when it surfaced as
	 * another error (a query interrupted at the deadline). */
	if (status != LUA_OK && rt->killed == KILL_NONE &&
	    hf_mono_ms() >= rt->deadline)
		rt->killed = KILL_TIMEOUT;
	return status;
}

/* Ends a run: no hf_luart_hook, no limits. */
static void limits_off(struct hf_luart *rt)
{
	lua_sethook(rt->L, NULL, 0, 0);
	rt->limit = rt->step_limit = 0;
	rt->deadline = 0;
	rt->budget = -1;
}

/* Converts the result at the top to JSON while the run's limits still hold
 * (the conversion checks them). Returns a new reference, or NULL with *err:
 * the limit's message, or why what is not JSON-shaped. */
static json_t *convert(struct hf_luart *rt, const char *root, const char *what,
		       char **err)
{
	char msg[512], head[128];
	json_t *j = hf_lua_to_json(rt->L, -1, root, msg, sizeof msg);
	if (j)
		return j;
	if (rt->killed != KILL_NONE)
		hf_luart_kill_message(rt, head, sizeof head);
	else if (rt->mem_hit)
		hf_luart_memory_message(rt, head, sizeof head);
	else
		*err = hf_xasprintf("%s is not JSON-shaped: %s", what, msg);
	if (rt->killed != KILL_NONE || rt->mem_hit)
		*err = hf_xasprintf("%s while converting the %s to JSON", head,
				    what);
	return NULL;
}

/* The failure message of a run that did not return normally. */
static char *failure(struct hf_luart *rt, int status)
{
	lua_State *L = rt->L;
	const char *msg = lua_tostring(L, -1);
	char head[128];
	if (!msg)
		msg = "unknown error";
	bool mem = status == LUA_ERRMEM ||
		   (rt->mem_hit && (strstr(msg, "not enough memory") ||
				    strstr(msg, "memory limit exceeded") ||
				    status == LUA_ERRERR));
	if (rt->killed != KILL_NONE)
		hf_luart_kill_message(rt, head, sizeof head);
	else if (mem)
		hf_luart_memory_message(rt, head, sizeof head);
	else
		return hf_xstrdup(msg);
	const char *tb = strstr(msg, "stack traceback:");
	return tb ? hf_xasprintf("%s\n%s", head, tb) : hf_xstrdup(head);
}

/* Drops what the step left behind: its globals, its require() cache; a full
 * collection after a failed step or once the state grew HF_LUA_GC_SLACK past
 * its size after the last one (the generational collector takes the rest as
 * steps allocate). */
static void finish(struct hf_luart *rt, bool failed)
{
	lua_State *L = rt->L;
	lua_settop(L, 0);
	clear_env(L);
	lua_pushnil(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &hf_luart_loaded_key);
	rt->log.entries = NULL;
	rt->ctx = NULL;
	rt->expr = NULL;
	rt->expr_event = NULL;
	rt->expr_ev = NULL;
	rt->expr_wf = NULL;
	rt->in_expr = false;
	rt->runs++;
	if (failed || rt->used > rt->gc_base + HF_LUA_GC_SLACK) {
		lua_gc(L, LUA_GCCOLLECT);
		rt->gc_base = rt->used;
	}
}

static void fail_res(struct hf_step_result *res, char *msg)
{
	res->status = HF_STEP_FAILED;
	free(res->error);
	res->error = msg;
	json_decref(res->output);
	res->output = json_null();
}

/* What retry.after/retry.never asked: the attempt fails, even when the
 * script caught their error and went on. */
static void take_retry(struct hf_luart *rt, struct hf_step_result *res)
{
	struct hf_lua_retry *r = &rt->retry;
	if (r->kind == HF_LUA_RETRY_NONE)
		return;
	if (res->status != HF_STEP_FAILED)
		fail_res(res, hf_xstrdup(r->message));
	res->retry_after = r->kind == HF_LUA_RETRY_AFTER;
	res->retry_never = r->kind == HF_LUA_RETRY_NEVER;
	res->retry_delay_ms = r->delay_ms;
	r->kind = HF_LUA_RETRY_NONE;
}

int hf_luart_run_step(struct hf_luart *rt, const struct hf_step_ctx *ctx,
		      struct hf_step_result *res)
{
	assert(owned_by_caller(rt));
	memset(res, 0, sizeof *res);
	res->started_at = hf_now_ms();
	res->output = json_null();
	res->logs = json_array();
	if (!ctx->wf || ctx->step >= hf_workflow_nall(ctx->wf) ||
	    rt->expr_only) {
		fail_res(res, hf_xstrdup("internal error: no such step"));
		res->finished_at = hf_now_ms();
		return -1;
	}
	const struct hf_step *st = &ctx->wf->steps[ctx->step];
	int64_t timeout = ctx->timeout_ms > 0  ? ctx->timeout_ms
			  : st->timeout_ms > 0 ? st->timeout_ms
					       : HF_STEP_TIMEOUT_MS;
	rt->ctx = ctx;
	rt->log.entries = res->logs;
	rt->retry.kind = HF_LUA_RETRY_NONE;
	int status = run_limited(rt, step_main, 2, timeout, -1);
	bool failed = status != LUA_OK;
	char *err = NULL;
	json_t *out = NULL;
	if (!failed && lua_toboolean(rt->L, -2))
		out = convert(rt, "output", "step output", &err);
	limits_off(rt);
	if (failed) {
		fail_res(res, failure(rt, status));
	} else if (!lua_toboolean(rt->L, -2)) {
		res->status = HF_STEP_SKIPPED;
	} else {
		size_t size = out ? json_dumpb(out, NULL, 0,
					       JSON_COMPACT | JSON_ENCODE_ANY)
				  : 0;
		if (!out) {
			fail_res(res, err);
		} else if (size > HF_STEP_OUTPUT_MAX) {
			char lim[32];
			json_decref(out);
			hf_luart_format_size(HF_STEP_OUTPUT_MAX, lim,
					     sizeof lim);
			fail_res(res, hf_xasprintf("step output is too large "
						   "(%zu bytes, limit %s)",
						   size, lim));
		} else {
			json_decref(res->output);
			res->output = out;
			res->status = HF_STEP_SUCCEEDED;
		}
	}
	if (hf_lua_db_end_step(rt->db) && res->status == HF_STEP_SUCCEEDED)
		fail_res(res, hf_xstrdup("step left a database transaction "
					 "open; it was rolled back"));
	take_retry(rt, res);
	/* Emits leave with the result of a step that succeeded, only. */
	if (res->status == HF_STEP_SUCCEEDED)
		hf_lua_webhook_take(rt->webhook, &res->emits, &res->nemits);
	else
		hf_lua_webhook_discard(rt->webhook);
	finish(rt, failed || res->status == HF_STEP_FAILED);
	res->finished_at = hf_now_ms();
	return 0;
}

static int eval(struct hf_luart *rt, const char *cache_key,
		const struct hf_expr *e, json_t *event,
		const struct hf_event *ev, const struct hf_workflow *wf,
		json_t **value, char **err)
{
	assert(owned_by_caller(rt));
	*value = NULL;
	*err = NULL;
	rt->expr = e;
	rt->expr_key = cache_key ? cache_key : "expr";
	rt->expr_event = event;
	rt->expr_ev = ev;
	rt->expr_wf = wf;
	rt->expr_signal = rt->pending_signal;
	rt->in_expr = true;
	rt->log.entries = NULL;
	int status = run_limited(rt, expr_main, 1, HF_EXPR_TIMEOUT_MS,
				 HF_EXPR_MAX_INSTRUCTIONS);
	if (status == LUA_OK)
		*value = convert(rt, "value", "expression value", err);
	limits_off(rt);
	if (status != LUA_OK)
		*err = failure(rt, status);
	int rc = *value ? 0 : -1;
	hf_lua_db_end_step(rt->db);
	hf_lua_webhook_discard(rt->webhook);
	finish(rt, rc != 0);
	return rc;
}

int hf_luart_eval(struct hf_luart *rt, const char *cache_key,
		  const struct hf_expr *e, json_t *event, json_t **value,
		  char **err)
{
	return eval(rt, cache_key, e, event, NULL, NULL, value, err);
}

int hf_luart_eval_event(struct hf_luart *rt, const char *cache_key,
			const struct hf_expr *e, const struct hf_event *ev,
			const struct hf_workflow *wf, json_t **value,
			char **err)
{
	return eval(rt, cache_key, e, NULL, ev, wf, value, err);
}

int hf_luart_eval_signal(struct hf_luart *rt, const char *cache_key,
			 const struct hf_expr *e, const struct hf_event *ev,
			 const struct hf_workflow *wf,
			 const struct hf_event *signal, json_t **value,
			 char **err)
{
	/* eval() takes expr_signal from pending_signal (NULL for every
	 * other expression). */
	rt->pending_signal = signal;
	int rc = eval(rt, cache_key, e, NULL, ev, wf, value, err);
	rt->pending_signal = NULL;
	return rc;
}

void hf_luart_forget_signal(struct hf_luart *rt)
{
	if (!rt || !rt->signal_ev[0])
		return;
	assert(owned_by_caller(rt));
	rt->signal_ev[0] = '\0';
	lua_pushnil(rt->L);
	lua_rawsetp(rt->L, LUA_REGISTRYINDEX, &signal_key);
	if (rt->used > rt->gc_base + HF_LUA_GC_SLACK) {
		lua_gc(rt->L, LUA_GCCOLLECT);
		rt->gc_base = rt->used;
	}
}

bool hf_luart_expr_reads_event(const char *chunk)
{
	return chunk && (chunk_needs(chunk) & NEED_EVENT);
}

bool hf_json_truthy(const json_t *v)
{
	return v && !json_is_null(v) && !json_is_false(v);
}
