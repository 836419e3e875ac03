/* test_verify_hmac.c - the general `hmac` scheme, its presets, `token` and
 * `basic` (verify_hmac.c). Every expected signature was computed with
 * Python's hmac module from the sender's documented recipe, not with
 * hookflow's code; tests/e2e/test_senders.py does the same against the real
 * server. */
#include "hf_verify.h"
#include "tap.h"
#include "verify_hdrs.h"

#include <stdlib.h>
#include <string.h>

#define NOW 1700000000 /* 2023-11-14T22:13:20Z */

static char *secret_slots[16];
static size_t nslots;

/* A preset's conf, filled as the loader does; free with conf_free. */
static struct hf_verify_conf preset(enum hf_verify_scheme s, const char *secret)
{
	char **one = &secret_slots[nslots++ % 16];
	*one = (char *)secret;
	struct hf_verify_conf c = {.scheme = s,
				   .secrets = one,
				   .nsecrets = 1,
				   .tolerance_ms = 5 * 60 * 1000};
	hf_verify_preset(&c);
	return c;
}

static void conf_free(struct hf_verify_conf *c)
{
	free(c->header);
	free(c->prefix);
	free(c->timestamp_header);
	free(c->signed_tmpl);
}

static char msg[256];

static const char *run(const struct hf_verify_conf *c,
		       const struct hf_verify_req *req, struct hdrs *h,
		       const char *body, int64_t now)
{
	const char *reason = "unset";
	int rc = hf_verify_request_ex(c, req, get, h, body, strlen(body), now,
				      &reason, msg, sizeof msg);
	if (rc == 0)
		return reason == NULL ? "ok" : "rc 0 with a reason";
	return reason ? reason : "rc -1 without a reason";
}

static void test_zendesk(void)
{
	struct hf_verify_conf c = preset(HF_VERIFY_ZENDESK, "zd");
	const char *sig = "tqqX7P+6a/izt0HL5uzhvYcJgn7v4C24ick2ExQIneE=";
	const char *ts_name = "x-zendesk-webhook-signature-timestamp";
	struct hdrs h = {{"x-zendesk-webhook-signature", sig, ts_name,
			  "2023-11-14T22:13:20Z", NULL}};
	CHECK_STR(run(&c, NULL, &h, "{\"a\":1}", NOW), "ok");
	CHECK_STR(run(&c, NULL, &h, "{\"a\":2}", NOW), "signature mismatch");
	CHECK_STR(run(&c, NULL, &h, "{\"a\":1}", NOW + 301),
		  "timestamp outside tolerance");
	h.kv[3] = "2023-11-14 22:13:20";
	CHECK_STR(run(&c, NULL, &h, "{\"a\":1}", NOW),
		  "malformed x-zendesk-webhook-signature-timestamp header");
	h.kv[2] = NULL;
	CHECK_STR(run(&c, NULL, &h, "{\"a\":1}", NOW),
		  "missing x-zendesk-webhook-signature-timestamp header");
	conf_free(&c);
}

static void test_hubspot(void)
{
	struct hf_verify_conf c = preset(HF_VERIFY_HUBSPOT, "hs");
	struct hf_verify_req req = {
	    "POST", "/hook", "a=%3A&b=%20", "https://h.example/", NULL, NULL};
	struct hdrs h = {{"x-hubspot-signature-v3",
			  "SecZ/a5CTuYyA2deOxUkA5nWc2cEBixdjB2ykglM3Vw=",
			  "x-hubspot-request-timestamp", "1700000000000",
			  "host", "host.example:81", NULL}};
	CHECK_STR(run(&c, &req, &h, "{}", NOW), "ok");
	/* No public URL: from Host, and http without X-Forwarded-Proto. */
	req.public_url = NULL;
	CHECK_STR(run(&c, &req, &h, "{}", NOW), "signature mismatch");
	h.kv[1] = "RdReLOlBaEnZVQgrewqNaiU/AFeKKI6ibcLA8N8qxa8=";
	CHECK_STR(run(&c, &req, &h, "{}", NOW), "ok");
	CHECK_STR(run(&c, &req, &h, "{}", NOW - 400),
		  "timestamp outside tolerance");
	conf_free(&c);
}

static void test_sha1_presets(void)
{
	struct hf_verify_conf ic = preset(HF_VERIFY_INTERCOM, "ic");
	struct hdrs h = {{"x-hub-signature",
			  "sha1=0fbf0be13a8ad533f003b87cab12853f42381db1",
			  NULL}};
	CHECK_STR(run(&ic, NULL, &h, "x", NOW), "ok");
	h.kv[1] = "0fbf0be13a8ad533f003b87cab12853f42381db1";
	CHECK_STR(run(&ic, NULL, &h, "x", NOW),
		  "malformed x-hub-signature header");
	conf_free(&ic);

	struct hf_verify_conf hs = preset(HF_VERIFY_HELPSCOUT, "hsc");
	struct hdrs h2 = {
	    {"x-helpscout-signature", "67rE3IBR/mkGfeE3L9+05Z/SIag=", NULL}};
	CHECK_STR(run(&hs, NULL, &h2, "x", NOW), "ok");
	CHECK_STR(run(&hs, NULL, &h2, "y", NOW), "signature mismatch");
	conf_free(&hs);
}

