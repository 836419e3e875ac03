/* wf_verify.c - the keys of `verify:` for the general `hmac` scheme
 * (algorithm, encoding, prefix, timestamp_header, timestamp_unit, signed,
 * url), its presets (zendesk, hubspot, intercom, helpscout), `token` (query)
 * and `basic` (user, password): which scheme takes which key, and the
 * template's placeholders checked with their FILE:LINE:COL.
 *
 * Owns: those checks and their messages. Does not own: the key table and
 * scheme names (workflow.c, read by tests/e2e/test_schema.py), secrets
 * (wf_secrets.c), the template's syntax and the presets' values
 * (verify_hmac.c).
 *
 * Threading: works on one parse's struct wf_ctx. */
#include "hf_crypto.h"
#include "hf_limits.h"
#include "hf_verify.h"
#include "wf_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_preset(enum hf_verify_scheme s)
{
	return s == HF_VERIFY_ZENDESK || s == HF_VERIFY_HUBSPOT ||
	       s == HF_VERIFY_INTERCOM || s == HF_VERIFY_HELPSCOUT;
}

/* One of names (NULL-terminated) as its index, or -1 after reporting. */
static int parse_choice(struct wf_ctx *c, const yaml_node_t *n,
			const char *what, const char *const *names,
			const char *expected)
{
	const char *s = wf_want_str(c, n, what);
	if (!s)
		return -1;
	for (int i = 0; names[i]; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	wf_nerr(c, n, "unknown %s '%s' (expected %s)", what, s, expected);
	return -1;
}

/* A header name, lower-cased (malloc'd), or NULL after reporting. */
static char *parse_header_name(struct wf_ctx *c, const yaml_node_t *n,
			       const char *what)
{
	const char *s = wf_want_str(c, n, what);
	if (!s)
		return NULL;
	bool ok = *s != '\0' && strlen(s) <= HF_VERIFY_HEADER_NAME_MAX;
	for (const char *p = s; *p && ok; p++)
		ok = *p > ' ' && *p < 0x7f && *p != ':';
	if (!ok) {
		wf_nerr(c, n, "invalid header name '%s'", s);
		return NULL;
	}
	char *out = hf_xstrdup(s);
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return out;
}

/* `signed:`: every placeholder known, {timestamp} only with a timestamp. */
static void parse_signed(struct wf_ctx *c, const yaml_node_t *n)
{
	struct hf_verify_conf *v = &c->p->pub.verify;
	const char *s = wf_want_str(c, n, "signed");
	size_t off = 0;
	char msg[256];
	int line, col;
	if (!s)
		return;
	if (memchr(s, '\0', slen(n))) {
		wf_nerr(c, n, "'signed' must not contain NUL bytes");
		return;
	}
	if (hf_verify_template_check(s, slen(n), &off, msg, sizeof msg) < 0) {
		wf_text_pos(c, n, &line, &col);
		wf_diag(c, line, col + (int)off, "invalid 'signed': %s", msg);
		return;
	}
	const char *ts = strstr(s, "{timestamp}");
	if (ts && !v->timestamp_header) {
		wf_text_pos(c, n, &line, &col);
		wf_diag(c, line, col + (int)(ts - s),
			"'signed' uses {timestamp} but 'timestamp_header' is "
			"not set");
		return;
	}
	v->signed_tmpl = hf_xstrdup(s);
}

/* `url:` - scheme and host for {url}. */
static void parse_url(struct wf_ctx *c, const yaml_node_t *n)
{
	const char *s = wf_want_str(c, n, "url");
	if (!s)
		return;
	bool ok =
	    strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
	for (const char *p = s; *p && ok; p++)
		ok = *p > ' ' && *p < 0x7f && *p != '?' && *p != '#';
	if (!ok) {
		wf_nerr(c, n,
			"invalid url '%s' (expected http:// or https:// and a "
			"host, e.g. https://hooks.example.com)",
			s);
		return;
	}
	c->p->pub.verify.url = hf_xstrdup(s);
}

/* A key that only some schemes take: NULL (reported) when this one does
 * not. */
static const yaml_node_t *only(struct wf_ctx *c, const yaml_node_t *map,
			       const char *key, bool allowed,
			       const char *schemes)
{
	const yaml_node_t *x = wf_get(c, map, key);
	if (x && !allowed) {
		wf_nerr(c, x, "'%s' applies only to scheme%s %s", key,
			strchr(schemes, ' ') ? "s" : "", schemes);
		return NULL;
	}
	return x;
}

static void parse_hmac_keys(struct wf_ctx *c, const yaml_node_t *map)
{
	static const char *const algs[] = {"sha256", "sha1", "sha512", NULL};
	static const char *const encs[] = {"hex", "base64", NULL};
	static const char *const units[] = {"s", "ms", "iso8601", NULL};
	struct hf_verify_conf *v = &c->p->pub.verify;
	bool hmac = v->scheme == HF_VERIFY_HMAC;
	const yaml_node_t *x;
	const char *s;
	int i;
	if ((x = only(c, map, "algorithm", hmac, "hmac")) &&
	    (i = parse_choice(c, x, "algorithm", algs,
			      "sha1, sha256 or sha512")) >= 0)
		v->algorithm = i == 0	? HF_HMAC_SHA256
			       : i == 1 ? HF_HMAC_SHA1
					: HF_HMAC_SHA512;
	if ((x = only(c, map, "encoding", hmac, "hmac")) &&
	    (i = parse_choice(c, x, "encoding", encs, "hex or base64")) >= 0)
		v->encoding = i == 0 ? HF_SIG_HEX : HF_SIG_BASE64;
	if ((x = only(c, map, "prefix", hmac, "hmac")) &&
	    (s = wf_want_str(c, x, "prefix")) && *s)
		v->prefix = hf_xstrdup(s);
	if ((x = only(c, map, "timestamp_header", hmac, "hmac")))
		v->timestamp_header =
		    parse_header_name(c, x, "timestamp_header");
	if ((x = only(c, map, "timestamp_unit", hmac, "hmac"))) {
		if ((i = parse_choice(c, x, "timestamp_unit", units,
				      "s, ms or iso8601")) >= 0)
			v->timestamp_unit = i == 0   ? HF_TS_SECONDS
					    : i == 1 ? HF_TS_MILLIS
						     : HF_TS_ISO8601;
		if (i >= 0 && !wf_get(c, map, "timestamp_header"))
			wf_nerr(c, x,
				"'timestamp_unit' needs 'timestamp_header'");
	}
	if ((x = only(c, map, "signed", hmac, "hmac")))
		parse_signed(c, x);
	else if (hmac)
		wf_nerr(c, map,
			"scheme hmac needs 'signed' (the signed text, e.g. "
			"\"{timestamp}.{body}\"; there is no default)");
	if (hmac && !wf_get(c, map, "header"))
		wf_nerr(c, map,
			"scheme hmac needs 'header' (the signature's header)");
	if ((x = only(c, map, "url", hmac || v->scheme == HF_VERIFY_HUBSPOT,
		      "hmac and hubspot")))
		parse_url(c, x);
}

/* basic: `user:` and `password:` into secrets[0] = "user:password". */
static void parse_basic(struct wf_ctx *c, const yaml_node_t *map)
{
	struct hf_verify_conf *v = &c->p->pub.verify;
	const yaml_node_t *u = wf_need(c, map, "user"),
			  *p = wf_need(c, map, "password");
	const yaml_node_t *x = wf_get(c, map, "secret");
	if (x || (x = wf_get(c, map, "secrets")))
		wf_nerr(c, x,
			"scheme basic takes 'user' and 'password', not "
			"'secret' or 'secrets'");
	if (!u || !p)
		return;
	char *user = wf_expand_secret(c, u), *pass = wf_expand_secret(c, p);
	if (user && strchr(user, ':'))
		wf_nerr(c, u, "'user' must not contain ':'");
	else if (user && pass) {
		v->secrets = hf_xcalloc(1, sizeof *v->secrets);
		v->secrets[0] = hf_xasprintf("%s:%s", user, pass);
		v->nsecrets = 1;
	}
	hf_secret_free(user);
	hf_secret_free(pass);
}

bool wf_verify_takes_secrets(enum hf_verify_scheme s)
{
	return s != HF_VERIFY_BASIC;
}

void wf_parse_verify_more(struct wf_ctx *c, const yaml_node_t *map)
{
	struct hf_verify_conf *v = &c->p->pub.verify;
	const yaml_node_t *x;
	const char *s;
	parse_hmac_keys(c, map);
	if ((x = only(c, map, "query", v->scheme == HF_VERIFY_TOKEN,
		      "token"))) {
		if (wf_get(c, map, "header"))
			wf_nerr(c, x,
				"use either 'header' or 'query', not "
				"both");
		else if ((s = wf_want_str(c, x, "query")) && *s)
			v->query = hf_xstrdup(s);
		else if (s)
			wf_nerr(c, x, "'query' must not be empty");
	}
	only(c, map, "user", v->scheme == HF_VERIFY_BASIC, "basic");
	only(c, map, "password", v->scheme == HF_VERIFY_BASIC, "basic");
	if (v->scheme == HF_VERIFY_BASIC)
		parse_basic(c, map);
	if (is_preset(v->scheme))
		hf_verify_preset(v);
}
