/* lua_sandbox.c - what a step may call: the sandbox globals of a runtime.
 *
 * After Redis' script_lua.c, with the lists as tables in the manner of Lua's
 * linit.c: only base (minus dofile, loadfile, warn; load forced to text mode
 * and the step's environment), table, string (minus dump), math, utf8,
 * coroutine and os.time/date/clock are opened; io, debug and package are not.
 * Library tables are read-only proxies and the string metatable is protected,
 * so that nothing one step does reaches the next. Steps run in environments
 * whose metatable (shared, protected) reads the sandbox and raises on unknown
 * globals. C functions that could run long without reaching the count hook are
 * replaced: the pattern functions (lua_pattern.c), string.rep (refuses results
 * past the memory budget; "" repeated forever), table.insert/remove/move
 * (bounded lengths), table.sort (a comparator that charges each comparison
 * and checks the deadline). setmetatable refuses __gc: Lua runs finalizers
 * with hooks off, outside any step's limits, so a script may not have any.
 *
 * Does not own the lua_State, the limits or the running of steps (luart.c).
 * Threading: hf_lua_sandbox_open runs once, on the thread creating the
 * runtime; the guarded functions run on the runtime's thread inside steps.
 * Neighbours: luart.c (creates the state, sets the step's environment and
 * require cache), lua_pattern.c, and the globals of lua_json.c, lua_lib.c,
 * lua_db.c, lua_http.c and lua_webhook.c. */
#include "hf_limits.h"
#include "hf_lua_json.h"
#include "hf_lua_lint.h"
#include "luart_int.h"

#include <ctype.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Registry keys. */
static const char sandbox_key = 0; /* the sandbox globals (real table) */
static const char frozen_key = 0;  /* set of read-only proxies */

/* ---- guarded library functions ---- */

/* string.rep: refuses a result larger than what is left of the memory budget
 * (with the memory message), and returns "" for an empty string repeated any
 * number of times (Lua's own loop would spin n times). */
static int s_rep(lua_State *L)
{
	size_t l, lsep;
	luaL_checklstring(L, 1, &l);
	lua_Integer n = luaL_checkinteger(L, 2);
	luaL_optlstring(L, 3, "", &lsep);
	if (n <= 0 || l + lsep == 0) {
		lua_pushliteral(L, "");
		return 1;
	}
	struct hf_luart *rt = hf_luart_of(L);
	size_t unit = l + lsep;
	size_t left = rt->limit > rt->used ? rt->limit - rt->used : 0;
	if (rt->limit && ((lua_Unsigned)n > left / unit + 1 ||
			  (size_t)n * l + (size_t)(n - 1) * lsep > left)) {
		char msg[64];
		rt->mem_hit = true;
		hf_luart_memory_message(rt, msg, sizeof msg);
		return luaL_error(L, "%s", msg);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

static lua_Integer table_len(lua_State *L, const char *fn)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer n = luaL_len(L, 1);
	if (n < 0 || n > HF_LUA_TABLE_MAX)
		luaL_error(L, "table.%s: table too long (%I elements)", fn, n);
	return n;
}

static int t_insert(lua_State *L)
{
	lua_Integer e = table_len(L, "insert") + 1;
	lua_Integer pos;
	switch (lua_gettop(L)) {
	case 2:
		pos = e;
		break;
	case 3:
		pos = luaL_checkinteger(L, 2);
		luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2,
			      "position out of bounds");
		for (lua_Integer i = e; i > pos; i--) {
			lua_geti(L, 1, i - 1);
			lua_seti(L, 1, i);
		}
		break;
	default:
		return luaL_error(L, "wrong number of arguments to 'insert'");
	}
	lua_seti(L, 1, pos);
	return 0;
}

static int t_remove(lua_State *L)
{
	lua_Integer size = table_len(L, "remove");
	lua_Integer pos = luaL_optinteger(L, 2, size);
	if (pos != size)
		luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size,
			      2, "position out of bounds");
	lua_geti(L, 1, pos);
	for (; pos < size; pos++) {
		lua_geti(L, 1, pos + 1);
		lua_seti(L, 1, pos);
	}
	lua_pushnil(L);
	lua_seti(L, 1, pos);
	return 1;
}

