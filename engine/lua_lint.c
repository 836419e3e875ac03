/* lua_lint.c - `hookflow check`'s unknown-global warning: a small Lua lexer
 * (names, keywords, strings with long brackets, comments, numbers, operators)
 * and two passes over its tokens: the first collects what the chunk declares
 * (locals, parameters, loop variables, labels, functions, assigned globals)
 * and marks names that are not reads (fields, table keys, attributes, labels);
 * the second reports each remaining name that is neither declared nor a
 * global of the sandbox where the chunk runs (hf_lua_global_where).
 *
 * An approximation by design: scopes are not tracked (a name declared
 * anywhere counts everywhere), so it misses some typos but does not warn on
 * correct code. Total on any input (tests/fuzz/fuzz_lua_lint.c): an
 * unfinished string or comment runs to the end, unbalanced brackets are
 * tolerated. Needs no lua_State. Pure, any thread. Neighbours: lua_sandbox.c
 * (the names), cmd_check.c (the caller). */
#include "hf_lua_lint.h"
#include "hf_util.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { T_EOF, T_NAME, T_KW, T_STR, T_NUM, T_OP };
enum { F_SKIP = 1 }; /* not a read of a global */

struct tok {
	unsigned char type;
	unsigned char flags;
	char top; /* the innermost open bracket or block: ( [ { B, or 0 */
	int line;
	int col;
	const char *s;
	size_t len;
};

struct toks {
	struct tok *v;
	size_t n;
	size_t cap;
};

static const char *const keywords[] = {
    "and",	"break",  "do",	  "else", "elseif", "end",   "false", "for",
    "function", "goto",	  "if",	  "in",	  "local",  "nil",   "not",   "or",
    "repeat",	"return", "then", "true", "until",  "while", NULL};

static bool is_kw(const char *s, size_t n)
{
	for (const char *const *k = keywords; *k; k++)
		if (strlen(*k) == n && memcmp(*k, s, n) == 0)
			return true;
	return false;
}

static bool tok_is(const struct tok *t, int type, const char *s)
{
	return t->type == type && t->len == strlen(s) &&
	       memcmp(t->s, s, t->len) == 0;
}

static bool op(const struct tok *t, const char *s)
{
	return tok_is(t, T_OP, s);
}

static bool kw(const struct tok *t, const char *s)
{
	return tok_is(t, T_KW, s);
}

static void push(struct toks *t, int type, const char *s, size_t len, int line,
		 int col)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->v = hf_xrealloc(t->v, t->cap * sizeof *t->v);
	}
	t->v[t->n++] = (struct tok){.type = (unsigned char)type,
				    .s = s,
				    .len = len,
				    .line = line,
				    .col = col};
}

/* The lexer's position. */
struct lx {
	const char *s;
	size_t n;
	size_t i;
	int line;
	size_t ls; /* offset of the current line's start */
};

static void newline(struct lx *x)
{
	x->line++;
	x->ls = x->i + 1;
}

/* At '[': the level of a long bracket ([[ is 0, [==[ is 2), or -1. */
static long long_level(const struct lx *x)
{
	size_t j = x->i + 1;
	while (j < x->n && x->s[j] == '=')
		j++;
	if (j < x->n && x->s[j] == '[')
		return (long)(j - x->i - 1);
	return -1;
}

/* Skips a long bracket of level lv starting at '[' (to the end if unclosed).
 */
static void skip_long(struct lx *x, long lv)
{
	x->i += (size_t)lv + 2;
	while (x->i < x->n) {
		char c = x->s[x->i];
		if (c == '\n') {
			newline(x);
		} else if (c == ']') {
			size_t j = x->i + 1;
			while (j < x->n && x->s[j] == '=')
				j++;
			if (j < x->n && x->s[j] == ']' &&
			    (long)(j - x->i - 1) == lv) {
				x->i = j + 1;
				return;
			}
		}
		x->i++;
	}
}

/* Skips a quoted string starting at its quote (an unfinished one ends at the
 * end of the line, as Lua would refuse it anyway). */
static void skip_quoted(struct lx *x)
{
	char q = x->s[x->i++];
	while (x->i < x->n && x->s[x->i] != q && x->s[x->i] != '\n') {
		if (x->s[x->i] == '\\' && x->i + 1 < x->n) {
			x->i++;
			if (x->s[x->i] == '\n') {
				newline(x);
			} else if (x->s[x->i] == 'z') {
				while (x->i + 1 < x->n &&
				       isspace((unsigned char)x->s[x->i + 1])) {
					x->i++;
					if (x->s[x->i] == '\n')
						newline(x);
				}
			}
		}
		x->i++;
	}
	if (x->i < x->n && x->s[x->i] == q)
		x->i++;
}

