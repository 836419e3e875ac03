/* fuzz_lua_lint.c - the unknown-global lint of `check` (lua_lint.c) on
 * arbitrary bytes, in an exact-size copy so that ASan sees any read past the
 * end: every reported name lies inside the input on a line and column that
 * exist, and the count returned is the number of reports. */
#include "hf_lua_lint.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
	const char *s;
	size_t n;
	size_t calls;
	int lines;
};

static void on_unknown(void *ud, const struct hf_lua_unknown *u)
{
	struct ctx *c = ud;
	if (u->name < c->s || u->name + u->len > c->s + c->n || u->len == 0 ||
	    u->line < 1 || u->line > c->lines || u->col < 1)
		abort();
	c->calls++;
}

static void on_require(void *ud, const char *name, size_t n)
{
	struct ctx *c = ud;
	if (name < c->s || name + n > c->s + c->n)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size ? size : 1);
	memcpy(s, data, size);
	struct ctx c = {.s = s, .n = size, .lines = 1};
	for (size_t i = 0; i < size; i++)
		c.lines += s[i] == '\n';
	static const unsigned where[] = {HF_LUA_IN_EXPR, HF_LUA_IN_IF,
					 HF_LUA_IN_STEP};
	for (size_t i = 0; i < 3; i++) {
		c.calls = 0;
		if (hf_lua_lint(s, size, where[i], on_unknown, &c) != c.calls)
			abort();
	}
	hf_lua_lint_requires(s, size, on_require, &c);
	free(s);
	return 0;
}
