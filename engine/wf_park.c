/* wf_park.c - the step keys that park a run (hf_park.h): `sleep: DURATION`,
 * `until: TIME` (ISO 8601, Unix seconds, or a whole-string `${{ EXPR }}`)
 * and `wait_for: {path, if, timeout, verify}`, checked with FILE:LINE:COL
 * into struct hf_step's park fields.
 *
 * A park step runs no code of its own: its code is `return nil`, or for an
 * `until:` expression `return (EXPR)`, so that the step's `if:` and the
 * expression are evaluated by the Lua runtime as any step's (the worker then
 * parks the run: hf_park_step).
 *
 * Threading: one parse's struct wf_ctx on the calling thread. Neighbours:
 * workflow.c (calls wf_parse_park from parse_step; wf_parse_verify_into),
 * wf_lua.c (expressions), hf_verify.h (ISO 8601). */
#include "hf_router.h"
#include "hf_verify.h"
#include "wf_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const wait_for_keys[] = {"path", "if", "timeout", "verify"};

bool hf_park_is_resume_path(const char *path)
{
	return strncmp(path, "/resume", 7) == 0 &&
	       (path[7] == '\0' || path[7] == '/');
}

int hf_park_parse_time(const char *s, size_t n, int64_t *ms)
{
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0 || n > 64)
		return -1;
	size_t i = 0;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i == n) /* Unix seconds */
		return hf_verify_parse_ts(s, n, HF_TS_SECONDS, ms);
	return hf_verify_parse_ts(s, n, HF_TS_ISO8601, ms);
}

/* A whole-string `${{ EXPR }}`: the expression's bounds, else false. */
static bool whole_expr(const char *s, size_t n, size_t *at, size_t *len)
{
	size_t a = 0, b = n;
	while (a < b && isspace((unsigned char)s[a]))
		a++;
	while (b > a && isspace((unsigned char)s[b - 1]))
		b--;
	if (b - a < 5 || memcmp(s + a, "${{", 3) != 0 ||
	    memcmp(s + b - 2, "}}", 2) != 0)
		return false;
	*at = a + 3;
	*len = b - 2 - *at;
	return true;
}

static void parse_until(struct wf_ctx *c, const yaml_node_t *n,
			struct hf_step *st)
{
	const char *s = wf_want_str(c, n, "until");
	size_t at, len;
	int line, col;
	if (!s)
		return;
	if (whole_expr(s, slen(n), &at, &len)) {
		wf_text_pos(c, n, &line, &col);
		free(st->code);
		st->code =
		    wf_expr_chunk(c, s + at, len, line, col + (int)at, "until");
		return;
	}
	if (hf_park_parse_time(s, slen(n), &st->until_ms) < 0 ||
	    st->until_ms <= 0)
		wf_nerr(c, n,
			"invalid until '%s' (expected an ISO 8601 time such "
			"as 2026-12-24T18:00:00Z, Unix seconds, or "
			"\"${{ EXPR }}\")",
			s);
}

static bool valid_wait_path(const char *s)
{
	if (s[0] != '/' || strlen(s) > 1024)
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#' ||
		    *p == '{' || *p == '}' || *p == '%' || *p == '\\')
			return false;
	return true;
}

static void parse_wait_for(struct wf_ctx *c, const yaml_node_t *n,
			   struct hf_step *st, const char *label)
{
	const yaml_node_t *x;
	const char *s;
	if (!wf_want_map(c, n, "wait_for"))
		return;
	wf_check_keys(c, n, wait_for_keys, NKEYS(wait_for_keys));
	if ((x = wf_need(c, n, "path")) && (s = wf_want_str(c, x, "path"))) {
		if (!valid_wait_path(s))
			wf_nerr(c, x,
				"invalid wait_for path '%s' (expected a "
				"literal path starting with /, without "
				"{parameters}, query or spaces)",
				s);
		else if (!wf_route_path(c, x, s, "wait_for path"))
			;
		else if (hf_path_is_reserved(s) || hf_park_is_resume_path(s))
			wf_nerr(c, x,
				"wait_for path '%s' is reserved (/api, /ui, "
				"/resume, /healthz and /metrics are the "
				"server's)",
				s);
		else
			st->wait_path = hf_xstrdup(s);
	}
	if ((x = wf_get(c, n, "if")))
		st->wait_if = wf_parse_expr(c, x, "wait_for.if");
	if ((x = wf_get(c, n, "timeout")))
		wf_parse_duration(c, x, "wait_for.timeout", true,
				  &st->wait_timeout_ms);
	else
		wf_nerr(c, n,
			"step %s: wait_for needs a 'timeout' (how long the "
			"run waits for its signal, e.g. 48h)",
			label);
	st->wait_verify.tolerance_ms = HF_VERIFY_TOLERANCE_MS;
	if ((x = wf_get(c, n, "verify"))) {
		wf_parse_verify_into(c, x, &st->wait_verify);
		st->wait_verify_line = (int)x->start_mark.line + 1;
		st->wait_verify_col = (int)x->start_mark.column + 1;
	}
}

