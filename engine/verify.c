/* verify.c - inbound signature schemes (hmac-sha256, github, stripe, slack,
 * shopify, standard-webhooks), the entry point that also dispatches to the
 * general `hmac` scheme, its presets, `token` and `basic` (verify_hmac.c),
 * and Standard Webhooks signing for outbound deliveries, over the primitives
 * of crypto.c.
 *
 * Pure and thread-safe: it reads request
 * headers through a callback, never logs, and keeps no state except the HMAC
 * implementation fetched once. Every header parser works on untrusted input
 * (see tests/fuzz/fuzz_verify.c): lengths are bounded and nothing is read past
 * a value's terminating NUL. Reasons are static strings that never contain a
 * secret or a signature. */
#include "hf_verify.h"
#include "verify_int.h"

#include "hf_limits.h"
#include "hf_util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIGEST_LEN 32
#define B64_DIGEST_LEN 44

/* ---- primitives ---- */

/* Decodes exactly 64 hex digits (either case) into a digest. Returns 0 or -1.
 */
static int hex_digest(const char *s, size_t n, unsigned char out[DIGEST_LEN])
{
	if (n != 2 * DIGEST_LEN)
		return -1;
	for (size_t i = 0; i < DIGEST_LEN; i++) {
		int hi = hf_hexval((unsigned char)s[2 * i]);
		int lo = hf_hexval((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

char *hf_standard_webhooks_sign(const void *secret, size_t slen,
				const char *msg_id, int64_t timestamp,
				const void *body, size_t len)
{
	char ts[32];
	unsigned char mac[DIGEST_LEN];
	int tn = snprintf(ts, sizeof ts, "%lld", (long long)timestamp);
	struct hf_part parts[] = {
	    {msg_id, strlen(msg_id)},
	    {".", 1},
	    {ts, (size_t)tn},
	    {".", 1},
	    {body, len},
	};
	hf_hmac_sha256_parts(secret, slen, parts, 5, mac);
	char *b64 = hf_base64_encode(mac, sizeof mac);
	char *out = hf_xasprintf("v1,%s", b64);
	free(b64);
	return out;
}

const char *hf_verify_default_dedupe_header(enum hf_verify_scheme s)
{
	switch (s) {
	case HF_VERIFY_GITHUB:
		return "x-github-delivery";
	case HF_VERIFY_STANDARD:
		return "webhook-id";
	case HF_VERIFY_SHOPIFY:
		return "x-shopify-webhook-id";
	default:
		return NULL;
	}
}

/* ---- request verification ---- */

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
	       c == '\v';
}

/* Fetches and trims a header (verify_int.h). */
int vf_header(hf_header_fn get, void *ctx, const char *name, struct val *v)
{
	const char *s = get(ctx, name);
	if (!s)
		return 0;
	size_t n = strnlen(s, HF_SIGNATURE_HEADER_MAX + 1);
	if (n > HF_SIGNATURE_HEADER_MAX)
		return -1;
	while (n && is_space((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && is_space((unsigned char)s[n - 1]))
		n--;
	v->s = s;
	v->n = n;
	return 1;
}

static int has_prefix_ci(struct val v, const char *prefix)
{
	size_t n = strlen(prefix);
	return v.n >= n && strncasecmp(v.s, prefix, n) == 0;
}

/* Unix seconds: 1 to 15 decimal digits (well past year 30000), nothing else. */
static int parse_ts(struct val v, int64_t *out)
{
	int64_t t = 0;
	if (v.n == 0 || v.n > 15)
		return -1;
	for (size_t i = 0; i < v.n; i++) {
		if (v.s[i] < '0' || v.s[i] > '9')
			return -1;
		t = t * 10 + (v.s[i] - '0');
	}
	*out = t;
	return 0;
}

/* A tolerance of 0 or less is not a sensible configuration: use the default. */
static int ts_ok(const struct hf_verify_conf *conf, int64_t ts, int64_t now_s)
{
	int64_t tol = conf->tolerance_ms > 0 ? conf->tolerance_ms
					     : HF_VERIFY_TOLERANCE_MS;
	int64_t d;
	if (now_s < 0 || now_s > 999999999999999LL)
		return 0;
	d = now_s - ts;
	if (d < 0)
		d = -d;
	/* Both are below 1e15, so d * 1000 cannot overflow. */
	return d * 1000 <= tol;
}

/* Each scheme's header names and messages. */
struct scheme {
	const char *sig_header;
	const char *missing;
	const char *malformed;
};

static const struct scheme github = {
    "x-hub-signature-256",
    "missing X-Hub-Signature-256 header",
    "malformed X-Hub-Signature-256 header",
};
static const struct scheme hmac_generic = {
    NULL,
    "missing signature header",
    "malformed signature header",
};
static const struct scheme stripe = {
    "stripe-signature",
    "missing Stripe-Signature header",
    "malformed Stripe-Signature header",
};
static const struct scheme slack = {
    "x-slack-signature",
    "missing X-Slack-Signature header",
    "malformed X-Slack-Signature header",
};
static const struct scheme shopify = {
    "x-shopify-hmac-sha256",
    "missing X-Shopify-Hmac-Sha256 header",
    "malformed X-Shopify-Hmac-Sha256 header",
};
static const struct scheme standard = {
    "webhook-signature",
    "missing webhook-signature header",
    "malformed webhook-signature header",
};

/* hmac-sha256 and github: one hex digest of the body, "sha256=" prefix optional
 * for the former and required by the latter. */
static const char *verify_hex(const struct hf_verify_conf *conf,
			      const struct scheme *sc, const char *name,
			      bool need_prefix, hf_header_fn get, void *ctx,
			      const void *body, size_t len)
{
	struct val v;
	unsigned char want[DIGEST_LEN], got[DIGEST_LEN];
	int rc = vf_header(get, ctx, name, &v);
	if (rc == 0)
		return sc->missing;
	if (rc < 0)
		return sc->malformed;
	if (has_prefix_ci(v, "sha256=")) {
		v.s += 7;
		v.n -= 7;
	} else if (need_prefix) {
		return sc->malformed;
	}
	if (hex_digest(v.s, v.n, want) < 0)
		return sc->malformed;
	for (size_t i = 0; i < conf->nsecrets; i++) {
		const char *k = conf->secrets[i];
		hf_hmac_sha256(k, strlen(k), body, len, got);
		if (hf_ct_equal(got, DIGEST_LEN, want, DIGEST_LEN))
			return NULL;
	}
	return "signature mismatch";
}

/* Stripe-Signature: "t=TS,v1=HEX[,v1=HEX][,v0=...]" over "TS.BODY". */
static const char *verify_stripe(const struct hf_verify_conf *conf,
				 hf_header_fn get, void *ctx, const void *body,
				 size_t len, int64_t now_s)
{
	/* At most HF_SIGNATURE_HEADER_MAX / 68 v1 digests fit in a header. */
	enum { MAXSIG = HF_SIGNATURE_HEADER_MAX / 68 + 1 };
	unsigned char sigs[MAXSIG][DIGEST_LEN], got[DIGEST_LEN];
	size_t nsig = 0, nv1 = 0;
	struct val v, t = {NULL, 0};
	int64_t ts;
	int rc = vf_header(get, ctx, stripe.sig_header, &v);
	if (rc == 0)
		return stripe.missing;
	if (rc < 0)
		return stripe.malformed;

	const char *p = v.s, *end = v.s + v.n;
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *item_end = comma ? comma : end;
		struct val item = {p, (size_t)(item_end - p)};
		while (item.n && is_space((unsigned char)*item.s)) {
			item.s++;
			item.n--;
		}
		while (item.n && is_space((unsigned char)item.s[item.n - 1]))
			item.n--;
		const char *eq = memchr(item.s, '=', item.n);
		if (!eq)
			return stripe.malformed;
		struct val key = {item.s, (size_t)(eq - item.s)};
		struct val value = {eq + 1, item.n - key.n - 1};
		if (key.n == 1 && key.s[0] == 't') {
			if (t.s)
				return stripe.malformed; /* two timestamps */
			t = value;
		} else if (key.n == 2 && memcmp(key.s, "v1", 2) == 0) {
			nv1++;
			/* A v1 that is not a digest can never match. */
			if (nsig < MAXSIG &&
			    hex_digest(value.s, value.n, sigs[nsig]) == 0)
				nsig++;
		}
		p = comma ? comma + 1 : end;
	}
	if (!t.s || parse_ts(t, &ts) < 0)
		return stripe.malformed;
	if (!nv1)
		return "no v1 signature in Stripe-Signature header";
	if (!ts_ok(conf, ts, now_s))
		return "timestamp outside tolerance";
	for (size_t i = 0; i < conf->nsecrets; i++) {
		const char *k = conf->secrets[i];
		struct hf_part parts[] = {{t.s, t.n}, {".", 1}, {body, len}};
		hf_hmac_sha256_parts(k, strlen(k), parts, 3, got);
		for (size_t j = 0; j < nsig; j++)
			if (hf_ct_equal(got, DIGEST_LEN, sigs[j], DIGEST_LEN))
				return NULL;
	}
	return "signature mismatch";
}

/* Slack: X-Slack-Signature "v0=HEX" over "v0:TS:BODY". */
static const char *verify_slack(const struct hf_verify_conf *conf,
				hf_header_fn get, void *ctx, const void *body,
				size_t len, int64_t now_s)
{
	struct val v, t;
	unsigned char want[DIGEST_LEN], got[DIGEST_LEN];
	int64_t ts;
	int rc = vf_header(get, ctx, slack.sig_header, &v);
	if (rc == 0)
		return slack.missing;
	if (rc < 0 || !has_prefix_ci(v, "v0=") ||
	    hex_digest(v.s + 3, v.n - 3, want) < 0)
		return slack.malformed;
	rc = vf_header(get, ctx, "x-slack-request-timestamp", &t);
	if (rc == 0)
		return "missing X-Slack-Request-Timestamp header";
	if (rc < 0 || parse_ts(t, &ts) < 0)
		return "malformed X-Slack-Request-Timestamp header";
	if (!ts_ok(conf, ts, now_s))
		return "timestamp outside tolerance";
	for (size_t i = 0; i < conf->nsecrets; i++) {
		const char *k = conf->secrets[i];
		struct hf_part parts[] = {
		    {"v0:", 3}, {t.s, t.n}, {":", 1}, {body, len}};
		hf_hmac_sha256_parts(k, strlen(k), parts, 4, got);
		if (hf_ct_equal(got, DIGEST_LEN, want, DIGEST_LEN))
			return NULL;
	}
	return "signature mismatch";
}

/* Shopify: X-Shopify-Hmac-Sha256 is the base64 digest of the body. Compared as
 * text against our own encoding, which is canonical. */
static const char *verify_shopify(const struct hf_verify_conf *conf,
				  hf_header_fn get, void *ctx, const void *body,
				  size_t len)
{
	struct val v;
	unsigned char got[DIGEST_LEN];
	int rc = vf_header(get, ctx, shopify.sig_header, &v);
	if (rc == 0)
		return shopify.missing;
	if (rc < 0 || v.n != B64_DIGEST_LEN)
		return shopify.malformed;
	for (size_t i = 0; i < conf->nsecrets; i++) {
		const char *k = conf->secrets[i];
		hf_hmac_sha256(k, strlen(k), body, len, got);
		char *b64 = hf_base64_encode(got, sizeof got);
		int eq = hf_ct_equal(b64, B64_DIGEST_LEN, v.s, B64_DIGEST_LEN);
		free(b64);
		if (eq)
			return NULL;
	}
	return "signature mismatch";
}

/* Standard Webhooks: "v1,B64 v1,B64 v2,..." over "ID.TS.BODY"; a "whsec_"
 * secret is base64 of the key. */
static const char *verify_standard(const struct hf_verify_conf *conf,
				   hf_header_fn get, void *ctx,
				   const void *body, size_t len, int64_t now_s)
{
	struct val id, t, v;
	int64_t ts;
	int rc = vf_header(get, ctx, "webhook-id", &id);
	if (rc == 0)
		return "missing webhook-id header";
	if (rc < 0)
		return "malformed webhook-id header";
	rc = vf_header(get, ctx, "webhook-timestamp", &t);
	if (rc == 0)
		return "missing webhook-timestamp header";
	if (rc < 0 || parse_ts(t, &ts) < 0)
		return "malformed webhook-timestamp header";
	rc = vf_header(get, ctx, standard.sig_header, &v);
	if (rc == 0)
		return standard.missing;
	if (rc < 0 || v.n == 0)
		return standard.malformed;

	/* Collect the v1 signatures first: a header without any is reported as
	 * such, and the HMAC is then computed once per secret. */
	enum {
		MAXSIG = HF_SIGNATURE_HEADER_MAX / 5 + 1
	}; /* shortest is "v1,x " */
	struct val sigs[MAXSIG];
	size_t nsig = 0;
	const char *p = v.s, *end = v.s + v.n;
	while (p < end) {
		while (p < end && *p == ' ')
			p++;
		const char *tok = p;
		while (p < end && *p != ' ')
			p++;
		size_t n = (size_t)(p - tok);
		if (n == 0)
			continue;
		if (n > 3 && memcmp(tok, "v1,", 3) == 0 && nsig < MAXSIG)
			sigs[nsig++] = (struct val){tok + 3, n - 3};
	}
	if (!nsig)
		return "no v1 signature in webhook-signature header";
	if (!ts_ok(conf, ts, now_s))
		return "timestamp outside tolerance";

	const char *reason = "signature mismatch";
	size_t usable = 0;
	for (size_t i = 0; i < conf->nsecrets && reason; i++) {
		const char *k = conf->secrets[i];
		size_t klen = strlen(k);
		unsigned char *key = NULL, got[DIGEST_LEN];
		if (strncmp(k, "whsec_", 6) == 0) {
			key = hf_base64_decode(k + 6, klen - 6, &klen);
			if (!key)
				continue; /* not base64: cannot match */
		}
		usable++;
		struct hf_part parts[] = {
		    {id.s, id.n}, {".", 1}, {t.s, t.n}, {".", 1}, {body, len},
		};
		hf_hmac_sha256_parts(key ? key : (const void *)k, klen, parts,
				     5, got);
		free(key);
		char *b64 = hf_base64_encode(got, sizeof got);
		for (size_t j = 0; j < nsig; j++)
			if (hf_ct_equal(b64, B64_DIGEST_LEN, sigs[j].s,
					sigs[j].n))
				reason = NULL;
		free(b64);
	}
	if (reason && !usable)
		reason = "webhook secret is not valid base64";
	return reason;
}

int hf_verify_request(const struct hf_verify_conf *conf, hf_header_fn get,
		      void *ctx, const void *body, size_t len, int64_t now_s,
		      const char **reason)
{
	return hf_verify_request_ex(conf, NULL, get, ctx, body, len, now_s,
				    reason, NULL, 0);
}

/* The schemes of verify_hmac.c: false when conf is not one of them, else
 * true with *why (NULL when the request passes). */
static bool verify_general(const struct hf_verify_conf *conf,
			   const struct hf_verify_req *req, hf_header_fn get,
			   void *ctx, const void *body, size_t len,
			   int64_t now_s, char *buf, size_t size,
			   const char **why)
{
	switch (conf->scheme) {
	case HF_VERIFY_HMAC:
	case HF_VERIFY_ZENDESK:
	case HF_VERIFY_HUBSPOT:
	case HF_VERIFY_INTERCOM:
	case HF_VERIFY_HELPSCOUT:
		*why = vf_verify_hmac(conf, req, get, ctx, body, len, now_s,
				      buf, size);
		return true;
	case HF_VERIFY_TOKEN:
		*why = vf_verify_token(conf, req, get, ctx, buf, size);
		return true;
	case HF_VERIFY_BASIC:
		*why = vf_verify_basic(conf, get, ctx);
		return true;
	default:
		return false;
	}
}

int hf_verify_request_ex(const struct hf_verify_conf *conf,
			 const struct hf_verify_req *req, hf_header_fn get,
			 void *ctx, const void *body, size_t len, int64_t now_s,
			 const char **reason, char *buf, size_t size)
{
	const char *why = NULL;
	static const char empty[1];

	if (!body)
		body = empty;
	if (!conf || conf->scheme == HF_VERIFY_NONE)
		goto out;
	if (conf->nsecrets == 0 || !conf->secrets) {
		why = "no secret configured";
		goto out;
	}
	if (verify_general(conf, req, get, ctx, body, len, now_s, buf, size,
			   &why))
		goto out;
	switch (conf->scheme) {
	case HF_VERIFY_HMAC_SHA256:
		if (!conf->header || !conf->header[0])
			why = "no signature header configured";
		else
			why = verify_hex(conf, &hmac_generic, conf->header,
					 false, get, ctx, body, len);
		break;
	case HF_VERIFY_GITHUB:
		why = verify_hex(conf, &github, github.sig_header, true, get,
				 ctx, body, len);
		break;
	case HF_VERIFY_STRIPE:
		why = verify_stripe(conf, get, ctx, body, len, now_s);
		break;
	case HF_VERIFY_SLACK:
		why = verify_slack(conf, get, ctx, body, len, now_s);
		break;
	case HF_VERIFY_SHOPIFY:
		why = verify_shopify(conf, get, ctx, body, len);
		break;
	case HF_VERIFY_STANDARD:
		why = verify_standard(conf, get, ctx, body, len, now_s);
		break;
	default:
		why = "unknown signature scheme";
		break;
	}
out:
	if (reason)
		*reason = why;
	return why ? -1 : 0;
}
