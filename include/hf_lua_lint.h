/* hf_lua_lint.h - the globals a workflow's Lua sees, and a check that a chunk
 * reads no other: `hookflow check` warns "unknown global 'evnt' (did you mean
 * 'event'?)" before a step fails on it at run time.
 *
 * The names come from the sandbox's own tables (lua_sandbox.c), so the check
 * and what steps really get cannot drift (tests/unit/test_lua_lint.c checks
 * every global of real runtimes against them). The lint is a lexer, not a
 * parser: it needs no lua_State and never runs the code. */
#ifndef HF_LUA_LINT_H
#define HF_LUA_LINT_H

#include <stdbool.h>
#include <stddef.h>

/* Where a global is defined: a bit per kind of chunk. */
enum {
	HF_LUA_IN_EXPR = 1 << 0, /* workflow-level if:, dedupe:, concurrency */
	HF_LUA_IN_IF = 1 << 1,	 /* a step's if: */
	HF_LUA_IN_STEP = 1 << 2, /* a step's run: or script, require()d files */
	/* a wait_for's or a cancel_on's if: (an expression with `signal`) */
	HF_LUA_IN_SIGNAL = 1 << 3,
	HF_LUA_IN_ALL =
	    HF_LUA_IN_EXPR | HF_LUA_IN_IF | HF_LUA_IN_STEP | HF_LUA_IN_SIGNAL,
};

/* lua_sandbox.c: the i-th global name (any order), with where it is defined;
 * false past the last. db, http, webhook and require count as defined in steps
 * although a runtime configured without them leaves them out. */
bool hf_lua_global_at(size_t i, const char **name, unsigned *where);
/* Where the global name (len bytes) is defined; 0 when nowhere. */
unsigned hf_lua_global_where(const char *name, size_t len);

/* One read of a global that is not defined where the chunk runs. line/col
 * are 1-based in the chunk; name is not NUL-terminated. */
struct hf_lua_unknown {
	int line;
	int col;
	const char *name;
	size_t len;
	const char
	    *suggest; /* the nearest global, or NULL (always when defined) */
	unsigned defined; /* where the name is defined (0: nowhere) */
};

typedef void (*hf_lua_lint_fn)(void *ud, const struct hf_lua_unknown *u);

/* Calls fn for each read of a global of src (len bytes of Lua) that is not
 * defined in `where` (one HF_LUA_IN_* bit) and not declared by the chunk
 * itself: locals, parameters, loop variables, labels, functions and globals
 * it assigns anywhere (scopes are not tracked: a name declared anywhere counts
 * everywhere). Fields (`a.b`, `a:b`), table keys (`{b = 1}`), strings and
 * comments are never reads. Total on any input; returns the number of calls.
 * `require` with a literal name: see hf_lua_lint_requires. */
size_t hf_lua_lint(const char *src, size_t len, unsigned where,
		   hf_lua_lint_fn fn, void *ud);

/* Calls fn for each `require "NAME"` / `require("NAME")` with a literal
 * name in src (name not NUL-terminated). */
void hf_lua_lint_requires(const char *src, size_t len,
			  void (*fn)(void *ud, const char *name, size_t len),
			  void *ud);

#endif
