/* esc.c - strings made safe to print: control characters (bidirectional ones
 * included) and invalid UTF-8 escaped for a terminal, a text log line or a
 * JSON string (hf_esc.h says what each style writes). Used by the logs
 * (util.c) and the CLI's human-readable output (cmd_*.c). Pure functions on
 * bytes; any thread. */
#include "hf_esc.h"
#include "hf_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether the valid UTF-8 sequence at s (len bytes) is a bidirectional
 * formatting control (Unicode's Bidi_Control: U+061C, U+200E, U+200F,
 * U+202A to U+202E, U+2066 to U+2069), which reorders what a terminal shows
 * after it ("Trojan Source"); its code point in *cp. */
static bool bidi(const unsigned char *s, size_t len, unsigned *cp)
{
	if (len == 2 && s[0] == 0xd8 && s[1] == 0x9c) {
		*cp = 0x061c;
		return true;
	}
	if (len != 3 || s[0] != 0xe2 || (s[1] != 0x80 && s[1] != 0x81))
		return false;
	*cp = 0x2000u | (unsigned)(s[1] & 0x3f) << 6 | (s[2] & 0x3fu);
	return *cp == 0x200e || *cp == 0x200f ||
	       (*cp >= 0x202a && *cp <= 0x202e) ||
	       (*cp >= 0x2066 && *cp <= 0x2069);
}

/* What c is written as: a C0 control, DEL, a byte of invalid UTF-8 (when
 * invalid), or the code point of a C1 or bidirectional control. */
static void put_escape(struct hf_buf *b, unsigned c, bool invalid,
		       enum hf_esc_style style)
{
	char tmp[8];
	int k;
	if (style == HF_ESC_TEXT) {
		if (c == '\n')
			k = snprintf(tmp, sizeof tmp, "\\n");
		else if (c == '\r')
			k = snprintf(tmp, sizeof tmp, "\\r");
		else if (c == '\t')
			k = snprintf(tmp, sizeof tmp, "\\t");
		else if (c >= 0x80 && !invalid)
			k = snprintf(tmp, sizeof tmp, "\\u%04x", c);
		else
			k = snprintf(tmp, sizeof tmp, "\\x%02x", c);
	} else if (invalid) {
		k = snprintf(tmp, sizeof tmp, "\\ufffd");
	} else if (c == '\n' && style == HF_ESC_JSON) {
		k = snprintf(tmp, sizeof tmp, "\\n");
	} else {
		k = snprintf(tmp, sizeof tmp, "\\u%04x", c);
	}
	hf_buf_append(b, tmp, (size_t)k);
}

void hf_esc_append(struct hf_buf *b, const char *s, size_t n,
		   enum hf_esc_style style)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t run = 0; /* the start of the bytes kept as they are */
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		size_t len = hf_utf8_len(p + i, n - i, NULL);
		bool control = c < 0x20 || c == 0x7f;
		unsigned cp = c;
		bool c1 = len == 2 && c == 0xc2 && p[i + 1] < 0xa0;
		bool quote = (c == '\\' && style != HF_ESC_JSON_TEXT) ||
			     (c == '"' && style == HF_ESC_JSON);
		if (c1)
			cp = p[i + 1];
		if (len && !control && !c1 && !quote &&
		    !bidi(p + i, len, &cp)) {
			i += len;
			continue;
		}
		hf_buf_append(b, s + run, i - run);
		if (quote) {
			hf_buf_append(b, "\\", 1);
			hf_buf_append(b, s + i, 1);
		} else {
			put_escape(b, cp, len == 0, style);
		}
		i += len ? len : 1;
		run = i;
	}
	hf_buf_append(b, s + run, n - run);
}

char *hf_esc(const char *s, enum hf_esc_style style)
{
	if (!s)
		return NULL;
	struct hf_buf b = {0};
	hf_esc_append(&b, s, strlen(s), style);
	if (!b.data)
		hf_buf_append(&b, "", 0);
	return b.data;
}
