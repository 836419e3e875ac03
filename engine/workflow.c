/* workflow.c - workflow YAML files turned into immutable, validated struct
 * hf_workflow values, every problem reported as FILE:LINE:COL; the workflow set
 * loaded from a directory; reference counts.
 *
 * Owns: the schema of contract §3, ${NAME} secret expansion, the `with:` -> Lua
 * chunk translation and the load-time Lua syntax check (on a scratch lua_State
 * that is thrown away). Does not own: compiling code for execution or running
 * it (hf_luart), routing (router.c).
 *
 * Threading: loading is reentrant. A loaded workflow or set never changes and
 * may be shared between threads; ref/unref are atomic. */
#include "hf_limits.h"
#include "hf_verify.h"
#include "hf_workflow.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define NAME_MAX_LEN 64
#define PATH_MAX_LEN 2048
#define WITH_MAX_DEPTH 64
/* `with:` may use YAML aliases, which share nodes: a small file can describe a
 * huge table. The generated chunk is capped so that such a file fails fast. */
#define WITH_MAX_SIZE (1024 * 1024)
#define WITH_MAX_VALUES 20000

/* The public model plus what only the loader needs: where `name:` is, for the
 * set's duplicate-name error. Every hf_workflow is allocated as one of these.
 */
struct wf_priv {
	struct hf_workflow pub;
	int name_line;
	int name_col;
};

/* One parse: the document, where problems go, and the scratch Lua state. */
struct ctx {
	const char *file;
	const char *text;
	size_t len;
	const char *scripts_dir;
	/* When set, `script:` files come from here, not from scripts_dir. */
	const struct hf_script_src *stored;
	size_t nstored;
	yaml_document_t doc;
	struct hf_diags *diags;
	int errors;
	lua_State *L;
	struct hf_sha256 *md;
	struct wf_priv *p;
	size_t *lines; /* offsets of line starts in text, built on demand */
	size_t nlines;
};

/* Set by `check`: an unset ${NAME} in a secret is not an error there, since a
 * linter should not need the production secrets. `serve` keeps it an error. */
static atomic_bool env_optional;

void hf_workflow_set_env_optional(bool optional)
{
	atomic_store(&env_optional, optional);
}

static const char *const top_keys[] = {
    "name", "description", "on", "if", "timeout", "concurrency", "steps",
};
static const char *const on_keys[] = {"webhook"};
static const char *const webhook_keys[] = {
    "path", "methods", "verify", "dedupe", "respond", "timeout",
};
static const char *const verify_keys[] = {
    "scheme", "secret", "secrets", "header", "tolerance",
};
static const char *const concurrency_keys[] = {"key", "max"};
static const char *const step_keys[] = {
    "id",   "run",   "script",	"if",
    "with", "retry", "timeout", "continue_on_error",
};
static const char *const retry_keys[] = {"attempts", "backoff", "max_backoff"};

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *name;
	unsigned bit;
} methods[] = {
    {"GET", HF_METHOD_GET},	    {"POST", HF_METHOD_POST},
    {"PUT", HF_METHOD_PUT},	    {"PATCH", HF_METHOD_PATCH},
    {"DELETE", HF_METHOD_DELETE},   {"HEAD", HF_METHOD_HEAD},
    {"OPTIONS", HF_METHOD_OPTIONS},
};
#define WORKFLOW_METHODS                                                       \
	(HF_METHOD_GET | HF_METHOD_POST | HF_METHOD_PUT | HF_METHOD_PATCH |    \
	 HF_METHOD_DELETE)

static const char *const scheme_names[] = {
    [HF_VERIFY_NONE] = "none",
    [HF_VERIFY_HMAC_SHA256] = "hmac-sha256",
    [HF_VERIFY_GITHUB] = "github",
    [HF_VERIFY_STRIPE] = "stripe",
    [HF_VERIFY_SLACK] = "slack",
    [HF_VERIFY_SHOPIFY] = "shopify",
    [HF_VERIFY_STANDARD] = "standard-webhooks",
};

/* ---- small public helpers ---------------------------------------------- */

unsigned hf_method_from_name(const char *name)
{
	if (!name)
		return 0;
	for (size_t i = 0; i < NKEYS(methods); i++)
		if (strcmp(name, methods[i].name) == 0)
			return methods[i].bit;
	return 0;
}

void hf_methods_format(unsigned mask, char *out, size_t size)
{
	size_t o = 0;
	if (!size)
		return;
	out[0] = '\0';
	for (size_t i = 0; i < NKEYS(methods); i++) {
		if (!(mask & methods[i].bit))
			continue;
		int n = snprintf(out + o, size - o, "%s%s", o ? ", " : "",
				 methods[i].name);
		if (n < 0 || (size_t)n >= size - o)
			return;
		o += (size_t)n;
	}
}

const char *hf_verify_scheme_name(enum hf_verify_scheme s)
{
	if ((size_t)s < NKEYS(scheme_names) && scheme_names[s])
		return scheme_names[s];
	return "unknown";
}

bool hf_path_is_reserved(const char *path)
{
	static const char *const exact[] = {"/healthz", "/metrics"};
	static const char *const trees[] = {"/api", "/ui"};
	size_t n = strlen(path);
	while (n > 0 && path[n - 1] == '/')
		n--;
	for (size_t i = 0; i < NKEYS(exact); i++)
		if (n == strlen(exact[i]) && memcmp(path, exact[i], n) == 0)
			return true;
	for (size_t i = 0; i < NKEYS(trees); i++) {
		size_t t = strlen(trees[i]);
		if (n >= t && memcmp(path, trees[i], t) == 0 &&
		    (n == t || path[t] == '/'))
			return true;
	}
	return false;
}

int hf_workflow_step_index(const struct hf_workflow *wf, const char *id)
{
	for (size_t i = 0; i < wf->nsteps; i++)
		if (wf->steps[i].id && strcmp(wf->steps[i].id, id) == 0)
			return (int)i;
	return -1;
}

