/* luart.c - the Lua 5.4 runtime: one sandboxed lua_State, its memory and time
 * limits, and the execution of steps and workflow-level expressions.
 *
 * Sandbox (after Redis' script_lua.c): only base (minus dofile, loadfile,
 * warn; load forced to text mode and the step's environment), table, string
 * (minus dump), math, utf8, coroutine and os.time/date/clock are opened; io,
 * debug and package are not. Library tables are read-only proxies and the
 * string metatable is protected, so that nothing one step does reaches the
 * next. Each step runs with a fresh environment table whose metatable (shared,
 * protected) reads the sandbox and raises on unknown globals.
 *
 * Limits: a counting lua_Alloc refuses allocations past the step's baseline +
 * memory limit; a count hook compares the clock with the deadline and, once
 * past it, fires on every instruction so pcall cannot swallow the kill. C
 * functions that could run long without reaching the hook are replaced:
 * string.find/match/gmatch/gsub by a pattern matcher (written for hookflow,
 * with Lua's pattern semantics) that checks the deadline as it backtracks;
 * string.rep (refuses results past the memory budget; "" repeated forever);
 * table.insert/remove/move (bounded lengths). setmetatable refuses __gc, whose
 * code would run outside any step's limits.
 *
 * Owns the lua_State, the per-runtime db connection (lua_db.c) and the step's
 * log array while the step runs. Threading: a runtime belongs to one thread.
 * Neighbours: lua_json.c, lua_lib.c, lua_db.c, lua_http.c, lua_webhook.c
 * (the runtime owns one http client and one emit queue; a step's emits go to
 * its result only when it succeeds). */
#include "hf_limits.h"
#include "hf_lua_db.h"
#include "hf_lua_http.h"
#include "hf_lua_json.h"
#include "hf_lua_lib.h"
#include "hf_lua_webhook.h"
#include "hf_luart.h"

#include <ctype.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kill { KILL_NONE, KILL_TIMEOUT, KILL_BUDGET };

struct hf_luart {
	lua_State *L;
	char *scripts_dir; /* NULL: no require */
	bool expr_only;
	size_t memory_limit; /* per step or expression */
	size_t used;	     /* bytes held by the state */
	size_t limit;	     /* refuse growth past this; 0 = no limit */
	bool mem_hit;	     /* an allocation was refused */
	int64_t deadline;    /* hf_mono_ms(); 0 = none */
	int64_t timeout_ms;  /* for the message */
	long long budget;    /* instructions left; < 0 = unlimited */
	bool in_expr;	     /* evaluating an expression, not a step */
	enum kill killed;
	size_t nchunks;
	unsigned runs;
	struct hf_lua_db *db;
	struct hf_lua_http *http;	/* NULL for expression runtimes */
	struct hf_lua_webhook *webhook; /* NULL for expression runtimes */
	struct hf_lua_log log;
	const struct hf_step_ctx *ctx; /* while a step runs */
	const struct hf_expr *expr;    /* while an expression runs */
	const char *expr_key;
	json_t *expr_event;
};

/* Registry keys. */
static const char sandbox_key = 0; /* the sandbox globals (real table) */
static const char envmt_key = 0;   /* metatable of step environments */
static const char chunks_key = 0;  /* compiled chunks by cache key */
static const char env_key = 0;	   /* the running step's environment */
static const char loaded_key = 0;  /* require() results of the step */
static const char frozen_key = 0;  /* set of read-only proxies */

static struct hf_luart *get_rt(lua_State *L)
{
	void *ud;
	lua_getallocf(L, &ud);
	return ud;
}

/* ---- memory ---- */

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct hf_luart *rt = ud;
	size_t old = ptr ? osize : 0;
	if (nsize == 0) {
		free(ptr);
		rt->used -= old;
		return NULL;
	}
	if (nsize > old && rt->limit && rt->used - old + nsize > rt->limit) {
		rt->mem_hit = true;
		return NULL;
	}
	void *p = realloc(ptr, nsize);
	if (!p)
		return NULL;
	rt->used = rt->used - old + nsize;
	return p;
}

static void format_size(size_t n, char *out, size_t size)
{
	if (n % (1024 * 1024) == 0)
		snprintf(out, size, "%zu MiB", n / (1024 * 1024));
	else if (n % 1024 == 0)
		snprintf(out, size, "%zu KiB", n / 1024);
	else
		snprintf(out, size, "%zu bytes", n);
}

static void format_duration(int64_t ms, char *out, size_t size)
{
	if (ms > 0 && ms % 3600000 == 0)
		snprintf(out, size, "%lldh", (long long)(ms / 3600000));
	else if (ms > 0 && ms % 60000 == 0)
		snprintf(out, size, "%lldm", (long long)(ms / 60000));
	else if (ms > 0 && ms % 1000 == 0)
		snprintf(out, size, "%llds", (long long)(ms / 1000));
	else
		snprintf(out, size, "%lldms", (long long)ms);
}

static void memory_message(struct hf_luart *rt, char *out, size_t size)
{
	char s[32];
	format_size(rt->memory_limit, s, sizeof s);
	snprintf(out, size, "memory limit exceeded (%s)", s);
}

static void kill_message(struct hf_luart *rt, char *out, size_t size)
{
	char d[32];
	if (rt->killed == KILL_BUDGET) {
		snprintf(out, size,
			 "expression exceeded its budget of %d "
			 "instructions",
			 HF_EXPR_MAX_INSTRUCTIONS);
		return;
	}
	format_duration(rt->timeout_ms, d, sizeof d);
	snprintf(out, size, "%s timed out after %s",
		 rt->in_expr ? "expression" : "step", d);
}

/* ---- time ---- */

static void hook(lua_State *L, lua_Debug *ar);

/* Raises the kill error and makes the hook fire on every instruction of this
 * thread, so a pcall that catches the error is killed again at once. */
