/* lua_pattern.c - string.find, string.match, string.gmatch and string.gsub for
 * the sandbox: Lua's pattern language (classes %a %c %d %g %l %p %s %u %w %x
 * and their complements, sets, . * + - ?, anchors, captures and position
 * captures, back-references %1-%9, %b, %f), implemented here (mirroring
 * lstrlib.c's match) so that backtracking checks the step's deadline: a
 * pattern such as ".-.-.-.-b" over a long subject ends with the timeout error
 * instead of hanging the worker. Plain finds use memmem, which is linear.
 *
 * Owns nothing: the limits and their error messages are luart.c's
 * (hf_luart_charge), the choice of what replaces what is lua_sandbox.c's.
 * Threading: runs on the runtime's thread, inside a step. Neighbours:
 * lua_sandbox.c (installs these functions), luart.c. */
#include "hf_limits.h"
#include "luart_int.h"

#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

#define PAT_ESC '%'
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
	} capture[HF_LUA_PATTERN_CAPTURES];
};

static const char *pmatch(struct mstate *ms, const char *s, const char *p);

static void prep(struct mstate *ms, lua_State *L, const char *s, size_t ls,
		 const char *p, size_t lp)
{
	ms->L = L;
	ms->rt = hf_luart_of(L);
	ms->src_init = s;
	ms->src_end = s + ls;
	ms->p_end = p + lp;
	ms->ticks = 0;
	ms->level = 0;
	ms->depth = HF_LUA_PATTERN_DEPTH;
}

static void reprep(struct mstate *ms)
{
	ms->level = 0;
	ms->depth = HF_LUA_PATTERN_DEPTH;
}

static void tick(struct mstate *ms)
{
	if (++ms->ticks >= HF_LUA_PATTERN_TICKS) {
		ms->ticks = 0;
		hf_luart_charge(ms->L, ms->rt, HF_LUA_PATTERN_TICKS);
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
	if (ms->level >= HF_LUA_PATTERN_CAPTURES)
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

int hf_lua_str_find(lua_State *L)
{
	return find_aux(L, true);
}

int hf_lua_str_match(lua_State *L)
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

int hf_lua_str_gmatch(lua_State *L)
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

int hf_lua_str_gsub(lua_State *L)
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