static int t_move(lua_State *L)
{
	lua_Integer f = luaL_checkinteger(L, 2);
	lua_Integer e = luaL_checkinteger(L, 3);
	lua_Integer t = luaL_checkinteger(L, 4);
	int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checktype(L, tt, LUA_TTABLE);
	if (e >= f) {
		luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3,
			      "too many elements to move");
		lua_Integer n = e - f;
		if (n >= HF_LUA_TABLE_MAX)
			return luaL_error(L,
					  "table.move: too many elements "
					  "(%I)",
					  n + 1);
		luaL_argcheck(L, t <= LUA_MAXINTEGER - n, 4,
			      "destination wrap around");
		if (t > e || t <= f ||
		    (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
			for (lua_Integer i = 0; i <= n; i++) {
				lua_geti(L, 1, f + i);
				lua_seti(L, tt, t + i);
			}
		} else {
			for (lua_Integer i = n; i >= 0; i--) {
				lua_geti(L, 1, f + i);
				lua_seti(L, tt, t + i);
			}
		}
	}
	lua_pushvalue(L, tt);
	return 1;
}

/* table.sort's comparator: the script's (upvalue 1; nil: <), each call
 * charged as one instruction, the deadline checked every
 * HF_LUA_SORT_CHECK_EVERY calls (upvalue 2 counts them): the sort itself runs
 * in C, where the count hook never fires. */
static int sort_less(lua_State *L)
{
	lua_Integer n = lua_tointeger(L, lua_upvalueindex(2)) + 1;
	if (n >= HF_LUA_SORT_CHECK_EVERY) {
		hf_luart_charge(L, hf_luart_of(L), n);
		n = 0;
	}
	lua_pushinteger(L, n);
	lua_replace(L, lua_upvalueindex(2));
	lua_settop(L, 2);
	if (lua_isnil(L, lua_upvalueindex(1))) {
		lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
		return 1;
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 2, 1);
	return 1;
}

/* table.sort(t [, comp]): Lua's sort (upvalue) with a charging comparator. */
static int t_sort(lua_State *L)
{
	table_len(L, "sort");
	if (!lua_isnoneornil(L, 2))
		luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 2);
	lua_pushinteger(L, 0);
	lua_pushcclosure(L, sort_less, 2);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 2, 0);
	return 0;
}

/* load(chunk [, name [, mode [, env]]]): always text mode; the environment
 * defaults to the running step's, never the sandbox itself. */
static int b_load(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_checkany(L, 1);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	if (n >= 2)
		lua_pushvalue(L, 2);
	else
		lua_pushnil(L);
	lua_pushliteral(L, "t");
	if (n >= 4)
		lua_pushvalue(L, 4);
	else
		lua_rawgetp(L, LUA_REGISTRYINDEX, &hf_luart_env_key);
	lua_call(L, 4, LUA_MULTRET);
	return lua_gettop(L) - n;
}

/* collectgarbage: "collect", "step", "count" and "isrunning" work; options
 * that would change the collector for later steps do nothing. */
static int b_collectgarbage(lua_State *L)
{
	static const char *const allowed[] = {"collect", "step", "count",
					      "isrunning", NULL};
	static const char *const ignored[] = {
	    "stop",	"restart",    "incremental", "generational",
	    "setpause", "setstepmul", NULL};
	const char *opt = luaL_optstring(L, 1, "collect");
	for (int i = 0; ignored[i]; i++) {
		if (strcmp(opt, ignored[i]) == 0) {
			lua_pushinteger(L, 0);
			return 1;
		}
	}
	luaL_checkoption(L, 1, "collect", allowed);
	int n = lua_gettop(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, n, LUA_MULTRET);
	return lua_gettop(L);
}

static bool is_frozen(lua_State *L, int idx)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &frozen_key);
	lua_pushvalue(L, idx);
	lua_rawget(L, -2);
	bool frozen = lua_toboolean(L, -1);
	lua_pop(L, 2);
	return frozen;
}

static int b_rawset(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checkany(L, 2);
	luaL_checkany(L, 3);
	if (is_frozen(L, 1))
		return luaL_error(L, "attempt to modify a read-only table");
	lua_settop(L, 3);
	lua_rawset(L, 1);
	return 1;
}