static int raise_kill(lua_State *L, struct hf_luart *rt)
{
	char msg[128];
	rt->limit = 0; /* the step is over: room for the error and traceback */
	lua_sethook(L, hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
	kill_message(rt, msg, sizeof msg);
	lua_pushstring(L, msg);
	return lua_error(L);
}

/* Charges n instructions and checks the clock; raises when out of either. */
static void charge(lua_State *L, struct hf_luart *rt, long long n)
{
	if (rt->killed == KILL_NONE) {
		if (rt->budget >= 0) {
			rt->budget -= n;
			if (rt->budget < 0)
				rt->killed = KILL_BUDGET;
		}
		if (rt->killed == KILL_NONE && rt->deadline &&
		    hf_mono_ms() >= rt->deadline)
			rt->killed = KILL_TIMEOUT;
		if (rt->killed == KILL_NONE)
			return;
	}
	raise_kill(L, rt);
}

static void hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	charge(L, get_rt(L), HF_LUA_HOOK_INSTRUCTIONS);
}

/* ---- pattern matching ----
 *
 * Lua's pattern language (classes %a %c %d %g %l %p %s %u %w %x and their
 * complements, sets, . * + - ?, anchors, captures and position captures,
 * back-references %1-%9, %b, %f), implemented here so that backtracking
 * checks the step's deadline: a pattern such as ".-.-.-.-b" over a long
 * subject ends with the timeout error instead of hanging the worker. */

#define PAT_ESC '%'
#define PAT_MAXCAPTURES 32
#define PAT_MAXDEPTH 200
#define PAT_TICKS 4096
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)

struct mstate {
	const char *src_init, *src_end, *p_end;
	lua_State *L;
	struct hf_luart *rt;
	int depth;
	unsigned ticks;
	int level;
	struct {
		const char *init;
		ptrdiff_t len;
	} capture[PAT_MAXCAPTURES];
};

static const char *pmatch(struct mstate *ms, const char *s, const char *p);

static void prep(struct mstate *ms, lua_State *L, const char *s, size_t ls,
		 const char *p, size_t lp)
{
	ms->L = L;
	ms->rt = get_rt(L);
	ms->src_init = s;
	ms->src_end = s + ls;
	ms->p_end = p + lp;
	ms->ticks = 0;
	ms->level = 0;
	ms->depth = PAT_MAXDEPTH;
}

static void reprep(struct mstate *ms)
{
	ms->level = 0;
	ms->depth = PAT_MAXDEPTH;
}

static void tick(struct mstate *ms)
{
	if (++ms->ticks >= PAT_TICKS) {
		ms->ticks = 0;
		charge(ms->L, ms->rt, PAT_TICKS);
	}
}

static const char *class_end(struct mstate *ms, const char *p)
{
	if (*p == PAT_ESC) {
		if (p + 1 >= ms->p_end)
			luaL_error(ms->L, "malformed pattern (ends with '%%')");
		return p + 2;
	}
	if (*p == '[') {
		const char *q = p + 1;
		if (q < ms->p_end && *q == '^')
			q++;
		do {
			if (q >= ms->p_end)
				luaL_error(ms->L,
					   "malformed pattern (missing ']')");
			char c = *q++;
			if (c == PAT_ESC) {
				if (q >= ms->p_end)
					luaL_error(ms->L, "malformed pattern "
							  "(missing ']')");
				q++;
			}
		} while (q >= ms->p_end || *q != ']');
		return q + 1;
	}
	return p + 1;
}

static int match_class(int c, int cl)
{
	int r;
	switch (tolower(cl)) {
	case 'a':
		r = isalpha(c);
		break;
	case 'c':
		r = iscntrl(c);
		break;
	case 'd':
		r = isdigit(c);
		break;
	case 'g':
		r = isgraph(c);
		break;
	case 'l':
		r = islower(c);
		break;
	case 'p':
		r = ispunct(c);
		break;
	case 's':
		r = isspace(c);
		break;
	case 'u':
		r = isupper(c);
		break;
	case 'w':
		r = isalnum(c);
		break;
	case 'x':
		r = isxdigit(c);
		break;
	default:
		return cl == c;
	}
	r = r != 0;
	return isupper(cl) ? !r : r;
}

/* p points at '[', ec at the closing ']'. */
static int match_set(int c, const char *p, const char *ec)
{
	int yes = 1;
	p++;
	if (*p == '^') {
		yes = 0;
		p++;
	}
	while (p < ec) {
		if (*p == PAT_ESC && p + 1 < ec) {
			if (match_class(c, (unsigned char)p[1]))
				return yes;
			p += 2;
		} else if (p + 2 < ec && p[1] == '-') {
			if ((unsigned char)p[0] <= c &&
			    c <= (unsigned char)p[2])
				return yes;
			p += 3;
		} else {
			if ((unsigned char)*p == c)
				return yes;
			p++;
		}
	}
	return !yes;
}

static int single_match(struct mstate *ms, const char *s, const char *p,
			const char *ep)
{
	if (s >= ms->src_end)
		return 0;
	int c = (unsigned char)*s;
	switch (*p) {
	case '.':
		return 1;
	case PAT_ESC:
		return match_class(c, (unsigned char)p[1]);
	case '[':
		return match_set(c, p, ep - 1);
	default:
		return (unsigned char)*p == c;
	}
}

static const char *match_balance(struct mstate *ms, const char *s,
				 const char *p)
{
	if (p + 1 >= ms->p_end)
		luaL_error(ms->L, "malformed pattern (missing arguments to "
				  "'%%b')");
	if (s >= ms->src_end || *s != p[0])
		return NULL;
	char b = p[0], e = p[1];
	int depth = 1;
	while (++s < ms->src_end) {
		if (*s == e) {
			if (--depth == 0)
				return s + 1;
		} else if (*s == b) {
			depth++;
		}
	}
	return NULL;
}

static const char *max_expand(struct mstate *ms, const char *s, const char *p,
			      const char *ep)
{
	ptrdiff_t i = 0;
	while (single_match(ms, s + i, p, ep))
		i++;
	for (; i >= 0; i--) {
		const char *r = pmatch(ms, s + i, ep + 1);
		if (r)
			return r;
	}
	return NULL;
}

static const char *min_expand(struct mstate *ms, const char *s, const char *p,
			      const char *ep)
{
	for (;;) {
		const char *r = pmatch(ms, s, ep + 1);
		if (r)
			return r;
		if (!single_match(ms, s, p, ep))
			return NULL;
		s++;
	}
}

static const char *start_capture(struct mstate *ms, const char *s,
				 const char *p, ptrdiff_t what)
{
	if (ms->level >= PAT_MAXCAPTURES)
		luaL_error(ms->L, "too many captures");
	ms->capture[ms->level].init = s;
	ms->capture[ms->level].len = what;
	ms->level++;
	const char *r = pmatch(ms, s, p);
	if (!r)
		ms->level--;
	return r;
}

