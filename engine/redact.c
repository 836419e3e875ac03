/* redact.c - credentials hidden for display: URLs (user info, query and
 * fragment values) and the names of request headers that carry secrets
 * (hf_redact.h). Used where deliveries and events are shown (the store's
 * reads for the API, the CLI and the dashboard) and logged (the outbox).
 * Pure functions on strings; any thread. */
#include "hf_redact.h"

#include "hf_util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void put(struct hf_buf *b, const char *s)
{
	hf_buf_append(b, s, strlen(s));
}

/* Appends the parameters of a query or fragment (p, n bytes; '&' or ';'
 * between them), each value replaced: "name=[redacted]", or a parameter
 * without '=' as a whole. Empty parameters stay empty. */
static void params(struct hf_buf *b, const char *p, size_t n)
{
	while (n) {
		size_t k = 0;
		while (k < n && p[k] != '&' && p[k] != ';')
			k++;
		const char *eq = memchr(p, '=', k);
		if (eq) {
			hf_buf_append(b, p, (size_t)(eq - p) + 1);
			if (eq + 1 < p + k)
				put(b, HF_REDACTED);
		} else if (k) {
			put(b, HF_REDACTED);
		}
		if (k < n)
			hf_buf_append(b, p + k++, 1);
		p += k;
		n -= k;
	}
}

char *hf_redact_url(const char *url)
{
	struct hf_buf b = {0};
	const char *p = url ? url : "";
	const char *sep = strstr(p, "://");
	if (sep) {
		sep += 3;
		size_t auth = strcspn(sep, "/?#");
		const char *at = NULL;
		for (size_t i = 0; i < auth; i++)
			if (sep[i] == '@')
				at = sep + i; /* the last '@' ends user info */
		hf_buf_append(&b, p, (size_t)(sep - p));
		if (at) {
			put(&b, HF_REDACTED);
			p = at;
		} else {
			p = sep;
		}
	}
	size_t path = strcspn(p, "?#");
	hf_buf_append(&b, p, path);
	p += path;
	while (*p) { /* '?' query, then '#' fragment */
		char mark = *p++;
		size_t n = mark == '?' ? strcspn(p, "#") : strlen(p);
		hf_buf_append(&b, &mark, 1);
		params(&b, p, n);
		p += n;
	}
	return b.data ? b.data : hf_xstrdup("");
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* True when the lower-case word occurs in s, in any case. */
static bool contains(const char *s, const char *word)
{
	for (; *s; s++) {
		size_t i = 0;
		while (word[i] && lower(s[i]) == word[i])
			i++;
		if (!word[i])
			return true;
	}
	return false;
}

/* The whole name, however long: a name cut to a buffer's size would show a
 * secret whose "token" came past the cut. */
bool hf_header_is_secret(const char *name)
{
	static const char *const exact[] = {
	    "authorization", "proxy-authorization",   "cookie",
	    "set-cookie",    "x-shopify-hmac-sha256", "x-hub-signature",
	    "x-signature",
	};
	static const char *const parts[] = {
	    "signature", "token",  "secret",  "password",
	    "api-key",	 "apikey", "api_key",
	};
	for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
		if (strcasecmp(name, exact[i]) == 0)
			return true;
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		if (contains(name, parts[i]))
			return true;
	return false;
}