bool wf_parse_park(struct wf_ctx *c, const yaml_node_t *n, struct hf_step *st,
		   const char *label)
{
	/* Keys of a step that runs code, and why each has no meaning here. */
	static const char *const other[][2] = {
	    {"run", "a step that waits runs no code"},
	    {"script", "a step that waits runs no code"},
	    {"with", "a step that waits runs no code"},
	    {"retry", "a step that waits runs no code"},
	    {"continue_on_error", "a step that waits runs no code"},
	    {"timeout", "it bounds a step's code, which a step that waits has "
			"none of but an until: expression; a wait_for's "
			"timeout goes under wait_for:"},
	    {"throttle", "it does not apply to a step that waits, which starts "
			 "nothing; throttle the step after it"},
	};
	const yaml_node_t *sleep = wf_get(c, n, "sleep");
	const yaml_node_t *until = wf_get(c, n, "until");
	const yaml_node_t *wait = wf_get(c, n, "wait_for");
	int kinds = !!sleep + !!until + !!wait;
	if (kinds == 0)
		return false;
	if (kinds > 1) {
		wf_nerr(c, n,
			"step %s has more than one of 'sleep', 'until' and "
			"'wait_for' (expected one)",
			label);
		return true;
	}
	st->code = hf_xstrdup("return nil");
	st->code_name = hf_xasprintf("@%s", c->file);
	if (sleep) {
		st->park = HF_PARK_SLEEP;
		wf_parse_duration(c, sleep, "sleep", false, &st->sleep_ms);
	} else if (until) {
		st->park = HF_PARK_UNTIL;
		parse_until(c, until, st);
		if (!st->code) /* a bad expression, reported */
			st->code = hf_xstrdup("return nil");
	} else {
		st->park = HF_PARK_WAIT_FOR;
		parse_wait_for(c, wait, st, label);
		c->p->pub.has_wait_for = true;
	}
	/* An until: expression is the step's code: its timeout bounds it. */
	bool code = st->park == HF_PARK_UNTIL && st->until_ms == 0;
	for (size_t i = 0; i < NKEYS(other); i++) {
		const yaml_node_t *x = wf_get(c, n, other[i][0]);
		if (x && !(code && strcmp(other[i][0], "timeout") == 0))
			wf_nerr(c, x,
				"step %s: '%s' does not go with '%s' (%s)",
				label, other[i][0],
				sleep	? "sleep"
				: until ? "until"
					: "wait_for",
				other[i][1]);
	}
	return true;
}

/* path without its trailing '/'s: n bytes. */
static size_t trimmed(const char *path)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	return n;
}

const struct hf_step *
hf_workflow_set_wait_for(const struct hf_workflow_set *set, const char *path)
{
	size_t n = trimmed(path);
	const struct hf_step *first = NULL;
	for (size_t i = 0; set && i < set->n; i++) {
		const struct hf_workflow *wf = set->items[i];
		for (size_t j = 0; wf->has_wait_for && j < wf->nsteps; j++) {
			const struct hf_step *st = &wf->steps[j];
			if (st->park != HF_PARK_WAIT_FOR || !st->wait_path ||
			    trimmed(st->wait_path) != n ||
			    strncmp(st->wait_path, path, n) != 0)
				continue;
			if (st->wait_verify.scheme != HF_VERIFY_NONE)
				return st;
			if (!first)
				first = st;
		}
	}
	return first;
}
