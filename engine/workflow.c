/* workflow.c - the sections of a workflow file, key by key, into the
 * hf_workflow model: name, on.webhook (path, methods, verify, dedupe,
 * respond), on.schedule (cron, timezone, catch_up), if, timeout, concurrency
 * and steps. The schema is described in docs/reference.md, 'Workflow YAML';
 * tests/e2e/test_schema.py reads the key tables below, so they stay in this
 * file. Also the small public helpers over method and scheme names.
 *
 * Owns: which keys exist and what each accepts. Does not own: reading the
 * file or the result's lifetime (wf_load.c), `with:` (wf_with.c), secrets
 * (wf_secrets.c), the set (wf_set.c), compiling code for execution or running
 * it (hf_luart), routing (router.c).
 *
 * Threading: a parse works on its own struct wf_ctx on the calling thread; the
 * public helpers are pure. */
#include "hf_limits.h"
#include "hf_router.h"
#include "hf_verify.h"
#include "wf_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const top_keys[] = {
    "name",	 "description", "on",	 "if",
    "timeout",	 "concurrency", "steps", "on_failure", /* wf_flow.c */
    "cancel_on", "throttle",			       /* wf_flow.c */
    "debounce",					       /* wf_flow.c */
};
static const char *const cancel_on_keys[] = {"path", "if"}; /* wf_flow.c */
static const char *const throttle_keys[] = {"key", "limit", "period"};
static const char *const debounce_keys[] = {"key", "period", "max_wait"};
static const char *const on_keys[] = {"webhook", "schedule"};
static const char *const schedule_keys[] = {"cron", "timezone", "catch_up"};
static const char *const webhook_keys[] = {
    "path", "methods", "verify", "dedupe", "respond", "timeout",
};
/* The last ten: the general hmac scheme, token and basic (wf_verify.c). */
static const char *const verify_keys[] = {
    "scheme",	      "secret",	   "secrets",
    "header",	      "tolerance", "algorithm",
    "encoding",	      "prefix",	   "timestamp_header",
    "timestamp_unit", "signed",	   "url",
    "query",	      "user",	   "password",
};
static const char *const concurrency_keys[] = {"key", "max",
					       "cancel_in_progress"};
static const char *const step_keys[] = {
    "id",	"run",	 "script",   "if",
    "with",	"retry", "timeout",  "continue_on_error",
    "sleep",	"until", "wait_for", /* wf_park.c */
    "throttle",			     /* wf_flow.c */
};
static const char *const retry_keys[] = {"attempts", "backoff", "max_backoff",
					 "max_delay"};

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
    [HF_VERIFY_HMAC] = "hmac",
    [HF_VERIFY_ZENDESK] = "zendesk",
    [HF_VERIFY_HUBSPOT] = "hubspot",
    [HF_VERIFY_INTERCOM] = "intercom",
    [HF_VERIFY_HELPSCOUT] = "helpscout",
    [HF_VERIFY_TOKEN] = "token",
    [HF_VERIFY_BASIC] = "basic",
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
/* ---- the sections ------------------------------------------------------- */

static void parse_name(struct wf_ctx *c, const yaml_node_t *n)
{
	const char *s = wf_want_str(c, n, "name");
	if (!s)
		return;
	if (!wf_valid_ident(s, true)) {
		wf_nerr(c, n,
			"invalid name '%s' (expected [a-z0-9_-]+, at most %d "
			"characters)",
			s, HF_NAME_MAX);
		return;
	}
	c->p->pub.name = hf_xstrdup(s);
	c->p->name_line = (int)n->start_mark.line + 1;
	c->p->name_col = (int)n->start_mark.column + 1;
}