static const char *end_capture(struct mstate *ms, const char *s, const char *p)
{
	int l = -1;
	for (int i = ms->level - 1; i >= 0; i--) {
		if (ms->capture[i].len == CAP_UNFINISHED) {
			l = i;
			break;
		}
	}
	if (l < 0)
		luaL_error(ms->L, "invalid pattern capture");
	ms->capture[l].len = s - ms->capture[l].init;
	const char *r = pmatch(ms, s, p);
	if (!r)
		ms->capture[l].len = CAP_UNFINISHED;
	return r;
}

static const char *match_capture(struct mstate *ms, const char *s, int c)
{
	int l = c - '1';
	if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
		luaL_error(ms->L, "invalid capture index %%%d", l + 1);
	size_t len = (size_t)ms->capture[l].len;
	if ((size_t)(ms->src_end - s) >= len &&
	    memcmp(ms->capture[l].init, s, len) == 0)
		return s + len;
	return NULL;
}

static const char *pmatch(struct mstate *ms, const char *s, const char *p)
{
	if (ms->depth-- == 0)
		luaL_error(ms->L, "pattern too complex");
	tick(ms);
	while (p != ms->p_end) {
		const char *ep;
		switch (*p) {
		case '(':
			if (p + 1 < ms->p_end && p[1] == ')')
				s = start_capture(ms, s, p + 2, CAP_POSITION);
			else
				s = start_capture(ms, s, p + 1, CAP_UNFINISHED);
			goto done;
		case ')':
			s = end_capture(ms, s, p + 1);
			goto done;
		case '$':
			if (p + 1 == ms->p_end) {
				if (s != ms->src_end)
					s = NULL;
				goto done;
			}
			break;
		case PAT_ESC:
			if (p[1] == 'b') {
				s = match_balance(ms, s, p + 2);
				if (!s)
					goto done;
				p += 4;
				continue;
			}
			if (p[1] == 'f') {
				p += 2;
				if (p >= ms->p_end || *p != '[')
					luaL_error(ms->L, "missing '[' after "
							  "'%%f' in pattern");
				ep = class_end(ms, p);
				int prev = s == ms->src_init
					       ? 0
					       : (unsigned char)s[-1];
				int cur =
				    s < ms->src_end ? (unsigned char)*s : 0;
				if (!match_set(prev, p, ep - 1) &&
				    match_set(cur, p, ep - 1)) {
					p = ep;
					continue;
				}
				s = NULL;
				goto done;
			}
			if (p + 1 < ms->p_end && isdigit((unsigned char)p[1])) {
				s = match_capture(ms, s, (unsigned char)p[1]);
				if (!s)
					goto done;
				p += 2;
				continue;
			}
			break;
		default:
			break;
		}
		/* A single-character class, possibly quantified. */
		ep = class_end(ms, p);
		char q = ep < ms->p_end ? *ep : '\0';
		if (!single_match(ms, s, p, ep)) {
			if (q == '*' || q == '?' || q == '-') {
				p = ep + 1;
				continue;
			}
			s = NULL;
			goto done;
		}
		if (q == '?') {
			const char *r = pmatch(ms, s + 1, ep + 1);
			if (r) {
				s = r;
				goto done;
			}
			p = ep + 1;
			continue;
		}
		if (q == '+') {
			s = max_expand(ms, s + 1, p, ep);
			goto done;
		}
		if (q == '*') {
			s = max_expand(ms, s, p, ep);
			goto done;
		}
		if (q == '-') {
			s = min_expand(ms, s, p, ep);
			goto done;
		}
		s++;
		p = ep;
	}
done:
	ms->depth++;
	return s;
}

static void push_onecapture(struct mstate *ms, int i, const char *s,
			    const char *e)
{
	if (i >= ms->level) {
		if (i != 0)
			luaL_error(ms->L, "invalid capture index %%%d", i + 1);
		lua_pushlstring(ms->L, s, (size_t)(e - s));
		return;
	}
	ptrdiff_t len = ms->capture[i].len;
	if (len == CAP_UNFINISHED)
		luaL_error(ms->L, "unfinished capture");
	if (len == CAP_POSITION)
		lua_pushinteger(ms->L,
				(ms->capture[i].init - ms->src_init) + 1);
	else
		lua_pushlstring(ms->L, ms->capture[i].init, (size_t)len);
}

/* s == NULL: only explicit captures (string.find). */
static int push_captures(struct mstate *ms, const char *s, const char *e)
{
	int n = (ms->level == 0 && s) ? 1 : ms->level;
	luaL_checkstack(ms->L, n, "too many captures");
	for (int i = 0; i < n; i++)
		push_onecapture(ms, i, s, e);
	return n;
}

static size_t start_index(lua_Integer pos, size_t len)
{
	if (pos > 0)
		return (size_t)pos;
	if (pos == 0)
		return 1;
	if (pos < -(lua_Integer)len)
		return 1;
	return len + (size_t)pos + 1;
}

static bool no_specials(const char *p, size_t lp)
{
	for (size_t i = 0; i < lp; i++)
		if (strchr("^$*+?.([%-", p[i]) && p[i])
			return false;
	return true;
}

static int find_aux(lua_State *L, bool find)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	size_t init = start_index(luaL_optinteger(L, 3, 1), ls);
	if (init > ls + 1) {
		lua_pushnil(L);
		return 1;
	}
	if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
		/* memmem is linear: no deadline needed. */
		const char *f =
		    lp == 0 ? s + init - 1
			    : memmem(s + init - 1, ls - init + 1, p, lp);
		if (f) {
			lua_pushinteger(L, (f - s) + 1);
			lua_pushinteger(L, (lua_Integer)((f - s) + lp));
			return 2;
		}
		lua_pushnil(L);
		return 1;
	}
	struct mstate ms;
	const char *s1 = s + init - 1;
	bool anchor = lp > 0 && *p == '^';
	if (anchor) {
		p++;
		lp--;
	}
	prep(&ms, L, s, ls, p, lp);
	do {
		reprep(&ms);
		const char *e = pmatch(&ms, s1, p);
		if (e) {
			if (find) {
				lua_pushinteger(L, (s1 - s) + 1);
				lua_pushinteger(L, e - s);
				return push_captures(&ms, NULL, NULL) + 2;
			}
			return push_captures(&ms, s1, e);
		}
	} while (s1++ < ms.src_end && !anchor);
	lua_pushnil(L);
	return 1;
}

