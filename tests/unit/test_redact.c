/* test_redact.c - secrets at rest and on screen: AES-256-GCM sealing (round
 * trip, wrong key, wrong associated data, tampering, plain text), the key's
 * two spellings, the key file (created 0600, read back), and what a URL and
 * header names show once redacted. */
#include "hf_crypto.h"
#include "hf_redact.h"
#include "hf_util.h"
#include "tap.h"
#include "tmpdir.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void test_seal(void)
{
	unsigned char key[32], other[32];
	memset(key, 7, sizeof key);
	memset(other, 8, sizeof other);
	char *a = hf_seal(key, "dl_1", 4, "whsec_abc", 9);
	char *b = hf_seal(key, "dl_1", 4, "whsec_abc", 9);
	CHECK(hf_is_sealed(a) && strstr(a, "whsec") == NULL);
	CHECK(strcmp(a, b) != 0); /* a fresh nonce each time */
	char *p = hf_unseal(key, "dl_1", 4, a);
	CHECK_STR(p, "whsec_abc");
	hf_secret_free(p);
	CHECK(hf_unseal(other, "dl_1", 4, a) == NULL);
	CHECK(hf_unseal(key, "dl_2", 4, a) == NULL);
	a[10] = a[10] == 'A' ? 'B' : 'A';
	CHECK(hf_unseal(key, "dl_1", 4, a) == NULL);
	CHECK(hf_unseal(key, "dl_1", 4, "whsec_abc") == NULL);
	CHECK(hf_unseal(key, "dl_1", 4, "v1:") == NULL);
	CHECK(hf_unseal(key, "dl_1", 4, "v1:!!!") == NULL);
	CHECK(!hf_is_sealed("whsec_abc") && !hf_is_sealed(NULL));
	char *e = hf_seal(key, "", 0, "", 0);
	p = hf_unseal(key, "", 0, e);
	CHECK_STR(p, "");
	free(p);
	free(e);
	free(a);
	free(b);
}

static void test_key(void)
{
	unsigned char key[32], again[32];
	const char *hex =
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
	CHECK(hf_secret_key_parse(hex, strlen(hex), key) == 0);
	CHECK(key[0] == 0 && key[31] == 0x1f);
	const char *b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
	CHECK(hf_secret_key_parse(b64, strlen(b64), again) == 0);
	CHECK(memcmp(key, again, 32) == 0);
	CHECK(hf_secret_key_parse("abcd", 4, key) < 0);
	CHECK(hf_secret_key_parse(hex, 62, key) < 0);
	CHECK(hf_secret_key_parse("AAEC", 4, key) < 0); /* 3 bytes */

	unsetenv("HOOKFLOW_SECRET_KEY");
	char state[300], path[310];
	tmpdir_create("redact");
	tmpdir_file(state, sizeof state, "s.db");
	tmpdir_file(path, sizeof path, "s.db.key");
	struct hf_error err = {0};
	CHECK(hf_secret_key_load(state, key, &err) == 0);
	struct stat sb;
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	CHECK(hf_secret_key_load(state, again, &err) == 0);
	CHECK(memcmp(key, again, 32) == 0);
	setenv("HOOKFLOW_SECRET_KEY", hex, 1);
	CHECK(hf_secret_key_load(state, again, &err) == 0 && again[31] == 0x1f);
	setenv("HOOKFLOW_SECRET_KEY", "nope", 1);
	CHECK(hf_secret_key_load(state, again, &err) < 0);
	CHECK(strstr(err.msg, "HOOKFLOW_SECRET_KEY") != NULL);
	unsetenv("HOOKFLOW_SECRET_KEY");
	tmpdir_remove();
}

static void url(const char *in, const char *want)
{
	char *got = hf_redact_url(in);
	CHECK_STR(got, want);
	free(got);
}

static void test_url(void)
{
	url("https://hooks.example.com/in", "https://hooks.example.com/in");
	url("https://u:p@h.example:8443/a?token=x&b=2#f=3",
	    "https://[redacted]@h.example:8443/a?token=[redacted]&b=[redacted]"
	    "#f=[redacted]");
	url("http://a@b@h/x", "http://[redacted]@h/x");
	url("http://h/p?secret", "http://h/p?[redacted]");
	url("http://h/p?a=&&b=1;c=2",
	    "http://h/p?a=&&b=[redacted];c=[redacted]");
	url("http://h/p?", "http://h/p?");
	url("http://h?x=1", "http://h?x=[redacted]");
	url("http://h/u@x",
	    "http://h/u@x"); /* '@' in the path is not user info */
	url("", "");
	url(NULL, "");
}

static void test_headers(void)
{
	const char *secret[] = {"Authorization",	 "cookie",
				"Proxy-Authorization",	 "set-cookie",
				"X-Hub-Signature-256",	 "x-hub-signature",
				"Stripe-Signature",	 "x-slack-signature",
				"X-Shopify-Hmac-Sha256", "webhook-signature",
				"x-signature",		 "X-Api-Key",
				"x-auth-token",		 "X-Webhook-Secret"};
	for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++)
		CHECK(hf_header_is_secret(secret[i]));
	const char *shown[] = {"content-type", "user-agent",   "x-github-event",
			       "webhook-id",   "x-request-id", "host"};
	for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
		CHECK(!hf_header_is_secret(shown[i]));
	/* The same names serve for query parameters (events' "query"). */
	CHECK(hf_header_is_secret("api_key"));
	CHECK(hf_header_is_secret("access_token"));
	CHECK(!hf_header_is_secret("page"));
	/* However long the name: the word past 127 bytes counts too. */
	char name[400];
	memset(name, 'a', sizeof name);
	memcpy(name, "X-", 2);
	memcpy(name + 300, "-ToKeN", 7);
	CHECK(hf_header_is_secret(name));
	name[300] = '\0';
	CHECK(!hf_header_is_secret(name));
	CHECK(hf_header_is_secret("COOKIE"));
	CHECK(!hf_header_is_secret("cookies"));
}

int main(void)
{
	test_seal();
	test_key();
	test_url();
	test_headers();
	return tap_done();
}