static void parse_path(struct wf_ctx *c, const yaml_node_t *n)
{
	const char *s = wf_want_str(c, n, "path");
	if (!s)
		return;
	if (s[0] != '/') {
		wf_nerr(c, n, "invalid path '%s' (must start with '/')", s);
		return;
	}
	for (const char *p = s; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '?' || ch == '#' || ch <= ' ' || ch == 0x7f) {
			wf_nerr(
			    c, n,
			    "invalid path '%s' (no '?', '#', spaces or control "
			    "characters)",
			    s);
			return;
		}
	}
	if (strlen(s) > HF_WEBHOOK_PATH_MAX) {
		wf_nerr(c, n, "path is too long (at most %d characters)",
			HF_WEBHOOK_PATH_MAX);
		return;
	}
	size_t at = 0;
	char why[160];
	if (hf_path_pattern_check(s, &at, why, sizeof why) < 0) {
		/* the column of the character, past a quote */
		int q = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? 0 : 1;
		wf_diag(c, (int)n->start_mark.line + 1,
			(int)(n->start_mark.column + 1 + q + at),
			"invalid path '%s': %s", s, why);
		return;
	}
	if (!wf_route_path(c, n, s, "path"))
		return;
	if (hf_path_is_reserved(s) || hf_park_is_resume_path(s)) {
		wf_nerr(
		    c, n,
		    "path '%s' is reserved (/api, /healthz, /metrics and /ui "
		    "belong to hookflow)",
		    s);
		return;
	}
	c->p->pub.path = hf_xstrdup(s);
}

static unsigned parse_method(struct wf_ctx *c, const yaml_node_t *n)
{
	const char *s = wf_want_str(c, n, "methods");
	char up[16];
	size_t i;
	if (!s)
		return 0;
	for (i = 0; s[i] && i < sizeof up - 1; i++)
		up[i] = (char)toupper((unsigned char)s[i]);
	up[i] = '\0';
	unsigned m = s[i] ? 0 : hf_method_from_name(up);
	if (!(m & WORKFLOW_METHODS)) {
		wf_nerr(c, n,
			"unknown method '%s' (expected one of: GET, POST, PUT, "
			"PATCH, DELETE)",
			s);
		return 0;
	}
	return m;
}

static void parse_methods(struct wf_ctx *c, const yaml_node_t *n)
{
	unsigned mask = 0;
	if (n->type == YAML_SCALAR_NODE) {
		mask = parse_method(c, n);
	} else if (n->type == YAML_SEQUENCE_NODE) {
		if (n->data.sequence.items.top == n->data.sequence.items.start)
			wf_nerr(c, n, "'methods' must not be empty");
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top; it++) {
			yaml_node_t *v = node_of(c, *it);
			if (v)
				mask |= parse_method(c, v);
		}
	} else {
		wf_nerr(c, n, "'methods' must be a list of HTTP methods");
	}
	if (mask)
		c->p->pub.methods = mask;
}

static void add_secret(struct wf_ctx *c, const yaml_node_t *n)
{
	struct hf_verify_conf *v = &c->p->pub.verify;
	char *s = wf_expand_secret(c, n);
	if (s)
		v->secrets[v->nsecrets++] = s;
}

/* `secret` (one) or `secrets` (a list, for rotation), expanded. */
static void parse_secrets(struct wf_ctx *c, const yaml_node_t *n)
{
	struct hf_verify_conf *v = &c->p->pub.verify;
	yaml_node_t *one = wf_get(c, n, "secret"),
		    *many = wf_get(c, n, "secrets");
	if (one && many) {
		wf_nerr(c, many, "use either 'secret' or 'secrets', not both");
	} else if (!one && !many) {
		wf_nerr(c, n, "missing required key 'secret' (or 'secrets')");
	} else if (one) {
		v->secrets = hf_xcalloc(1, sizeof *v->secrets);
		add_secret(c, one);
	} else if (many->type == YAML_SEQUENCE_NODE) {
		size_t cnt = (size_t)(many->data.sequence.items.top -
				      many->data.sequence.items.start);
		if (!cnt)
			wf_nerr(c, many, "'secrets' must not be empty");
		v->secrets = hf_xcalloc(cnt ? cnt : 1, sizeof *v->secrets);
		for (size_t i = 0; i < cnt; i++) {
			yaml_node_t *it =
			    node_of(c, many->data.sequence.items.start[i]);
			if (it)
				add_secret(c, it);
		}
	} else {
		wf_nerr(c, many, "'secrets' must be a list of strings");
	}
}