static int s_find(lua_State *L)
{
	return find_aux(L, true);
}

static int s_match(lua_State *L)
{
	return find_aux(L, false);
}

struct gmatch_state {
	const char *src, *p, *lastmatch;
	struct mstate ms;
};

static int gmatch_next(lua_State *L)
{
	struct gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
	g->ms.L = L; /* the iterator may run in another coroutine */
	for (const char *src = g->src; src <= g->ms.src_end; src++) {
		reprep(&g->ms);
		const char *e = pmatch(&g->ms, src, g->p);
		if (e && e != g->lastmatch) {
			g->src = g->lastmatch = e;
			return push_captures(&g->ms, src, e);
		}
	}
	return 0;
}

static int s_gmatch(lua_State *L)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	size_t init = start_index(luaL_optinteger(L, 3, 1), ls);
	if (init > ls + 1)
		init = ls + 1;
	lua_settop(L, 2);
	struct gmatch_state *g = lua_newuserdatauv(L, sizeof *g, 0);
	prep(&g->ms, L, s, ls, p, lp);
	g->src = s + init - 1;
	g->p = p;
	g->lastmatch = NULL;
	lua_pushcclosure(L, gmatch_next, 3); /* keeps s and p alive */
	return 1;
}

static void add_s(struct mstate *ms, luaL_Buffer *b, const char *s,
		  const char *e)
{
	lua_State *L = ms->L;
	size_t l;
	const char *news = lua_tolstring(L, 3, &l);
	for (size_t i = 0; i < l; i++) {
		if (news[i] != PAT_ESC) {
			luaL_addchar(b, news[i]);
			continue;
		}
		i++;
		if (i < l && news[i] == PAT_ESC) {
			luaL_addchar(b, PAT_ESC);
		} else if (i < l && news[i] == '0') {
			luaL_addlstring(b, s, (size_t)(e - s));
		} else if (i < l && isdigit((unsigned char)news[i])) {
			push_onecapture(ms, news[i] - '1', s, e);
			luaL_tolstring(L, -1, NULL);
			lua_remove(L, -2);
			luaL_addvalue(b);
		} else {
			luaL_error(L,
				   "invalid use of '%c' in replacement "
				   "string",
				   PAT_ESC);
		}
	}
}

static void add_value(struct mstate *ms, luaL_Buffer *b, const char *s,
		      const char *e, int tr)
{
	lua_State *L = ms->L;
	if (tr == LUA_TFUNCTION) {
		lua_pushvalue(L, 3);
		int n = push_captures(ms, s, e);
		lua_call(L, n, 1);
	} else if (tr == LUA_TTABLE) {
		push_onecapture(ms, 0, s, e);
		lua_gettable(L, 3);
	} else {
		add_s(ms, b, s, e);
		return;
	}
	if (!lua_toboolean(L, -1)) {
		lua_pop(L, 1);
		luaL_addlstring(b, s, (size_t)(e - s));
	} else if (!lua_isstring(L, -1)) {
		luaL_error(L, "invalid replacement value (a %s)",
			   luaL_typename(L, -1));
	} else {
		luaL_addvalue(b);
	}
}

static int s_gsub(lua_State *L)
{
	size_t srcl, lp;
	const char *src = luaL_checklstring(L, 1, &srcl);
	const char *p = luaL_checklstring(L, 2, &lp);
	const char *lastmatch = NULL;
	int tr = lua_type(L, 3);
	lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
	bool anchor = lp > 0 && *p == '^';
	lua_Integer n = 0;
	luaL_argexpected(L,
			 tr == LUA_TNUMBER || tr == LUA_TSTRING ||
			     tr == LUA_TFUNCTION || tr == LUA_TTABLE,
			 3, "string/function/table");
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	if (anchor) {
		p++;
		lp--;
	}
	struct mstate ms;
	prep(&ms, L, src, srcl, p, lp);
	while (n < max_s) {
		reprep(&ms);
		const char *e = pmatch(&ms, src, p);
		if (e && e != lastmatch) {
			n++;
			add_value(&ms, &b, src, e, tr);
			src = lastmatch = e;
		} else if (src < ms.src_end) {
			luaL_addchar(&b, *src++);
		} else {
			break;
		}
		if (anchor)
			break;
	}
	luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
	luaL_pushresult(&b);
	lua_pushinteger(L, n);
	return 2;
}

/* ---- other guarded library functions ---- */

/* string.rep: refuses a result larger than what is left of the memory budget
 * (with the memory message), and returns "" for an empty string repeated any
 * number of times (Lua's own loop would spin n times). */
static int s_rep(lua_State *L)
{
	size_t l, lsep;
	luaL_checklstring(L, 1, &l);
	lua_Integer n = luaL_checkinteger(L, 2);
	luaL_optlstring(L, 3, "", &lsep);
	if (n <= 0 || l + lsep == 0) {
		lua_pushliteral(L, "");
		return 1;
	}
	struct hf_luart *rt = get_rt(L);
	size_t unit = l + lsep;
	size_t left = rt->limit > rt->used ? rt->limit - rt->used : 0;
	if (rt->limit && ((lua_Unsigned)n > left / unit + 1 ||
			  (size_t)n * l + (size_t)(n - 1) * lsep > left)) {
		char msg[64];
		rt->mem_hit = true;
		memory_message(rt, msg, sizeof msg);
		return luaL_error(L, "%s", msg);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

static lua_Integer table_len(lua_State *L, const char *fn)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer n = luaL_len(L, 1);
	if (n < 0 || n > HF_LUA_TABLE_MAX)
		luaL_error(L, "table.%s: table too long (%I elements)", fn, n);
	return n;
}

static int t_insert(lua_State *L)
{
	lua_Integer e = table_len(L, "insert") + 1;
	lua_Integer pos;
	switch (lua_gettop(L)) {
	case 2:
		pos = e;
		break;
	case 3:
		pos = luaL_checkinteger(L, 2);
		luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2,
			      "position out of bounds");
		for (lua_Integer i = e; i > pos; i--) {
			lua_geti(L, 1, i - 1);
			lua_seti(L, 1, i);
		}
		break;
	default:
		return luaL_error(L, "wrong number of arguments to 'insert'");
	}
	lua_seti(L, 1, pos);
	return 0;
}

