/* body.c - decoding of inbound bodies into jansson values: JSON with a nesting
 * limit, application/x-www-form-urlencoded and query strings, and Content-Type
 * classification.
 *
 * Pure functions on untrusted input, thread-safe, each with a fuzz target
 * (tests/fuzz/fuzz_{json,form,query,github_form}.c). The HTTP ingest module
 * calls them; the Lua bindings turn the results into event.body and
 * event.query. */
#include "hf_body.h"

#include "hf_limits.h"
#include "hf_util.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

enum hf_body_kind hf_body_kind_of(const char *content_type)
{
	if (!content_type)
		return HF_BODY_OTHER;
	const char *s = content_type;
	while (is_ows(*s))
		s++;
	/* The media type ends at the first parameter or whitespace. */
	size_t n = strcspn(s, "; \t");
	const char *slash = memchr(s, '/', n);
	if (!slash || slash == s)
		return HF_BODY_OTHER;
	size_t sub = n - (size_t)(slash + 1 - s);
	if (n == 16 && strncasecmp(s, "application/json", 16) == 0)
		return HF_BODY_JSON;
	if (sub > 5 && strncasecmp(s + n - 5, "+json", 5) == 0)
		return HF_BODY_JSON;
	if (n == 33 &&
	    strncasecmp(s, "application/x-www-form-urlencoded", 33) == 0)
		return HF_BODY_FORM;
	return HF_BODY_OTHER;
}

/* ---- JSON ---- */

/* jansson's parser recurses once per level: refuse deep nesting before it runs.
 * Brackets inside strings do not count; the scan follows jansson's lexer
 * closely enough that whatever passes here is at most HF_JSON_MAX_DEPTH deep
 * for it. */
static int too_deep(const char *s, size_t len)
{
	size_t depth = 0;
	int in_str = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > HF_JSON_MAX_DEPTH)
				return 1;
		} else if ((c == ']' || c == '}') && depth) {
			depth--;
		}
	}
	return 0;
}

int hf_json_parse(const char *text, size_t len, json_t **out, char *err,
		  size_t errsize)
{
	json_error_t je;
	*out = NULL;
	if (too_deep(text, len)) {
		snprintf(err, errsize, "JSON nested deeper than %d levels",
			 HF_JSON_MAX_DEPTH);
		return -1;
	}
	json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &je);
	if (!v) {
		char pos[64] = "";
		if (je.line > 0 && je.column > 0)
			snprintf(pos, sizeof pos, " at line %d, column %d",
				 je.line, je.column);
		if (json_error_code(&je) == json_error_invalid_utf8)
			snprintf(err, errsize,
				 "invalid JSON%s: not valid UTF-8 (%s)", pos,
				 je.text);
		else
			snprintf(err, errsize, "invalid JSON%s: %s", pos,
				 je.text);
		return -1;
	}
	*out = v;
	return 0;
}

/* ---- forms and query strings ---- */

/* Percent-decodes s[0..n) into raw ('+' is a space; an invalid '%' stays as it
 * is), then copies raw into out as valid UTF-8. In a key, a NUL byte becomes
 * U+FFFD as well: jansson cannot parse NUL in keys, and code that walks objects
 * reads keys as C strings. Values keep NUL, as Lua strings do. */
static void decode_part(struct hf_buf *raw, struct hf_buf *out, const char *s,
			size_t n, int key)
{
	raw->len = 0;
	out->len = 0;
	hf_buf_append(out, "", 0);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%' && i + 2 < n) {
			int h = hf_hexval((unsigned char)s[i + 1]);
			int l = hf_hexval((unsigned char)s[i + 2]);
			if (h >= 0 && l >= 0) {
				c = (char)(h << 4 | l);
				i += 2;
			}
		}
		hf_buf_append(raw, &c, 1);
	}
	hf_utf8_append(out, raw->data, raw->len, key);
}

void hf_utf8_append(struct hf_buf *out, const char *s, size_t n, bool no_nul)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t bad;
		size_t k = hf_utf8_len(p + i, n - i, &bad);
		if (no_nul && p[i] == '\0')
			k = 0;
		if (k) {
			hf_buf_append(out, p + i, k);
			i += k;
		} else {
			hf_buf_append(out, "\xef\xbf\xbd", 3);
			i += bad;
		}
	}
}

json_t *hf_form_decode(const char *s, size_t len)
{
	json_t *obj = json_object();
	struct hf_buf raw = {0}, key = {0}, val = {0};
	const char *p = s, *end = s ? s + len : s;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pair_end = amp ? amp : end;
		if (pair_end > p) {
			const char *eq = memchr(p, '=', (size_t)(pair_end - p));
			const char *key_end = eq ? eq : pair_end;
			decode_part(&raw, &key, p, (size_t)(key_end - p), 1);
			if (eq)
				decode_part(&raw, &val, eq + 1,
					    (size_t)(pair_end - eq - 1), 0);
			else
				decode_part(&raw, &val, "", 0, 0);
			json_object_setn_new_nocheck(
			    obj, key.data, key.len,
			    json_stringn_nocheck(val.data, val.len));
		}
		p = amp ? amp + 1 : end;
	}
	hf_buf_release(&raw);
	hf_buf_release(&key);
	hf_buf_release(&val);
	return obj;
}

json_t *hf_query_decode(const char *query, size_t len)
{
	return hf_form_decode(query, len);
}

int hf_body_decode(enum hf_body_kind kind, const char *body, size_t len,
		   json_t **out, char *err, size_t errsize)
{
	*out = NULL;
	if (kind == HF_BODY_OTHER || len == 0)
		return 0;
	if (kind == HF_BODY_FORM) {
		*out = hf_form_decode(body, len);
		return 0;
	}
	return hf_json_parse(body, len, out, err, errsize);
}

int hf_body_decode_event(const json_t *headers, const char *body, size_t len,
			 json_t **out, char *err, size_t errsize)
{
	return hf_body_decode_sent(
	    json_string_value(json_object_get(headers, "content-type")),
	    json_object_get(headers, "x-github-event") != NULL, body, len, out,
	    err, errsize);
}

int hf_body_decode_sent(const char *content_type, bool github, const char *body,
			size_t len, json_t **out, char *err, size_t errsize)
{
	enum hf_body_kind kind = hf_body_kind_of(content_type);
	if (hf_body_decode(kind, body, len, out, err, errsize) < 0)
		return -1;
	const json_t *payload = json_object_get(*out, "payload");
	if (kind != HF_BODY_FORM || !json_is_string(payload) || !github)
		return 0;
	char why[256];
	json_t *j = NULL;
	int rc =
	    hf_json_parse(json_string_value(payload),
			  json_string_length(payload), &j, why, sizeof why);
	json_decref(*out);
	*out = j;
	if (rc < 0)
		snprintf(err, errsize,
			 "invalid JSON in the form's payload field: %s", why);
	return rc;
}