/* `header` of hmac-sha256, stored lower-case. */
static void parse_header(struct wf_ctx *c, const yaml_node_t *x)
{
	struct hf_verify_conf *v = &c->p->pub.verify;
	const char *s;
	if (v->scheme != HF_VERIFY_HMAC_SHA256 && v->scheme != HF_VERIFY_NONE &&
	    v->scheme != HF_VERIFY_HMAC && v->scheme != HF_VERIFY_TOKEN) {
		wf_nerr(c, x,
			"'header' applies only to schemes hmac-sha256, hmac "
			"and token");
	} else if ((s = wf_want_str(c, x, "header"))) {
		bool ok = *s != '\0';
		for (const char *p = s; *p && ok; p++)
			ok = *p > ' ' && *p < 0x7f && *p != ':';
		if (!ok)
			wf_nerr(c, x, "invalid header name '%s'", s);
		else {
			v->header = hf_xstrdup(s);
			for (char *p = v->header; *p; p++)
				*p = (char)tolower((unsigned char)*p);
		}
	}
}

static void parse_verify(struct wf_ctx *c, const yaml_node_t *n)
{
	struct hf_verify_conf *v = &c->p->pub.verify;
	if (!wf_want_map(c, n, "verify"))
		return;
	wf_check_keys(c, n, verify_keys, NKEYS(verify_keys));
	yaml_node_t *x = wf_need(c, n, "scheme");
	const char *s;
	if (x && (s = wf_want_str(c, x, "scheme"))) {
		for (size_t i = 1; i < NKEYS(scheme_names); i++)
			if (strcmp(s, scheme_names[i]) == 0)
				v->scheme = (enum hf_verify_scheme)i;
		if (v->scheme == HF_VERIFY_NONE)
			wf_nerr(c, x,
				"unknown verify scheme '%s' (expected one of: "
				"hmac-sha256, github, stripe, slack, shopify, "
				"standard-webhooks, hmac, zendesk, hubspot, "
				"intercom, helpscout, token, basic)",
				s);
	}
	if (wf_verify_takes_secrets(v->scheme))
		parse_secrets(c, n);
	if ((x = wf_get(c, n, "header")))
		parse_header(c, x);
	if (v->scheme == HF_VERIFY_HMAC_SHA256 && !v->header)
		v->header = hf_xstrdup("x-signature");
	if ((x = wf_get(c, n, "tolerance")))
		wf_parse_duration(c, x, "tolerance", true, &v->tolerance_ms);
	wf_parse_verify_more(c, n);
}

/* HOOKFLOW_TEST_CRON_SECONDS=1: a sixth, leading field of seconds, so that
 * tests can fire every few seconds. For tests only (README). */
static bool cron_seconds(void)
{
	const char *v = getenv("HOOKFLOW_TEST_CRON_SECONDS");
	return v && strcmp(v, "1") == 0;
}

static void parse_schedule(struct wf_ctx *c, const yaml_node_t *n,
			   struct hf_schedule *sc)
{
	const yaml_node_t *x;
	const char *s;
	char err[256];
	sc->catch_up = 1;
	sc->line = (int)n->start_mark.line + 1;
	if (n->type != YAML_MAPPING_NODE) {
		wf_nerr(c, n, "a schedule must be a mapping (with 'cron')");
		return;
	}
	wf_check_keys(c, n, schedule_keys, NKEYS(schedule_keys));
	if ((x = wf_need(c, n, "cron")) && (s = wf_want_str(c, x, "cron"))) {
		size_t at = 0;
		if (hf_cron_parse(&sc->expr, s, cron_seconds(), &at, err,
				  sizeof err) < 0) {
			int line, col;
			wf_text_pos(c, x, &line, &col);
			wf_diag(c, line, col + (int)at, "%s", err);
		} else {
			sc->cron = hf_xstrdup(s);
		}
	}
	if ((x = wf_get(c, n, "timezone")) &&
	    (s = wf_want_str(c, x, "timezone"))) {
		if (strcmp(s, "UTC") != 0 &&
		    !(sc->tz = hf_tz_load(s, err, sizeof err)))
			wf_nerr(c, x, "%s", err);
		else
			sc->timezone = hf_xstrdup(s);
	}
	if (!sc->timezone)
		sc->timezone = hf_xstrdup("UTC");
	if ((x = wf_get(c, n, "catch_up")))
		wf_parse_int(c, x, "catch_up", 0, HF_SCHEDULE_CATCH_UP_MAX,
			     &sc->catch_up);
}