static int t_remove(lua_State *L)
{
	lua_Integer size = table_len(L, "remove");
	lua_Integer pos = luaL_optinteger(L, 2, size);
	if (pos != size)
		luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size,
			      2, "position out of bounds");
	lua_geti(L, 1, pos);
	for (; pos < size; pos++) {
		lua_geti(L, 1, pos + 1);
		lua_seti(L, 1, pos);
	}
	lua_pushnil(L);
	lua_seti(L, 1, pos);
	return 1;
}

static int t_move(lua_State *L)
{
	lua_Integer f = luaL_checkinteger(L, 2);
	lua_Integer e = luaL_checkinteger(L, 3);
	lua_Integer t = luaL_checkinteger(L, 4);
	int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checktype(L, tt, LUA_TTABLE);
	if (e >= f) {
		luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3,
			      "too many elements to move");
		lua_Integer n = e - f;
		if (n >= HF_LUA_TABLE_MAX)
			return luaL_error(L,
					  "table.move: too many elements "
					  "(%I)",
					  n + 1);
		luaL_argcheck(L, t <= LUA_MAXINTEGER - n, 4,
			      "destination wrap around");
		if (t > e || t <= f ||
		    (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
			for (lua_Integer i = 0; i <= n; i++) {
				lua_geti(L, 1, f + i);
				lua_seti(L, tt, t + i);
			}
		} else {
			for (lua_Integer i = n; i >= 0; i--) {
				lua_geti(L, 1, f + i);
				lua_seti(L, tt, t + i);
			}
		}
	}
	lua_pushvalue(L, tt);
	return 1;
}

/* load(chunk [, name [, mode [, env]]]): always text mode; the environment
 * defaults to the running step's, never the sandbox itself. */
static int b_load(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_checkany(L, 1);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	if (n >= 2)
		lua_pushvalue(L, 2);
	else
		lua_pushnil(L);
	lua_pushliteral(L, "t");
	if (n >= 4)
		lua_pushvalue(L, 4);
	else
		lua_rawgetp(L, LUA_REGISTRYINDEX, &env_key);
	lua_call(L, 4, LUA_MULTRET);
	return lua_gettop(L) - n;
}

/* collectgarbage: "collect", "step", "count" and "isrunning" work; options
 * that would change the collector for later steps do nothing. */
static int b_collectgarbage(lua_State *L)
{
	static const char *const allowed[] = {"collect", "step", "count",
					      "isrunning", NULL};
	static const char *const ignored[] = {
	    "stop",	"restart",    "incremental", "generational",
	    "setpause", "setstepmul", NULL};
	const char *opt = luaL_optstring(L, 1, "collect");
	for (int i = 0; ignored[i]; i++) {
		if (strcmp(opt, ignored[i]) == 0) {
			lua_pushinteger(L, 0);
			return 1;
		}
	}
	luaL_checkoption(L, 1, "collect", allowed);
	int n = lua_gettop(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, n, LUA_MULTRET);
	return lua_gettop(L);
}

static bool is_frozen(lua_State *L, int idx)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &frozen_key);
	lua_pushvalue(L, idx);
	lua_rawget(L, -2);
	bool frozen = lua_toboolean(L, -1);
	lua_pop(L, 2);
	return frozen;
}

static int b_rawset(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checkany(L, 2);
	luaL_checkany(L, 3);
	if (is_frozen(L, 1))
		return luaL_error(L, "attempt to modify a read-only table");
	lua_settop(L, 3);
	lua_rawset(L, 1);
	return 1;
}

/* xpcall's message handler runs before the error unwinds; for a kill raised
 * from the hook, that is while hooks are disabled, so a handler that loops
 * would never be stopped. Once the step is killed, the user's handler is
 * skipped and the kill error passes through unchanged. */
static int xpcall_handler(lua_State *L)
{
	if (get_rt(L)->killed != KILL_NONE)
		return 1;
	lua_settop(L, 1);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 1, 1);
	return 1;
}

static int xpcall_done(lua_State *L, int status, lua_KContext extra)
{
	if (status != LUA_OK && status != LUA_YIELD) {
		lua_pushboolean(L, 0);
		lua_pushvalue(L, -2);
		return 2;
	}
	return lua_gettop(L) - (int)extra;
}

/* xpcall(f, handler, ...) with the handler guarded as above. */
static int b_xpcall(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, xpcall_handler, 1);
	lua_replace(L, 2);     /* f, H, args... */
	lua_pushboolean(L, 1); /* the first result on success */
	lua_pushvalue(L, 1);
	lua_rotate(L, 3, 2); /* f, H, true, f, args... */
	int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_done);
	return xpcall_done(L, status, 2);
}

/* setmetatable: no __gc, whose code would run at collection time, outside
 * the limits of any step. */
static int b_setmetatable(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc metamethods "
					     "are not allowed");
		lua_pop(L, 1);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* require(NAME): NAME.lua from the scripts directory (dots are directory
 * separators), compiled in text mode, run in the step's environment, cached
 * for the rest of the step. */
static int b_require(lua_State *L)
{
	struct hf_luart *rt = get_rt(L);
	size_t len;
	const char *name = luaL_checklstring(L, 1, &len);
	char rel[300], path[4096], chunkname[320];
	bool ok = len > 0 && len < 200 && !strstr(name, "..");
	for (size_t i = 0; ok && i < len; i++) {
		char c = name[i];
		ok = isalnum((unsigned char)c) || c == '_' || c == '.' ||
		     c == '-';
		rel[i] = c == '.' ? '/' : c;
	}
	if (!ok)
		return luaL_error(L,
				  "require: invalid module name '%s' "
				  "(letters, digits, '_', '-' and '.' "
				  "only)",
				  name);
	rel[len] = '\0';
	lua_settop(L, 1);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &loaded_key); /* 2 */
	if (lua_getfield(L, 2, name) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	snprintf(path, sizeof path, "%s/%s.lua", rt->scripts_dir, rel);
	snprintf(chunkname, sizeof chunkname, "=scripts/%s.lua", rel);
	void **box = hf_lua_box(L, free);
	size_t flen;
	char *src = hf_read_file(path, &flen);
	if (!src)
		return luaL_error(L, "require: cannot open 'scripts/%s.lua'",
				  rel);
	*box = src;
	int status = luaL_loadbufferx(L, src, flen, chunkname, "t");
	free(src);
	*box = NULL;
	if (status != LUA_OK)
		return lua_error(L);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &env_key);
	lua_setupvalue(L, -2, 1);
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, 2, name);
	return 1;
}

