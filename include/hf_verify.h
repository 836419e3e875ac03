/* hf_verify.h - inbound signature schemes: hmac-sha256, github, stripe, slack,
 * shopify, standard-webhooks. Computes HMAC-SHA256 over the raw body as
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
