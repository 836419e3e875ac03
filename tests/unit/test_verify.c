/* test_verify.c - signature schemes against the senders' published test vectors
 * (GitHub, Slack, Standard Webhooks) and vectors computed independently with
 * Python's hmac module (Stripe, Shopify, generic hmac-sha256), plus every way a
 * request can fail: wrong secret, missing or malformed header, stale or future
 * timestamp, secret rotation, several signatures in one header. */
#include "hf_verify.h"
#include "tap.h"
#include "verify_hdrs.h"

#include <stdlib.h>
#include <string.h>

/* Each conf gets its own secrets slot, so that confs made later do not change
 * earlier ones. */
static char *slots[64];
static size_t nslots;

static struct hf_verify_conf conf1(enum hf_verify_scheme s, const char *secret)
{
	char **one = &slots[nslots++ % 64];
	*one = (char *)secret;
	return (struct hf_verify_conf){.scheme = s,
				       .secrets = one,
				       .nsecrets = 1,
				       .tolerance_ms = 5 * 60 * 1000};
}

/* Runs a verification and returns its reason, or "ok". */
static const char *run(const struct hf_verify_conf *c, struct hdrs *h,
		       const char *body, int64_t now)
{
	const char *reason = "unset";
	int rc = hf_verify_request(c, get, h, body, strlen(body), now, &reason);
	if (rc == 0)
		return reason == NULL ? "ok" : "rc 0 with a reason";
	return reason ? reason : "rc -1 without a reason";
}

static void test_primitives(void)
{
	unsigned char d[32];
	char hex[65];
	hf_sha256("abc", 3, d);
	hf_hex_encode(d, 32, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223"
		       "b00361a396177a9cb410ff61f20015ad");
	hf_hmac_sha256("It's a Secret to Everybody", 26, "Hello, World!", 13,
		       d);
	hf_hex_encode(d, 32, hex);
	CHECK_STR(hex, "757107ea0eb2509fc211221cce984b8a"
		       "37570b6d7586c22c46f4379c8b043e17");
	/* python3: hmac.new(b"", b"abc", hashlib.sha256).hexdigest() */
	hf_hmac_sha256("", 0, "abc", 3, d);
	hf_hex_encode(d, 32, hex);
	CHECK_STR(hex, "fd7adb152c05ef80dccf50a1fa4c05d5"
		       "a3ec6da95575fc312ae7c5d091836351");

	char *e = hf_base64_encode("Hello, World!", 13);
	CHECK_STR(e, "SGVsbG8sIFdvcmxkIQ==");
	free(e);
	e = hf_base64_encode("a", 1);
	CHECK_STR(e, "YQ==");
	free(e);
	e = hf_base64_encode("ab", 2);
	CHECK_STR(e, "YWI=");
	free(e);
	e = hf_base64_encode("", 0);
	CHECK_STR(e, "");
	free(e);

	size_t n = 99;
	unsigned char *b = hf_base64_decode("SGVsbG8sIFdvcmxkIQ==", 20, &n);
	CHECK(b && n == 13 && memcmp(b, "Hello, World!", 13) == 0);
	free(b);
	b = hf_base64_decode("YQ==", 4, &n);
	CHECK(b && n == 1 && b[0] == 'a');
	free(b);
	b = hf_base64_decode("YWI=", 4, &n);
	CHECK(b && n == 2 && memcmp(b, "ab", 2) == 0);
	free(b);
	b = hf_base64_decode("YWJj", 4, &n);
	CHECK(b && n == 3 && memcmp(b, "abc", 3) == 0);
	free(b);
	b = hf_base64_decode("YQ", 2, &n); /* missing padding tolerated */
	CHECK(b && n == 1 && b[0] == 'a');
	free(b);
	b = hf_base64_decode("YW\nJj\n", 6, &n); /* wrapped lines */
	CHECK(b && n == 3 && memcmp(b, "abc", 3) == 0);
	free(b);
	b = hf_base64_decode("", 0, &n);
	CHECK(b && n == 0);
	free(b);
	CHECK(hf_base64_decode("Y", 1, &n) == NULL);
	CHECK(hf_base64_decode("YQ=a", 4, &n) == NULL);
	CHECK(hf_base64_decode("YQ===", 5, &n) == NULL);
	CHECK(hf_base64_decode("Y!==", 4, &n) == NULL);
	CHECK(hf_base64_decode("YWJ=Yw==", 8, &n) == NULL);
	CHECK(hf_base64_decode("YW_j", 4, &n) == NULL); /* url-safe alphabet */
	CHECK(hf_base64_decode("YQ=", 3, &n) == NULL);
}