/* ---- read-only proxies ---- */

static int ro_newindex(lua_State *L)
{
	return luaL_error(L, "attempt to modify read-only table '%s'",
			  lua_tostring(L, lua_upvalueindex(1)));
}

/* The iterator of pairs(proxy): walks the real table, which it keeps as an
 * upvalue so that the real (writable) table never reaches a script. */
static int ro_next(lua_State *L)
{
	lua_settop(L, 2);
	if (lua_next(L, lua_upvalueindex(1)))
		return 2;
	lua_pushnil(L);
	return 1;
}

static int ro_pairs(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushcclosure(L, ro_next, 1);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

/* Replaces the table at the top of the stack by a read-only proxy of it. */
static void freeze(lua_State *L, const char *name)
{
	int real = lua_gettop(L);
	lua_newtable(L); /* proxy */
	lua_createtable(L, 0, 4);
	lua_pushvalue(L, real);
	lua_setfield(L, -2, "__index");
	lua_pushstring(L, name);
	lua_pushcclosure(L, ro_newindex, 1);
	lua_setfield(L, -2, "__newindex");
	lua_pushvalue(L, real);
	lua_pushcclosure(L, ro_pairs, 1);
	lua_setfield(L, -2, "__pairs");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &frozen_key);
	lua_pushvalue(L, -2);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	lua_replace(L, real);
}

/* Reads a global for a step: the sandbox, else an error. */
static int env_index(lua_State *L)
{
	lua_pushvalue(L, 2);
	if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
		return 1;
	if (lua_type(L, 2) == LUA_TSTRING)
		return luaL_error(L, "attempt to read undefined global '%s'",
				  lua_tostring(L, 2));
	return luaL_error(L, "attempt to read an undefined global");
}

/* ---- setup ---- */

static void open_lib(lua_State *L, const char *name, lua_CFunction open)
{
	luaL_requiref(L, name, open, 0);
}

/* Sets field name of the table at idx to a closure of fn over the current
 * value of that field (the original function). */
static void wrap(lua_State *L, int idx, const char *name, lua_CFunction fn)
{
	idx = lua_absindex(L, idx);
	lua_getfield(L, idx, name);
	lua_pushcclosure(L, fn, 1);
	lua_setfield(L, idx, name);
}

static int setup(lua_State *L)
{
	struct hf_luart *rt = lua_touserdata(L, 1);
	lua_settop(L, 0);

	luaL_requiref(L, "_G", luaopen_base, 1);       /* 1: the base library */
	open_lib(L, LUA_TABLIBNAME, luaopen_table);    /* 2 */
	open_lib(L, LUA_STRLIBNAME, luaopen_string);   /* 3 */
	open_lib(L, LUA_MATHLIBNAME, luaopen_math);    /* 4 */
	open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);    /* 5 */
	open_lib(L, LUA_COLIBNAME, luaopen_coroutine); /* 6 */
	open_lib(L, LUA_OSLIBNAME, luaopen_os);	       /* 7 */

	lua_newtable(L);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_pushvalue(L, -1);
	lua_setmetatable(L, -2);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &frozen_key);

	lua_newtable(L); /* 8: the sandbox globals */
	int S = lua_gettop(L);
	static const char *const base[] = {
	    "assert",	"error",  "getmetatable", "ipairs",
	    "next",	"pairs",  "pcall",	  "rawequal",
	    "rawget",	"rawlen", "select",	  "tonumber",
	    "tostring", "type",	  "_VERSION",	  NULL};
	for (int i = 0; base[i]; i++) {
		lua_getfield(L, 1, base[i]);
		lua_setfield(L, S, base[i]);
	}
	lua_getfield(L, 1, "load");
	lua_pushcclosure(L, b_load, 1);
	lua_setfield(L, S, "load");
	lua_getfield(L, 1, "collectgarbage");
	lua_pushcclosure(L, b_collectgarbage, 1);
	lua_setfield(L, S, "collectgarbage");
	lua_getfield(L, 1, "setmetatable");
	lua_pushcclosure(L, b_setmetatable, 1);
	lua_setfield(L, S, "setmetatable");
	lua_pushcfunction(L, b_rawset);
	lua_setfield(L, S, "rawset");
	lua_pushcfunction(L, b_xpcall);
	lua_setfield(L, S, "xpcall");

	/* string: no dump; guarded rep and pattern functions. */
	lua_pushnil(L);
	lua_setfield(L, 3, "dump");
	wrap(L, 3, "rep", s_rep);
	lua_pushcfunction(L, s_find);
	lua_setfield(L, 3, "find");
	lua_pushcfunction(L, s_match);
	lua_setfield(L, 3, "match");
	lua_pushcfunction(L, s_gmatch);
	lua_setfield(L, 3, "gmatch");
	lua_pushcfunction(L, s_gsub);
	lua_setfield(L, 3, "gsub");
	/* table: bounded shifting. */
	lua_pushcfunction(L, t_insert);
	lua_setfield(L, 2, "insert");
	lua_pushcfunction(L, t_remove);
	lua_setfield(L, 2, "remove");
	lua_pushcfunction(L, t_move);
	lua_setfield(L, 2, "move");

	lua_pushvalue(L, 2);
	freeze(L, "table");
	lua_setfield(L, S, "table");
	lua_pushvalue(L, 3);
	freeze(L, "string");
	/* The string metatable: methods through the proxy, and protected so
	 * getmetatable("").__index cannot be replaced. */
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_pushvalue(L, -3);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 2);
	lua_setfield(L, S, "string");
	lua_pushvalue(L, 4);
	freeze(L, "math");
	lua_setfield(L, S, "math");
	lua_pushvalue(L, 5);
	freeze(L, "utf8");
	lua_setfield(L, S, "utf8");
	lua_pushvalue(L, 6);
	freeze(L, "coroutine");
	lua_setfield(L, S, "coroutine");
	lua_createtable(L, 0, 3);
	lua_getfield(L, 7, "time");
	lua_setfield(L, -2, "time");
	lua_getfield(L, 7, "date");
	lua_setfield(L, -2, "date");
	lua_getfield(L, 7, "clock");
	lua_setfield(L, -2, "clock");
	freeze(L, "os");
	lua_setfield(L, S, "os");

	hf_lua_json_open(L);
	freeze(L, "json");
	lua_setfield(L, S, "json");
	hf_lua_open_crypto(L);
	freeze(L, "crypto");
	lua_setfield(L, S, "crypto");
	hf_lua_push_env(L);
	lua_setfield(L, S, "env");

	if (!rt->expr_only) {
		hf_lua_open_log(L, &rt->log);
		freeze(L, "log");
		lua_setfield(L, S, "log");
		hf_lua_push_print(L, &rt->log);
		lua_setfield(L, S, "print");
		if (rt->db) {
			hf_lua_open_db(L, rt->db);
			freeze(L, "db");
			lua_setfield(L, S, "db");
		}
		if (rt->scripts_dir) {
			lua_pushcfunction(L, b_require);
			lua_setfield(L, S, "require");
		}
		if (rt->http) {
			hf_lua_open_http(L, rt->http);
			freeze(L, "http");
			lua_setfield(L, S, "http");
		}
		if (rt->webhook) {
			hf_lua_open_webhook(L, rt->webhook);
			freeze(L, "webhook");
			lua_setfield(L, S, "webhook");
		}
	}

	/* The sandbox becomes the state's globals: chunks compiled here get
	 * it as their default _ENV, though every call replaces that with a
	 * step environment. */
	lua_pushvalue(L, S);
	lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	lua_pushvalue(L, S);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &sandbox_key);

	lua_createtable(L, 0, 2);
	lua_pushvalue(L, S);
	lua_pushcclosure(L, env_index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_rawsetp(L, LUA_REGISTRYINDEX, &envmt_key);

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
		rt->db =
		    hf_lua_db_open(cfg->data_path, cfg->data_sync_full, err);
		if (!rt->db)
			goto fail;
	}
	if (!cfg->expr_only) {
		rt->http = hf_lua_http_create();
		rt->webhook = hf_lua_webhook_create();
	}
	rt->L = lua_newstate(l_alloc, rt);
	if (!rt->L) {
		hf_error_set(err, NULL, 0, 0, "cannot create a Lua state");
		goto fail;
	}
	lua_pushcfunction(rt->L, setup);
	lua_pushlightuserdata(rt->L, rt);
	if (lua_pcall(rt->L, 1, 0, 0) != LUA_OK) {
		hf_error_set(err, NULL, 0, 0,
			     "cannot set up the Lua sandbox: %s",
			     lua_tostring(rt->L, -1));
		goto fail;
	}
	lua_settop(rt->L, 0);
	lua_gc(rt->L, LUA_GCCOLLECT);
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