/* `on.schedule`: a list of {cron, timezone, catch_up}. */
static void parse_schedules(struct wf_ctx *c, const yaml_node_t *n)
{
	struct hf_workflow *wf = &c->p->pub;
	if (n->type != YAML_SEQUENCE_NODE) {
		wf_nerr(c, n,
			"'schedule' must be a list of {cron, timezone, "
			"catch_up}");
		return;
	}
	size_t cnt =
	    (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt == 0 || cnt > HF_SCHEDULES_MAX) {
		wf_nerr(c, n, "'schedule' must have 1 to %d entries",
			HF_SCHEDULES_MAX);
		return;
	}
	wf->schedules = hf_xcalloc(cnt, sizeof *wf->schedules);
	wf->nschedules = cnt;
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *it = node_of(c, n->data.sequence.items.start[i]);
		if (it)
			parse_schedule(c, it, &wf->schedules[i]);
	}
}

static void parse_on(struct wf_ctx *c, const yaml_node_t *n)
{
	struct hf_workflow *wf = &c->p->pub;
	if (!wf_want_map(c, n, "on"))
		return;
	wf_check_keys(c, n, on_keys, NKEYS(on_keys));
	const yaml_node_t *w = wf_get(c, n, "webhook"), *x;
	if ((x = wf_get(c, n, "schedule")))
		parse_schedules(c, x);
	else if (!w)
		wf_nerr(c, n, "missing required key 'webhook' (or 'schedule')");
	if (!w || !wf_want_map(c, w, "webhook"))
		return;
	wf_check_keys(c, w, webhook_keys, NKEYS(webhook_keys));
	if ((x = wf_need(c, w, "path")))
		parse_path(c, x);
	if ((x = wf_get(c, w, "methods")))
		parse_methods(c, x);
	if ((x = wf_get(c, w, "verify")))
		parse_verify(c, x);
	if ((x = wf_get(c, w, "dedupe")))
		wf->dedupe = wf_parse_expr(c, x, "dedupe");
	const char *s;
	if ((x = wf_get(c, w, "respond")) &&
	    (s = wf_want_str(c, x, "respond"))) {
		if (strcmp(s, "sync") == 0)
			wf->respond_sync = true;
		else if (strcmp(s, "async") != 0)
			wf_nerr(c, x,
				"invalid respond '%s' (expected async or sync)",
				s);
	}
	if ((x = wf_get(c, w, "timeout")))
		wf_parse_duration(c, x, "timeout", true,
				  &wf->respond_timeout_ms);
}

void wf_parse_verify_into(struct wf_ctx *c, const yaml_node_t *n,
			  struct hf_verify_conf *out)
{
	/* parse_verify fills the workflow's own: swap out's in for it. */
	struct hf_verify_conf keep = c->p->pub.verify;
	c->p->pub.verify = *out;
	parse_verify(c, n);
	*out = c->p->pub.verify;
	c->p->pub.verify = keep;
}

static void parse_concurrency(struct wf_ctx *c, const yaml_node_t *n)
{
	struct hf_workflow *wf = &c->p->pub;
	if (!wf_want_map(c, n, "concurrency"))
		return;
	wf_check_keys(c, n, concurrency_keys, NKEYS(concurrency_keys));
	const yaml_node_t *x;
	if ((x = wf_need(c, n, "key")))
		wf->concurrency_key = wf_parse_expr(c, x, "concurrency.key");
	if ((x = wf_get(c, n, "max")))
		wf_parse_int(c, x, "concurrency.max", 1, HF_CONCURRENCY_MAX,
			     &wf->concurrency_max);
	if ((x = wf_get(c, n, "cancel_in_progress")))
		wf_parse_bool(c, x, "concurrency.cancel_in_progress",
			      &wf->concurrency_cancel);
}

