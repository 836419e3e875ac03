/* wf_with.c - a step's `with:` mapping translated into one Lua chunk that
 * returns the args table: scalars become Lua literals, `${{ EXPR }}` the value
 * of EXPR, text around expressions a concatenation. Lines are kept, so that a
 * runtime error points into the YAML file.
 *
 * Owns: the size and depth caps of `with:` (aliases can make a small file
 * describe a huge table). Does not own: running the chunk (hf_luart), the
 * syntax check (wf_lua.c). Neighbours: wf_yaml.c, wf_lua.c.
 *
 * Threading: works on one parse's struct wf_ctx, owned by the calling thread.
 */
#include "hf_limits.h"
#include "wf_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A Lua numeric literal that YAML also reads as a number: [-+]digits[.digits]
 * [e[-+]digits], .5, 5., or 0x hex. */
static bool is_number(const char *s, size_t n)
{
	size_t i = 0, digits = 0;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	if (n - i > 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
		for (i += 2; i < n; i++)
			if (!isxdigit((unsigned char)s[i]))
				return false;
		return true;
	}
	while (i < n && isdigit((unsigned char)s[i]))
		i++, digits++;
	if (i < n && s[i] == '.')
		for (i++; i < n && isdigit((unsigned char)s[i]); i++)
			digits++;
	if (!digits)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		if (i >= n || !isdigit((unsigned char)s[i]))
			return false;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	}
	return i == n;
}

struct wgen {
	struct wf_ctx *c;
	struct hf_buf b;
	int line;      /* line the output is on, 1-based */
	size_t values; /* nodes visited, aliases counted at each use */
	bool failed;   /* too deep or too big: stop walking */
	bool too_big;
};

static void w_put(struct wgen *g, const char *s, size_t n)
{
	if (g->failed)
		return;
	if (hf_buf_append(&g->b, s, n) != 0) {
		g->failed = g->too_big = true;
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n')
			g->line++;
}

static void w_str(struct wgen *g, const char *s)
{
	w_put(g, s, strlen(s));
}

/* Moves the output down to YAML line `line` (never up). */
static void w_pad(struct wgen *g, int line)
{
	while (!g->failed && g->line < line)
		w_put(g, "\n", 1);
}

/* A Lua string literal: printable bytes as they are, the rest escaped, so that
 * the literal never spans lines. */
static void w_quote(struct wgen *g, const char *s, size_t n)
{
	size_t run = 0; /* bytes that need no escape, written at once */
	w_put(g, "\"", 1);
	for (size_t i = 0; i < n && !g->failed; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[8];
		if (ch >= 0x20 && ch != 0x7f && ch != '"' && ch != '\\') {
			run++;
			continue;
		}
		w_put(g, s + i - run, run);
		run = 0;
		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = (char)ch;
			w_put(g, esc, 2);
		} else if (ch == '\n') {
			w_put(g, "\\n", 2);
		} else {
			snprintf(esc, sizeof esc, "\\%03u", ch);
			w_put(g, esc, 4);
		}
	}
	w_put(g, s + n - run, run);
	w_put(g, "\"", 1);
}

/* Line and column of byte off of scalar n's value. Exact for single-line and
 * literal block scalars, close for the others. */
static void pos_at(struct wf_ctx *c, const yaml_node_t *n, const char *s,
		   size_t off, int *line, int *col)
{
	int l, cl;
	size_t ls = 0;
	wf_text_pos(c, n, &l, &cl);
	for (size_t i = 0; i < off; i++)
		if (s[i] == '\n') {
			l++;
			ls = i + 1;
		}
	*line = l;
	*col = cl + (int)(off - ls);
}

/* Emits `(EXPR)` for the expression at s[off..off+n) of scalar node. */
static void w_expr(struct wgen *g, const yaml_node_t *node, const char *s,
		   size_t off, size_t n)
{
	while (n && isspace((unsigned char)s[off])) {
		off++;
		n--;
	}
	while (n && isspace((unsigned char)s[off + n - 1]))
		n--;
	int line, col;
	pos_at(g->c, node, s, off, &line, &col);
	char *chunk = wf_expr_chunk(g->c, s + off, n, line, col, "with");
	if (!chunk)
		return;
	free(chunk);
	w_pad(g, line);
	w_put(g, "(", 1);
	w_put(g, s + off, n);
	if (memmem(s + off, n, "--", 2))
		w_put(g, "\n", 1);
	w_put(g, ")", 1);
}

/* A string: a literal, one `${{ EXPR }}` (the value of EXPR), or text with
 * expressions in it (a concatenation with tostring()). */