/* Message handler: the error with a traceback. The step is over, so the
 * memory limit and the hook are lifted first (the handler must not fail
 * for want of room, nor be killed). */
static int msgh(lua_State *L)
{
	struct hf_luart *rt = get_rt(L);
	rt->limit = 0;
	lua_sethook(L, NULL, 0, 0);
	const char *msg = lua_tostring(L, 1);
	if (!msg)
		msg = lua_pushfstring(L, "(error object is a %s value)",
				      luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* Pushes the compiled chunk for src, from the cache or compiled now (text
 * mode). The key holds a hash of the source, so a stale entry is never run
 * even if two workflows share a version string. Raises on syntax errors. */
static void push_chunk(lua_State *L, struct hf_luart *rt, const char *key,
		       const char *src, const char *chunkname)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &chunks_key);
	lua_pushfstring(L, "%s:%I", key, (lua_Integer)fnv1a(src));
	lua_pushvalue(L, -1);
	if (lua_rawget(L, -3) == LUA_TFUNCTION) {
		lua_replace(L, -3);
		lua_pop(L, 1);
		return;
	}
	lua_pop(L, 1);
	if (luaL_loadbufferx(L, src, strlen(src), chunkname, "t") != LUA_OK)
		lua_error(L);
	if (++rt->nchunks > HF_LUA_CHUNK_CACHE) {
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &chunks_key);
		lua_replace(L, -4);
		rt->nchunks = 1;
	}
	lua_pushvalue(L, -2);
	lua_pushvalue(L, -2);
	lua_rawset(L, -5); /* chunks[key] = fn */
	lua_replace(L, -3);
	lua_pop(L, 1);
}

/* Pushes a fresh step environment and makes it the current one. */
static int push_env(lua_State *L)
{
	lua_createtable(L, 0, 8);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &envmt_key);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	lua_setfield(L, -2, "_G");
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &env_key);
	lua_newtable(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &loaded_key);
	return lua_gettop(L);
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
	int env = push_env(L);

	if (ctx->event)
		hf_lua_push_json(L, ctx->event);
	else
		lua_newtable(L);
	lua_setfield(L, env, "event");

	lua_newtable(L);
	if (json_is_object(ctx->steps)) {
		const char *k;
		size_t klen;
		json_t *v;
		json_object_keylen_foreach(ctx->steps, k, klen, v)
		{
			if (json_is_null(v))
				continue; /* nil, like a skipped step */
			lua_pushlstring(L, k, klen);
			hf_lua_push_json(L, v);
			lua_rawset(L, -3);
		}
	}
	lua_setfield(L, env, "steps");

	lua_createtable(L, 0, 3);
	lua_pushstring(L, ctx->run_id ? ctx->run_id : "");
	lua_setfield(L, -2, "id");
	lua_pushstring(L, wf->name ? wf->name : "");
	lua_setfield(L, -2, "workflow");
	lua_pushinteger(L, ctx->attempt > 0 ? ctx->attempt : 1);
	lua_setfield(L, -2, "attempt");
	lua_setfield(L, env, "run");

	if (st->if_expr && st->if_expr->chunk) {
		const char *key = lua_pushfstring(L, "%s:%s:if", ver, st->id);
		const char *name = yaml_chunkname(L, wf);
		push_chunk(L, rt, key, st->if_expr->chunk, name);
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
		push_chunk(L, rt, key, st->with_chunk, name);
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
	push_chunk(L, rt, key, st->code ? st->code : "",
		   st->code_name ? st->code_name : "=step");
	set_env(L, -1, env);
	lua_getfield(L, env, "args");
	lua_call(L, 1, 1);
	lua_pushboolean(L, 1);
	lua_insert(L, -2);
	return 2;
}