static void test_general(void)
{
	char *secrets[] = {"other", "g"};
	struct hf_verify_conf c = {
	    .scheme = HF_VERIFY_HMAC,
	    .secrets = secrets,
	    .nsecrets = 2,
	    .header = "x-sig",
	    .algorithm = 2, /* HF_HMAC_SHA512 */
	    .encoding = HF_SIG_HEX,
	    .timestamp_header = "x-ts",
	    .timestamp_unit = HF_TS_SECONDS,
	    .signed_tmpl = "{timestamp}|{method}|{path}|{query}|{header:X-Acc}|"
			   "{body}",
	};
	struct hf_verify_req req = {"GET", "/p", "q=1", NULL, NULL, NULL};
	struct hdrs h = {
	    {"x-sig",
	     "e1ce081952d4797d099ad391db935f7b55841d5a07aefa4cc90e9c91ff2c2759"
	     "6392af88d3fb1551a460c318ac0c1cc86b2de1c9ca77d36ebef975b6cb90c98c",
	     "x-ts", "1700000000", "x-acc", "acme", NULL}};
	CHECK_STR(run(&c, &req, &h, "x", NOW), "ok");
	h.kv[4] = NULL;
	CHECK_STR(run(&c, &req, &h, "x", NOW),
		  "missing X-Acc header (named in signed:)");
	/* Without a message buffer the reason is static. */
	const char *reason = NULL;
	CHECK(hf_verify_request(&c, get, &h, "x", 1, NOW, &reason) < 0);
	CHECK_STR(reason, "missing a header named in signed:");
}

static void test_token_basic(void)
{
	char *secrets[] = {"tok", "mc:pw"};
	struct hf_verify_conf t = {
	    .scheme = HF_VERIFY_TOKEN, .secrets = secrets, .nsecrets = 1};
	struct hdrs h = {{"authorization", "Bearer tok", NULL}};
	CHECK_STR(run(&t, NULL, &h, "", NOW), "ok");
	h.kv[1] = "Bearer to";
	CHECK_STR(run(&t, NULL, &h, "", NOW), "wrong token");
	h.kv[1] = "tok";
	CHECK_STR(run(&t, NULL, &h, "", NOW),
		  "Authorization header is not a Bearer token");

	struct hf_verify_conf b = {
	    .scheme = HF_VERIFY_BASIC, .secrets = secrets + 1, .nsecrets = 1};
	h.kv[1] = "Basic bWM6cHc="; /* mc:pw */
	CHECK_STR(run(&b, NULL, &h, "", NOW), "ok");
	h.kv[1] = "Basic bWM6cHg="; /* mc:px */
	CHECK_STR(run(&b, NULL, &h, "", NOW), "wrong user or password");
}

static void test_timestamps(void)
{
	int64_t ms = -1;
	CHECK(hf_verify_parse_ts("2023-11-14T22:13:20Z", 20, HF_TS_ISO8601,
				 &ms) == 0 &&
	      ms == 1700000000000LL);
	CHECK(hf_verify_parse_ts("2023-11-14T23:43:20.5+01:30", 27,
				 HF_TS_ISO8601, &ms) == 0 &&
	      ms == 1700000000500LL);
	CHECK(hf_verify_parse_ts("1970-01-01T00:00:00-0000", 24, HF_TS_ISO8601,
				 &ms) == 0 &&
	      ms == 0);
	CHECK(hf_verify_parse_ts("2023-13-14T22:13:20Z", 20, HF_TS_ISO8601,
				 &ms) < 0);
	CHECK(hf_verify_parse_ts("2023-11-14T22:13:20", 19, HF_TS_ISO8601,
				 &ms) < 0);
	CHECK(hf_verify_parse_ts("1700000000123", 13, HF_TS_MILLIS, &ms) == 0 &&
	      ms == 1700000000123LL);
	CHECK(hf_verify_parse_ts("1700000000", 10, HF_TS_SECONDS, &ms) == 0 &&
	      ms == 1700000000000LL);
	CHECK(hf_verify_parse_ts("17e8", 4, HF_TS_SECONDS, &ms) < 0);
}

static void test_template(void)
{
	size_t off = 99;
	char m[256];
	CHECK(hf_verify_template_check("{timestamp}.{body}", 18, &off, m,
				       sizeof m) == 0);
	CHECK(hf_verify_template_check("a{header:X-Y}{url}{path}{query}", 31,
				       &off, m, sizeof m) == 0);
	CHECK(hf_verify_template_check("{body}{bdy}", 11, &off, m, sizeof m) <
		  0 &&
	      off == 6);
	CHECK(strstr(m, "{bdy}: unknown placeholder") == m);
	CHECK(hf_verify_template_check("x{body", 6, &off, m, sizeof m) < 0 &&
	      off == 1);
	CHECK(hf_verify_template_check("{header:}", 9, &off, m, sizeof m) < 0);
	CHECK(hf_verify_template_check("{header:a b}", 12, &off, m, sizeof m) <
	      0);
	CHECK(hf_verify_template_check("", 0, &off, m, sizeof m) < 0);
}

int main(void)
{
	test_zendesk();
	test_hubspot();
	test_sha1_presets();
	test_general();
	test_token_basic();
	test_timestamps();
	test_template();
	return tap_done();
}