static void test_dedupe_headers(void)
{
	CHECK_STR(hf_verify_default_dedupe_header(HF_VERIFY_GITHUB),
		  "x-github-delivery");
	CHECK_STR(hf_verify_default_dedupe_header(HF_VERIFY_STANDARD),
		  "webhook-id");
	CHECK_STR(hf_verify_default_dedupe_header(HF_VERIFY_SHOPIFY),
		  "x-shopify-webhook-id");
	CHECK(hf_verify_default_dedupe_header(HF_VERIFY_STRIPE) == NULL);
	CHECK(hf_verify_default_dedupe_header(HF_VERIFY_SLACK) == NULL);
	CHECK(hf_verify_default_dedupe_header(HF_VERIFY_NONE) == NULL);
}

static void test_none_and_config(void)
{
	struct hf_verify_conf c = {.scheme = HF_VERIFY_NONE};
	struct hdrs h = {{NULL}};
	CHECK_STR(run(&c, &h, "x", 0), "ok");
	c.scheme = HF_VERIFY_GITHUB;
	CHECK_STR(run(&c, &h, "x", 0), "no secret configured");
	c = conf1(HF_VERIFY_HMAC_SHA256, "s");
	CHECK_STR(run(&c, &h, "x", 0), "no signature header configured");
	/* A NULL body of length 0 is an empty body. */
	const char *reason;
	c = conf1(HF_VERIFY_GITHUB, "s");
	struct hdrs g = {{"x-hub-signature-256",
			  "sha256=c72d3ee8c66b1d8c4f1f4c3b0a1e1db9"
			  "ed9dce1fa4f0d0e6bda3a3bcbd5a1f1e",
			  NULL}};
	CHECK(hf_verify_request(&c, get, &g, NULL, 0, 0, &reason) == -1);
	CHECK_STR(reason, "signature mismatch");
}

#define GH_SECRET "It's a Secret to Everybody"
#define GH_SIG                                                                 \
	"sha256="                                                              \
	"757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

static void test_github(void)
{
	struct hf_verify_conf c = conf1(HF_VERIFY_GITHUB, GH_SECRET);
	struct hdrs h = {{"x-hub-signature-256", GH_SIG, NULL}};
	CHECK_STR(run(&c, &h, "Hello, World!", 0), "ok");
	CHECK_STR(run(&c, &h, "Hello, World?", 0), "signature mismatch");

	struct hdrs upper = {{"x-hub-signature-256",
			      "sha256=757107EA0EB2509FC211221CCE984B8A"
			      "37570B6D7586C22C46F4379C8B043E17",
			      NULL}};
	CHECK_STR(run(&c, &upper, "Hello, World!", 0), "ok");

	struct hf_verify_conf w = conf1(HF_VERIFY_GITHUB, "wrong");
	CHECK_STR(run(&w, &h, "Hello, World!", 0), "signature mismatch");

	struct hdrs none = {{"x-hub-signature", "sha1=abc", NULL}};
	CHECK_STR(run(&c, &none, "Hello, World!", 0),
		  "missing X-Hub-Signature-256 header");

	struct hdrs noprefix = {{"x-hub-signature-256", &GH_SIG[7], NULL}};
	CHECK_STR(run(&c, &noprefix, "Hello, World!", 0),
		  "malformed X-Hub-Signature-256 header");
	struct hdrs shorter = {
	    {"x-hub-signature-256", "sha256=757107ea0eb25", NULL}};
	CHECK_STR(run(&c, &shorter, "Hello, World!", 0),
		  "malformed X-Hub-Signature-256 header");
	struct hdrs nonhex = {{"x-hub-signature-256",
			       "sha256=z57107ea0eb2509fc211221cce984b8a"
			       "37570b6d7586c22c46f4379c8b043e17",
			       NULL}};
	CHECK_STR(run(&c, &nonhex, "Hello, World!", 0),
		  "malformed X-Hub-Signature-256 header");

	/* A header longer than any real one is refused before any parsing. */
	char *huge = malloc(5001);
	memset(huge, 'a', 5000);
	huge[5000] = '\0';
	struct hdrs big = {{"x-hub-signature-256", huge, NULL}};
	CHECK_STR(run(&c, &big, "Hello, World!", 0),
		  "malformed X-Hub-Signature-256 header");
	free(huge);

	/* Rotation: the second secret of the pair signs. */
	char *pair[] = {"new-secret", GH_SECRET};
	struct hf_verify_conf r = c;
	r.secrets = pair;
	r.nsecrets = 2;
	CHECK_STR(run(&r, &h, "Hello, World!", 0), "ok");
}