static void skip_number(struct lx *x)
{
	x->i++;
	while (x->i < x->n) {
		char c = x->s[x->i];
		if (c && strchr("eEpP", c) && x->i + 1 < x->n &&
		    (x->s[x->i + 1] == '+' || x->s[x->i + 1] == '-'))
			x->i += 2;
		else if (isalnum((unsigned char)c) || c == '.')
			x->i++;
		else
			break;
	}
}

static size_t op_len(const struct lx *x)
{
	static const char *const ops[] = {
	    "...", "..", "==", "~=", "<=", ">=", "//", "::", "<<", ">>", NULL};
	for (const char *const *o = ops; *o; o++) {
		size_t l = strlen(*o);
		if (x->n - x->i >= l && memcmp(x->s + x->i, *o, l) == 0)
			return l;
	}
	return 1;
}

/* One token (or none, for blanks and comments) at x->i. */
static void lex_one(struct lx *x, struct toks *t)
{
	const char *s = x->s;
	char c = s[x->i];
	size_t start = x->i;
	int line = x->line, col = (int)(x->i - x->ls) + 1;
	long lv;
	if (c == '\n') {
		newline(x);
		x->i++;
	} else if (isspace((unsigned char)c)) {
		x->i++;
	} else if (c == '-' && x->i + 1 < x->n && s[x->i + 1] == '-') {
		x->i += 2;
		if (x->i < x->n && s[x->i] == '[' && (lv = long_level(x)) >= 0)
			skip_long(x, lv);
		else
			while (x->i < x->n && s[x->i] != '\n')
				x->i++;
	} else if (isalpha((unsigned char)c) || c == '_') {
		while (x->i < x->n &&
		       (isalnum((unsigned char)s[x->i]) || s[x->i] == '_'))
			x->i++;
		size_t n = x->i - start;
		push(t, is_kw(s + start, n) ? T_KW : T_NAME, s + start, n, line,
		     col);
	} else if (isdigit((unsigned char)c) ||
		   (c == '.' && x->i + 1 < x->n &&
		    isdigit((unsigned char)s[x->i + 1]))) {
		skip_number(x);
		push(t, T_NUM, s + start, x->i - start, line, col);
	} else if (c == '"' || c == '\'') {
		skip_quoted(x);
		push(t, T_STR, s + start, x->i - start, line, col);
	} else if (c == '[' && (lv = long_level(x)) >= 0) {
		skip_long(x, lv);
		push(t, T_STR, s + start, x->i - start, line, col);
	} else {
		x->i += op_len(x);
		push(t, T_OP, s + start, x->i - start, line, col);
	}
}

static void lex(const char *src, size_t len, struct toks *t)
{
	struct lx x = {.s = src, .n = len, .line = 1};
	if (len && src[0] == '#') /* a first line "#!..." Lua skips */
		while (x.i < len && src[x.i] != '\n')
			x.i++;
	while (x.i < len)
		lex_one(&x, t);
	/* end markers, so that looking a few tokens ahead stays inside */
	for (int k = 0; k < 4; k++)
		push(t, T_EOF, src + len, 0, x.line, (int)(x.i - x.ls) + 1);
}

/* Sets each token's `top`: the innermost bracket or block open there. */
static void nest(struct toks *t)
{
	enum { DEPTH = 256 };
	char stack[DEPTH];
	size_t depth = 0;
	for (size_t i = 0; i < t->n; i++) {
		struct tok *k = &t->v[i];
		k->top = depth == 0	  ? 0
			 : depth <= DEPTH ? stack[depth - 1]
					  : '?';
		char open = 0;
		bool close = false;
		char c = k->type == T_OP && k->len == 1 ? k->s[0] : 0;
		if (c && strchr("([{", c)) {
			open = c;
		} else if (c && strchr(")]}", c)) {
			close = true;
		} else if (kw(k, "function") || kw(k, "do") || kw(k, "then") ||
			   kw(k, "repeat")) {
			open = 'B';
		} else if (kw(k, "else")) {
			close = true;
			open = 'B';
		} else if (kw(k, "elseif") || kw(k, "end") || kw(k, "until")) {
			close = true;
		}
		if (close && depth)
			depth--;
		if (open) {
			if (depth < DEPTH)
				stack[depth] = open;
			depth++;
		}
	}
}