/* xpcall's message handler runs before the error unwinds; for a kill raised
 * from the hook, that is while hooks are disabled, so a handler that loops
 * would never be stopped. Once the step is killed, the user's handler is
 * skipped and the kill error passes through unchanged. */
static int xpcall_handler(lua_State *L)
{
	if (hf_luart_of(L)->killed != KILL_NONE)
		return 1;
	lua_settop(L, 1);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 1, 1);
	return 1;
}

static int xpcall_done(lua_State *L, int status, lua_KContext extra)
{
	if (status != LUA_OK && status != LUA_YIELD) {
		lua_pushboolean(L, 0);
		lua_pushvalue(L, -2);
		return 2;
	}
	return lua_gettop(L) - (int)extra;
}

/* xpcall(f, handler, ...) with the handler guarded as above. */
static int b_xpcall(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, xpcall_handler, 1);
	lua_replace(L, 2);     /* f, H, args... */
	lua_pushboolean(L, 1); /* the first result on success */
	lua_pushvalue(L, 1);
	lua_rotate(L, 3, 2); /* f, H, true, f, args... */
	int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_done);
	return xpcall_done(L, status, 2);
}

/* setmetatable: no __gc, whose code would run at collection time, outside
 * the limits of any step. */
static int b_setmetatable(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc metamethods "
					     "are not allowed");
		lua_pop(L, 1);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* require(NAME): NAME.lua from the scripts directory (dots are directory
 * separators), compiled in text mode, run in the step's environment, cached
 * for the rest of the step. */
static int b_require(lua_State *L)
{
	struct hf_luart *rt = hf_luart_of(L);
	size_t len;
	const char *name = luaL_checklstring(L, 1, &len);
	char rel[HF_REQUIRE_NAME_MAX + 1], path[4096],
	    chunkname[HF_REQUIRE_NAME_MAX + 32];
	bool ok = len > 0 && len <= HF_REQUIRE_NAME_MAX && !strstr(name, "..");
	for (size_t i = 0; ok && i < len; i++) {
		char c = name[i];
		ok = isalnum((unsigned char)c) || c == '_' || c == '.' ||
		     c == '-';
		rel[i] = c == '.' ? '/' : c;
	}
	if (!ok)
		return luaL_error(L,
				  "require: invalid module name '%s' "
				  "(letters, digits, '_', '-' and '.' "
				  "only)",
				  name);
	rel[len] = '\0';
	lua_settop(L, 1);
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &hf_luart_loaded_key) !=
	    LUA_TTABLE) { /* 2: made on the step's first require */
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &hf_luart_loaded_key);
	}
	if (lua_getfield(L, 2, name) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	int pn = snprintf(path, sizeof path, "%s/%s.lua", rt->scripts_dir, rel);
	if (pn < 0 || (size_t)pn >= sizeof path)
		return luaL_error(L, "require: path of '%s' too long", name);
	snprintf(chunkname, sizeof chunkname, "=scripts/%s.lua", rel);
	void **box = hf_lua_box(L, free);
	size_t flen;
	char *src = hf_read_file(path, &flen);
	if (!src)
		return luaL_error(L, "require: cannot open 'scripts/%s.lua'",
				  rel);
	*box = src;
	int status = luaL_loadbufferx(L, src, flen, chunkname, "t");
	free(src);
	*box = NULL;
	if (status != LUA_OK)
		return lua_error(L);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &hf_luart_env_key);
	lua_setupvalue(L, -2, 1);
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, 2, name);
	return 1;
}

/* ---- read-only proxies ---- */

static int ro_newindex(lua_State *L)
{
	return luaL_error(L, "attempt to modify read-only table '%s'",
			  lua_tostring(L, lua_upvalueindex(1)));
}

/* The iterator of pairs(proxy): walks the real table, which it keeps as an
 * upvalue so that the real (writable) table never reaches a script. */
static int ro_next(lua_State *L)
{
	lua_settop(L, 2);
	if (lua_next(L, lua_upvalueindex(1)))
		return 2;
	lua_pushnil(L);
	return 1;
}