static void test_hmac_generic(void)
{
	/* python3: hmac.new(b"s3cr3t", b'{"a":1}', hashlib.sha256).hexdigest()
	 */
	const char *hex = "d42927434049e0b8c73ce887062238cc"
			  "1c6bb6644bfe66e66d8dd0f30b85679e";
	struct hf_verify_conf c = conf1(HF_VERIFY_HMAC_SHA256, "s3cr3t");
	c.header = "x-signature";
	struct hdrs bare = {{"x-signature", hex, NULL}};
	CHECK_STR(run(&c, &bare, "{\"a\":1}", 0), "ok");
	char prefixed[80];
	snprintf(prefixed, sizeof prefixed, "sha256=%s", hex);
	struct hdrs pre = {{"x-signature", prefixed, NULL}};
	CHECK_STR(run(&c, &pre, "{\"a\":1}", 0), "ok");
	CHECK_STR(run(&c, &pre, "{\"a\":2}", 0), "signature mismatch");
	struct hf_verify_conf w = c;
	w.secrets = (char *[]){"other"};
	CHECK_STR(run(&w, &pre, "{\"a\":1}", 0), "signature mismatch");
	struct hdrs none = {{"x-other", hex, NULL}};
	CHECK_STR(run(&c, &none, "{\"a\":1}", 0), "missing signature header");
	struct hdrs bad = {{"x-signature", "sha256=", NULL}};
	CHECK_STR(run(&c, &bad, "{\"a\":1}", 0), "malformed signature header");
	struct hdrs sha1 = {
	    {"x-signature", "sha1=d42927434049e0b8c73ce88706", NULL}};
	CHECK_STR(run(&c, &sha1, "{\"a\":1}", 0), "malformed signature header");
	char *pair[] = {"old", "s3cr3t"};
	c.secrets = pair;
	c.nsecrets = 2;
	CHECK_STR(run(&c, &bare, "{\"a\":1}", 0), "ok");
}

#define SLACK_SECRET "8f742231b10e8888abcd99yyyzzz85a5"
#define SLACK_TS "1531420618"
#define SLACK_SIG                                                              \
	"v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
#define SLACK_BODY                                                             \
	"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain="        \
	"testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id="        \
	"U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"     \
	"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"   \
	"2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id="                \
	"398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"

