/* wf_yaml.c - the workflow loader's ground floor: diagnostics as FILE:LINE:COL,
 * helpers over libyaml's nodes (key lookup, unknown and duplicate keys, where a
 * scalar's text starts) and scalar values (integers, durations, booleans,
 * names).
 *
 * Owns: how a problem is worded and ordered. Does not own: any section of the
 * schema (workflow.c), Lua (wf_lua.c). Neighbours: every other wf_*.c file
 * calls into this one through wf_int.h.
 *
 * Threading: works on one parse's struct wf_ctx, owned by the calling thread.
 */
#include "hf_http_frame.h"
#include "hf_limits.h"
#include "wf_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- diagnostics -------------------------------------------------------- */

__attribute__((format(printf, 5, 0))) static void
vdiag(struct wf_ctx *c, const char *file, int line, int col, const char *fmt,
      va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	hf_diags_add(c->diags, file, line, col, "%s", msg);
	c->errors++;
}

__attribute__((format(printf, 5, 6))) void wf_diag_file(struct wf_ctx *c,
							const char *file,
							int line, int col,
							const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdiag(c, file, line, col, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 4, 5))) void
wf_diag(struct wf_ctx *c, int line, int col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdiag(c, c->file, line, col, fmt, ap);
	va_end(ap);
}

/* Reports at the start of node n (libyaml marks are 0-based). */
__attribute__((format(printf, 3, 4))) void
wf_nerr(struct wf_ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdiag(c, c->file, (int)n->start_mark.line + 1,
	      (int)n->start_mark.column + 1, fmt, ap);
	va_end(ap);
}

struct diag_ref {
	struct hf_error e;
	int other_file;
	size_t order;
};

static int diag_cmp(const void *a, const void *b)
{
	const struct diag_ref *x = a, *y = b;
	if (x->other_file != y->other_file)
		return x->other_file - y->other_file;
	if (x->e.line != y->e.line)
		return x->e.line < y->e.line ? -1 : 1;
	if (x->e.col != y->e.col)
		return x->e.col < y->e.col ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Puts the problems of this parse in file order (checks run key by key). */
void wf_sort_diags(struct wf_ctx *c, size_t from)
{
	struct hf_diags *d = c->diags;
	if (!d || d->n - from < 2)
		return;
	size_t n = d->n - from;
	struct diag_ref *r = hf_xcalloc(n, sizeof *r);
	for (size_t i = 0; i < n; i++) {
		r[i].e = d->items[from + i];
		r[i].other_file = strcmp(r[i].e.file, c->file) != 0;
		r[i].order = i;
	}
	qsort(r, n, sizeof *r, diag_cmp);
	/* a node shared through an alias is checked once per use: say it once
	 */
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m && r[i].e.line == d->items[from + m - 1].line &&
		    r[i].e.col == d->items[from + m - 1].col &&
		    strcmp(r[i].e.msg, d->items[from + m - 1].msg) == 0 &&
		    strcmp(r[i].e.file, d->items[from + m - 1].file) == 0)
			continue;
		d->items[from + m++] = r[i].e;
	}
	d->n = from + m;
	free(r);
}

/* ---- YAML node helpers -------------------------------------------------- */

static bool is_block(const yaml_node_t *n)
{
	return n->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
	       n->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
}

bool wf_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			return false;
	return true;
}

/* The value of `key` in mapping map, or NULL. */
yaml_node_t *wf_get(struct wf_ctx *c, const yaml_node_t *map, const char *key)
{
	size_t kl = strlen(key);
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
	     pr < map->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node_of(c, pr->key);
		if (k && k->type == YAML_SCALAR_NODE && slen(k) == kl &&
		    memcmp(sval(k), key, kl) == 0)
			return node_of(c, pr->value);
	}
	return NULL;
}

yaml_node_t *wf_need(struct wf_ctx *c, const yaml_node_t *map, const char *key)
{
	yaml_node_t *n = wf_get(c, map, key);
	if (!n)
		wf_nerr(c, map, "missing required key '%s'", key);
	return n;
}

