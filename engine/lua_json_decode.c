/* lua_json_decode.c - JSON text straight into Lua values, without a jansson
 * tree in between: the decoder of a run's event.body on the worker.
 *
 * Accepts exactly what hf_json_parse (jansson's json_loadb with
 * JSON_DECODE_ANY, under HF_JSON_MAX_DEPTH) accepts: RFC 8259 values at the
 * top, strict UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF), no \u0000, paired surrogate escapes, integers that fit 64 bits
 * (past that: an error, as in jansson), reals that do not overflow a double,
 * a literal not followed by a letter, nothing but whitespace after the value.
 * A duplicate object key keeps its last value, as jansson does. The values
 * follow hf_lua_json.h's mapping: object members that are null are left out
 * unless nulls are kept, null inside arrays (and at the top) is json.null,
 * arrays carry the array tag. tests/fuzz/fuzz_lua_json_decode.c compares the
 * accept/reject and the values with jansson's.
 *
 * Untrusted input: it never reads past end; recursion is bounded by
 * HF_JSON_MAX_DEPTH; strings and tables are allocated by Lua, so the memory
 * limit of the running step applies (an allocation past it raises); every
 * HF_LUA_JSON_CHECK_EVERY values the deadline is checked (hf_luart_check).
 * Threading: that of the lua_State. */
#include "hf_limits.h"
#include "hf_lua_json.h"
#include "luart_int.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dec {
	lua_State *L;
	const unsigned char *p, *end;
	bool nulls;
	int depth;
	int null_idx; /* stack index of json.null */
	int arr_idx;  /* stack index of the array tag (a metatable) */
	const char *err;
	size_t nodes, checked;
};

/* Values returned by parse_value besides pushing one. */
enum { V_OK = 0, V_NULL = 1, V_ERR = -1 };

static int fail(struct dec *d, const char *msg)
{
	if (!d->err)
		d->err = msg;
	return V_ERR;
}

static inline void skip_ws(struct dec *d)
{
	while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' ||
				 *d->p == '\r' || *d->p == '\t'))
		d->p++;
}

