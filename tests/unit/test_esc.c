/* test_esc.c - strings made safe to print (hf_esc.h): each control of C0, DEL,
 * C1 and the bidirectional ones, invalid UTF-8 of every kind, and valid UTF-8
 * kept, in each style. */
#include "hf_esc.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* s[0..n) escaped in style, in a static buffer. */
static const char *escn(const char *s, size_t n, enum hf_esc_style style)
{
	static char out[1024];
	struct hf_buf b = {0};
	hf_esc_append(&b, s, n, style);
	snprintf(out, sizeof out, "%s", b.data ? b.data : "");
	hf_buf_release(&b);
	return out;
}

static const char *text(const char *s)
{
	return escn(s, strlen(s), HF_ESC_TEXT);
}

static const char *json(const char *s)
{
	return escn(s, strlen(s), HF_ESC_JSON);
}

static const char *json_text(const char *s)
{
	return escn(s, strlen(s), HF_ESC_JSON_TEXT);
}

/* No byte of s is a control of C0, DEL, or the start of a C1 control. */
static int printable(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f ||
		    (p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0))
			return 0;
	return 1;
}

static void test_text(void)
{
	CHECK_STR(text("plain text, 100%"), "plain text, 100%");
	CHECK_STR(text(""), "");
	CHECK_STR(text("a\nb\rc\td"), "a\\nb\\rc\\td");
	CHECK_STR(text("\x1b]0;pwned\x07\r\nFAKE LINE"),
		  "\\x1b]0;pwned\\x07\\r\\nFAKE LINE");
	CHECK_STR(text("\x1b[2J"), "\\x1b[2J");
	CHECK_STR(text("del\x7f"), "del\\x7f");
	CHECK_STR(text("\x01\x1f"), "\\x01\\x1f");
	CHECK_STR(escn("a\0b", 3, HF_ESC_TEXT), "a\\x00b");
	/* A backslash is doubled, so that the escapes read back one way. */
	CHECK_STR(text("C:\\x1b"), "C:\\\\x1b");
	/* C1 controls as UTF-8 (CSI, NEL, the first and the last). */
	CHECK_STR(text("\xc2\x9b"
		       "31m"),
		  "\\u009b31m");
	CHECK_STR(text("\xc2\x85\xc2\x80\xc2\x9f"), "\\u0085\\u0080\\u009f");
	/* Valid UTF-8 is kept: U+00A0 (after the C1 range), é, €, 😀. */
	CHECK_STR(text("\xc2\xa0 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
		  "\xc2\xa0 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	/* Invalid UTF-8, byte by byte: a lone 0x9b (CSI in 8-bit terminals),
	 * a lone continuation, overlong forms, a surrogate, past U+10FFFF, a
	 * cut sequence, bytes that never occur. */
	CHECK_STR(text("\x9b"
		       "2J"),
		  "\\x9b2J");
	CHECK_STR(text("\x80"), "\\x80");
	CHECK_STR(text("\xc0\x9b"), "\\xc0\\x9b");
	CHECK_STR(text("\xe0\x80\x9b"), "\\xe0\\x80\\x9b");
	CHECK_STR(text("\xed\xa0\x80"), "\\xed\\xa0\\x80");
	CHECK_STR(text("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
	CHECK_STR(text("\xe2\x82"), "\\xe2\\x82");
	CHECK_STR(text("\xff\xfe"), "\\xff\\xfe");
	CHECK_STR(text("\xe2\x82x"), "\\xe2\\x82x");
	/* Every byte value alone, and after a lead byte: never a control. */
	for (int c = 0; c < 256; c++) {
		char in[3] = {(char)c, 0, 0};
		CHECK(printable(escn(in, 1, HF_ESC_TEXT)));
		in[0] = (char)0xc2;
		in[1] = (char)c;
		CHECK(printable(escn(in, 2, HF_ESC_TEXT)));
		CHECK(printable(escn(in, 2, HF_ESC_JSON)));
		CHECK(printable(escn(in, 2, HF_ESC_JSON_TEXT)));
	}
	char *s = hf_esc("a\x1b", HF_ESC_TEXT);
	CHECK_STR(s, "a\\x1b");
	free(s);
	s = hf_esc("", HF_ESC_TEXT);
	CHECK_STR(s, "");
	free(s);
	CHECK(hf_esc(NULL, HF_ESC_TEXT) == NULL);
}

static void test_json(void)
{
	CHECK_STR(json("say \"hi\"\nnow \\"), "say \\\"hi\\\"\\nnow \\\\");
	CHECK_STR(json("\x1b\r\t\x7f"), "\\u001b\\u000d\\u0009\\u007f");
	CHECK_STR(escn("\0", 1, HF_ESC_JSON), "\\u0000");
	CHECK_STR(json("\xc2\x9b caf\xc3\xa9"), "\\u009b caf\xc3\xa9");
	CHECK_STR(json("\xff"
		       "a\xc0\xaf"),
		  "\\ufffda\\ufffd\\ufffd");
	/* JSON text keeps its own escapes and quotes. */
	CHECK_STR(json_text("{\"a\":\"x\\u001by\\\"\"}"),
		  "{\"a\":\"x\\u001by\\\"\"}");
	CHECK_STR(json_text("[\"\x7f\xc2\x9b\xc3\xa9\xff\"]"),
		  "[\"\\u007f\\u009b\xc3\xa9\\ufffd\"]");
}

/* The bidirectional controls, each as UTF-8, in every style; their
 * neighbours (U+200D, U+2029, U+2065, U+206A, U+061B) kept. */
static void test_bidi(void)
{
	static const struct {
		const char *utf8, *shown;
	} bidi[] = {
	    {"\xd8\x9c", "\\u061c"},	 {"\xe2\x80\x8e", "\\u200e"},
	    {"\xe2\x80\x8f", "\\u200f"}, {"\xe2\x80\xaa", "\\u202a"},
	    {"\xe2\x80\xab", "\\u202b"}, {"\xe2\x80\xac", "\\u202c"},
	    {"\xe2\x80\xad", "\\u202d"}, {"\xe2\x80\xae", "\\u202e"},
	    {"\xe2\x81\xa6", "\\u2066"}, {"\xe2\x81\xa7", "\\u2067"},
	    {"\xe2\x81\xa8", "\\u2068"}, {"\xe2\x81\xa9", "\\u2069"},
	};
	char in[64], want[64];
	for (size_t i = 0; i < sizeof bidi / sizeof bidi[0]; i++) {
		snprintf(in, sizeof in, "a%sb", bidi[i].utf8);
		snprintf(want, sizeof want, "a%sb", bidi[i].shown);
		CHECK_STR(text(in), want);
		CHECK_STR(json(in), want);
		snprintf(in, sizeof in, "[\"%s\"]", bidi[i].utf8);
		snprintf(want, sizeof want, "[\"%s\"]", bidi[i].shown);
		CHECK_STR(json_text(in), want);
	}
	/* "Trojan Source": an RLO that would show "exe.txt" as "txt.exe". */
	CHECK_STR(text("invoice\xe2\x80\xaetxt.exe"), "invoice\\u202etxt.exe");
	const char *kept[] = {"\xe2\x80\x8d", "\xe2\x80\xa9", "\xe2\x81\xa5",
			      "\xe2\x81\xaa", "\xd8\x9b",     "\xe2\x80\xa8"};
	for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
		CHECK_STR(text(kept[i]), kept[i]);
		CHECK_STR(json(kept[i]), kept[i]);
	}
	/* A sequence cut short stays invalid UTF-8, byte by byte. */
	CHECK_STR(text("\xe2\x80"), "\\xe2\\x80");
}

int main(void)
{
	test_text();
	test_json();
	test_bidi();
	return tap_done();
}