static void test_slack(void)
{
	const int64_t now = 1531420618 + 60;
	struct hf_verify_conf c = conf1(HF_VERIFY_SLACK, SLACK_SECRET);
	struct hdrs h = {{"x-slack-signature", SLACK_SIG,
			  "x-slack-request-timestamp", SLACK_TS, NULL}};
	CHECK_STR(run(&c, &h, SLACK_BODY, now), "ok");
	CHECK_STR(run(&c, &h, SLACK_BODY "x", now), "signature mismatch");
	struct hf_verify_conf w = conf1(HF_VERIFY_SLACK, "nope");
	CHECK_STR(run(&w, &h, SLACK_BODY, now), "signature mismatch");

	/* Stale and future, just past the 5 minute tolerance; at it is fine. */
	CHECK_STR(run(&c, &h, SLACK_BODY, 1531420618 + 301),
		  "timestamp outside tolerance");
	CHECK_STR(run(&c, &h, SLACK_BODY, 1531420618 - 301),
		  "timestamp outside tolerance");
	CHECK_STR(run(&c, &h, SLACK_BODY, 1531420618 + 300), "ok");
	struct hf_verify_conf tight = c;
	tight.tolerance_ms = 500;
	CHECK_STR(run(&tight, &h, SLACK_BODY, 1531420619),
		  "timestamp outside tolerance");
	CHECK_STR(run(&tight, &h, SLACK_BODY, 1531420618), "ok");

	struct hdrs nosig = {{"x-slack-request-timestamp", SLACK_TS, NULL}};
	CHECK_STR(run(&c, &nosig, SLACK_BODY, now),
		  "missing X-Slack-Signature header");
	struct hdrs nots = {{"x-slack-signature", SLACK_SIG, NULL}};
	CHECK_STR(run(&c, &nots, SLACK_BODY, now),
		  "missing X-Slack-Request-Timestamp header");
	struct hdrs badts = {{"x-slack-signature", SLACK_SIG,
			      "x-slack-request-timestamp", "15314206l8", NULL}};
	CHECK_STR(run(&c, &badts, SLACK_BODY, now),
		  "malformed X-Slack-Request-Timestamp header");
	struct hdrs negts = {{"x-slack-signature", SLACK_SIG,
			      "x-slack-request-timestamp", "-1531420618",
			      NULL}};
	CHECK_STR(run(&c, &negts, SLACK_BODY, now),
		  "malformed X-Slack-Request-Timestamp header");
	struct hdrs badsig = {{"x-slack-signature", &SLACK_SIG[3],
			       "x-slack-request-timestamp", SLACK_TS, NULL}};
	CHECK_STR(run(&c, &badsig, SLACK_BODY, now),
		  "malformed X-Slack-Signature header");
	struct hdrs v0only = {{"x-slack-signature", "v0=",
			       "x-slack-request-timestamp", SLACK_TS, NULL}};
	CHECK_STR(run(&c, &v0only, SLACK_BODY, now),
		  "malformed X-Slack-Signature header");

	char *pair[] = {"rotated-new", SLACK_SECRET};
	c.secrets = pair;
	c.nsecrets = 2;
	CHECK_STR(run(&c, &h, SLACK_BODY, now), "ok");
}

/* python3: hmac.new(b"whsec_test_stripe", b'1700000000.' + BODY,
 * hashlib.sha256).hexdigest(), and the same with b"whsec_old_stripe". */
#define STRIPE_BODY "{\"id\":\"evt_1\",\"object\":\"event\"}"
#define STRIPE_SIG                                                             \
	"50cfc0c372490191ca81358ff59f13b27b7b1cf6cf783ce3460ff88cb960c1db"
#define STRIPE_SIG_OLD                                                         \
	"09dad177c36b416948b464046eafcdc83f79620fd0354a3349174951c9facd75"

static const char *stripe_run(const struct hf_verify_conf *c, const char *hdr,
			      int64_t now)
{
	struct hdrs h = {{"stripe-signature", hdr, NULL}};
	return run(c, &h, STRIPE_BODY, now);
}

static void test_stripe(void)
{
	const int64_t now = 1700000000 + 10;
	struct hf_verify_conf c = conf1(HF_VERIFY_STRIPE, "whsec_test_stripe");
	CHECK_STR(stripe_run(&c, "t=1700000000,v1=" STRIPE_SIG, now), "ok");
	CHECK_STR(stripe_run(&c,
			     "t=1700000000,v1=" STRIPE_SIG
			     ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a"
			     "07aba816edb039989a39",
			     now),
		  "ok");
	/* Several v1 signatures (Stripe sends one per active secret). */
	CHECK_STR(
	    stripe_run(&c, "t=1700000000,v1=" STRIPE_SIG_OLD ",v1=" STRIPE_SIG,
		       now),
	    "ok");
	CHECK_STR(stripe_run(&c, "t=1700000000, v1=" STRIPE_SIG, now), "ok");
	CHECK_STR(stripe_run(&c, "t=1700000001,v1=" STRIPE_SIG, now),
		  "signature mismatch");
	CHECK_STR(
	    stripe_run(&c, "t=1700000000,v1=nothex,v1=" STRIPE_SIG_OLD, now),
	    "signature mismatch");

	struct hf_verify_conf w = conf1(HF_VERIFY_STRIPE, "whsec_wrong");
	CHECK_STR(stripe_run(&w, "t=1700000000,v1=" STRIPE_SIG, now),
		  "signature mismatch");

	struct hdrs none = {{NULL}};
	CHECK_STR(run(&c, &none, STRIPE_BODY, now),
		  "missing Stripe-Signature header");
	CHECK_STR(stripe_run(&c, "v1=" STRIPE_SIG, now),
		  "malformed Stripe-Signature header");
	CHECK_STR(stripe_run(&c, "t=abc,v1=" STRIPE_SIG, now),
		  "malformed Stripe-Signature header");
	CHECK_STR(
	    stripe_run(&c, "t=1700000000,t=1700000000,v1=" STRIPE_SIG, now),
	    "malformed Stripe-Signature header");
	CHECK_STR(stripe_run(&c, "t=1700000000,garbage", now),
		  "malformed Stripe-Signature header");
	CHECK_STR(stripe_run(&c, "", now), "malformed Stripe-Signature header");
	CHECK_STR(stripe_run(&c, ",,,", now),
		  "malformed Stripe-Signature header");
	CHECK_STR(stripe_run(&c, "t=1700000000,v0=" STRIPE_SIG, now),
		  "no v1 signature in Stripe-Signature header");

	CHECK_STR(
	    stripe_run(&c, "t=1700000000,v1=" STRIPE_SIG, 1700000000 + 301),
	    "timestamp outside tolerance");
	CHECK_STR(
	    stripe_run(&c, "t=1700000000,v1=" STRIPE_SIG, 1700000000 - 301),
	    "timestamp outside tolerance");

	char *pair[] = {"whsec_new_stripe", "whsec_old_stripe"};
	struct hf_verify_conf r = c;
	r.secrets = pair;
	r.nsecrets = 2;
	CHECK_STR(stripe_run(&r, "t=1700000000,v1=" STRIPE_SIG_OLD, now), "ok");
	CHECK_STR(stripe_run(&r, "t=1700000000,v1=" STRIPE_SIG, now),
		  "signature mismatch");
}