/* The headers declare the counts as plain int so that they stay free of
 * <stdatomic.h>; _Atomic int has int's size and alignment on every target we
 * build for, so the counts are only ever accessed through this view. */
static _Atomic int *refs_of(int *p)
{
	return (_Atomic int *)p;
}

/* ---- diagnostics -------------------------------------------------------- */

static const char *errstr(int e, char *buf, size_t size)
{
	return strerror_r(e, buf, size); /* GNU variant: returns the text */
}

__attribute__((format(printf, 5, 0))) static void
vdiag(struct ctx *c, const char *file, int line, int col, const char *fmt,
      va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	hf_diags_add(c->diags, file, line, col, "%s", msg);
	c->errors++;
}

__attribute__((format(printf, 5, 6))) static void
diag_file(struct ctx *c, const char *file, int line, int col, const char *fmt,
	  ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdiag(c, file, line, col, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 4, 5))) static void
diag(struct ctx *c, int line, int col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdiag(c, c->file, line, col, fmt, ap);
	va_end(ap);
}

/* Reports at the start of node n (libyaml marks are 0-based). */
__attribute__((format(printf, 3, 4))) static void
nerr(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
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
static void sort_diags(struct ctx *c, size_t from)
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

static yaml_node_t *node_of(struct ctx *c, int id)
{
	return yaml_document_get_node(&c->doc, id);
}

static const char *sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static size_t slen(const yaml_node_t *n)
{
	return n->data.scalar.length;
}

static bool is_block(const yaml_node_t *n)
{
	return n->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
	       n->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			return false;
	return true;
}

/* The value of `key` in mapping map, or NULL. */
static yaml_node_t *get(struct ctx *c, const yaml_node_t *map, const char *key)
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

static yaml_node_t *need(struct ctx *c, const yaml_node_t *map, const char *key)
{
	yaml_node_t *n = get(c, map, key);
	if (!n)
		nerr(c, map, "missing required key '%s'", key);
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
static void check_dups(struct ctx *c, const yaml_node_t *map)
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
			nerr(c, kn, "mapping keys must be strings");
			continue;
		}
		k[m++] = (struct keyref){sval(kn), slen(kn), i, kn};
	}
	qsort(k, m, sizeof *k, keyref_cmp);
	for (size_t i = 1; i < m; i++)
		if (k[i].len == k[i - 1].len &&
		    memcmp(k[i].s, k[i - 1].s, k[i].len) == 0)
			nerr(c, k[i].node, "duplicate key '%s'", k[i].s);
	free(k);
}

static void check_keys(struct ctx *c, const yaml_node_t *map,
		       const char *const *allowed, size_t nallowed)
{
	check_dups(c, map);
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
		nerr(c, k, "unknown key '%s' (expected one of: %s)", sval(k),
		     list);
	}
}

static bool want_map(struct ctx *c, const yaml_node_t *n, const char *key)
{
	if (n->type == YAML_MAPPING_NODE)
		return true;
	nerr(c, n, "'%s' must be a mapping", key);
	return false;
}

/* The text of a scalar used as a plain string, or NULL after reporting. */
static const char *want_str(struct ctx *c, const yaml_node_t *n,
			    const char *key)
{
	if (n->type != YAML_SCALAR_NODE) {
		nerr(c, n, "'%s' must be a string", key);
		return NULL;
	}
	if (strlen(sval(n)) != slen(n)) {
		nerr(c, n, "'%s' must not contain NUL bytes", key);
		return NULL;
	}
	return sval(n);
}

static void index_lines(struct ctx *c)
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
static int block_indent(struct ctx *c, const yaml_node_t *n)
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
static void text_pos(struct ctx *c, const yaml_node_t *n, int *line, int *col)
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

/* ---- Lua syntax check --------------------------------------------------- */

/* Appends newlines so that the next text is on line `line`. */
static void pad(struct hf_buf *b, int line)
{
	static const char nl[] = "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n";
	size_t n = line > 1 ? (size_t)line - 1 : 0;
	while (n) {
		size_t k = n < sizeof nl - 1 ? n : sizeof nl - 1;
		hf_buf_append(b, nl, k);
		n -= k;
	}
	if (!b->data)
		hf_buf_append(b, "", 0);
}

/* The last line that text starting on `first` covers (trailing blanks aside).
 */
static int last_line(int first, const char *s, size_t n)
{
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n')
			first++;
	return first;
}

/* Compiles code in text mode on the scratch state and throws the function away.
 * Returns 0, or -1 with Lua's line (0 when unknown) and its message without the
 * "chunk:LINE:" prefix. */
static int lua_syntax(struct ctx *c, const char *code, size_t len, int *line,
		      char *msg, size_t size)
{
	*line = 0;
	if (luaL_loadbufferx(c->L, code, len, "=?", "t") == LUA_OK) {
		lua_pop(c->L, 1);
		return 0;
	}
	const char *m = lua_tostring(c->L, -1);
	if (!m)
		m = "unknown error";
	if (strncmp(m, "?:", 2) == 0 && isdigit((unsigned char)m[2])) {
		char *end;
		long l = strtol(m + 2, &end, 10);
		if (*end == ':') {
			*line = l > 0 && l < 1000000000 ? (int)l : 0;
			m = end + 1;
			while (*m == ' ')
				m++;
		}
	}
	snprintf(msg, size, "%s", m);
	lua_pop(c->L, 1);
	return -1;
}

