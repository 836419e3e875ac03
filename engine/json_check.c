/* json_check.c - whether bytes are a JSON text that hf_json_parse accepts,
 * without building it (see hf_json_check.h): ingest validates a webhook's JSON
 * body on its HTTP thread and leaves the decoding to whoever needs the tree.
 *
 * Follows jansson 2.14's decoder with JSON_DECODE_ANY and the nesting limit
 * of hf_json_parse: strict UTF-8 everywhere (no overlongs, surrogates or
 * values past U+10FFFF), no control characters in strings, \u0000 refused
 * (no JSON_ALLOW_NUL), a high surrogate escape only followed by a low one,
 * integers within int64_t, reals that do not overflow a double, one value and
 * only white space after it. It refuses the NUL byte that jansson's lexer
 * drops after a number or a literal (hf_json_check.h). Compared with jansson
 * by tests/unit/test_json_check.c (a corpus and its mutations) and
 * tests/fuzz/fuzz_json_check.c.
 *
 * Pure function, any thread. */
#include "hf_json_check.h"

#include "hf_limits.h"
#include "hf_util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

struct jc {
	const unsigned char *p, *end;
	int depth;
};

static void ws(struct jc *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' ||
				 *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static int hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Four hex digits at p (within end) into *v. */
static bool hex4(const unsigned char *p, const unsigned char *end, unsigned *v)
{
	if (end - p < 4)
		return false;
	*v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return false;
		*v = *v << 4 | (unsigned)h;
	}
	return true;
}

/* A valid UTF-8 sequence of 2 to 4 bytes at c->p: skips it, or returns
 * false. */
static bool utf8(struct jc *c)
{
	size_t n = hf_utf8_len(c->p, (size_t)(c->end - c->p), NULL);
	c->p += n;
	return n > 0;
}

/* Whether any of the 8 bytes in x ends a run of plain string bytes: '"',
 * '\\', a control character (< 0x20) or a byte >= 0x80 (UTF-8). Exact as to
 * "any" (the classic has-zero-byte and has-less-than tests). */
static bool special8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ULL;
	const uint64_t high = 0x8080808080808080ULL;
	uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
	uint64_t zq = (q - ones) & ~q, zb = (b - ones) & ~b;
	uint64_t lt = (x - ones * 0x20) & ~x;
	return ((zq | zb | lt) & high) || (x & high);
}

/* A string at c->p ('"'). The plain bytes, nearly all of a body, are skipped
 * 8 at a time through a local pointer (c->p through the struct would be
 * reloaded after every byte: unsigned char may alias it). */
static bool string(struct jc *c)
{
	const unsigned char *p = c->p + 1, *end = c->end;
	for (;;) {
#ifdef __SSE2__
		/* 16 at a time: a signed compare with 0x20 catches both the
		 * control characters and the bytes >= 0x80. */
		const __m128i quote = _mm_set1_epi8('"');
		const __m128i bslash = _mm_set1_epi8('\\');
		const __m128i space = _mm_set1_epi8(0x20);
		while (end - p >= 16) {
			__m128i x = _mm_loadu_si128((const __m128i *)p);
			__m128i m = _mm_or_si128(
			    _mm_or_si128(_mm_cmpeq_epi8(x, quote),
					 _mm_cmpeq_epi8(x, bslash)),
			    _mm_cmplt_epi8(x, space));
			if (_mm_movemask_epi8(m))
				break;
			p += 16;
		}
#endif
		while (end - p >= 8) {
			uint64_t x;
			memcpy(&x, p, 8);
			if (special8(x))
				break;
			p += 8;
		}
		if (p >= end)
			return false;
		unsigned char ch = *p;
		if (ch == '"') {
			c->p = p + 1;
			return true;
		}
		if (ch < 0x20)
			return false;
		if (ch >= 0x80) {
			c->p = p;
			if (!utf8(c))
				return false;
			p = c->p;
			continue;
		}
		if (ch != '\\') {
			p++;
			continue;
		}
		if (++p >= end)
			return false;
		switch (*p) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			p++;
			continue;
		case 'u':
			break;
		default:
			return false;
		}
		unsigned v, v2;
		if (!hex4(p + 1, end, &v))
			return false;
		p += 5;
		if (v == 0 || (v >= 0xDC00 && v <= 0xDFFF))
			return false;
		if (v >= 0xD800 && v <= 0xDBFF) {
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
			    !hex4(p + 2, end, &v2) || v2 < 0xDC00 ||
			    v2 > 0xDFFF)
				return false;
			p += 6;
		}
	}
}

