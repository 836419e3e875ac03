/* wf_int.h - internals shared by the workflow loader's files; not an API.
 *
 * The loader is split by concern: wf_yaml.c (diagnostics, YAML node helpers,
 * scalar values), wf_lua.c (load-time Lua syntax check, expressions),
 * wf_with.c (`with:` -> Lua chunk), wf_secrets.c (${NAME} expansion),
 * wf_verify.c (the general `hmac` scheme's keys, token, basic),
 * workflow.c (key tables and sections), wf_load.c (parse, load, free,
 * references) and wf_set.c (the set of a directory). Everything here works on
 * one parse's struct wf_ctx, which one thread owns for the parse's duration.
 * The public model is include/hf_workflow.h. */
#ifndef WF_INT_H
#define WF_INT_H

#include "hf_limits.h"
#include "hf_workflow.h"

#include <lua.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <yaml.h>

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))

/* The public model plus what only the loader needs: where `name:` is, for the
 * set's duplicate-name error. Every hf_workflow is allocated as one of these.
 */
struct wf_priv {
	struct hf_workflow pub;
	int name_line;
	int name_col;
};

/* One parse: the document, where problems go, and the scratch Lua state. */
struct wf_ctx {
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

static inline const char *errstr(int e, char *buf, size_t size)
{
	return strerror_r(e, buf, size); /* GNU variant: returns the text */
}

/* The headers declare the counts as plain int so that they stay free of
 * <stdatomic.h>; _Atomic int has int's size and alignment on every target we
 * build for, so the counts are only ever accessed through this view. */
static inline _Atomic int *refs_of(int *p)
{
	return (_Atomic int *)p;
}

static inline yaml_node_t *node_of(struct wf_ctx *c, int id)
{
	return yaml_document_get_node(&c->doc, id);
}

static inline const char *sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static inline size_t slen(const yaml_node_t *n)
{
	return n->data.scalar.length;
}

static inline int clamp(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* ---- wf_yaml.c: diagnostics (each counts one error of the parse) ---- */

__attribute__((format(printf, 5, 6))) void wf_diag_file(struct wf_ctx *c,
							const char *file,
							int line, int col,
							const char *fmt, ...);
__attribute__((format(printf, 4, 5))) void
wf_diag(struct wf_ctx *c, int line, int col, const char *fmt, ...);
/* Reports at the start of node n. */
__attribute__((format(printf, 3, 4))) void
wf_nerr(struct wf_ctx *c, const yaml_node_t *n, const char *fmt, ...);
/* Puts the problems of this parse from index `from` on in file order. */
void wf_sort_diags(struct wf_ctx *c, size_t from);

/* ---- wf_yaml.c: YAML node helpers ---- */

bool wf_blank(const char *s, size_t n);
/* The value of `key` in mapping map, or NULL (wf_need reports it missing). */
yaml_node_t *wf_get(struct wf_ctx *c, const yaml_node_t *map, const char *key);
yaml_node_t *wf_need(struct wf_ctx *c, const yaml_node_t *map, const char *key);
/* Reports keys that are not strings, and keys given twice. */
void wf_check_dups(struct wf_ctx *c, const yaml_node_t *map);
/* wf_check_dups, plus keys not in allowed. */
void wf_check_keys(struct wf_ctx *c, const yaml_node_t *map,
		   const char *const *allowed, size_t nallowed);
bool wf_want_map(struct wf_ctx *c, const yaml_node_t *n, const char *key);
/* The text of a scalar used as a plain string, or NULL after reporting. */
const char *wf_want_str(struct wf_ctx *c, const yaml_node_t *n,
			const char *key);
/* Where a scalar's text starts in the file, 1-based. */
void wf_text_pos(struct wf_ctx *c, const yaml_node_t *n, int *line, int *col);

/* Reports the path (node n's text) when no request can reach it
 * (hf_frame_route_problem), at the segment or character, as "invalid WHAT".
 * Returns whether it is reachable. */
bool wf_route_path(struct wf_ctx *c, const yaml_node_t *n, const char *path,
		   const char *what);

/* ---- wf_yaml.c: scalar values (each reports what it rejects) ---- */

bool wf_parse_int(struct wf_ctx *c, const yaml_node_t *n, const char *what,
		  long long lo, long long hi, int *out);
void wf_parse_duration(struct wf_ctx *c, const yaml_node_t *n, const char *what,
		       bool positive, int64_t *out);
void wf_parse_bool(struct wf_ctx *c, const yaml_node_t *n, const char *what,
		   bool *out);
/* The YAML 1.1 words for true, false and null that the loader accepts. */
bool wf_is_true(const char *s);
bool wf_is_false(const char *s);
bool wf_is_null(const char *s);
/* [a-z0-9_]+ (plus '-' when dash), at most HF_NAME_MAX characters. */
bool wf_valid_ident(const char *s, bool dash);

/* ---- wf_lua.c: Lua syntax check on the scratch state ---- */

/* Appends newlines so that the next text is on line `line`. */
void wf_pad(struct hf_buf *b, int line);
/* The last line that text starting on `first` covers (trailing blanks aside).
 */
int wf_last_line(int first, const char *s, size_t n);
/* Returns 0, or -1 with Lua's line (0 when unknown) and its message. */
int wf_lua_syntax(struct wf_ctx *c, const char *code, size_t len, int *line,
		  char *msg, size_t size);
/* The checked chunk of expression src at YAML line/col (caller frees), or
 * NULL after reporting. */
char *wf_expr_chunk(struct wf_ctx *c, const char *src, size_t n, int line,
		    int col, const char *what);
struct hf_expr *wf_parse_expr(struct wf_ctx *c, const yaml_node_t *n,
			      const char *what);
void wf_expr_free(struct hf_expr *e);

/* ---- the other files ---- */

/* wf_with.c: sets st->with_chunk, or reports. */
void wf_parse_with(struct wf_ctx *c, const yaml_node_t *n, struct hf_step *st);
/* wf_secrets.c: the expanded secret (caller frees, wipes) or NULL after
 * reporting. */
char *wf_expand_secret(struct wf_ctx *c, const yaml_node_t *n);
/* wf_verify.c: whether a scheme takes secret/secrets (basic does not); the
 * keys of the general hmac scheme, its presets, token and basic. */
bool wf_verify_takes_secrets(enum hf_verify_scheme s);
void wf_parse_verify_more(struct wf_ctx *c, const yaml_node_t *map);
/* wf_park.c: a step's sleep/until/wait_for into st (false: it has none; the
 * step runs code). workflow.c: `verify:` parsed into out rather than the
 * workflow's own (wait_for.verify). */
bool wf_parse_park(struct wf_ctx *c, const yaml_node_t *n, struct hf_step *st,
		   const char *label);
void wf_parse_verify_into(struct wf_ctx *c, const yaml_node_t *n,
			  struct hf_verify_conf *out);
/* workflow.c: every section of the root mapping into c->p. */
void wf_parse_top(struct wf_ctx *c, const yaml_node_t *root);
/* workflow.c: one step (of `steps:` or `on_failure:`) at index idx. */
void wf_parse_step(struct wf_ctx *c, const yaml_node_t *n, size_t idx,
		   struct hf_step *st, const yaml_node_t **idnode);
/* wf_flow.c: `on_failure:`, after `steps:`. */
void wf_parse_on_failure(struct wf_ctx *c, const yaml_node_t *n);
/* wf_flow.c: `cancel_on:` with its entries' keys (workflow.c's table). */
void wf_parse_cancel_on(struct wf_ctx *c, const yaml_node_t *n,
			const char *const *keys, size_t nkeys);
/* wf_flow.c: `throttle:` (workflow or step): a new one, or NULL after
 * reporting why. wf_throttle_free accepts NULL. */
struct hf_throttle *wf_parse_throttle(struct wf_ctx *c, const yaml_node_t *n,
				      const char *const *keys, size_t nkeys);
void wf_throttle_free(struct hf_throttle *t);
/* wf_flow.c: `debounce:`: a new one, or NULL after reporting why. */
struct hf_debounce *wf_parse_debounce(struct wf_ctx *c, const yaml_node_t *n,
				      const char *const *keys, size_t nkeys);
/* wf_flow.c: frees what the flow-control keys hold. */
void wf_flow_free(struct hf_workflow *wf);

#endif
