/* fuzz_verify_template.c - the general `hmac` scheme on arbitrary input: the
 * `signed:` template parser, then a request verified with it.
 *
 * The input is "TEMPLATE\nSIGNATURE\nTIMESTAMP\nHEADER\nHOST\nPROTO\nBODY":
 * the template is checked (as `hookflow check` does) and, when valid, a
 * request is verified with it, once per timestamp unit, encoding and
 * algorithm, with the HubSpot URL decoding on and off. SIGNATURE is the
 * signature header, TIMESTAMP the timestamp header, HEADER the value of
 * every other header a template names, HOST and PROTO the Host and
 * X-Forwarded-Proto headers; a line that is not there is a missing header.
 * A failure must come with a reason; a timestamp must parse the same way
 * twice. */
#include "fuzz_lines.h"
#include "hf_crypto.h"
#include "hf_verify.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000

struct req {
	const char *sig, *ts, *other, *host, *proto;
};

static const char *get(void *ctx, const char *name)
{
	const struct req *r = ctx;
	if (!strcmp(name, "x-sig"))
		return r->sig;
	if (!strcmp(name, "x-ts"))
		return r->ts;
	if (!strcmp(name, "host"))
		return r->host;
	if (!strcmp(name, "x-forwarded-proto"))
		return r->proto;
	return r->other;
}

static const char *arg(void *ctx, const char *name)
{
	(void)name;
	return ctx;
}

static void verify_all(char *tmpl, struct req *r, const char *body, size_t len)
{
	static char *secrets[] = {"fuzz-secret", "other"};
	struct hf_verify_req vr = {"POST", "/a%3Ab", "x=%2F&y",
				   NULL,   arg,	     (void *)"tok"};
	char buf[256];
	for (int i = 0; i < 2 * 3 * 3 * 2; i++) {
		struct hf_verify_conf c = {
		    .scheme = HF_VERIFY_HMAC,
		    .secrets = secrets,
		    .nsecrets = 2,
		    .header = "x-sig",
		    .tolerance_ms = 300000,
		    .encoding = i % 2,
		    .timestamp_unit = i / 2 % 3,
		    .algorithm = i / 6 % 3,
		    .hubspot_url = i / 18,
		    .timestamp_header = i % 5 ? "x-ts" : NULL,
		    .signed_tmpl = tmpl,
		    .prefix = i % 3 ? NULL : "sha=",
		    .url = i % 7 ? NULL : "https://h.example",
		};
		const char *reason = NULL;
		int rc = hf_verify_request_ex(&c, &vr, get, r, body, len, NOW,
					      &reason, i % 4 ? buf : NULL,
					      sizeof buf);
		if ((rc != 0) != (reason != NULL))
			abort();
	}
	struct hf_verify_conf t = {
	    .scheme = HF_VERIFY_TOKEN, .secrets = secrets, .nsecrets = 1};
	const char *reason = NULL;
	if ((hf_verify_request_ex(&t, &vr, get, r, body, len, NOW, &reason, buf,
				  sizeof buf) != 0) != (reason != NULL))
		abort();
	t.scheme = HF_VERIFY_BASIC;
	if ((hf_verify_request_ex(&t, &vr, get, r, body, len, NOW, &reason, buf,
				  sizeof buf) != 0) != (reason != NULL))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char *tmpl = next_line(&p, end);
	struct req r;
	r.sig = next_line(&p, end);
	r.ts = next_line(&p, end);
	r.other = next_line(&p, end);
	r.host = next_line(&p, end);
	r.proto = next_line(&p, end);

	size_t off = 0;
	char msg[256];
	if (tmpl && hf_verify_template_check(tmpl, strlen(tmpl), &off, msg,
					     sizeof msg) == 0)
		verify_all(tmpl, &r, p, (size_t)(end - p));
	else if (tmpl && off > strlen(tmpl))
		abort();
	for (int u = 0; r.ts && u < 3; u++) {
		int64_t a, b;
		int ra = hf_verify_parse_ts(r.ts, strlen(r.ts),
					    (enum hf_ts_unit)u, &a);
		int rb = hf_verify_parse_ts(r.ts, strlen(r.ts),
					    (enum hf_ts_unit)u, &b);
		if (ra != rb || (ra == 0 && a != b))
			abort();
	}
	free(tmpl);
	free((char *)r.sig);
	free((char *)r.ts);
	free((char *)r.other);
	free((char *)r.host);
	free((char *)r.proto);
	return 0;
}