static int clamp(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Builds the chunk of the expression src (which is at YAML line/col), padded so
 * that Lua's lines are the file's, and compiles it. Returns the chunk (caller
 * frees) or NULL after reporting. */
static char *expr_chunk(struct ctx *c, const char *src, size_t n, int line,
			int col, const char *what)
{
	if (blank(src, n)) {
		diag(c, line, col, "empty expression in '%s'", what);
		return NULL;
	}
	struct hf_buf b = {0};
	pad(&b, line);
	hf_buf_append(&b, "return (", 8);
	hf_buf_append(&b, src, n);
	/* a trailing "-- comment" would swallow the parenthesis */
	if (memmem(src, n, "--", 2))
		hf_buf_append(&b, "\n", 1);
	hf_buf_append(&b, ")", 1);
	int el;
	char msg[512];
	if (lua_syntax(c, b.data, b.len, &el, msg, sizeof msg) != 0) {
		diag(c, clamp(el, line, last_line(line, src, n)), col,
		     "lua syntax error in '%s': %s", what, msg);
		hf_buf_release(&b);
		return NULL;
	}
	return b.data;
}

static struct hf_expr *parse_expr(struct ctx *c, const yaml_node_t *n,
				  const char *what)
{
	const char *s = want_str(c, n, what);
	if (!s)
		return NULL;
	int line, col;
	text_pos(c, n, &line, &col);
	char *chunk = expr_chunk(c, s, slen(n), line, col, what);
	if (!chunk)
		return NULL;
	struct hf_expr *e = hf_xcalloc(1, sizeof *e);
	e->src = hf_xstrdup(s);
	e->chunk = chunk;
	e->line = line;
	e->col = col;
	return e;
}

static void expr_free(struct hf_expr *e)
{
	if (!e)
		return;
	free(e->src);
	free(e->chunk);
	free(e);
}

/* ---- scalar values --------------------------------------------------------
 */

static bool parse_int(struct ctx *c, const yaml_node_t *n, const char *what,
		      long long lo, long long hi, int *out)
{
	const char *s = want_str(c, n, what);
	if (!s)
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if ((!isdigit((unsigned char)s[0]) && s[0] != '-') || *end || errno ||
	    v < lo || v > hi) {
		nerr(c, n,
		     "'%s' must be an integer from %lld to %lld (got '%s')",
		     what, lo, hi, s);
		return false;
	}
	*out = (int)v;
	return true;
}

static void parse_duration(struct ctx *c, const yaml_node_t *n,
			   const char *what, bool positive, int64_t *out)
{
	const char *s = want_str(c, n, what);
	int64_t v;
	if (!s)
		return;
	if (hf_parse_duration(s, &v) != 0) {
		nerr(c, n,
		     "invalid duration '%s' (expected e.g. 500ms, 30s, 2m, 1h)",
		     s);
		return;
	}
	if (positive && v <= 0) {
		nerr(c, n, "'%s' must be longer than 0", what);
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

static void parse_bool(struct ctx *c, const yaml_node_t *n, const char *what,
		       bool *out)
{
	const char *s = want_str(c, n, what);
	if (!s)
		return;
	if (word_in(s, true_words, NKEYS(true_words)))
		*out = true;
	else if (word_in(s, false_words, NKEYS(false_words)))
		*out = false;
	else
		nerr(c, n, "'%s' must be true or false (got '%s')", what, s);
}

/* [a-z0-9_]+ (plus '-' when dash), at most NAME_MAX_LEN characters. */
static bool valid_ident(const char *s, bool dash)
{
	size_t n = strlen(s);
	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      (dash && s[i] == '-')))
			return false;
	return true;
}

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

/* ---- with: -> Lua chunk ------------------------------------------------- */

struct wgen {
	struct ctx *c;
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
static void pos_at(struct ctx *c, const yaml_node_t *n, const char *s,
		   size_t off, int *line, int *col)
{
	int l, cl;
	size_t ls = 0;
	text_pos(c, n, &l, &cl);
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
	char *chunk = expr_chunk(g->c, s + off, n, line, col, "with");
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
			diag(g->c, line, col,
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
		if (word_in(s, null_words, NKEYS(null_words))) {
			w_str(g, "nil");
			return;
		}
		if (word_in(s, true_words, NKEYS(true_words))) {
			w_str(g, "true");
			return;
		}
		if (word_in(s, false_words, NKEYS(false_words))) {
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
	if (++g->values > WITH_MAX_VALUES) {
		g->failed = g->too_big = true;
		return;
	}
	if (depth > WITH_MAX_DEPTH) {
		nerr(g->c, n, "'with' is nested too deeply (at most %d levels)",
		     WITH_MAX_DEPTH);
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
		check_dups(g->c, n);
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

static void parse_with(struct ctx *c, const yaml_node_t *n, struct hf_step *st)
{
	if (!want_map(c, n, "with"))
		return;
	int before = c->errors;
	struct wgen g = {.c = c, .b = {.max = WITH_MAX_SIZE}, .line = 1};
	w_str(&g, "return ");
	w_node(&g, n, 0);
	if (g.too_big)
		nerr(c, n,
		     "'with' is too large (at most %d values, %d bytes as "
		     "Lua)",
		     WITH_MAX_VALUES, WITH_MAX_SIZE);
	if (g.failed || c->errors != before) {
		hf_buf_release(&g.b);
		return;
	}
	int el;
	char msg[512];
	if (lua_syntax(c, g.b.data, g.b.len, &el, msg, sizeof msg) != 0) {
		/* each expression compiled alone; together they did not */
		diag(c,
		     clamp(el, (int)n->start_mark.line + 1,
			   (int)n->end_mark.line + 1),
		     (int)n->start_mark.column + 1,
		     "lua syntax error in 'with': %s", msg);
		hf_buf_release(&g.b);
		return;
	}
	st->with_chunk = g.b.data;
}

/* ---- secrets --------------------------------------------------------------
 */

/* Expands the ${NAME} references of secret node n from the environment. Returns
 * the secret (caller frees, wipes) or NULL after reporting. Messages never show
 * the secret. Two passes, so that no partial copy is left in freed memory. */
static char *expand_secret(struct ctx *c, const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE) {
		nerr(c, n, "a secret must be a string");
		return NULL;
	}
	const char *s = sval(n);
	size_t len = slen(n), cap = 0;
	char *out = NULL;
	if (memchr(s, '\0', len)) {
		nerr(c, n, "a secret must not contain NUL bytes");
		return NULL;
	}
	for (int pass = 0; pass < 2; pass++) {
		size_t o = 0;
		for (size_t i = 0; i < len;) {
			if (s[i] != '$' || i + 1 >= len || s[i + 1] != '{') {
				if (out && o < cap)
					out[o] = s[i];
				o++, i++;
				continue;
			}
			size_t j = i + 2;
			while (j < len &&
			       (isalnum((unsigned char)s[j]) || s[j] == '_'))
				j++;
			char name[128];
			if (j == i + 2 || j >= len || s[j] != '}' ||
			    isdigit((unsigned char)s[i + 2]) ||
			    j - i - 2 >= sizeof name) {
				nerr(
				    c, n,
				    "invalid '${' in secret (expected ${NAME}, "
				    "NAME of letters, digits and '_')");
				goto fail;
			}
			memcpy(name, s + i + 2, j - i - 2);
			name[j - i - 2] = '\0';
			const char *v = getenv(name);
			if ((!v || !*v) && atomic_load(&env_optional))
				v = "unset"; /* `check` needs no secrets */
			if (!v || !*v) {
				nerr(c, n, "environment variable %s is not set",
				     name);
				goto fail;
			}
			size_t vl = strlen(v);
			if (out && o + vl <= cap)
				memcpy(out + o, v, vl);
			o += vl;
			i = j + 1;
		}
		if (!out) {
			if (o == 0) {
				nerr(c, n, "a secret must not be empty");
				return NULL;
			}
			cap = o;
			out = hf_xmalloc(cap + 1);
		} else {
			out[o < cap ? o : cap] = '\0';
		}
	}
	return out;
fail:
	if (out) {
		explicit_bzero(out, cap);
		free(out);
	}
	return NULL;
}

/* ---- the sections ------------------------------------------------------- */

static void parse_name(struct ctx *c, const yaml_node_t *n)
{
	const char *s = want_str(c, n, "name");
	if (!s)
		return;
	if (!valid_ident(s, true)) {
		nerr(c, n,
		     "invalid name '%s' (expected [a-z0-9_-]+, at most %d "
		     "characters)",
		     s, NAME_MAX_LEN);
		return;
	}
	c->p->pub.name = hf_xstrdup(s);
	c->p->name_line = (int)n->start_mark.line + 1;
	c->p->name_col = (int)n->start_mark.column + 1;
}

static void parse_path(struct ctx *c, const yaml_node_t *n)
{
	const char *s = want_str(c, n, "path");
	if (!s)
		return;
	if (s[0] != '/') {
		nerr(c, n, "invalid path '%s' (must start with '/')", s);
		return;
	}
	for (const char *p = s; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '?' || ch == '#' || ch <= ' ' || ch == 0x7f) {
			nerr(
			    c, n,
			    "invalid path '%s' (no '?', '#', spaces or control "
			    "characters)",
			    s);
			return;
		}
	}
	if (strlen(s) > PATH_MAX_LEN) {
		nerr(c, n, "path is too long (at most %d characters)",
		     PATH_MAX_LEN);
		return;
	}
	if (hf_path_is_reserved(s)) {
		nerr(c, n,
		     "path '%s' is reserved (/api, /healthz, /metrics and /ui "
		     "belong to hookflow)",
		     s);
		return;
	}
	c->p->pub.path = hf_xstrdup(s);
}

static unsigned parse_method(struct ctx *c, const yaml_node_t *n)
{
	const char *s = want_str(c, n, "methods");
	char up[16];
	size_t i;
	if (!s)
		return 0;
	for (i = 0; s[i] && i < sizeof up - 1; i++)
		up[i] = (char)toupper((unsigned char)s[i]);
	up[i] = '\0';
	unsigned m = s[i] ? 0 : hf_method_from_name(up);
	if (!(m & WORKFLOW_METHODS)) {
		nerr(c, n,
		     "unknown method '%s' (expected one of: GET, POST, PUT, "
		     "PATCH, DELETE)",
		     s);
		return 0;
	}
	return m;
}

static void parse_methods(struct ctx *c, const yaml_node_t *n)
{
	unsigned mask = 0;
	if (n->type == YAML_SCALAR_NODE) {
		mask = parse_method(c, n);
	} else if (n->type == YAML_SEQUENCE_NODE) {
		if (n->data.sequence.items.top == n->data.sequence.items.start)
			nerr(c, n, "'methods' must not be empty");
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top; it++) {
			yaml_node_t *v = node_of(c, *it);
			if (v)
				mask |= parse_method(c, v);
		}
	} else {
		nerr(c, n, "'methods' must be a list of HTTP methods");
	}
	if (mask)
		c->p->pub.methods = mask;
}

static void add_secret(struct ctx *c, const yaml_node_t *n)
{
	struct hf_verify_conf *v = &c->p->pub.verify;
	char *s = expand_secret(c, n);
	if (s)
		v->secrets[v->nsecrets++] = s;
}

static void parse_verify(struct ctx *c, const yaml_node_t *n)
{
	struct hf_verify_conf *v = &c->p->pub.verify;
	if (!want_map(c, n, "verify"))
		return;
	check_keys(c, n, verify_keys, NKEYS(verify_keys));
	yaml_node_t *x = need(c, n, "scheme");
	const char *s;
	if (x && (s = want_str(c, x, "scheme"))) {
		for (size_t i = 1; i < NKEYS(scheme_names); i++)
			if (strcmp(s, scheme_names[i]) == 0)
				v->scheme = (enum hf_verify_scheme)i;
		if (v->scheme == HF_VERIFY_NONE)
			nerr(c, x,
			     "unknown verify scheme '%s' (expected one of: "
			     "hmac-sha256, github, stripe, slack, shopify, "
			     "standard-webhooks)",
			     s);
	}
	yaml_node_t *one = get(c, n, "secret"), *many = get(c, n, "secrets");
	if (one && many) {
		nerr(c, many, "use either 'secret' or 'secrets', not both");
	} else if (!one && !many) {
		nerr(c, n, "missing required key 'secret' (or 'secrets')");
	} else if (one) {
		v->secrets = hf_xcalloc(1, sizeof *v->secrets);
		add_secret(c, one);
	} else if (many->type == YAML_SEQUENCE_NODE) {
		size_t cnt = (size_t)(many->data.sequence.items.top -
				      many->data.sequence.items.start);
		if (!cnt)
			nerr(c, many, "'secrets' must not be empty");
		v->secrets = hf_xcalloc(cnt ? cnt : 1, sizeof *v->secrets);
		for (size_t i = 0; i < cnt; i++) {
			yaml_node_t *it =
			    node_of(c, many->data.sequence.items.start[i]);
			if (it)
				add_secret(c, it);
		}
	} else {
		nerr(c, many, "'secrets' must be a list of strings");
	}
	x = get(c, n, "header");
	if (x && v->scheme != HF_VERIFY_HMAC_SHA256 &&
	    v->scheme != HF_VERIFY_NONE) {
		nerr(c, x, "'header' applies only to scheme hmac-sha256");
	} else if (x && (s = want_str(c, x, "header"))) {
		bool ok = *s != '\0';
		for (const char *p = s; *p && ok; p++)
			ok = *p > ' ' && *p < 0x7f && *p != ':';
		if (!ok)
			nerr(c, x, "invalid header name '%s'", s);
		else {
			v->header = hf_xstrdup(s);
			for (char *p = v->header; *p; p++)
				*p = (char)tolower((unsigned char)*p);
		}
	}
	if (v->scheme == HF_VERIFY_HMAC_SHA256 && !v->header)
		v->header = hf_xstrdup("x-signature");
	if ((x = get(c, n, "tolerance")))
		parse_duration(c, x, "tolerance", true, &v->tolerance_ms);
}

static void parse_on(struct ctx *c, const yaml_node_t *n)
{
	struct hf_workflow *wf = &c->p->pub;
	if (!want_map(c, n, "on"))
		return;
	check_keys(c, n, on_keys, NKEYS(on_keys));
	const yaml_node_t *w = need(c, n, "webhook"), *x;
	if (!w || !want_map(c, w, "webhook"))
		return;
	check_keys(c, w, webhook_keys, NKEYS(webhook_keys));
	if ((x = need(c, w, "path")))
		parse_path(c, x);
	if ((x = get(c, w, "methods")))
		parse_methods(c, x);
	if ((x = get(c, w, "verify")))
		parse_verify(c, x);
	if ((x = get(c, w, "dedupe")))
		wf->dedupe = parse_expr(c, x, "dedupe");
	const char *s;
	if ((x = get(c, w, "respond")) && (s = want_str(c, x, "respond"))) {
		if (strcmp(s, "sync") == 0)
			wf->respond_sync = true;
		else if (strcmp(s, "async") != 0)
			nerr(c, x,
			     "invalid respond '%s' (expected async or sync)",
			     s);
	}
	if ((x = get(c, w, "timeout")))
		parse_duration(c, x, "timeout", true, &wf->respond_timeout_ms);
}

static void parse_concurrency(struct ctx *c, const yaml_node_t *n)
{
	struct hf_workflow *wf = &c->p->pub;
	if (!want_map(c, n, "concurrency"))
		return;
	check_keys(c, n, concurrency_keys, NKEYS(concurrency_keys));
	const yaml_node_t *x;
	if ((x = need(c, n, "key")))
		wf->concurrency_key = parse_expr(c, x, "concurrency.key");
	if ((x = get(c, n, "max")))
		parse_int(c, x, "concurrency.max", 1, 1000000,
			  &wf->concurrency_max);
}

static void parse_run(struct ctx *c, const yaml_node_t *n, struct hf_step *st,
		      const char *label)
{
	const char *s = want_str(c, n, "run");
	int line, col, el;
	char msg[512];
	if (!s)
		return;
	text_pos(c, n, &line, &col);
	if (blank(s, slen(n))) {
		nerr(c, n, "'run' must not be empty");
		return;
	}
	struct hf_buf b = {0};
	pad(&b, line);
	hf_buf_append(&b, s, slen(n));
	if (lua_syntax(c, b.data, b.len, &el, msg, sizeof msg) != 0) {
		diag(c, clamp(el, line, last_line(line, s, slen(n))), col,
		     "lua syntax error in step %s: %s", label, msg);
		hf_buf_release(&b);
		return;
	}
	st->code = b.data;
	st->code_name = hf_xasprintf("@%s", c->file);
}

static bool valid_script_name(const char *s)
{
	size_t n = strlen(s);
	return n > 4 && s[0] != '/' && !strstr(s, "..") &&
	       strcmp(s + n - 4, ".lua") == 0;
}

static void parse_script(struct ctx *c, const yaml_node_t *n,
			 struct hf_step *st)
{
	const char *s = want_str(c, n, "script");
	char ebuf[128], msg[512];
	int el;
	if (!s)
		return;
	if (!valid_script_name(s)) {
		nerr(c, n,
		     "invalid script name '%s' (expected a file in the scripts "
		     "directory ending in .lua)",
		     s);
		return;
	}
	const char *dir = c->scripts_dir ? c->scripts_dir : "scripts";
	size_t dl = strlen(dir);
	char *path =
	    hf_xasprintf("%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", s);
	size_t len;
	char *code = NULL;
	if (c->stored) {
		errno = ENOENT;
		for (size_t i = 0; i < c->nstored && !code; i++)
			if (strcmp(c->stored[i].name, s) == 0) {
				len = c->stored[i].len;
				code = hf_xstrndup(c->stored[i].code, len);
			}
	} else {
		code = hf_read_file(path, &len);
	}
	if (!code) {
		nerr(c, n, "cannot read script '%s': %s", path,
		     errstr(errno, ebuf, sizeof ebuf));
		free(path);
		return;
	}
	hf_sha256_update(c->md, code, len);
	if (lua_syntax(c, code, len, &el, msg, sizeof msg) != 0) {
		diag_file(c, path, el > 0 ? el : 1, 1, "lua syntax error: %s",
			  msg);
		free(code);
		free(path);
		return;
	}
	st->script = hf_xstrdup(s);
	st->code = code;
	st->code_name = hf_xasprintf("@%s", path);
	free(path);
}

static void parse_retry(struct ctx *c, const yaml_node_t *n, struct hf_step *st)
{
	const yaml_node_t *x;
	if (!want_map(c, n, "retry"))
		return;
	check_keys(c, n, retry_keys, NKEYS(retry_keys));
	if ((x = need(c, n, "attempts")))
		parse_int(c, x, "retry.attempts", 1, HF_RETRY_MAX_ATTEMPTS,
			  &st->retry_attempts);
	if ((x = get(c, n, "backoff")))
		parse_duration(c, x, "retry.backoff", false,
			       &st->retry_backoff_ms);
	if ((x = get(c, n, "max_backoff")))
		parse_duration(c, x, "retry.max_backoff", false,
			       &st->retry_max_backoff_ms);
	if (st->retry_max_backoff_ms < st->retry_backoff_ms)
		nerr(c, n, "'max_backoff' must not be less than 'backoff'");
}

static void parse_step(struct ctx *c, const yaml_node_t *n, size_t idx,
		       struct hf_step *st, const yaml_node_t **idnode)
{
	const yaml_node_t *x, *run, *script;
	const char *s;
	char label[NAME_MAX_LEN + 8];

	st->retry_attempts = 1;
	st->retry_backoff_ms = HF_RETRY_BACKOFF_MS;
	st->retry_max_backoff_ms = HF_RETRY_MAX_BACKOFF_MS;
	st->timeout_ms = HF_STEP_TIMEOUT_MS;
	st->line = (int)n->start_mark.line + 1;
	if (n->type != YAML_MAPPING_NODE) {
		nerr(c, n,
		     "a step must be a mapping (with 'id' and 'run' or "
		     "'script')");
		return;
	}
	check_keys(c, n, step_keys, NKEYS(step_keys));
	if ((x = need(c, n, "id")) && (s = want_str(c, x, "id"))) {
		if (!valid_ident(s, false)) {
			nerr(c, x,
			     "invalid step id '%s' (expected [a-z0-9_]+, at "
			     "most %d characters)",
			     s, NAME_MAX_LEN);
		} else {
			st->id = hf_xstrdup(s);
			*idnode = x;
		}
	}
	if (st->id)
		snprintf(label, sizeof label, "'%s'", st->id);
	else
		snprintf(label, sizeof label, "#%zu", idx + 1);
	run = get(c, n, "run");
	script = get(c, n, "script");
	if (run && script)
		nerr(c, n,
		     "step %s has both 'run' and 'script' (expected exactly "
		     "one)",
		     label);
	else if (!run && !script)
		nerr(c, n, "step %s needs 'run' or 'script'", label);
	else if (run)
		parse_run(c, run, st, label);
	else
		parse_script(c, script, st);
	if ((x = get(c, n, "if")))
		st->if_expr = parse_expr(c, x, "if");
	if ((x = get(c, n, "with")))
		parse_with(c, x, st);
	if ((x = get(c, n, "retry")))
		parse_retry(c, x, st);
	if ((x = get(c, n, "timeout")))
		parse_duration(c, x, "timeout", true, &st->timeout_ms);
	if ((x = get(c, n, "continue_on_error")))
		parse_bool(c, x, "continue_on_error", &st->continue_on_error);
}

static void parse_steps(struct ctx *c, const yaml_node_t *n)
{
	struct hf_workflow *wf = &c->p->pub;
	if (n->type != YAML_SEQUENCE_NODE) {
		nerr(c, n, "'steps' must be a list of steps");
		return;
	}
	size_t cnt =
	    (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt == 0) {
		nerr(c, n, "'steps' must not be empty");
		return;
	}
	if (cnt > HF_MAX_STEPS) {
		nerr(c, n, "too many steps (%zu, at most %d)", cnt,
		     HF_MAX_STEPS);
		return;
	}
	const yaml_node_t **ids = hf_xcalloc(cnt, sizeof *ids);
	wf->steps = hf_xcalloc(cnt, sizeof *wf->steps);
	wf->nsteps = cnt;
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *it = node_of(c, n->data.sequence.items.start[i]);
		if (it)
			parse_step(c, it, i, &wf->steps[i], &ids[i]);
	}
	for (size_t i = 1; i < cnt; i++)
		for (size_t j = 0; j < i && ids[i]; j++)
			if (ids[j] &&
			    strcmp(wf->steps[i].id, wf->steps[j].id) == 0) {
				nerr(c, ids[i],
				     "duplicate step id '%s' (first used on "
				     "line %d)",
				     wf->steps[i].id,
				     (int)ids[j]->start_mark.line + 1);
				break;
			}
	free(ids);
}

static void parse_top(struct ctx *c, const yaml_node_t *root)
{
	struct hf_workflow *wf = &c->p->pub;
	const yaml_node_t *x;
	const char *s;
	check_keys(c, root, top_keys, NKEYS(top_keys));
	if ((x = need(c, root, "name")))
		parse_name(c, x);
	if ((x = get(c, root, "description")) &&
	    (s = want_str(c, x, "description")))
		wf->description = hf_xstrdup(s);
	if ((x = need(c, root, "on")))
		parse_on(c, x);
	if ((x = get(c, root, "if")))
		wf->if_expr = parse_expr(c, x, "if");
	if ((x = get(c, root, "timeout")))
		parse_duration(c, x, "timeout", true, &wf->timeout_ms);
	if ((x = get(c, root, "concurrency")))
		parse_concurrency(c, x);
	if ((x = need(c, root, "steps")))
		parse_steps(c, x);
}

/* ---- load, parse, free -------------------------------------------------- */

static void wf_free(struct hf_workflow *wf)
{
	free(wf->name);
	free(wf->description);
	free(wf->file);
	free(wf->version);
	free(wf->source);
	free(wf->path);
	for (size_t i = 0; i < wf->verify.nsecrets; i++) {
		explicit_bzero(wf->verify.secrets[i],
			       strlen(wf->verify.secrets[i]));
		free(wf->verify.secrets[i]);
	}
	free(wf->verify.secrets);
	free(wf->verify.header);
	expr_free(wf->dedupe);
	expr_free(wf->if_expr);
	expr_free(wf->concurrency_key);
	for (size_t i = 0; i < wf->nsteps; i++) {
		struct hf_step *st = &wf->steps[i];
		free(st->id);
		free(st->code);
		free(st->code_name);
		free(st->script);
		expr_free(st->if_expr);
		free(st->with_chunk);
	}
	free(wf->steps);
	free(wf); /* the struct wf_priv it is the start of */
}

static void yaml_problem(struct ctx *c, const yaml_parser_t *ps)
{
	int line = (int)ps->problem_mark.line + 1;
	int col = (int)ps->problem_mark.column + 1;
	if (ps->error == YAML_READER_ERROR) {
		/* reader errors carry a byte offset, not a mark */
		size_t end =
		    ps->problem_offset < c->len ? ps->problem_offset : c->len;
		size_t ls = 0;
		line = 1;
		for (size_t i = 0; i < end; i++)
			if (c->text[i] == '\n') {
				line++;
				ls = i + 1;
			}
		col = (int)(end - ls) + 1;
	}
	if (ps->error == YAML_MEMORY_ERROR)
		diag(c, 0, 0, "out of memory while reading YAML");
	else if (ps->context)
		diag(c, line, col, "invalid YAML: %s (%s at line %d)",
		     ps->problem ? ps->problem : "syntax error", ps->context,
		     (int)ps->context_mark.line + 1);
	else
		diag(c, line, col, "invalid YAML: %s",
		     ps->problem ? ps->problem : "syntax error");
}

/* Reads the one document of the file into c->doc. Returns 0 or -1. */
static int load_doc(struct ctx *c)
{
	yaml_parser_t ps;
	yaml_document_t extra;
	int rc = -1;
	if (!yaml_parser_initialize(&ps))
		abort(); /* out of memory, as hf_xmalloc */
	yaml_parser_set_input_string(&ps, (const unsigned char *)c->text,
				     c->len);
	if (!yaml_parser_load(&ps, &c->doc)) {
		yaml_problem(c, &ps);
		goto out;
	}
	rc = 0;
	if (!yaml_document_get_root_node(&c->doc))
		goto out;
	if (!yaml_parser_load(&ps, &extra)) {
		yaml_problem(c, &ps);
		goto out;
	}
	yaml_node_t *r = yaml_document_get_root_node(&extra);
	if (r)
		diag(c, (int)r->start_mark.line + 1,
		     (int)r->start_mark.column + 1,
		     "a workflow file holds one YAML document");
	yaml_document_delete(&extra);
out:
	yaml_parser_delete(&ps);
	return rc;
}

static struct hf_workflow *parse_ctx(struct ctx c);

struct hf_workflow *hf_workflow_parse(const char *file, const char *text,
				      size_t len, const char *scripts_dir,
				      struct hf_diags *diags)
{
	return parse_ctx((struct ctx){
	    .file = file ? file : "<input>",
	    .text = text ? text : "",
	    .len = text ? len : 0,
	    .scripts_dir = scripts_dir,
	    .diags = diags,
	});
}

struct hf_workflow *
hf_workflow_parse_stored(const char *file, const char *text, size_t len,
			 const char *scripts_dir,
			 const struct hf_script_src *scripts, size_t nscripts,
			 struct hf_diags *diags)
{
	static const struct hf_script_src none;
	return parse_ctx((struct ctx){
	    .file = file ? file : "<input>",
	    .text = text ? text : "",
	    .len = text ? len : 0,
	    .scripts_dir = scripts_dir,
	    .stored = scripts ? scripts : &none,
	    .nstored = scripts ? nscripts : 0,
	    .diags = diags,
	});
}

static struct hf_workflow *parse_ctx(struct ctx c)
{
	size_t first_diag = c.diags ? c.diags->n : 0;
	bool have_doc = false;
	struct wf_priv *p = hf_xcalloc(1, sizeof *p);
	struct hf_workflow *wf = &p->pub;
	c.p = p;
	wf->refs = 1;
	wf->file = hf_xstrdup(c.file);
	wf->methods = HF_METHOD_POST;
	wf->respond_timeout_ms = HF_SYNC_RESPOND_TIMEOUT_MS;
	wf->timeout_ms = HF_RUN_TIMEOUT_MS;
	wf->concurrency_max = 1;
	wf->verify.tolerance_ms = HF_VERIFY_TOLERANCE_MS;

	if (c.len > HF_MAX_WORKFLOW_FILE) {
		diag(&c, 0, 0, "file is too large (at most %d bytes)",
		     HF_MAX_WORKFLOW_FILE);
		goto out;
	}
	if (load_doc(&c) != 0)
		goto out;
	have_doc = true;
	yaml_node_t *root = yaml_document_get_root_node(&c.doc);
	if (!root || root->type != YAML_MAPPING_NODE) {
		diag(&c, root ? (int)root->start_mark.line + 1 : 1,
		     root ? (int)root->start_mark.column + 1 : 1,
		     "a workflow must be a YAML mapping (with name, on and "
		     "steps)");
		goto out;
	}
	c.L = luaL_newstate();
	c.md = hf_sha256_begin();
	if (!c.L)
		abort(); /* out of memory, as hf_xmalloc */
	hf_sha256_update(c.md, c.text, c.len);
	parse_top(&c, root);
	if (!c.errors) {
		wf->version = hf_xmalloc(65);
		hf_sha256_end(c.md, wf->version);
		c.md = NULL;
		wf->source = hf_xstrndup(c.text, c.len);
		wf->source_len = c.len;
	}
out:
	if (have_doc)
		yaml_document_delete(&c.doc);
	if (c.L)
		lua_close(c.L);
	if (c.md) {
		char unused[65];
		hf_sha256_end(c.md, unused);
	}
	free(c.lines);
	if (c.errors) {
		sort_diags(&c, first_diag);
		wf_free(wf);
		return NULL;
	}
	return wf;
}

struct hf_workflow *hf_workflow_load(const char *file, const char *scripts_dir,
				     struct hf_diags *diags)
{
	struct stat st;
	char ebuf[128];
	size_t len;
	if (stat(file, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size > HF_MAX_WORKFLOW_FILE) {
		hf_diags_add(diags, file, 0, 0,
			     "file is too large (at most %d bytes)",
			     HF_MAX_WORKFLOW_FILE);
		return NULL;
	}
	char *text = hf_read_file(file, &len);
	if (!text) {
		hf_diags_add(diags, file, 0, 0, "cannot read file: %s",
			     errstr(errno, ebuf, sizeof ebuf));
		return NULL;
	}
	struct hf_workflow *wf =
	    hf_workflow_parse(file, text, len, scripts_dir, diags);
	free(text);
	return wf;
}

struct hf_workflow *hf_workflow_ref(struct hf_workflow *wf)
{
	if (wf)
		atomic_fetch_add_explicit(refs_of(&wf->refs), 1,
					  memory_order_relaxed);
	return wf;
}

void hf_workflow_unref(struct hf_workflow *wf)
{
	if (wf && atomic_fetch_sub_explicit(refs_of(&wf->refs), 1,
					    memory_order_acq_rel) == 1)
		wf_free(wf);
}

/* ---- the set ------------------------------------------------------------- */

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);
	return n > k && strcmp(s + n - k, suf) == 0;
}

static struct hf_workflow *by_file(const struct hf_workflow_set *set,
				   const char *file)
{
	for (size_t i = 0; set && i < set->n; i++)
		if (strcmp(set->items[i]->file, file) == 0)
			return set->items[i];
	return NULL;
}

/* Lists the workflow files of dir, sorted. Returns the count, -1 on error. */
static long list_dir(const char *dir, char ***out, struct hf_diags *diags)
{
	char ebuf[128];
	DIR *d = opendir(dir);
	if (!d) {
		hf_diags_add(diags, dir, 0, 0, "cannot read directory: %s",
			     errstr(errno, ebuf, sizeof ebuf));
		return -1;
	}
	size_t n = 0, cap = 16;
	char **names = hf_xmalloc(cap * sizeof *names);
	struct dirent *e;
	size_t dl = strlen(dir);
	bool warned = false;
	while ((e = readdir(d))) {
		struct stat st;
		if (e->d_name[0] == '.' || !(has_suffix(e->d_name, ".yml") ||
					     has_suffix(e->d_name, ".yaml")))
			continue;
		char *path = hf_xasprintf("%s%s%s", dir,
					  dl && dir[dl - 1] == '/' ? "" : "/",
					  e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		if (n == HF_MAX_WORKFLOWS) {
			if (!warned)
				hf_diags_add(diags, dir, 0, 0,
					     "too many workflow files (at most "
					     "%d); the rest are ignored",
					     HF_MAX_WORKFLOWS);
			warned = true;
			free(path);
			continue;
		}
		if (n == cap) {
			cap *= 2;
			names = hf_xrealloc(names, cap * sizeof *names);
		}
		names[n++] = path;
	}
	closedir(d);
	qsort(names, n, sizeof *names, str_cmp);
	*out = names;
	return (long)n;
}

struct hf_workflow_set *hf_workflow_set_load(const char *dir,
					     const char *scripts_dir,
					     const struct hf_workflow_set *prev,
					     struct hf_diags *diags)
{
	char **files;
	long n = list_dir(dir, &files, diags);
	if (n < 0)
		return NULL;
	struct hf_workflow_set *set = hf_xcalloc(1, sizeof *set);
	set->refs = 1;
	set->items = hf_xcalloc(n ? (size_t)n : 1, sizeof *set->items);
	for (long i = 0; i < n; i++) {
		struct hf_workflow *wf =
		    hf_workflow_load(files[i], scripts_dir, diags);
		struct hf_workflow *other =
		    wf ? hf_workflow_set_find(set, wf->name) : NULL;
		if (other) {
			struct wf_priv *p = (struct wf_priv *)wf;
			hf_diags_add(diags, wf->file, p->name_line, p->name_col,
				     "duplicate workflow name '%s' (already "
				     "defined in %s)",
				     wf->name, other->file);
			hf_workflow_unref(wf);
			wf = NULL;
		}
		if (!wf) {
			/* invalid now: the previous version stays active */
			struct hf_workflow *old = by_file(prev, files[i]);
			if (old && !hf_workflow_set_find(set, old->name))
				wf = hf_workflow_ref(old);
		}
		if (wf)
			set->items[set->n++] = wf;
		free(files[i]);
	}
	free(files);
	return set;
}

struct hf_workflow_set *hf_workflow_set_ref(struct hf_workflow_set *set)
{
	if (set)
		atomic_fetch_add_explicit(refs_of(&set->refs), 1,
					  memory_order_relaxed);
	return set;
}

void hf_workflow_set_unref(struct hf_workflow_set *set)
{
	if (!set || atomic_fetch_sub_explicit(refs_of(&set->refs), 1,
					      memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < set->n; i++)
		hf_workflow_unref(set->items[i]);
	free(set->items);
	free(set);
}

struct hf_workflow *hf_workflow_set_find(const struct hf_workflow_set *set,
					 const char *name)
{
	for (size_t i = 0; set && name && i < set->n; i++)
		if (strcmp(set->items[i]->name, name) == 0)
			return set->items[i];
	return NULL;
}