struct keyref {
	const char *s;
	size_t len;
	size_t order;
	const yaml_node_t *node;
};

static int keyref_cmp(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	int r = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
	if (r)
		return r;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Reports keys that are not strings, and keys given twice (at the later one).
 */
void wf_check_dups(struct wf_ctx *c, const yaml_node_t *map)
{
	size_t n = (size_t)(map->data.mapping.pairs.top -
			    map->data.mapping.pairs.start);
	if (!n)
		return;
	struct keyref *k = hf_xcalloc(n, sizeof *k);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *kn =
		    node_of(c, map->data.mapping.pairs.start[i].key);
		if (!kn)
			continue;
		if (kn->type != YAML_SCALAR_NODE) {
			wf_nerr(c, kn, "mapping keys must be strings");
			continue;
		}
		k[m++] = (struct keyref){sval(kn), slen(kn), i, kn};
	}
	qsort(k, m, sizeof *k, keyref_cmp);
	for (size_t i = 1; i < m; i++)
		if (k[i].len == k[i - 1].len &&
		    memcmp(k[i].s, k[i - 1].s, k[i].len) == 0)
			wf_nerr(c, k[i].node, "duplicate key '%s'", k[i].s);
	free(k);
}

void wf_check_keys(struct wf_ctx *c, const yaml_node_t *map,
		   const char *const *allowed, size_t nallowed)
{
	wf_check_dups(c, map);
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
	     pr < map->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node_of(c, pr->key);
		if (!k || k->type != YAML_SCALAR_NODE)
			continue;
		bool ok = false;
		for (size_t i = 0; i < nallowed && !ok; i++)
			ok = slen(k) == strlen(allowed[i]) &&
			     memcmp(sval(k), allowed[i], slen(k)) == 0;
		if (ok)
			continue;
		char list[256];
		size_t o = 0;
		list[0] = '\0';
		for (size_t i = 0; i < nallowed && o < sizeof list; i++)
			o += (size_t)snprintf(list + o, sizeof list - o, "%s%s",
					      i ? ", " : "", allowed[i]);
		wf_nerr(c, k, "unknown key '%s' (expected one of: %s)", sval(k),
			list);
	}
}

bool wf_want_map(struct wf_ctx *c, const yaml_node_t *n, const char *key)
{
	if (n->type == YAML_MAPPING_NODE)
		return true;
	wf_nerr(c, n, "'%s' must be a mapping", key);
	return false;
}

/* The text of a scalar used as a plain string, or NULL after reporting. */
const char *wf_want_str(struct wf_ctx *c, const yaml_node_t *n, const char *key)
{
	if (n->type != YAML_SCALAR_NODE) {
		wf_nerr(c, n, "'%s' must be a string", key);
		return NULL;
	}
	if (strlen(sval(n)) != slen(n)) {
		wf_nerr(c, n, "'%s' must not contain NUL bytes", key);
		return NULL;
	}
	return sval(n);
}

static void index_lines(struct wf_ctx *c)
{
	if (c->lines)
		return;
	size_t cap = 64;
	c->lines = hf_xmalloc(cap * sizeof *c->lines);
	c->lines[0] = 0;
	c->nlines = 1;
	for (size_t i = 0; i < c->len; i++) {
		char ch = c->text[i];
		if (ch != '\n' &&
		    (ch != '\r' || (i + 1 < c->len && c->text[i + 1] == '\n')))
			continue;
		if (c->nlines == cap) {
			cap *= 2;
			c->lines =
			    hf_xrealloc(c->lines, cap * sizeof *c->lines);
		}
		c->lines[c->nlines++] = i + 1;
	}
}