static int ro_pairs(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushcclosure(L, ro_next, 1);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

/* Replaces the table at the top of the stack by a read-only proxy of it. */
static void freeze(lua_State *L, const char *name)
{
	int real = lua_gettop(L);
	lua_newtable(L); /* proxy */
	lua_createtable(L, 0, 4);
	lua_pushvalue(L, real);
	lua_setfield(L, -2, "__index");
	lua_pushstring(L, name);
	lua_pushcclosure(L, ro_newindex, 1);
	lua_setfield(L, -2, "__newindex");
	lua_pushvalue(L, real);
	lua_pushcclosure(L, ro_pairs, 1);
	lua_setfield(L, -2, "__pairs");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &frozen_key);
	lua_pushvalue(L, -2);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	lua_replace(L, real);
}

/* Reads a global for a step: the sandbox, else an error. */
static int env_index(lua_State *L)
{
	lua_pushvalue(L, 2);
	if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
		return 1;
	if (lua_type(L, 2) == LUA_TSTRING)
		return luaL_error(L, "attempt to read undefined global '%s'",
				  lua_tostring(L, 2));
	return luaL_error(L, "attempt to read an undefined global");
}

/* ---- the allow lists ---- */

/* Base functions a step gets as they are. */
static const char *const base_allowed[] = {
    "assert",	"error",    "getmetatable", "ipairs", "next",	"pairs",
    "pcall",	"rawequal", "rawget",	    "rawlen", "select", "tonumber",
    "tostring", "type",	    "_VERSION",	    NULL};

/* Base functions that a guard replaces; the guard calls the original, its
 * upvalue. */
static const luaL_Reg base_wrapped[] = {
    {"load", b_load},
    {"collectgarbage", b_collectgarbage},
    {"setmetatable", b_setmetatable},
    {NULL, NULL},
};

/* Base functions replaced outright. */
static const luaL_Reg base_replaced[] = {
    {"rawset", b_rawset},
    {"xpcall", b_xpcall},
    {NULL, NULL},
};

static const luaL_Reg string_wrapped[] = {
    {"rep", s_rep},
    {NULL, NULL},
};

/* A NULL function removes the field. */
static const luaL_Reg string_replaced[] = {
    {"dump", NULL},
    {"find", hf_lua_str_find},
    {"match", hf_lua_str_match},
    {"gmatch", hf_lua_str_gmatch},
    {"gsub", hf_lua_str_gsub},
    {NULL, NULL},
};

static const luaL_Reg table_wrapped[] = {
    {"sort", t_sort},
    {NULL, NULL},
};

static const luaL_Reg table_replaced[] = {
    {"insert", t_insert},
    {"remove", t_remove},
    {"move", t_move},
    {NULL, NULL},
};

static const char *const os_allowed[] = {"time", "date", "clock", NULL};

/* A standard library a step sees, as a read-only global of the same name. */
struct lib {
	const char *name;
	lua_CFunction open;
	const char *const *allowed; /* these fields only; NULL: all fields */
	const luaL_Reg *wrapped;    /* guards over the original field */
	const luaL_Reg *replaced;   /* replacements (NULL function: removed) */
};