/* python3: base64.b64encode(hmac.new(b"shpss_secret", BODY,
 * hashlib.sha256).digest()) */
#define SHOP_BODY "{\"id\":820982911946154508}"
#define SHOP_SIG "jqbalbO3Z8mDmrF2/+wzM3KYvbgqzVBF969vgiIy80I="

static void test_shopify(void)
{
	struct hf_verify_conf c = conf1(HF_VERIFY_SHOPIFY, "shpss_secret");
	struct hdrs h = {{"x-shopify-hmac-sha256", SHOP_SIG, NULL}};
	CHECK_STR(run(&c, &h, SHOP_BODY, 0), "ok");
	CHECK_STR(run(&c, &h, SHOP_BODY " ", 0), "signature mismatch");
	struct hf_verify_conf w = conf1(HF_VERIFY_SHOPIFY, "other");
	CHECK_STR(run(&w, &h, SHOP_BODY, 0), "signature mismatch");
	struct hdrs none = {{NULL}};
	CHECK_STR(run(&c, &none, SHOP_BODY, 0),
		  "missing X-Shopify-Hmac-Sha256 header");
	struct hdrs bad = {{"x-shopify-hmac-sha256", "jqbalbO3Z8mDmrF2", NULL}};
	CHECK_STR(run(&c, &bad, SHOP_BODY, 0),
		  "malformed X-Shopify-Hmac-Sha256 header");
	/* The hex form of the same digest is not what Shopify sends. */
	struct hdrs hex = {{"x-shopify-hmac-sha256",
			    "8ea6da95b3b767c9839ab176ffec3333"
			    "7298bdb82acd5045f7af6f822232f342",
			    NULL}};
	CHECK_STR(run(&c, &hex, SHOP_BODY, 0),
		  "malformed X-Shopify-Hmac-Sha256 header");
	char *pair[] = {"shpss_new", "shpss_secret"};
	c.secrets = pair;
	c.nsecrets = 2;
	CHECK_STR(run(&c, &h, SHOP_BODY, 0), "ok");
}

#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS "1614265330"
#define SW_BODY "{\"test\": 2432232314}"
#define SW_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static const char *sw_run(const struct hf_verify_conf *c, const char *sig,
			  int64_t now)
{
	struct hdrs h = {{"webhook-id", SW_ID, "webhook-timestamp", SW_TS,
			  "webhook-signature", sig, NULL}};
	return run(c, &h, SW_BODY, now);
}

