/* luart_limits.c - the Lua runtime's limits (see luart.c): the counting
 * allocator that refuses growth past the step's limit, the count hook that
 * kills a step past its deadline or instruction budget (re-armed to fire on
 * every instruction so pcall cannot swallow the kill), the charge that
 * long-running C functions pay, and the messages that say which limit hit.
 *
 * Threading: that of the runtime (one thread). Neighbours: luart.c (sets the
 * limits for each step and expression), lua_pattern.c and lua_sandbox.c
 * (hf_luart_charge, hf_luart_check). */
#include "hf_limits.h"
#include "luart_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- memory ---- */

void *hf_luart_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct hf_luart *rt = ud;
	size_t old = ptr ? osize : 0;
	if (nsize == 0) {
		free(ptr);
		rt->used -= old;
		return NULL;
	}
	if (nsize > old && rt->limit && rt->used - old + nsize > rt->limit) {
		rt->mem_hit = true;
		return NULL;
	}
	void *p = realloc(ptr, nsize);
	if (!p)
		return NULL;
	rt->used = rt->used - old + nsize;
	return p;
}

struct hf_luart *hf_luart_find(lua_State *L)
{
	void *ud;
	return lua_getallocf(L, &ud) == hf_luart_alloc ? ud : NULL;
}

void hf_luart_format_size(size_t n, char *out, size_t size)
{
	if (n % (1024 * 1024) == 0)
		snprintf(out, size, "%zu MiB", n / (1024 * 1024));
	else if (n % 1024 == 0)
		snprintf(out, size, "%zu KiB", n / 1024);
	else
		snprintf(out, size, "%zu bytes", n);
}

static void format_duration(int64_t ms, char *out, size_t size)
{
	if (ms > 0 && ms % 3600000 == 0)
		snprintf(out, size, "%lldh", (long long)(ms / 3600000));
	else if (ms > 0 && ms % 60000 == 0)
		snprintf(out, size, "%lldm", (long long)(ms / 60000));
	else if (ms > 0 && ms % 1000 == 0)
		snprintf(out, size, "%llds", (long long)(ms / 1000));
	else
		snprintf(out, size, "%lldms", (long long)ms);
}

void hf_luart_memory_message(const struct hf_luart *rt, char *out, size_t size)
{
	char s[32];
	hf_luart_format_size(rt->memory_limit, s, sizeof s);
	snprintf(out, size, "memory limit exceeded (%s)", s);
}

void hf_luart_kill_message(struct hf_luart *rt, char *out, size_t size)
{
	char d[32];
	if (rt->killed == KILL_BUDGET) {
		snprintf(out, size,
			 "expression exceeded its budget of %d "
			 "instructions",
			 HF_EXPR_MAX_INSTRUCTIONS);
		return;
	}
	format_duration(rt->timeout_ms, d, sizeof d);
	snprintf(out, size, "%s timed out after %s",
		 rt->in_expr ? "expression" : "step", d);
}

/* ---- time ---- */

/* Makes the hf_luart_hook of L (and of the main thread) fire on every
 * instruction, so that a pcall or a __close handler that catches the kill is
 * killed again at once. Never raises. */
static void arm(lua_State *L, struct hf_luart *rt)
{
	lua_sethook(L, hf_luart_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
	if (L != rt->L)
		lua_sethook(rt->L, hf_luart_hook, LUA_MASKCOUNT | LUA_MASKLINE,
			    1);
}

/* Raises the kill error, with the hf_luart_hook armed. The memory limit stays:
 * the step is over only once its pcall has returned, and what runs while it
 * unwinds (__close handlers) runs under the same limits. */
static int raise_kill(lua_State *L, struct hf_luart *rt)
{
	char msg[128];
	arm(L, rt);
	hf_luart_kill_message(rt, msg, sizeof msg);
	lua_pushstring(L, msg);
	return lua_error(L);
}

/* Charges n instructions and checks the clock; true when the run is (now)
 * killed. */
static bool over(struct hf_luart *rt, long long n)
{
	if (rt->killed == KILL_NONE && rt->budget >= 0) {
		rt->budget -= n;
		if (rt->budget < 0)
			rt->killed = KILL_BUDGET;
	}
	if (rt->killed == KILL_NONE && rt->deadline &&
	    hf_mono_ms() >= rt->deadline)
		rt->killed = KILL_TIMEOUT;
	return rt->killed != KILL_NONE;
}

/* Charges n instructions and checks the clock; raises when out of either. */
void hf_luart_charge(lua_State *L, struct hf_luart *rt, long long n)
{
	if (over(rt, n))
		raise_kill(L, rt);
}

int hf_luart_check(lua_State *L, long long work, size_t held, char *err,
		   size_t errsize)
{
	struct hf_luart *rt = hf_luart_find(L);
	if (!rt)
		return 0;
	if (over(rt, work)) {
		arm(L, rt);
		hf_luart_kill_message(rt, err, errsize);
		return -1;
	}
	if (rt->limit && (held > rt->limit || rt->used > rt->limit - held)) {
		rt->mem_hit = true;
		hf_luart_memory_message(rt, err, errsize);
		return -1;
	}
	return 0;
}

void hf_luart_reraise(lua_State *L)
{
	struct hf_luart *rt = hf_luart_find(L);
	if (rt && rt->killed != KILL_NONE)
		raise_kill(L, rt);
}

void hf_luart_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	hf_luart_charge(L, hf_luart_of(L), HF_LUA_HOOK_INSTRUCTIONS);
}
