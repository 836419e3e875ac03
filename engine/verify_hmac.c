/* verify_hmac.c - the general `hmac` signature scheme (algorithm, encoding,
 * prefix, timestamp header and unit, the `signed:` template), its presets
 * zendesk, hubspot, intercom and helpscout, and the schemes for senders that
 * sign nothing: `token` (bearer, a header or a query parameter) and `basic`.
 *
 * Owns: the template's syntax (hf_verify_template_check, used by the loader
 * and by each request), {url} as the sender called it (--public-url or
 * `verify.url:`, else X-Forwarded-Proto and Host), HubSpot's URL decoding,
 * timestamps in seconds, milliseconds and ISO 8601. Does not own: the fixed
 * schemes and the entry point (verify.c), the keys (workflow.c, wf_verify.c).
 *
 * Pure and thread-safe, like verify.c: every input but conf is untrusted
 * (tests/fuzz/fuzz_verify_template.c); reasons never hold a secret or a
 * signature, only header and parameter names from the workflow. */
#include "hf_crypto.h"
#include "hf_limits.h"
#include "hf_util.h"
#include "hf_verify.h"
#include "verify_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the template ---- */

enum piece {
	P_LIT,
	P_BODY,
	P_TIMESTAMP,
	P_METHOD,
	P_URL,
	P_PATH,
	P_QUERY,
	P_HEADER,
};

static const struct {
	const char *name;
	enum piece kind;
} placeholders[] = {
    {"body", P_BODY}, {"timestamp", P_TIMESTAMP}, {"method", P_METHOD},
    {"url", P_URL},   {"path", P_PATH},		  {"query", P_QUERY},
};

static const char unknown_placeholder[] =
    "unknown placeholder (expected {body}, {timestamp}, {method}, {url}, "
    "{path}, {query} or {header:NAME})";

static bool header_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != ':' && c != '{' && c != '}';
}

/* The piece of t (n bytes) at *pos: a literal run up to the next '{', or a
 * placeholder (arg: the NAME of {header:NAME}). Advances *pos. Returns the
 * kind, or -1 with *err set and *pos at the problem. */
static int next_piece(const char *t, size_t n, size_t *pos, struct val *arg,
		      const char **err)
{
	size_t i = *pos;
	if (t[i] != '{') {
		const char *open = memchr(t + i, '{', n - i);
		size_t end = open ? (size_t)(open - t) : n;
		*arg = (struct val){t + i, end - i};
		*pos = end;
		return P_LIT;
	}
	const char *close = memchr(t + i, '}', n - i);
	if (!close) {
		*err = "'{' without a closing '}'";
		return -1;
	}
	const char *name = t + i + 1;
	size_t nl = (size_t)(close - name);
	for (size_t k = 0; k < sizeof placeholders / sizeof *placeholders;
	     k++) {
		if (strlen(placeholders[k].name) == nl &&
		    memcmp(placeholders[k].name, name, nl) == 0) {
			*pos = (size_t)(close - t) + 1;
			return (int)placeholders[k].kind;
		}
	}
	if (nl > 7 && memcmp(name, "header:", 7) == 0) {
		*arg = (struct val){name + 7, nl - 7};
		bool ok = arg->n <= HF_VERIFY_HEADER_NAME_MAX;
		for (size_t k = 0; ok && k < arg->n; k++)
			ok = header_char((unsigned char)arg->s[k]);
		if (ok) {
			*pos = (size_t)(close - t) + 1;
			return P_HEADER;
		}
		*err = "invalid header name in {header:NAME}";
		return -1;
	}
	*err = unknown_placeholder;
	return -1;
}

int hf_verify_template_check(const char *tmpl, size_t len, size_t *off,
			     char *msg, size_t size)
{
	const char *err = NULL;
	size_t pos = 0;
	struct val arg;
	if (len > HF_SIGNED_TEMPLATE_MAX) {
		*off = 0;
		snprintf(msg, size, "'signed' is too long (at most %d bytes)",
			 HF_SIGNED_TEMPLATE_MAX);
		return -1;
	}
	if (len == 0) {
		*off = 0;
		snprintf(msg, size, "'signed' must not be empty");
		return -1;
	}
	while (pos < len) {
		size_t at = pos;
		if (next_piece(tmpl, len, &pos, &arg, &err) < 0) {
			*off = at;
			if (err == unknown_placeholder) /* name it */
				snprintf(msg, size, "%.*s: %s",
					 (int)(strcspn(tmpl + at, "}") + 1),
					 tmpl + at, err);
			else
				snprintf(msg, size, "%s", err);
			return -1;
		}
	}
	return 0;
}