static int hex4(const unsigned char *s, const unsigned char *end)
{
	if (end - s < 4)
		return -1;
	int v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* The rest of a string with escapes, from d->p (just past the first
 * backslash's predecessor run, which starts at start). Pushes it. Kept out of
 * line: its buffer would otherwise sit in every recursive frame. */
static __attribute__((noinline)) int string_slow(struct dec *d,
						 const unsigned char *start)
{
	luaL_Buffer b;
	luaL_buffinit(d->L, &b);
	luaL_addlstring(&b, (const char *)start, (size_t)(d->p - start));
	for (;;) {
		const unsigned char *run = d->p;
		while (d->p < d->end && *d->p != '"' && *d->p != '\\') {
			unsigned char c = *d->p;
			if (c < 0x20)
				goto bad;
			if (c < 0x80) {
				d->p++;
				continue;
			}
			size_t n =
			    hf_utf8_len(d->p, (size_t)(d->end - d->p), NULL);
			if (!n)
				goto bad_utf8;
			d->p += n;
		}
		luaL_addlstring(&b, (const char *)run, (size_t)(d->p - run));
		if (d->p >= d->end)
			goto bad;
		if (*d->p == '"') {
			d->p++;
			luaL_pushresult(&b);
			return V_OK;
		}
		/* a backslash */
		if (++d->p >= d->end)
			goto bad;
		char c = (char)*d->p++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			luaL_addchar(&b, c);
			break;
		case 'b':
			luaL_addchar(&b, '\b');
			break;
		case 'f':
			luaL_addchar(&b, '\f');
			break;
		case 'n':
			luaL_addchar(&b, '\n');
			break;
		case 'r':
			luaL_addchar(&b, '\r');
			break;
		case 't':
			luaL_addchar(&b, '\t');
			break;
		case 'u': {
			long u = hex4(d->p, d->end);
			if (u < 0)
				goto bad;
			d->p += 4;
			if (u >= 0xdc00 && u <= 0xdfff)
				goto bad;
			if (u >= 0xd800 && u <= 0xdbff) {
				if (d->end - d->p < 6 || d->p[0] != '\\' ||
				    d->p[1] != 'u')
					goto bad;
				long l = hex4(d->p + 2, d->end);
				if (l < 0xdc00 || l > 0xdfff)
					goto bad;
				d->p += 6;
				u = 0x10000 + ((u - 0xd800) << 10) +
				    (l - 0xdc00);
			}
			if (u == 0)
				goto bad; /* jansson: no NUL without a flag */
			char o[4];
			size_t n;
			if (u < 0x80) {
				o[0] = (char)u;
				n = 1;
			} else if (u < 0x800) {
				o[0] = (char)(0xc0 | (u >> 6));
				o[1] = (char)(0x80 | (u & 0x3f));
				n = 2;
			} else if (u < 0x10000) {
				o[0] = (char)(0xe0 | (u >> 12));
				o[1] = (char)(0x80 | ((u >> 6) & 0x3f));
				o[2] = (char)(0x80 | (u & 0x3f));
				n = 3;
			} else {
				o[0] = (char)(0xf0 | (u >> 18));
				o[1] = (char)(0x80 | ((u >> 12) & 0x3f));
				o[2] = (char)(0x80 | ((u >> 6) & 0x3f));
				o[3] = (char)(0x80 | (u & 0x3f));
				n = 4;
			}
			luaL_addlstring(&b, o, n);
			break;
		}
		default:
			goto bad;
		}
	}
bad_utf8:
	luaL_pushresult(&b);
	lua_pop(d->L, 1);
	return fail(d, "not valid UTF-8");
bad:
	luaL_pushresult(&b);
	lua_pop(d->L, 1);
	return fail(d, "invalid string");
}

/* A string at d->p (the opening quote). Pushes it. */
static int parse_string(struct dec *d)
{
	const unsigned char *start = ++d->p;
	while (d->p < d->end) {
		unsigned char c = *d->p;
		if (c == '"') {
			lua_pushlstring(d->L, (const char *)start,
					(size_t)(d->p - start));
			d->p++;
			return V_OK;
		}
		if (c == '\\')
			return string_slow(d, start);
		if (c < 0x20)
			return fail(d, "invalid string");
		if (c < 0x80) {
			d->p++;
			continue;
		}
		size_t n = hf_utf8_len(d->p, (size_t)(d->end - d->p), NULL);
		if (!n)
			return fail(d, "not valid UTF-8");
		d->p += n;
	}
	return fail(d, "invalid string");
}

static inline bool digit(const struct dec *d)
{
	return d->p < d->end && *d->p >= '0' && *d->p <= '9';
}

static inline void jansson_nul(struct dec *d);

static int parse_number(struct dec *d)
{
	const unsigned char *s = d->p;
	bool neg = false, real = false;
	if (*d->p == '-') {
		neg = true;
		d->p++;
	}
	const unsigned char *ds = d->p;
	if (d->p < d->end && *d->p == '0') {
		d->p++;
		if (digit(d))
			return fail(d, "invalid number");
	} else if (digit(d)) {
		while (digit(d))
			d->p++;
	} else {
		return fail(d, "invalid number");
	}
	const unsigned char *de = d->p;
	if (d->p < d->end && *d->p == '.') {
		d->p++;
		if (!digit(d))
			return fail(d, "invalid number");
		while (digit(d))
			d->p++;
		real = true;
	}
	if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
		d->p++;
		if (d->p < d->end && (*d->p == '+' || *d->p == '-'))
			d->p++;
		if (!digit(d))
			return fail(d, "invalid number");
		while (digit(d))
			d->p++;
		real = true;
	}
	if (!real) {
		/* jansson: strtoll, ERANGE is an error. */
		unsigned long long v = 0, max = neg ? 9223372036854775808ULL
						    : 9223372036854775807ULL;
		for (const unsigned char *q = ds; q < de; q++) {
			unsigned dig = (unsigned)(*q - '0');
			if (v > (max - dig) / 10)
				return fail(d, "too big integer");
			v = v * 10 + dig;
		}
		lua_Integer i = neg ? (lua_Integer)(0 - v) : (lua_Integer)v;
		lua_pushinteger(d->L, i);
		jansson_nul(d);
		return V_OK;
	}
	char small[64], *buf = small;
	size_t n = (size_t)(d->p - s);
	if (n >= sizeof small && !(buf = malloc(n + 1)))
		return fail(d, "out of memory");
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	double v = strtod(buf, NULL);
	bool over = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
	if (buf != small)
		free(buf);
	if (over)
		return fail(d, "real number overflow");
	lua_pushnumber(d->L, v);
	jansson_nul(d);
	return V_OK;
}

static inline void jansson_nul(struct dec *d);

static bool literal(struct dec *d, const char *lit, size_t n)
{
	if ((size_t)(d->end - d->p) < n || memcmp(d->p, lit, n) != 0)
		return false;
	d->p += n;
	/* jansson reads a run of letters as one token */
	if (d->p < d->end &&
	    ((*d->p >= 'a' && *d->p <= 'z') || (*d->p >= 'A' && *d->p <= 'Z')))
		return false;
	jansson_nul(d);
	return true;
}

/* jansson's lexer ungets the byte that ends a number or a literal into a
 * NUL-terminated buffer, where a NUL byte reads as "nothing buffered": one NUL
 * right after a number or a literal is skipped. Done here too, so that both
 * accept the same texts. */
static inline void jansson_nul(struct dec *d)
{
	if (d->p < d->end && *d->p == '\0')
		d->p++;
}

static int parse_value(struct dec *d);

/* Counts one value; every HF_LUA_JSON_CHECK_EVERY values, the running
 * step's deadline (raises the kill when past it). */