static void parse_run(struct wf_ctx *c, const yaml_node_t *n,
		      struct hf_step *st, const char *label)
{
	const char *s = wf_want_str(c, n, "run");
	int line, col, el;
	char msg[512];
	if (!s)
		return;
	wf_text_pos(c, n, &line, &col);
	if (wf_blank(s, slen(n))) {
		wf_nerr(c, n, "'run' must not be empty");
		return;
	}
	struct hf_buf b = {0};
	wf_pad(&b, line);
	hf_buf_append(&b, s, slen(n));
	if (wf_lua_syntax(c, b.data, b.len, &el, msg, sizeof msg) != 0) {
		wf_diag(c, clamp(el, line, wf_last_line(line, s, slen(n))), col,
			"lua syntax error in step %s: %s", label, msg);
		hf_buf_release(&b);
		return;
	}
	st->code = b.data;
	st->code_name = hf_xasprintf("@%s", c->file);
	st->code_col = col;
}

static bool valid_script_name(const char *s)
{
	size_t n = strlen(s);
	return n > 4 && s[0] != '/' && !strstr(s, "..") &&
	       strcmp(s + n - 4, ".lua") == 0;
}

static void parse_script(struct wf_ctx *c, const yaml_node_t *n,
			 struct hf_step *st)
{
	const char *s = wf_want_str(c, n, "script");
	char ebuf[128], msg[512];
	int el;
	if (!s)
		return;
	if (!valid_script_name(s)) {
		wf_nerr(
		    c, n,
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
		wf_nerr(c, n, "cannot read script '%s': %s", path,
			errstr(errno, ebuf, sizeof ebuf));
		free(path);
		return;
	}
	hf_sha256_update(c->md, code, len);
	if (wf_lua_syntax(c, code, len, &el, msg, sizeof msg) != 0) {
		wf_diag_file(c, path, el > 0 ? el : 1, 1,
			     "lua syntax error: %s", msg);
		free(code);
		free(path);
		return;
	}
	st->script = hf_xstrdup(s);
	st->code = code;
	st->code_name = hf_xasprintf("@%s", path);
	free(path);
}

static void parse_retry(struct wf_ctx *c, const yaml_node_t *n,
			struct hf_step *st)
{
	const yaml_node_t *x;
	if (!wf_want_map(c, n, "retry"))
		return;
	wf_check_keys(c, n, retry_keys, NKEYS(retry_keys));
	if ((x = wf_need(c, n, "attempts")))
		wf_parse_int(c, x, "retry.attempts", 1, HF_RETRY_MAX_ATTEMPTS,
			     &st->retry_attempts);
	if ((x = wf_get(c, n, "backoff")))
		wf_parse_duration(c, x, "retry.backoff", false,
				  &st->retry_backoff_ms);
	if ((x = wf_get(c, n, "max_backoff")))
		wf_parse_duration(c, x, "retry.max_backoff", false,
				  &st->retry_max_backoff_ms);
	if (st->retry_max_backoff_ms < st->retry_backoff_ms)
		wf_nerr(c, n, "'max_backoff' must not be less than 'backoff'");
	if ((x = wf_get(c, n, "max_delay")))
		wf_parse_duration(c, x, "retry.max_delay", false,
				  &st->retry_max_delay_ms);
}

static void parse_step(struct wf_ctx *c, const yaml_node_t *n, size_t idx,
		       struct hf_step *st, const yaml_node_t **idnode)
{
	const yaml_node_t *x, *run, *script;
	const char *s;
	char label[HF_NAME_MAX + 8];