static const struct lib libs[] = {
    {LUA_TABLIBNAME, luaopen_table, NULL, table_wrapped, table_replaced},
    {LUA_STRLIBNAME, luaopen_string, NULL, string_wrapped, string_replaced},
    {LUA_MATHLIBNAME, luaopen_math, NULL, NULL, NULL},
    {LUA_UTF8LIBNAME, luaopen_utf8, NULL, NULL, NULL},
    {LUA_COLIBNAME, luaopen_coroutine, NULL, NULL, NULL},
    {LUA_OSLIBNAME, luaopen_os, os_allowed, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* ---- setup ---- */

/* Copies the fields named in allowed from table from to table to. */
static void copy_fields(lua_State *L, int from, int to,
			const char *const *allowed)
{
	for (; *allowed; allowed++) {
		lua_getfield(L, from, *allowed);
		lua_setfield(L, to, *allowed);
	}
}

/* Sets to[name] for each entry of regs: to a closure of its function over
 * from[name] (the original it guards) when wrap, else to the function itself,
 * or to nil when the function is NULL. */
static void set_funcs(lua_State *L, int from, int to, const luaL_Reg *regs,
		      bool wrap)
{
	for (; regs && regs->name; regs++) {
		if (!regs->func) {
			lua_pushnil(L);
		} else if (wrap) {
			lua_getfield(L, from, regs->name);
			lua_pushcclosure(L, regs->func, 1);
		} else {
			lua_pushcfunction(L, regs->func);
		}
		lua_setfield(L, to, regs->name);
	}
}

/* Makes the table at the top of the stack read-only and sets it as global
 * name of the sandbox (popping it). */
static void set_frozen(lua_State *L, int sandbox, const char *name)
{
	freeze(L, name);
	lua_setfield(L, sandbox, name);
}

static void open_base(lua_State *L, int sandbox)
{
	luaL_requiref(L, "_G", luaopen_base, 1);
	int base = lua_gettop(L);
	copy_fields(L, base, sandbox, base_allowed);
	set_funcs(L, base, sandbox, base_wrapped, true);
	set_funcs(L, base, sandbox, base_replaced, false);
	lua_pop(L, 1);
}

/* Opens lib, guards it and sets its read-only proxy in the sandbox. */
static void open_lib(lua_State *L, int sandbox, const struct lib *lib)
{
	luaL_requiref(L, lib->name, lib->open, 0);
	int real = lua_gettop(L);
	set_funcs(L, real, real, lib->wrapped, true);
	set_funcs(L, real, real, lib->replaced, false);
	if (lib->allowed) {
		lua_newtable(L);
		copy_fields(L, real, lua_gettop(L), lib->allowed);
	} else {
		lua_pushvalue(L, real);
	}
	set_frozen(L, sandbox, lib->name);
	lua_pop(L, 1);
}

/* The string metatable: methods through the read-only proxy, and protected
 * so getmetatable("").__index cannot be replaced. */
static void protect_string_metatable(lua_State *L, int sandbox)
{
	lua_getfield(L, sandbox, LUA_STRLIBNAME);
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_pushvalue(L, -3);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 3);
}

/* The globals of docs/reference.md's "Lua" section; the step-only ones are
 * absent from expression runtimes, and each of db, require, http and webhook
 * from runtimes configured without it. */
static void open_contract(lua_State *L, int sandbox, struct hf_luart *rt)
{
	hf_lua_json_open(L);
	set_frozen(L, sandbox, "json");
	hf_lua_open_crypto(L);
	set_frozen(L, sandbox, "crypto");
	hf_lua_push_env(L);
	lua_setfield(L, sandbox, "env");
	if (rt->expr_only)
		return;
	hf_lua_open_log(L, &rt->log);
	set_frozen(L, sandbox, "log");
	hf_lua_push_print(L, &rt->log);
	lua_setfield(L, sandbox, "print");
	hf_lua_open_retry(L, &rt->retry);
	set_frozen(L, sandbox, "retry");
	if (rt->db) {
		hf_lua_open_db(L, rt->db);
		set_frozen(L, sandbox, "db");
	}
	if (rt->scripts_dir) {
		lua_pushcfunction(L, b_require);
		lua_setfield(L, sandbox, "require");
	}
	if (rt->http) {
		hf_lua_open_http(L, rt->http);
		set_frozen(L, sandbox, "http");
	}
	if (rt->webhook) {
		hf_lua_open_webhook(L, rt->webhook);
		set_frozen(L, sandbox, "webhook");
	}
}

/* The sandbox becomes the state's globals: chunks compiled here get it as
 * their default _ENV, though every call replaces that with a step
 * environment, whose metatable reads the sandbox. */
static void install(lua_State *L, int sandbox)
{
	lua_pushvalue(L, sandbox);
	lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	lua_pushvalue(L, sandbox);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &sandbox_key);

	lua_createtable(L, 0, 2);
	lua_pushvalue(L, sandbox);
	lua_pushcclosure(L, env_index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_rawsetp(L, LUA_REGISTRYINDEX, &hf_luart_envmt_key);
}

void hf_lua_sandbox_open(lua_State *L, struct hf_luart *rt)
{
	/* The set of read-only proxies, weak so it holds none alive. */
	lua_newtable(L);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_pushvalue(L, -1);
	lua_setmetatable(L, -2);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &frozen_key);

	lua_newtable(L);
	int sandbox = lua_gettop(L);
	open_base(L, sandbox);
	for (const struct lib *lib = libs; lib->name; lib++)
		open_lib(L, sandbox, lib);
	protect_string_metatable(L, sandbox);
	open_contract(L, sandbox, rt);
	install(L, sandbox);
	lua_pop(L, 1);
}