static void count(struct dec *d)
{
	if (++d->nodes - d->checked < HF_LUA_JSON_CHECK_EVERY)
		return;
	char err[128];
	long long work = (long long)(d->nodes - d->checked);
	d->checked = d->nodes;
	if (hf_luart_check(d->L, work, 0, err, sizeof err) != 0) {
		hf_luart_reraise(d->L);
		luaL_error(d->L, "%s", err);
	}
}

static int parse_object(struct dec *d)
{
	lua_State *L = d->L;
	d->p++;
	lua_createtable(L, 0, 0);
	skip_ws(d);
	if (d->p < d->end && *d->p == '}') {
		d->p++;
		return V_OK;
	}
	for (;;) {
		if (d->p >= d->end || *d->p != '"')
			return fail(d, "string or '}' expected");
		if (parse_string(d) != V_OK)
			return V_ERR;
		skip_ws(d);
		if (d->p >= d->end || *d->p != ':')
			return fail(d, "':' expected");
		d->p++;
		skip_ws(d);
		int v = parse_value(d);
		if (v == V_ERR)
			return V_ERR;
		if (v == V_NULL && !d->nulls) {
			/* absent; nil also drops an earlier duplicate */
			lua_pop(L, 1);
			lua_pushnil(L);
		}
		lua_rawset(L, -3);
		skip_ws(d);
		if (d->p >= d->end)
			return fail(d, "'}' expected");
		if (*d->p == ',') {
			d->p++;
			skip_ws(d);
			continue;
		}
		if (*d->p == '}') {
			d->p++;
			return V_OK;
		}
		return fail(d, "',' or '}' expected");
	}
}

static int parse_array(struct dec *d)
{
	lua_State *L = d->L;
	d->p++;
	lua_createtable(L, 0, 0);
	lua_pushvalue(L, d->arr_idx);
	lua_setmetatable(L, -2);
	skip_ws(d);
	if (d->p < d->end && *d->p == ']') {
		d->p++;
		return V_OK;
	}
	for (lua_Integer n = 1;; n++) {
		if (parse_value(d) == V_ERR)
			return V_ERR;
		lua_rawseti(L, -2, n);
		skip_ws(d);
		if (d->p >= d->end)
			return fail(d, "']' expected");
		if (*d->p == ',') {
			d->p++;
			skip_ws(d);
			continue;
		}
		if (*d->p == ']') {
			d->p++;
			return V_OK;
		}
		return fail(d, "',' or ']' expected");
	}
}

/* A value at d->p (whitespace skipped). Pushes it, or nothing on V_ERR
 * (what a failing container pushed stays on the stack: the caller resets
 * the top). */
static int parse_value(struct dec *d)
{
	if (d->p >= d->end)
		return fail(d, "unexpected end of input");
	count(d);
	switch (*d->p) {
	case '{':
	case '[': {
		if (++d->depth > HF_JSON_MAX_DEPTH)
			return fail(d, "nested too deeply");
		if (!lua_checkstack(d->L, 4))
			return fail(d, "nested too deeply");
		int rc = *d->p == '{' ? parse_object(d) : parse_array(d);
		d->depth--;
		return rc;
	}
	case '"':
		return parse_string(d);
	case 't':
		if (!literal(d, "true", 4))
			return fail(d, "invalid token");
		lua_pushboolean(d->L, 1);
		return V_OK;
	case 'f':
		if (!literal(d, "false", 5))
			return fail(d, "invalid token");
		lua_pushboolean(d->L, 0);
		return V_OK;
	case 'n':
		if (!literal(d, "null", 4))
			return fail(d, "invalid token");
		lua_pushvalue(d->L, d->null_idx);
		return V_NULL;
	default:
		if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))
			return parse_number(d);
		return fail(d, "invalid token");
	}
}

int hf_lua_json_decode(lua_State *L, const char *s, size_t len, bool nulls,
		       char *err, size_t errsize)
{
	int top = lua_gettop(L);
	luaL_checkstack(L, 8, "JSON decode");
	hf_lua_push_null(L);
	hf_lua_push_array_tag(L);
	struct dec d = {
	    .L = L,
	    .p = (const unsigned char *)s,
	    .end = (const unsigned char *)s + len,
	    .nulls = nulls,
	    .null_idx = top + 1,
	    .arr_idx = top + 2,
	};
	skip_ws(&d);
	int rc = parse_value(&d);
	if (rc != V_ERR) {
		skip_ws(&d);
		if (d.p != d.end)
			rc = fail(&d, "end of input expected");
	}
	if (rc == V_ERR) {
		lua_settop(L, top);
		snprintf(err, errsize, "invalid JSON at byte %zu: %s",
			 (size_t)(d.p - (const unsigned char *)s), d.err);
		return -1;
	}
	lua_replace(L, top + 1);
	lua_settop(L, top + 1);
	return 0;
}
