/* fuzz_verify.c - every signature scheme's header parsing on arbitrary input.
 *
 * The input is "SIGNATURE\nTIMESTAMP\nID\nBODY": the first line is the value of
 * every scheme's signature header, the second of the timestamp headers, the
 * third of webhook-id; a line that is not there is a missing header. Each
 * scheme runs with fixed secrets; a failure must come with a reason. Then the
 * same body is signed correctly for each scheme and must verify, so that the
 * fuzzer also checks that the body reaches the HMAC intact. */
#include "fuzz_lines.h"
#include "hf_verify.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000

struct req {
	const char *sig, *ts, *id;
};

static const char *get(void *ctx, const char *name)
{
	const struct req *r = ctx;
	if (!strcmp(name, "x-hub-signature-256") ||
	    !strcmp(name, "x-signature") || !strcmp(name, "stripe-signature") ||
	    !strcmp(name, "x-slack-signature") ||
	    !strcmp(name, "x-shopify-hmac-sha256") ||
	    !strcmp(name, "webhook-signature"))
		return r->sig;
	if (!strcmp(name, "x-slack-request-timestamp") ||
	    !strcmp(name, "webhook-timestamp"))
		return r->ts;
	if (!strcmp(name, "webhook-id"))
		return r->id;
	return NULL;
}

static char *secrets[] = {"fuzz-secret",
			  "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};

static const enum hf_verify_scheme schemes[] = {
    HF_VERIFY_NONE,	HF_VERIFY_HMAC_SHA256, HF_VERIFY_GITHUB,
    HF_VERIFY_STRIPE,	HF_VERIFY_SLACK,       HF_VERIFY_SHOPIFY,
    HF_VERIFY_STANDARD,
};

static struct hf_verify_conf conf_for(enum hf_verify_scheme s)
{
	return (struct hf_verify_conf){
	    .scheme = s,
	    .secrets = secrets,
	    .nsecrets = 2,
	    .header = s == HF_VERIFY_HMAC_SHA256 ? "x-signature" : NULL,
	    .tolerance_ms = 300000,
	};
}

static void must_verify(enum hf_verify_scheme s, struct req *r,
			const void *body, size_t len)
{
	struct hf_verify_conf c = conf_for(s);
	const char *reason = NULL;
	if (hf_verify_request(&c, get, r, body, len, NOW, &reason) != 0) {
		fprintf(stderr, "scheme %d rejected a valid signature: %s\n",
			(int)s, reason);
		abort();
	}
}

static void check_valid(const void *body, size_t len)
{
	unsigned char mac[32];
	char hex[65], sig[128], ts[32];
	struct req r = {sig, ts, "msg_fuzz"};
	snprintf(ts, sizeof ts, "%d", NOW);

	hf_hmac_sha256(secrets[0], strlen(secrets[0]), body, len, mac);
	hf_hex_encode(mac, 32, hex);
	snprintf(sig, sizeof sig, "sha256=%s", hex);
	must_verify(HF_VERIFY_GITHUB, &r, body, len);
	must_verify(HF_VERIFY_HMAC_SHA256, &r, body, len);

	char *b64 = hf_base64_encode(mac, 32);
	snprintf(sig, sizeof sig, "%s", b64);
	free(b64);
	must_verify(HF_VERIFY_SHOPIFY, &r, body, len);

	/* Stripe and Slack sign a prefix and the body. */
	size_t plen = strlen(ts) + 4 + len;
	char *msg = malloc(plen + 1);
	int n = snprintf(msg, plen + 1, "%s.", ts);
	memcpy(msg + n, body, len);
	hf_hmac_sha256(secrets[0], strlen(secrets[0]), msg, (size_t)n + len,
		       mac);
	hf_hex_encode(mac, 32, hex);
	snprintf(sig, sizeof sig, "t=%s,v1=%s", ts, hex);
	must_verify(HF_VERIFY_STRIPE, &r, body, len);

	n = snprintf(msg, plen + 1, "v0:%s:", ts);
	memcpy(msg + n, body, len);
	hf_hmac_sha256(secrets[0], strlen(secrets[0]), msg, (size_t)n + len,
		       mac);
	hf_hex_encode(mac, 32, hex);
	snprintf(sig, sizeof sig, "v0=%s", hex);
	must_verify(HF_VERIFY_SLACK, &r, body, len);
	free(msg);

	size_t klen;
	unsigned char *key =
	    hf_base64_decode(secrets[1] + 6, strlen(secrets[1]) - 6, &klen);
	char *sw = hf_standard_webhooks_sign(key, klen, r.id, NOW, body, len);
	snprintf(sig, sizeof sig, "v2,x %s", sw);
	must_verify(HF_VERIFY_STANDARD, &r, body, len);
	free(sw);
	free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct req r;
	char *sig = next_line(&p, end);
	char *ts = next_line(&p, end);
	char *id = next_line(&p, end);
	r.sig = sig;
	r.ts = ts;
	r.id = id;

	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
		struct hf_verify_conf c = conf_for(schemes[i]);
		const char *reason = NULL;
		int rc = hf_verify_request(&c, get, &r, p, (size_t)(end - p),
					   NOW, &reason);
		if ((rc != 0) != (reason != NULL))
			abort();
	}
	/* The base64 decoder sees the same garbage. */
	size_t n;
	free(hf_base64_decode((const char *)data, size, &n));
	check_valid(p, (size_t)(end - p));

	free(sig);
	free(ts);
	free(id);
	return 0;
}