/* ---- the names, for `check` (lua_lint.c) ---- */

/* The globals that open_contract and the step environment (luart.c: event,
 * steps, run, args, _G) set, and where; the tables above are everywhere.
 * test_lua_lint checks this against the globals of real runtimes. */
static const struct {
	const char *name;
	unsigned where;
} contract_globals[] = {
    {"json", HF_LUA_IN_ALL},
    {"crypto", HF_LUA_IN_ALL},
    {"env", HF_LUA_IN_ALL},
    {"_G", HF_LUA_IN_ALL},
    {"event", HF_LUA_IN_ALL},
    {"log", HF_LUA_IN_IF | HF_LUA_IN_STEP},
    {"print", HF_LUA_IN_IF | HF_LUA_IN_STEP},
    {"retry", HF_LUA_IN_IF | HF_LUA_IN_STEP},
    {"db", HF_LUA_IN_IF | HF_LUA_IN_STEP},
    {"require", HF_LUA_IN_IF | HF_LUA_IN_STEP},
    {"http", HF_LUA_IN_IF | HF_LUA_IN_STEP},
    {"webhook", HF_LUA_IN_IF | HF_LUA_IN_STEP},
    {"steps", HF_LUA_IN_IF | HF_LUA_IN_STEP},
    {"run", HF_LUA_IN_IF | HF_LUA_IN_STEP},
    {"args", HF_LUA_IN_STEP},			/* set after the step's if: */
    {"failure", HF_LUA_IN_IF | HF_LUA_IN_STEP}, /* on_failure steps only */
    {"events", HF_LUA_IN_IF | HF_LUA_IN_STEP},	/* debounced runs only */
    {"signal", HF_LUA_IN_SIGNAL}, /* wait_for's and cancel_on's if: */
};

static size_t count_names(const char *const *names)
{
	size_t n = 0;
	while (names[n])
		n++;
	return n;
}

static size_t count_regs(const luaL_Reg *regs)
{
	size_t n = 0;
	while (regs[n].name)
		n++;
	return n;
}

bool hf_lua_global_at(size_t i, const char **name, unsigned *where)
{
	size_t n;
	*where = HF_LUA_IN_ALL;
	if (i < (n = count_names(base_allowed))) {
		*name = base_allowed[i];
		return true;
	}
	i -= n;
	if (i < (n = count_regs(base_wrapped))) {
		*name = base_wrapped[i].name;
		return true;
	}
	i -= n;
	if (i < (n = count_regs(base_replaced))) {
		*name = base_replaced[i].name;
		return true;
	}
	i -= n;
	if (i < (n = sizeof libs / sizeof libs[0] - 1)) {
		*name = libs[i].name;
		return true;
	}
	i -= n;
	if (i < sizeof contract_globals / sizeof contract_globals[0]) {
		*name = contract_globals[i].name;
		*where = contract_globals[i].where;
		return true;
	}
	return false;
}

static bool same(const char *g, const char *name, size_t len)
{
	return strncmp(g, name, len) == 0 && g[len] == '\0';
}

unsigned hf_lua_global_where(const char *name, size_t len)
{
	for (const char *const *g = base_allowed; *g; g++)
		if (same(*g, name, len))
			return HF_LUA_IN_ALL;
	for (const luaL_Reg *r = base_wrapped; r->name; r++)
		if (same(r->name, name, len))
			return HF_LUA_IN_ALL;
	for (const luaL_Reg *r = base_replaced; r->name; r++)
		if (same(r->name, name, len))
			return HF_LUA_IN_ALL;
	for (const struct lib *lib = libs; lib->name; lib++)
		if (same(lib->name, name, len))
			return HF_LUA_IN_ALL;
	for (size_t i = 0;
	     i < sizeof contract_globals / sizeof contract_globals[0]; i++)
		if (same(contract_globals[i].name, name, len))
			return contract_globals[i].where;
	return 0;
}