	st->retry_attempts = 1;
	st->retry_backoff_ms = HF_RETRY_BACKOFF_MS;
	st->retry_max_backoff_ms = HF_RETRY_MAX_BACKOFF_MS;
	st->retry_max_delay_ms = HF_RETRY_MAX_DELAY_MS;
	st->timeout_ms = HF_STEP_TIMEOUT_MS;
	st->line = (int)n->start_mark.line + 1;
	if (n->type != YAML_MAPPING_NODE) {
		wf_nerr(c, n,
			"a step must be a mapping (with 'id' and 'run' or "
			"'script')");
		return;
	}
	wf_check_keys(c, n, step_keys, NKEYS(step_keys));
	if ((x = wf_need(c, n, "id")) && (s = wf_want_str(c, x, "id"))) {
		if (!wf_valid_ident(s, false)) {
			wf_nerr(c, x,
				"invalid step id '%s' (expected [a-z0-9_]+, at "
				"most %d characters)",
				s, HF_NAME_MAX);
		} else {
			st->id = hf_xstrdup(s);
			*idnode = x;
		}
	}
	if (st->id)
		snprintf(label, sizeof label, "'%s'", st->id);
	else
		snprintf(label, sizeof label, "#%zu", idx + 1);
	run = wf_get(c, n, "run");
	script = wf_get(c, n, "script");
	if (wf_parse_park(c, n, st, label))
		; /* a step that waits: no code of its own (wf_park.c) */
	else if (run && script)
		wf_nerr(c, n,
			"step %s has both 'run' and 'script' (expected exactly "
			"one)",
			label);
	else if (!run && !script)
		wf_nerr(c, n, "step %s needs 'run' or 'script'", label);
	else if (run)
		parse_run(c, run, st, label);
	else
		parse_script(c, script, st);
	if ((x = wf_get(c, n, "if")))
		st->if_expr = wf_parse_expr(c, x, "if");
	if ((x = wf_get(c, n, "with")))
		wf_parse_with(c, x, st);
	if ((x = wf_get(c, n, "retry")))
		parse_retry(c, x, st);
	if ((x = wf_get(c, n, "timeout")))
		wf_parse_duration(c, x, "timeout", true, &st->timeout_ms);
	if ((x = wf_get(c, n, "continue_on_error")))
		wf_parse_bool(c, x, "continue_on_error",
			      &st->continue_on_error);
	if ((x = wf_get(c, n, "throttle")))
		st->throttle = wf_parse_throttle(c, x, throttle_keys,
						 NKEYS(throttle_keys));
}

void wf_parse_step(struct wf_ctx *c, const yaml_node_t *n, size_t idx,
		   struct hf_step *st, const yaml_node_t **idnode)
{
	parse_step(c, n, idx, st, idnode);
}

static void parse_steps(struct wf_ctx *c, const yaml_node_t *n)
{
	struct hf_workflow *wf = &c->p->pub;
	if (n->type != YAML_SEQUENCE_NODE) {
		wf_nerr(c, n, "'steps' must be a list of steps");
		return;
	}
	size_t cnt =
	    (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt == 0) {
		wf_nerr(c, n, "'steps' must not be empty");
		return;
	}
	if (cnt > HF_MAX_STEPS) {
		wf_nerr(c, n, "too many steps (%zu, at most %d)", cnt,
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
				wf_nerr(c, ids[i],
					"duplicate step id '%s' (first used on "
					"line %d)",
					wf->steps[i].id,
					(int)ids[j]->start_mark.line + 1);
				break;
			}
	free(ids);
}

void wf_parse_top(struct wf_ctx *c, const yaml_node_t *root)
{
	struct hf_workflow *wf = &c->p->pub;
	const yaml_node_t *x;
	const char *s;
	wf_check_keys(c, root, top_keys, NKEYS(top_keys));
	if ((x = wf_need(c, root, "name")))
		parse_name(c, x);
	if ((x = wf_get(c, root, "description")) &&
	    (s = wf_want_str(c, x, "description")))
		wf->description = hf_xstrdup(s);
	if ((x = wf_need(c, root, "on")))
		parse_on(c, x);
	if ((x = wf_get(c, root, "if")))
		wf->if_expr = wf_parse_expr(c, x, "if");
	if ((x = wf_get(c, root, "timeout")))
		wf_parse_duration(c, x, "timeout", true, &wf->timeout_ms);
	if ((x = wf_get(c, root, "concurrency")))
		parse_concurrency(c, x);
	if ((x = wf_need(c, root, "steps")))
		parse_steps(c, x);
	if ((x = wf_get(c, root, "on_failure")))
		wf_parse_on_failure(c, x);
	if ((x = wf_get(c, root, "cancel_on")))
		wf_parse_cancel_on(c, x, cancel_on_keys, NKEYS(cancel_on_keys));
	if ((x = wf_get(c, root, "debounce")))
		wf->debounce = wf_parse_debounce(c, x, debounce_keys,
						 NKEYS(debounce_keys));
	if ((x = wf_get(c, root, "throttle")))
		wf->throttle = wf_parse_throttle(c, x, throttle_keys,
						 NKEYS(throttle_keys));
}