static void test_standard(void)
{
	const int64_t now = 1614265330;
	struct hf_verify_conf c = conf1(HF_VERIFY_STANDARD, SW_SECRET);

	/* Signing reproduces the spec's vector from the decoded key. */
	size_t klen;
	unsigned char *key =
	    hf_base64_decode(&SW_SECRET[6], strlen(SW_SECRET) - 6, &klen);
	CHECK(key && klen == 24);
	char *sig = hf_standard_webhooks_sign(key, klen, SW_ID, 1614265330,
					      SW_BODY, strlen(SW_BODY));
	CHECK_STR(sig, SW_SIG);
	free(sig);

	CHECK_STR(sw_run(&c, SW_SIG, now), "ok");
	CHECK_STR(sw_run(&c, "v1,bm9wZQ== " SW_SIG, now), "ok");
	CHECK_STR(sw_run(&c, "v2,abc " SW_SIG " v1a,xyz", now), "ok");
	CHECK_STR(sw_run(&c, "v1,bm9wZQ==", now), "signature mismatch");
	/* Many short signatures before the right one still fit the header. */
	struct hf_buf many = {0};
	for (int i = 0; i < 700; i++)
		hf_buf_append(&many, "v1,x ", 5);
	hf_buf_append(&many, SW_SIG, strlen(SW_SIG));
	CHECK(many.len < 4096);
	CHECK_STR(sw_run(&c, many.data, now), "ok");
	hf_buf_release(&many);
	CHECK_STR(
	    sw_run(&c, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", now),
	    "no v1 signature in webhook-signature header");
	CHECK_STR(sw_run(&c, "  ", now), "malformed webhook-signature header");
	CHECK_STR(sw_run(&c, SW_SIG, now + 301), "timestamp outside tolerance");
	CHECK_STR(sw_run(&c, SW_SIG, now - 301), "timestamp outside tolerance");

	struct hf_verify_conf w =
	    conf1(HF_VERIFY_STANDARD, "whsec_bm90IHRoZSBrZXk=");
	CHECK_STR(sw_run(&w, SW_SIG, now), "signature mismatch");
	struct hf_verify_conf notb64 = conf1(HF_VERIFY_STANDARD, "whsec_!!!");
	CHECK_STR(sw_run(&notb64, SW_SIG, now),
		  "webhook secret is not valid base64");

	/* A secret without the prefix is used as raw bytes. */
	struct hf_verify_conf raw = conf1(HF_VERIFY_STANDARD, "raw-secret");
	sig = hf_standard_webhooks_sign("raw-secret", 10, SW_ID, 1614265330,
					SW_BODY, strlen(SW_BODY));
	CHECK_STR(sw_run(&raw, sig, now), "ok");
	free(sig);
	CHECK_STR(sw_run(&raw, SW_SIG, now), "signature mismatch");

	struct hdrs noid = {
	    {"webhook-timestamp", SW_TS, "webhook-signature", SW_SIG, NULL}};
	CHECK_STR(run(&c, &noid, SW_BODY, now), "missing webhook-id header");
	struct hdrs nots = {
	    {"webhook-id", SW_ID, "webhook-signature", SW_SIG, NULL}};
	CHECK_STR(run(&c, &nots, SW_BODY, now),
		  "missing webhook-timestamp header");
	struct hdrs nosig = {
	    {"webhook-id", SW_ID, "webhook-timestamp", SW_TS, NULL}};
	CHECK_STR(run(&c, &nosig, SW_BODY, now),
		  "missing webhook-signature header");
	struct hdrs badts = {{"webhook-id", SW_ID, "webhook-timestamp",
			      "2021-02-26", "webhook-signature", SW_SIG, NULL}};
	CHECK_STR(run(&c, &badts, SW_BODY, now),
		  "malformed webhook-timestamp header");
	struct hdrs otherid = {{"webhook-id", "msg_other", "webhook-timestamp",
				SW_TS, "webhook-signature", SW_SIG, NULL}};
	CHECK_STR(run(&c, &otherid, SW_BODY, now), "signature mismatch");

	char *pair[] = {"whsec_bm90IHRoZSBrZXk=", SW_SECRET};
	c.secrets = pair;
	c.nsecrets = 2;
	CHECK_STR(sw_run(&c, SW_SIG, now), "ok");
	free(key);
}

int main(void)
{
	test_primitives();
	test_dedupe_headers();
	test_none_and_config();
	test_github();
	test_hmac_generic();
	test_slack();
	test_stripe();
	test_shopify();
	test_standard();
	return tap_done();
}
