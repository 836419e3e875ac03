/* hf_verify.h - inbound signature schemes: hmac-sha256, github, stripe, slack,
 * shopify, standard-webhooks; the general `hmac` scheme with its `signed:`
 * template and its presets zendesk, hubspot, intercom, helpscout; `token`
 * and `basic` (verify_hmac.c). Computes HMAC-SHA256 over the raw body as
 * received (crypto.c), compares in constant time, checks timestamp tolerance,
 * accepts any of several secrets (rotation). Pure: no I/O, no allocation that
 * outlives a call. */
#ifndef HF_VERIFY_H
#define HF_VERIFY_H

#include "hf_crypto.h"
#include "hf_workflow.h"
#include <stddef.h>
#include <stdint.h>

/* Returns the value of request header `name` (lower-case), or NULL. */
typedef const char *(*hf_header_fn)(void *ctx, const char *name);

/* Verifies a request against conf (a conf with scheme HF_VERIFY_NONE passes).
 * now_s is the current Unix time in seconds. Returns 0 when the signature is
 * valid; otherwise -1 and *reason points to a static, secret-free message such
 * as "missing X-Hub-Signature-256 header", "signature mismatch" or "timestamp
 * outside tolerance". */
int hf_verify_request(const struct hf_verify_conf *conf, hf_header_fn get,
		      void *ctx, const void *body, size_t len, int64_t now_s,
		      const char **reason);

/* What the general `hmac` scheme needs of a request beside its headers and
 * body. Any member may be NULL (an empty value, or no query parameters). */
struct hf_verify_req {
	const char *method;
	const char *path;	/* the path as received, without the query */
	const char *query;	/* the raw query string, without '?' */
	const char *public_url; /* serve --public-url: scheme://host */
	hf_header_fn arg;	/* query parameter by name (scheme token) */
	void *arg_ctx;
};

enum hf_sig_encoding { HF_SIG_HEX = 0, HF_SIG_BASE64 };
enum hf_ts_unit { HF_TS_SECONDS = 0, HF_TS_MILLIS, HF_TS_ISO8601 };

/* hf_verify_request with the request line (req may be NULL: empty method,
 * path and query). A reason that names a request header ("missing X header
 * named in signed:") is written to buf (size bytes) when buf is given, and
 * *reason then points to it. */
int hf_verify_request_ex(const struct hf_verify_conf *conf,
			 const struct hf_verify_req *req, hf_header_fn get,
			 void *ctx, const void *body, size_t len, int64_t now_s,
			 const char **reason, char *buf, size_t size);

/* Checks a `signed:` template: {body} {timestamp} {method} {url} {path}
 * {query} {header:NAME}, anything else literal. Returns 0, or -1 with *off
 * the byte offset of the problem and msg (size bytes) saying what it is. */
int hf_verify_template_check(const char *tmpl, size_t len, size_t *off,
			     char *msg, size_t size);
/* Fills the general fields of conf for a preset scheme (zendesk, hubspot,
 * intercom, helpscout): header, algorithm, encoding, prefix, timestamp
 * header and unit, template (malloc'd; the fields must be NULL). Does
 * nothing for other schemes. */
void hf_verify_preset(struct hf_verify_conf *conf);
/* A timestamp header's value in unit as Unix milliseconds. Returns 0 or -1
 * when it is not one (ISO 8601: YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM)). */
int hf_verify_parse_ts(const char *s, size_t n, enum hf_ts_unit unit,
		       int64_t *ms);

/* The header whose value is the default dedupe key for a scheme
 * ("x-github-delivery", "webhook-id", "x-shopify-webhook-id"), or NULL
 * (stripe's default is the body's "id", none for the others). */
const char *hf_verify_default_dedupe_header(enum hf_verify_scheme s);

/* Standard Webhooks signing for outbound deliveries: secret is raw bytes (a
 * "whsec_" secret must be base64-decoded by the caller). Returns a malloc'd
 * "v1,BASE64" string. */
char *hf_standard_webhooks_sign(const void *secret, size_t slen,
				const char *msg_id, int64_t timestamp,
				const void *body, size_t len);

#endif