/* Under lua_pcall: evaluates rt->expr against rt->expr_event. */
static int expr_main(lua_State *L)
{
	struct hf_luart *rt = lua_touserdata(L, 1);
	lua_settop(L, 0);
	int env = push_env(L);
	if (rt->expr_event)
		hf_lua_push_json(L, rt->expr_event);
	else
		lua_newtable(L);
	lua_setfield(L, env, "event");
	push_chunk(L, rt, rt->expr_key,
		   rt->expr->chunk ? rt->expr->chunk : "return nil",
		   "=expression");
	set_env(L, -1, env);
	lua_call(L, 0, 1);
	return 1;
}

/* Runs fn(rt) under the limits with the message handler. Leaves the results
 * (nres) or the error at the top. */
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
	rt->limit = rt->used + rt->memory_limit;
	hf_lua_db_begin_step(rt->db, rt->deadline);
	hf_lua_http_begin_step(rt->http, rt->deadline);
	hf_lua_webhook_discard(rt->webhook); /* nothing left from before */
	lua_sethook(L, hook, LUA_MASKCOUNT, HF_LUA_HOOK_INSTRUCTIONS);
	lua_pushcfunction(L, msgh);
	lua_pushcfunction(L, fn);
	lua_pushlightuserdata(L, rt);
	int status = lua_pcall(L, 1, nres, 1);
	lua_sethook(L, NULL, 0, 0);
	/* A kill that a pcall caught just before the chunk returned (no
	 * instruction left for the hook to fire on) still fails the run. */
	if (status == LUA_OK && rt->killed != KILL_NONE) {
		lua_pushliteral(L, "killed");
		status = LUA_ERRRUN;
	}
	/* A failure past the deadline is a timeout, even when it surfaced as
	 * another error (a query interrupted at the deadline). */
	if (status != LUA_OK && rt->killed == KILL_NONE &&
	    hf_mono_ms() >= rt->deadline)
		rt->killed = KILL_TIMEOUT;
	rt->limit = 0;
	rt->deadline = 0;
	rt->budget = -1;
	return status;
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
		kill_message(rt, head, sizeof head);
	else if (mem)
		memory_message(rt, head, sizeof head);
	else
		return hf_xstrdup(msg);
	const char *tb = strstr(msg, "stack traceback:");
	return tb ? hf_xasprintf("%s\n%s", head, tb) : hf_xstrdup(head);
}

/* Drops what the step left behind and returns memory to the baseline. */
static void finish(struct hf_luart *rt, bool failed)
{
	lua_State *L = rt->L;
	lua_settop(L, 0);
	lua_pushnil(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &env_key);
	lua_pushnil(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &loaded_key);
	rt->log.entries = NULL;
	rt->ctx = NULL;
	rt->expr = NULL;
	rt->expr_event = NULL;
	rt->in_expr = false;
	if (failed || ++rt->runs % 16 == 0)
		lua_gc(L, LUA_GCCOLLECT);
}

static void fail_res(struct hf_step_result *res, char *msg)
{
	res->status = HF_STEP_FAILED;
	free(res->error);
	res->error = msg;
	json_decref(res->output);
	res->output = json_null();
}

int hf_luart_run_step(struct hf_luart *rt, const struct hf_step_ctx *ctx,
		      struct hf_step_result *res)
{
	memset(res, 0, sizeof *res);
	res->started_at = hf_now_ms();
	res->output = json_null();
	res->logs = json_array();
	if (!ctx->wf || ctx->step >= ctx->wf->nsteps || rt->expr_only) {
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
	int status = run_limited(rt, step_main, 2, timeout, -1);
	bool failed = status != LUA_OK;
	if (failed) {
		fail_res(res, failure(rt, status));
	} else if (!lua_toboolean(rt->L, -2)) {
		res->status = HF_STEP_SKIPPED;
	} else {
		char err[512];
		json_t *out =
		    hf_lua_to_json(rt->L, -1, "output", err, sizeof err);
		size_t size = out ? json_dumpb(out, NULL, 0,
					       JSON_COMPACT | JSON_ENCODE_ANY)
				  : 0;
		if (!out) {
			fail_res(res, hf_xasprintf("step output is not "
						   "JSON-shaped: %s",
						   err));
		} else if (size > HF_STEP_OUTPUT_MAX) {
			char lim[32];
			json_decref(out);
			format_size(HF_STEP_OUTPUT_MAX, lim, sizeof lim);
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
	/* Emits leave with the result of a step that succeeded, only. */
	if (res->status == HF_STEP_SUCCEEDED)
		hf_lua_webhook_take(rt->webhook, &res->emits, &res->nemits);
	else
		hf_lua_webhook_discard(rt->webhook);
	finish(rt, failed || res->status == HF_STEP_FAILED);
	res->finished_at = hf_now_ms();
	return 0;
}

int hf_luart_eval(struct hf_luart *rt, const char *cache_key,
		  const struct hf_expr *e, json_t *event, json_t **value,
		  char **err)
{
	*value = NULL;
	*err = NULL;
	rt->expr = e;
	rt->expr_key = cache_key ? cache_key : "expr";
	rt->expr_event = event;
	rt->in_expr = true;
	rt->log.entries = NULL;
	int status = run_limited(rt, expr_main, 1, HF_EXPR_TIMEOUT_MS,
				 HF_EXPR_MAX_INSTRUCTIONS);
	int rc = 0;
	if (status != LUA_OK) {
		*err = failure(rt, status);
		rc = -1;
	} else {
		char msg[512];
		*value = hf_lua_to_json(rt->L, -1, "value", msg, sizeof msg);
		if (!*value) {
			*err = hf_xasprintf("expression value is not "
					    "JSON-shaped: %s",
					    msg);
			rc = -1;
		}
	}
	hf_lua_db_end_step(rt->db);
	hf_lua_webhook_discard(rt->webhook);
	finish(rt, rc != 0);
	return rc;
}

bool hf_json_truthy(const json_t *v)
{
	return v && !json_is_null(v) && !json_is_false(v);
}