static bool digit(const struct jc *c)
{
	return c->p < c->end && *c->p >= '0' && *c->p <= '9';
}

static bool number(struct jc *c)
{
	const unsigned char *start = c->p;
	bool neg = *c->p == '-';
	if (neg)
		c->p++;
	if (!digit(c))
		return false;
	const unsigned char *int_start = c->p;
	if (*c->p == '0') {
		c->p++;
		if (digit(c))
			return false;
	} else {
		while (digit(c))
			c->p++;
	}
	bool real = false;
	if (c->p < c->end && *c->p == '.') {
		real = true;
		c->p++;
		if (!digit(c))
			return false;
		while (digit(c))
			c->p++;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		real = true;
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!digit(c))
			return false;
		while (digit(c))
			c->p++;
	}
	if (!real) {
		/* Within int64_t, as strtoll sees it (no leading zeros). */
		size_t n = (size_t)(c->p - int_start);
		const char *max =
		    neg ? "9223372036854775808" : "9223372036854775807";
		return n < 19 || (n == 19 && memcmp(int_start, max, 19) <= 0);
	}
	/* A real that overflows a double is refused. */
	size_t n = (size_t)(c->p - start);
	char buf[128];
	char *s = n < sizeof buf ? buf : malloc(n + 1);
	if (!s)
		return false;
	memcpy(s, start, n);
	s[n] = '\0';
	double d = strtod(s, NULL);
	if (s != buf)
		free(s);
	return !isinf(d);
}

static bool literal(struct jc *c, const char *word, size_t n)
{
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return false;
	c->p += n;
	/* jansson reads a word of letters as one token: "truex" is none. */
	return !(c->p < c->end && ((*c->p >= 'a' && *c->p <= 'z') ||
				   (*c->p >= 'A' && *c->p <= 'Z')));
}

static bool value(struct jc *c);

static bool array(struct jc *c)
{
	c->p++; /* '[' */
	ws(c);
	if (c->p < c->end && *c->p == ']') {
		c->p++;
		return true;
	}
	for (;;) {
		if (!value(c))
			return false;
		ws(c);
		if (c->p >= c->end)
			return false;
		if (*c->p == ']') {
			c->p++;
			return true;
		}
		if (*c->p != ',')
			return false;
		c->p++;
		ws(c);
	}
}

static bool object(struct jc *c)
{
	c->p++; /* '{' */
	ws(c);
	if (c->p < c->end && *c->p == '}') {
		c->p++;
		return true;
	}
	for (;;) {
		if (c->p >= c->end || *c->p != '"' || !string(c))
			return false;
		ws(c);
		if (c->p >= c->end || *c->p != ':')
			return false;
		c->p++;
		ws(c);
		if (!value(c))
			return false;
		ws(c);
		if (c->p >= c->end)
			return false;
		if (*c->p == '}') {
			c->p++;
			return true;
		}
		if (*c->p != ',')
			return false;
		c->p++;
		ws(c);
	}
}

static bool value(struct jc *c)
{
	if (c->p >= c->end)
		return false;
	switch (*c->p) {
	case '{':
	case '[': {
		if (++c->depth > HF_JSON_MAX_DEPTH)
			return false;
		bool ok = *c->p == '{' ? object(c) : array(c);
		c->depth--;
		return ok;
	}
	case '"':
		return string(c);
	case 't':
		return literal(c, "true", 4);
	case 'f':
		return literal(c, "false", 5);
	case 'n':
		return literal(c, "null", 4);
	default:
		return number(c);
	}
}

bool hf_json_check(const char *text, size_t len)
{
	struct jc c = {(const unsigned char *)text,
		       (const unsigned char *)text + len, 0};
	ws(&c);
	if (!value(&c))
		return false;
	ws(&c);
	return c.p == c.end;
}
