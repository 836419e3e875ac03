/* hf_esc.h - strings from senders and steps made safe to print (esc.c): on a
 * terminal, in a text log line, in a JSON string. A control character can
 * move a terminal's cursor, retitle its window, clear its screen or start a
 * new line that forges a log record; so wherever hookflow prints what it did
 * not write itself (step ids, errors, step logs, outputs, URLs), it prints it
 * through one of these styles.
 *
 * What is escaped, in every style: the C0 controls (0x00-0x1f), DEL (0x7f),
 * the C1 controls (U+0080-U+009F, as UTF-8: 0xc2 0x80 to 0xc2 0x9f; 0x9b is
 * CSI to some terminals), the bidirectional formatting controls (U+061C,
 * U+200E, U+200F, U+202A-U+202E, U+2066-U+2069: they reorder what a terminal
 * shows after them, so that text reads other than it is) and every byte that
 * is not part of valid UTF-8 (overlong forms, surrogates and code points past
 * U+10FFFF included), which a terminal in an 8-bit mode could read as a C1
 * control. Everything else, valid
 * UTF-8 of other languages included, is kept as it is.
 *
 * Pure functions, any thread. */
#ifndef HF_ESC_H
#define HF_ESC_H

#include "hf_util.h"

#include <stddef.h>

enum hf_esc_style {
	/* Text for a terminal or a text log line, always one line, and
	 * reversible: a backslash as \\, newline, carriage return and tab as
	 * \n \r \t, the other C0 controls and DEL as \xHH (two lower-case hex
	 * digits: \x1b, \x00, \x7f), a C1 or bidirectional control as \uXXXX
	 * (\u009b, \u202e) and a byte of invalid UTF-8 as \xHH. */
	HF_ESC_TEXT,
	/* The body of a JSON string, without its quotes: \" \\ \n, the other
	 * C0 controls, DEL, the C1 and bidirectional controls as \uXXXX, a
	 * byte of invalid UTF-8 as \ufffd (U+FFFD, the replacement
	 * character), so that the text is valid JSON in valid UTF-8. */
	HF_ESC_JSON,
	/* Compact JSON text as an encoder wrote it (jansson's json_dumps):
	 * its quotes and escapes kept, and what an encoder leaves raw inside
	 * strings (DEL, the C1 and bidirectional controls) as \uXXXX, a byte
	 * of invalid UTF-8 as \ufffd: the same JSON value, nothing raw for a
	 * terminal. */
	HF_ESC_JSON_TEXT,
};

/* Appends s[0..n) to b, escaped in style. NUL bytes within n are escaped
 * like any control. */
void hf_esc_append(struct hf_buf *b, const char *s, size_t n,
		   enum hf_esc_style style);
/* s (a C string) escaped in style, malloc'd; NULL for NULL. */
char *hf_esc(const char *s, enum hf_esc_style style);

#endif