/* ---- the set of declared names (open addressing) ---- */

struct names {
	struct {
		const char *s;
		size_t len;
	} * v;
	size_t cap; /* a power of two, or 0 */
	size_t n;
};

static uint32_t hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static bool names_has(const struct names *d, const char *s, size_t n)
{
	if (!d->cap)
		return false;
	for (size_t i = hash(s, n) & (d->cap - 1); d->v[i].s;
	     i = (i + 1) & (d->cap - 1))
		if (d->v[i].len == n && memcmp(d->v[i].s, s, n) == 0)
			return true;
	return false;
}

static void names_add(struct names *d, const char *s, size_t n)
{
	if (names_has(d, s, n))
		return;
	if ((d->n + 1) * 2 > d->cap) {
		struct names old = *d;
		d->cap = d->cap ? d->cap * 2 : 64;
		d->v = hf_xcalloc(d->cap, sizeof *d->v);
		d->n = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.v[i].s)
				names_add(d, old.v[i].s, old.v[i].len);
		free(old.v);
	}
	size_t i = hash(s, n) & (d->cap - 1);
	while (d->v[i].s)
		i = (i + 1) & (d->cap - 1);
	d->v[i].s = s;
	d->v[i].len = n;
	d->n++;
}

/* ---- pass 1: declarations and names that are not reads ---- */

static void declare(struct names *d, struct tok *k)
{
	names_add(d, k->s, k->len);
	k->flags |= F_SKIP;
}

/* Declares the names of a list NAME {',' NAME} from v[j] on (with `<attr>`
 * after each when attribs); returns the index after it. */
static size_t decl_list(struct toks *t, size_t j, struct names *d, bool attribs)
{
	while (t->v[j].type == T_NAME) {
		declare(d, &t->v[j++]);
		if (attribs && op(&t->v[j], "<") &&
		    t->v[j + 1].type == T_NAME && op(&t->v[j + 2], ">")) {
			t->v[j + 1].flags |= F_SKIP;
			j += 3;
		}
		if (!op(&t->v[j], ","))
			break;
		j++;
	}
	return j;
}

/* `function` at i: its name (a global when plain, a field otherwise; `self`
 * after ':') and its parameters. */
static void decl_function(struct toks *t, size_t i, struct names *d)
{
	size_t j = i + 1;
	if (t->v[j].type == T_NAME) {
		size_t first = j;
		while ((op(&t->v[j + 1], ".") || op(&t->v[j + 1], ":")) &&
		       t->v[j + 2].type == T_NAME) {
			if (op(&t->v[j + 1], ":"))
				names_add(d, "self", 4);
			t->v[j + 2].flags |= F_SKIP;
			j += 2;
		}
		if (j == first)
			declare(d, &t->v[first]);
		j++;
	}
	if (op(&t->v[j], "("))
		decl_list(t, j + 1, d, false);
}

static bool is_key(const struct toks *t, size_t j)
{
	const struct tok *p = j ? &t->v[j - 1] : NULL;
	return t->v[j].top == '{' && p &&
	       (op(p, "{") || op(p, ",") || op(p, ";")) &&
	       op(&t->v[j + 1], "=");
}

static bool after_dot(const struct toks *t, size_t j)
{
	return j && (op(&t->v[j - 1], ".") || op(&t->v[j - 1], ":"));
}

/* `=` at i: the names assigned, NAME {',' NAME} before it, become globals
 * (or were locals already). */
static void decl_assign(struct toks *t, size_t i, struct names *d)
{
	size_t j = i;
	while (j > 0 && t->v[j - 1].type == T_NAME) {
		j--;
		if (after_dot(t, j) || is_key(t, j))
			return;
		names_add(d, t->v[j].s, t->v[j].len);
		if (j < 2 || !op(&t->v[j - 1], ","))
			return;
		j--;
	}
}

static void pass1(struct toks *t, struct names *d)
{
	for (size_t i = 0; i + 1 < t->n; i++) {
		struct tok *k = &t->v[i];
		if (kw(k, "local") && kw(&t->v[i + 1], "function")) {
			if (t->v[i + 2].type == T_NAME)
				declare(d, &t->v[i + 2]);
		} else if (kw(k, "local")) {
			decl_list(t, i + 1, d, true);
		} else if (kw(k, "function")) {
			decl_function(t, i, d);
		} else if (kw(k, "for")) {
			decl_list(t, i + 1, d, false);
		} else if (kw(k, "goto") && t->v[i + 1].type == T_NAME) {
			t->v[i + 1].flags |= F_SKIP;
		} else if (op(k, "::") && t->v[i + 1].type == T_NAME) {
			t->v[i + 1].flags |= F_SKIP;
		} else if (op(k, "=")) {
			decl_assign(t, i, d);
		} else if (k->type == T_NAME &&
			   (after_dot(t, i) || is_key(t, i))) {
			k->flags |= F_SKIP;
		}
	}
}