/* ---- messages naming a header ---- */

__attribute__((format(printf, 4, 5))) static const char *
say(char *buf, size_t size, const char *fallback, const char *fmt, ...)
{
	if (!buf || !size)
		return fallback;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return buf;
}

/* ---- {url} ---- */

/* HubSpot's request-validation page lists these as the characters to decode
 * in the URL before signing (v3); everything else stays as received. */
static char hubspot_decoded(const char *p)
{
	static const char *const enc[] = {"3A", "2F", "3F", "40", "21", "24",
					  "27", "28", "29", "2A", "2C", "3B"};
	static const char dec[] = ":/?@!$'()*,;";
	for (size_t i = 0; i < sizeof dec - 1; i++)
		if (strncasecmp(p, enc[i], 2) == 0)
			return dec[i];
	return 0;
}

static void hubspot_decode(char *s)
{
	char *o = s;
	for (const char *p = s; *p;) {
		char c =
		    p[0] == '%' && p[1] && p[2] ? hubspot_decoded(p + 1) : 0;
		if (c) {
			*o++ = c;
			p += 3;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
}

/* X-Forwarded-Proto's first value when it is a plain scheme name, else
 * "http". */
static void forwarded_proto(hf_header_fn get, void *ctx, char out[16])
{
	struct val v;
	snprintf(out, 16, "http");
	if (vf_header(get, ctx, "x-forwarded-proto", &v) != 1)
		return;
	const char *comma = memchr(v.s, ',', v.n);
	size_t n = comma ? (size_t)(comma - v.s) : v.n;
	while (n && (v.s[n - 1] == ' ' || v.s[n - 1] == '\t'))
		n--;
	bool ok = n > 0 && n < 16;
	for (size_t i = 0; ok && i < n; i++)
		ok = (v.s[i] >= 'a' && v.s[i] <= 'z') ||
		     (v.s[i] >= 'A' && v.s[i] <= 'Z');
	if (ok)
		snprintf(out, 16, "%.*s", (int)n, v.s);
}

/* The URL the sender called (malloc'd): scheme and host from `verify.url:`,
 * --public-url or the request's headers, then the path and query. */
static char *build_url(const struct hf_verify_conf *conf,
		       const struct hf_verify_req *req, hf_header_fn get,
		       void *ctx)
{
	const char *base = conf->url ? conf->url : req ? req->public_url : NULL;
	const char *path = req && req->path ? req->path : "";
	const char *query = req && req->query ? req->query : "";
	char *url;
	if (base) {
		size_t bl = strlen(base);
		while (bl && base[bl - 1] == '/')
			bl--;
		url = hf_xasprintf("%.*s%s%s%s", (int)bl, base, path,
				   *query ? "?" : "", query);
	} else {
		char proto[16];
		struct val host = {"", 0};
		forwarded_proto(get, ctx, proto);
		if (vf_header(get, ctx, "host", &host) != 1)
			host = (struct val){"", 0};
		url = hf_xasprintf("%s://%.*s%s%s%s", proto, (int)host.n,
				   host.s, path, *query ? "?" : "", query);
	}
	if (conf->hubspot_url)
		hubspot_decode(url);
	return url;
}

/* ---- timestamps ---- */

/* n decimal digits at s into *out; returns 0 or -1. */
static int digits(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* "Z", "+HH:MM", "-HHMM" at the end of s: the offset in minutes. */
static int iso_offset(const char *s, size_t n, int *min)
{
	int h, m;
	if (n == 1 && (s[0] == 'Z' || s[0] == 'z')) {
		*min = 0;
		return 0;
	}
	if ((n != 6 && n != 5) || (s[0] != '+' && s[0] != '-') ||
	    digits(s + 1, 2, &h) < 0 || (n == 6 && s[3] != ':') ||
	    digits(s + n - 2, 2, &m) < 0 || h > 23 || m > 59)
		return -1;
	*min = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
	return 0;
}

static int parse_iso8601(const char *s, size_t n, int64_t *ms)
{
	int y, mo, d, h, mi, se, off, frac = 0;
	if (n < 20 || digits(s, 4, &y) < 0 || s[4] != '-' ||
	    digits(s + 5, 2, &mo) < 0 || s[7] != '-' ||
	    digits(s + 8, 2, &d) < 0 ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &h) < 0 || s[13] != ':' ||
	    digits(s + 14, 2, &mi) < 0 || s[16] != ':' ||
	    digits(s + 17, 2, &se) < 0)
		return -1;
	size_t i = 19;
	if (s[i] == '.' || s[i] == ',') {
		size_t k = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == k || i - k > 9)
			return -1;
		for (size_t j = k; j < k + 3; j++)
			frac = frac * 10 + (j < i ? s[j] - '0' : 0);
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    se > 60 || iso_offset(s + i, n - i, &off) < 0)
		return -1;
	int64_t secs = hf_days_from_civil(y, mo, d) * 86400 + h * 3600 +
		       mi * 60 + se - (int64_t)off * 60;
	*ms = secs * 1000 + frac;
	return 0;
}

int hf_verify_parse_ts(const char *s, size_t n, enum hf_ts_unit unit,
		       int64_t *ms)
{
	if (unit == HF_TS_ISO8601)
		return parse_iso8601(s, n, ms);
	/* Unix seconds or milliseconds: 1 to 15 digits, nothing else. */
	int64_t t = 0;
	if (n == 0 || n > 15)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		t = t * 10 + (s[i] - '0');
	}
	*ms = unit == HF_TS_MILLIS ? t : t * 1000;
	return 0;
}