static void w_string(struct wgen *g, const yaml_node_t *node)
{
	const char *s = sval(node);
	size_t len = slen(node), a = 0, z = len;
	if (!memmem(s, len, "${{", 3)) {
		w_quote(g, s, len);
		return;
	}
	while (a < z && isspace((unsigned char)s[a]))
		a++;
	while (z > a && isspace((unsigned char)s[z - 1]))
		z--;
	if (z - a >= 5 && memcmp(s + a, "${{", 3) == 0) {
		const char *close = memmem(s + a + 3, z - a - 3, "}}", 2);
		if (close == s + z - 2) {
			w_expr(g, node, s, a + 3, (size_t)(close - s) - a - 3);
			return;
		}
	}
	bool first = true;
	size_t i = 0;
	w_put(g, "(", 1);
	while (i < len && !g->failed) {
		const char *o = memmem(s + i, len - i, "${{", 3);
		size_t lit_end = o ? (size_t)(o - s) : len;
		if (lit_end > i) {
			if (!first)
				w_str(g, " .. ");
			w_quote(g, s + i, lit_end - i);
			first = false;
		}
		if (!o)
			break;
		size_t eo = lit_end + 3;
		const char *close = memmem(s + eo, len - eo, "}}", 2);
		if (!close) {
			int line, col;
			pos_at(g->c, node, s, lit_end, &line, &col);
			wf_diag(g->c, line, col,
				"unterminated '${{' in 'with' (expected '}}')");
			return;
		}
		if (!first)
			w_str(g, " .. ");
		w_str(g, "tostring(");
		w_expr(g, node, s, eo, (size_t)(close - s) - eo);
		w_put(g, ")", 1);
		first = false;
		i = (size_t)(close - s) + 2;
	}
	w_put(g, ")", 1);
}

static void w_scalar(struct wgen *g, const yaml_node_t *n)
{
	const char *s = sval(n);
	size_t len = slen(n);
	if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    strlen(s) == len) {
		if (wf_is_null(s)) {
			w_str(g, "nil");
			return;
		}
		if (wf_is_true(s)) {
			w_str(g, "true");
			return;
		}
		if (wf_is_false(s)) {
			w_str(g, "false");
			return;
		}
		if (is_number(s, len)) {
			if (s[0] == '+')
				w_put(g, s + 1, len - 1);
			else
				w_put(g, s, len);
			return;
		}
	}
	w_string(g, n);
}

static void w_node(struct wgen *g, const yaml_node_t *n, int depth)
{
	if (g->failed)
		return;
	if (++g->values > HF_WITH_MAX_VALUES) {
		g->failed = g->too_big = true;
		return;
	}
	if (depth > HF_WITH_MAX_DEPTH) {
		wf_nerr(g->c, n,
			"'with' is nested too deeply (at most %d levels)",
			HF_WITH_MAX_DEPTH);
		g->failed = true;
		return;
	}
	w_pad(g, (int)n->start_mark.line + 1);
	switch (n->type) {
	case YAML_SCALAR_NODE:
		w_scalar(g, n);
		break;
	case YAML_SEQUENCE_NODE:
		w_put(g, "{", 1);
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top && !g->failed; it++) {
			yaml_node_t *v = node_of(g->c, *it);
			if (v)
				w_node(g, v, depth + 1);
			w_put(g, ",", 1);
		}
		w_put(g, "}", 1);
		break;
	case YAML_MAPPING_NODE:
		wf_check_dups(g->c, n);
		w_put(g, "{", 1);
		for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
		     pr < n->data.mapping.pairs.top && !g->failed; pr++) {
			yaml_node_t *k = node_of(g->c, pr->key);
			yaml_node_t *v = node_of(g->c, pr->value);
			if (!k || !v || k->type != YAML_SCALAR_NODE)
				continue; /* reported by check_dups */
			w_pad(g, (int)k->start_mark.line + 1);
			w_put(g, "[", 1);
			w_quote(g, sval(k), slen(k));
			w_put(g, "]=", 2);
			w_node(g, v, depth + 1);
			w_put(g, ",", 1);
		}
		w_put(g, "}", 1);
		break;
	default:
		w_str(g, "nil");
		break;
	}
}

void wf_parse_with(struct wf_ctx *c, const yaml_node_t *n, struct hf_step *st)
{
	if (!wf_want_map(c, n, "with"))
		return;
	int before = c->errors;
	struct wgen g = {.c = c, .b = {.max = HF_WITH_MAX_SIZE}, .line = 1};
	w_str(&g, "return ");
	w_node(&g, n, 0);
	if (g.too_big)
		wf_nerr(c, n,
			"'with' is too large (at most %d values, %d bytes as "
			"Lua)",
			HF_WITH_MAX_VALUES, HF_WITH_MAX_SIZE);
	if (g.failed || c->errors != before) {
		hf_buf_release(&g.b);
		return;
	}
	int el;
	char msg[512];
	if (wf_lua_syntax(c, g.b.data, g.b.len, &el, msg, sizeof msg) != 0) {
		/* each expression compiled alone; together they did not */
		wf_diag(c,
			clamp(el, (int)n->start_mark.line + 1,
			      (int)n->end_mark.line + 1),
			(int)n->start_mark.column + 1,
			"lua syntax error in 'with': %s", msg);
		hf_buf_release(&g.b);
		return;
	}
	st->with_chunk = g.b.data;
}