/* ---- pass 2: reads of unknown globals ---- */

/* Levenshtein distance of a and b, or max + 1 when more than max. */
static size_t distance(const char *a, size_t na, const char *b, size_t nb,
		       size_t max)
{
	enum { LEN = 64 };
	size_t row[LEN + 1];
	if (na > LEN || nb > LEN)
		return max + 1;
	for (size_t j = 0; j <= nb; j++)
		row[j] = j;
	for (size_t i = 1; i <= na; i++) {
		size_t diag = row[0], lo;
		row[0] = lo = i;
		for (size_t j = 1; j <= nb; j++) {
			size_t up = row[j];
			size_t v = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < v)
				v = up + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			row[j] = v;
			diag = up;
			if (v < lo)
				lo = v;
		}
		if (lo > max)
			return max + 1;
	}
	return row[nb];
}

/* The globals defined where a chunk runs, gathered once per lint. */
struct known {
	const char *name[128];
	size_t len[128];
	size_t n;
};

static void known_init(struct known *g, unsigned where)
{
	const char *name;
	unsigned w;
	g->n = 0;
	for (size_t i = 0; hf_lua_global_at(i, &name, &w) && g->n < 128; i++) {
		if (w & where) {
			g->name[g->n] = name;
			g->len[g->n++] = strlen(name);
		}
	}
}

/* The nearest of the globals at distance 2 at most (and less than the
 * name's length), or NULL. */
static const char *suggest(const struct known *g, const char *s, size_t n)
{
	const char *best = NULL;
	size_t bestd = 3;
	for (size_t i = 0; i < g->n; i++) {
		if (g->len[i] > n + 2 || n > g->len[i] + 2)
			continue;
		size_t d = distance(s, n, g->name[i], g->len[i], 2);
		if (d < bestd && d < n) {
			best = g->name[i];
			bestd = d;
		}
	}
	return best;
}

static size_t pass2(const struct toks *t, const struct names *d, unsigned where,
		    hf_lua_lint_fn fn, void *ud)
{
	struct known g;
	size_t calls = 0;
	known_init(&g, where);
	for (size_t i = 0; i < t->n; i++) {
		const struct tok *k = &t->v[i];
		if (k->type != T_NAME || (k->flags & F_SKIP) ||
		    names_has(d, k->s, k->len))
			continue;
		if (k->len == 4 && memcmp(k->s, "_ENV", 4) == 0)
			continue;
		unsigned def = hf_lua_global_where(k->s, k->len);
		if (def & where)
			continue;
		struct hf_lua_unknown u = {
		    .line = k->line,
		    .col = k->col,
		    .name = k->s,
		    .len = k->len,
		    .suggest = def ? NULL : suggest(&g, k->s, k->len),
		    .defined = def};
		fn(ud, &u);
		calls++;
	}
	return calls;
}

size_t hf_lua_lint(const char *src, size_t len, unsigned where,
		   hf_lua_lint_fn fn, void *ud)
{
	struct toks t = {0};
	struct names d = {0};
	lex(src, len, &t);
	nest(&t);
	pass1(&t, &d);
	size_t n = pass2(&t, &d, where, fn, ud);
	free(d.v);
	free(t.v);
	return n;
}

void hf_lua_lint_requires(const char *src, size_t len,
			  void (*fn)(void *ud, const char *name, size_t len),
			  void *ud)
{
	struct toks t = {0};
	lex(src, len, &t);
	for (size_t i = 0; i + 1 < t.n; i++) {
		if (!tok_is(&t.v[i], T_NAME, "require") || after_dot(&t, i))
			continue;
		size_t j = i + 1;
		bool paren = op(&t.v[j], "(");
		if (paren)
			j++;
		const struct tok *s = &t.v[j];
		if (s->type != T_STR || s->len < 2 || s->s[0] == '[' ||
		    s->s[s->len - 1] != s->s[0] || memchr(s->s, '\\', s->len) ||
		    (paren && !op(&t.v[j + 1], ")")))
			continue;
		fn(ud, s->s + 1, s->len - 2);
	}
	free(t.v);
}