/* ---- the general scheme ---- */

/* The signature header's digest into want; returns its length, 0 when it is
 * not a digest of conf's algorithm and encoding. */
static size_t read_digest(const struct hf_verify_conf *conf, struct val v,
			  unsigned char want[HF_HMAC_MAX])
{
	size_t dlen = hf_hmac_len((enum hf_hmac_alg)conf->algorithm);
	size_t pl = conf->prefix ? strlen(conf->prefix) : 0;
	if (pl) {
		if (v.n < pl || strncasecmp(v.s, conf->prefix, pl) != 0)
			return 0;
		v.s += pl;
		v.n -= pl;
	}
	if (conf->encoding == HF_SIG_BASE64) {
		size_t got = 0;
		unsigned char *raw = hf_base64_decode(v.s, v.n, &got);
		bool ok = raw && got == dlen;
		if (ok)
			memcpy(want, raw, dlen);
		free(raw);
		return ok ? dlen : 0;
	}
	if (v.n != 2 * dlen)
		return 0;
	for (size_t i = 0; i < dlen; i++) {
		int hi = hf_hexval((unsigned char)v.s[2 * i]);
		int lo = hf_hexval((unsigned char)v.s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return 0;
		want[i] = (unsigned char)(hi << 4 | lo);
	}
	return dlen;
}

/* Fetches header `name` as written in the workflow (any case). */
static int header_ci(hf_header_fn get, void *ctx, struct val name,
		     struct val *v)
{
	char low[HF_VERIFY_HEADER_NAME_MAX + 1];
	if (name.n > HF_VERIFY_HEADER_NAME_MAX)
		return 0;
	for (size_t i = 0; i < name.n; i++) {
		unsigned char c = (unsigned char)name.s[i];
		low[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	low[name.n] = '\0';
	return vf_header(get, ctx, low, v);
}

/* What the template's pieces are for this request. */
struct sig_input {
	const struct hf_verify_conf *conf;
	const struct hf_verify_req *req;
	hf_header_fn get;
	void *ctx;
	struct val body, ts;
	char *url; /* built on first use */
	char *buf;
	size_t size;
};

/* The value of one piece into part; returns NULL or a reason. */
static const char *piece_value(struct sig_input *in, int kind, struct val arg,
			       struct hf_part *part)
{
	const struct hf_verify_req *req = in->req;
	const char *s = NULL;
	struct val v;
	switch (kind) {
	case P_LIT:
		*part = (struct hf_part){arg.s, arg.n};
		return NULL;
	case P_BODY:
		*part = (struct hf_part){in->body.s, in->body.n};
		return NULL;
	case P_TIMESTAMP:
		*part = (struct hf_part){in->ts.s, in->ts.n};
		return NULL;
	case P_METHOD:
		s = req ? req->method : NULL;
		break;
	case P_PATH:
		s = req ? req->path : NULL;
		break;
	case P_QUERY:
		s = req ? req->query : NULL;
		break;
	case P_URL:
		if (!in->url)
			in->url = build_url(in->conf, req, in->get, in->ctx);
		s = in->url;
		break;
	default: /* P_HEADER */
		if (header_ci(in->get, in->ctx, arg, &v) != 1)
			return say(in->buf, in->size,
				   "missing a header named in signed:",
				   "missing %.*s header (named in signed:)",
				   (int)arg.n, arg.s);
		*part = (struct hf_part){v.s, v.n};
		return NULL;
	}
	*part = (struct hf_part){s ? s : "", s ? strlen(s) : 0};
	return NULL;
}

/* The template's pieces for this request into *parts (malloc'd). */
static const char *sig_parts(struct sig_input *in, struct hf_part **parts,
			     size_t *nparts)
{
	const char *t = in->conf->signed_tmpl ? in->conf->signed_tmpl : "";
	size_t n = strlen(t), pos = 0, np = 0;
	const char *err = "invalid signed: template", *why = NULL;
	struct val arg;
	*parts = hf_xcalloc(n + 1, sizeof **parts);
	while (pos < n && !why) {
		int kind = next_piece(t, n, &pos, &arg, &err);
		if (kind < 0)
			why = "invalid signed: template";
		else
			why = piece_value(in, kind, arg, &(*parts)[np++]);
	}
	*nparts = np;
	return why;
}

/* The timestamp header: present, well-formed and within the tolerance. */
static const char *check_ts(struct sig_input *in, int64_t now_s)
{
	const struct hf_verify_conf *conf = in->conf;
	int64_t ms, tol = conf->tolerance_ms > 0 ? conf->tolerance_ms
						 : HF_VERIFY_TOLERANCE_MS;
	int rc = vf_header(in->get, in->ctx, conf->timestamp_header, &in->ts);
	if (rc == 0)
		return say(in->buf, in->size, "missing timestamp header",
			   "missing %s header", conf->timestamp_header);
	if (rc < 0 ||
	    hf_verify_parse_ts(in->ts.s, in->ts.n,
			       (enum hf_ts_unit)conf->timestamp_unit, &ms) < 0)
		return say(in->buf, in->size, "malformed timestamp header",
			   "malformed %s header", conf->timestamp_header);
	if (now_s < 0 || now_s > 999999999999LL || ms > 999999999999999LL)
		return "timestamp outside tolerance";
	int64_t d = now_s * 1000 - ms;
	if (d < -tol || d > tol)
		return "timestamp outside tolerance";
	return NULL;
}

const char *vf_verify_hmac(const struct hf_verify_conf *conf,
			   const struct hf_verify_req *req, hf_header_fn get,
			   void *ctx, const void *body, size_t len,
			   int64_t now_s, char *buf, size_t size)
{
	struct sig_input in = {conf,	req,  get, ctx, {body, len},
			       {"", 0}, NULL, buf, size};
	unsigned char want[HF_HMAC_MAX], got[HF_HMAC_MAX];
	struct hf_part *parts = NULL;
	size_t nparts = 0, dlen = 0;
	struct val v;
	const char *hdr = conf->header ? conf->header : "";
	int rc = vf_header(get, ctx, hdr, &v);
	if (rc == 0)
		return say(buf, size, "missing signature header",
			   "missing %s header", hdr);
	if (rc < 0 || !(dlen = read_digest(conf, v, want)))
		return say(buf, size, "malformed signature header",
			   "malformed %s header", hdr);
	const char *why = conf->timestamp_header ? check_ts(&in, now_s) : NULL;
	if (!why)
		why = sig_parts(&in, &parts, &nparts);
	for (size_t i = 0; !why && i < conf->nsecrets; i++) {
		const char *k = conf->secrets[i];
		hf_hmac_parts((enum hf_hmac_alg)conf->algorithm, k, strlen(k),
			      parts, nparts, got);
		if (hf_ct_equal(got, dlen, want, dlen))
			break;
		if (i + 1 == conf->nsecrets)
			why = "signature mismatch";
	}
	free(parts);
	free(in.url);
	return why;
}

/* ---- token and basic ---- */

/* The token the request presents: the query parameter, the header, or the
 * Authorization header's Bearer credentials. */
static const char *presented_token(const struct hf_verify_conf *conf,
				   const struct hf_verify_req *req,
				   hf_header_fn get, void *ctx, struct val *tok,
				   char *buf, size_t size)
{
	if (conf->query) {
		const char *q = req && req->arg
				    ? req->arg(req->arg_ctx, conf->query)
				    : NULL;
		if (!q)
			return say(buf, size, "missing token query parameter",
				   "missing query parameter '%s'", conf->query);
		*tok = (struct val){q, strlen(q)};
		return NULL;
	}
	const char *name = conf->header ? conf->header : "authorization";
	int rc = vf_header(get, ctx, name, tok);
	if (rc == 0)
		return say(buf, size, "missing token header",
			   "missing %s header", name);
	if (rc < 0)
		return say(buf, size, "malformed token header",
			   "malformed %s header", name);
	if (conf->header)
		return NULL;
	if (tok->n < 7 || strncasecmp(tok->s, "bearer ", 7) != 0)
		return "Authorization header is not a Bearer token";
	tok->s += 7;
	tok->n -= 7;
	while (tok->n && *tok->s == ' ') {
		tok->s++;
		tok->n--;
	}
	return NULL;
}

const char *vf_verify_token(const struct hf_verify_conf *conf,
			    const struct hf_verify_req *req, hf_header_fn get,
			    void *ctx, char *buf, size_t size)
{
	struct val tok;
	const char *why = presented_token(conf, req, get, ctx, &tok, buf, size);
	if (why)
		return why;
	bool ok = false;
	for (size_t i = 0; i < conf->nsecrets; i++) {
		const char *k = conf->secrets[i];
		ok |= hf_ct_equal(tok.s, tok.n, k, strlen(k));
	}
	return ok ? NULL : "wrong token";
}

const char *vf_verify_basic(const struct hf_verify_conf *conf, hf_header_fn get,
			    void *ctx)
{
	struct val v;
	size_t n = 0;
	int rc = vf_header(get, ctx, "authorization", &v);
	if (rc == 0)
		return "missing Authorization header";
	if (rc < 0 || v.n < 6 || strncasecmp(v.s, "basic ", 6) != 0)
		return "Authorization header is not Basic credentials";
	unsigned char *raw = hf_base64_decode(v.s + 6, v.n - 6, &n);
	if (!raw)
		return "Authorization header is not Basic credentials";
	bool ok = false;
	for (size_t i = 0; i < conf->nsecrets; i++) {
		const char *k = conf->secrets[i];
		ok |= hf_ct_equal(raw, n, k, strlen(k));
	}
	hf_secret_wipe(raw, n);
	free(raw);
	return ok ? NULL : "wrong user or password";
}

/* ---- presets ---- */

static const struct preset {
	enum hf_verify_scheme scheme;
	const char *header;
	enum hf_hmac_alg alg;
	enum hf_sig_encoding enc;
	const char *prefix;
	const char *ts_header;
	enum hf_ts_unit unit;
	const char *tmpl;
} presets[] = {
    /* developer.zendesk.com/documentation/webhooks/verifying/ */
    {HF_VERIFY_ZENDESK, "x-zendesk-webhook-signature", HF_HMAC_SHA256,
     HF_SIG_BASE64, NULL, "x-zendesk-webhook-signature-timestamp",
     HF_TS_ISO8601, "{timestamp}{body}"},
    /* developers.hubspot.com/docs/api/webhooks/validating-requests (v3) */
    {HF_VERIFY_HUBSPOT, "x-hubspot-signature-v3", HF_HMAC_SHA256, HF_SIG_BASE64,
     NULL, "x-hubspot-request-timestamp", HF_TS_MILLIS,
     "{method}{url}{body}{timestamp}"},
    /* developers.intercom.com: webhooks, signed notifications */
    {HF_VERIFY_INTERCOM, "x-hub-signature", HF_HMAC_SHA1, HF_SIG_HEX,
     "sha1=", NULL, HF_TS_SECONDS, "{body}"},
    /* developer.helpscout.com/webhooks */
    {HF_VERIFY_HELPSCOUT, "x-helpscout-signature", HF_HMAC_SHA1, HF_SIG_BASE64,
     NULL, NULL, HF_TS_SECONDS, "{body}"},
};

void hf_verify_preset(struct hf_verify_conf *conf)
{
	for (size_t i = 0; i < sizeof presets / sizeof *presets; i++) {
		const struct preset *p = &presets[i];
		if (p->scheme != conf->scheme)
			continue;
		conf->header = hf_xstrdup(p->header);
		conf->algorithm = (int)p->alg;
		conf->encoding = (int)p->enc;
		conf->prefix = p->prefix ? hf_xstrdup(p->prefix) : NULL;
		conf->timestamp_header =
		    p->ts_header ? hf_xstrdup(p->ts_header) : NULL;
		conf->timestamp_unit = (int)p->unit;
		conf->signed_tmpl = hf_xstrdup(p->tmpl);
		conf->hubspot_url = p->scheme == HF_VERIFY_HUBSPOT;
	}
}
