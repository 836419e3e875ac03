/* test_json_check.c - hf_json_check agrees with hf_json_parse (jansson) on a
 * corpus of valid and invalid texts and on many random mutations of them:
 * ingest answers 400 by the one and the workers decode with the other. */
#include "hf_body.h"
#include "hf_json_check.h"
#include "hf_limits.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static const char *corpus[] = {
    "{}",
    "[]",
    "0",
    "-0",
    "1.5",
    "-1.5e10",
    "1E+2",
    "1e-2",
    "\"\"",
    "true",
    "false",
    "null",
    " {\"a\" : [1, 2.0, \"x\", null, true]} ",
    "{\"a\":{\"b\":{\"c\":[[[]]]}}}",
    "\"\\u00e9\\ud83d\\ude00\\n\\t\\/\"",
    "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "1e308",
    "1e309",
    "-1e309",
    "1e-400",
    "01",
    "-",
    "-a",
    "1.",
    ".5",
    "1e",
    "1e+",
    "+1",
    "tru",
    "truex",
    "nul",
    "[1,]",
    "{\"a\":1,}",
    "{\"a\"}",
    "{1:2}",
    "[1 2]",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\udc00\"",
    "\"\\ud800\\u0041\"",
    "\"\\x\"",
    "\"a\nb\"",
    "\"\xc0\xaf\"",
    "\"\xed\xa0\x80\"",
    "\"\xf4\x90\x80\x80\"",
    "\"\xe2\x82\"",
    "\xef\xbb\xbf{}",
    "{} {}",
    "[",
    "]",
    "{",
    "\"abc",
    "",
    "   ",
    "[\"\\uD83D\\uDE00\"]",
    "{\"k\":\"\\uDBFF\\uDFFF\"}",
    "[1e5, -0.0, 0e0, 0.0e-0]",
    "{\"a\":1}x",
    "nulll",
    "[true,false]",
    "123456789012345678901234567890.5",
    "\"\x7f\"",
    "\"\\U0041\"",
};

static bool parses(const char *s, size_t n)
{
	json_t *v = NULL;
	char err[256];
	int rc = hf_json_parse(s, n, &v, err, sizeof err);
	json_decref(v);
	return rc == 0;
}

static void agree(const char *s, size_t n)
{
	bool a = hf_json_check(s, n), b = parses(s, n);
	if (a != b) {
		fprintf(stderr, "disagree (check %d, jansson %d): %.*s\n", a, b,
			(int)n, s);
	}
	CHECK(a == b);
}

int main(void)
{
	size_t nc = sizeof corpus / sizeof corpus[0];
	for (size_t i = 0; i < nc; i++)
		agree(corpus[i], strlen(corpus[i]));
	/* Depth: the limit itself, and one past it. */
	for (int extra = 0; extra < 2; extra++) {
		int d = HF_JSON_MAX_DEPTH + extra;
		char *s = malloc((size_t)d * 2 + 1);
		memset(s, '[', (size_t)d);
		memset(s + d, ']', (size_t)d);
		agree(s, (size_t)d * 2);
		free(s);
	}
	/* Mutations: a byte replaced, inserted or removed. */
	static const char alphabet[] = "{}[]\",:\\/u0123456789abcdefABCDEF"
				       "eE+-. \t\nxtrunl\x80\xc3\xa9\xed\xff";
	unsigned seed = 12345;
	char buf[256];
	for (int round = 0; round < 200000; round++) {
		const char *src = corpus[round % nc];
		size_t n = strlen(src);
		if (n + 2 > sizeof buf)
			continue;
		memcpy(buf, src, n);
		for (int k = 0; k < 1 + round % 3; k++) {
			seed = seed * 1103515245 + 12345;
			size_t at = n ? (seed >> 8) % (n + 1) : 0;
			char ch =
			    alphabet[(seed >> 20) % (sizeof alphabet - 1)];
			switch ((seed >> 16) % 3) {
			case 0:
				if (at < n)
					buf[at] = ch;
				break;
			case 1:
				if (n + 1 < sizeof buf) {
					memmove(buf + at + 1, buf + at, n - at);
					buf[at] = ch;
					n++;
				}
				break;
			default:
				if (at < n) {
					memmove(buf + at, buf + at + 1,
						n - at - 1);
					n--;
				}
			}
		}
		agree(buf, n);
		if (tap_failures > 20)
			break;
	}
	return tap_done();
}