/* The indentation of a block scalar's first non-empty content line. */
static int block_indent(struct wf_ctx *c, const yaml_node_t *n)
{
	index_lines(c);
	for (size_t l = n->start_mark.line + 1;
	     l < c->nlines && l <= n->end_mark.line; l++) {
		size_t i = c->lines[l];
		size_t end = l + 1 < c->nlines ? c->lines[l + 1] : c->len;
		size_t sp = 0;
		while (i + sp < end && c->text[i + sp] == ' ')
			sp++;
		if (i + sp < end && c->text[i + sp] != '\n' &&
		    c->text[i + sp] != '\r')
			return (int)sp;
	}
	return 0;
}

/* Where a scalar's text starts in the file, 1-based: block scalars on the line
 * after their indicator, quoted ones after the quote. */
void wf_text_pos(struct wf_ctx *c, const yaml_node_t *n, int *line, int *col)
{
	if (is_block(n)) {
		*line = (int)n->start_mark.line + 2;
		*col = block_indent(c, n) + 1;
		return;
	}
	*line = (int)n->start_mark.line + 1;
	*col = (int)n->start_mark.column + 1;
	if (n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
	    n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)
		(*col)++;
}
bool wf_route_path(struct wf_ctx *c, const yaml_node_t *n, const char *path,
		   const char *what)
{
	size_t at = 0;
	const char *why = hf_frame_route_problem(path, &at);
	if (!why)
		return true;
	int line, col;
	wf_text_pos(c, n, &line, &col);
	wf_diag(c, line, col + (int)at, "invalid %s '%s': %s", what, path, why);
	return false;
}

/* ---- scalar values --------------------------------------------------------
 */

bool wf_parse_int(struct wf_ctx *c, const yaml_node_t *n, const char *what,
		  long long lo, long long hi, int *out)
{
	const char *s = wf_want_str(c, n, what);
	if (!s)
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if ((!isdigit((unsigned char)s[0]) && s[0] != '-') || *end || errno ||
	    v < lo || v > hi) {
		wf_nerr(c, n,
			"'%s' must be an integer from %lld to %lld (got '%s')",
			what, lo, hi, s);
		return false;
	}
	*out = (int)v;
	return true;
}

void wf_parse_duration(struct wf_ctx *c, const yaml_node_t *n, const char *what,
		       bool positive, int64_t *out)
{
	const char *s = wf_want_str(c, n, what);
	int64_t v;
	if (!s)
		return;
	if (hf_parse_duration(s, &v) != 0) {
		wf_nerr(
		    c, n,
		    "invalid duration '%s' (expected e.g. 500ms, 30s, 2m, 1h)",
		    s);
		return;
	}
	if (positive && v <= 0) {
		wf_nerr(c, n, "'%s' must be longer than 0", what);
		return;
	}
	*out = v;
}

static bool word_in(const char *s, const char *const *words, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, words[i]) == 0)
			return true;
	return false;
}

static const char *const true_words[] = {"true", "True", "TRUE"};
static const char *const false_words[] = {"false", "False", "FALSE"};
static const char *const null_words[] = {"null", "Null", "NULL", "~", ""};

bool wf_is_true(const char *s)
{
	return word_in(s, true_words, NKEYS(true_words));
}

bool wf_is_false(const char *s)
{
	return word_in(s, false_words, NKEYS(false_words));
}

bool wf_is_null(const char *s)
{
	return word_in(s, null_words, NKEYS(null_words));
}

void wf_parse_bool(struct wf_ctx *c, const yaml_node_t *n, const char *what,
		   bool *out)
{
	const char *s = wf_want_str(c, n, what);
	if (!s)
		return;
	if (wf_is_true(s))
		*out = true;
	else if (wf_is_false(s))
		*out = false;
	else
		wf_nerr(c, n, "'%s' must be true or false (got '%s')", what, s);
}

/* [a-z0-9_]+ (plus '-' when dash), at most HF_NAME_MAX characters. */
bool wf_valid_ident(const char *s, bool dash)
{
	size_t n = strlen(s);
	if (n == 0 || n > HF_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      (dash && s[i] == '-')))
			return false;
	return true;
}
