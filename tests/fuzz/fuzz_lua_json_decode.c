/* fuzz_lua_json_decode.c - the worker's JSON -> Lua decoder
 * (hf_lua_json_decode, lua_json_decode.c) against jansson: it must accept
 * exactly what hf_json_parse accepts, and give the same Lua value as pushing
 * jansson's tree (hf_lua_push_json, and hf_lua_push_json_nulls with every
 * null kept): same types (integer or float), strings, keys, array tags and
 * json.null. */
#include "hf_body.h"
#include "hf_lua_json.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static lua_State *L;

/* Deep equality of the values at a and b (tables: same metatable, same keys,
 * equal values). */
static bool same(lua_State *l, int a, int b)
{
	a = lua_absindex(l, a);
	b = lua_absindex(l, b);
	if (lua_type(l, a) != lua_type(l, b))
		return false;
	if (lua_type(l, a) == LUA_TNUMBER &&
	    lua_isinteger(l, a) != lua_isinteger(l, b))
		return false;
	if (lua_type(l, a) != LUA_TTABLE)
		return lua_rawequal(l, a, b);
	if (!lua_checkstack(l, 6))
		abort();
	int ma = lua_getmetatable(l, a), mb = lua_getmetatable(l, b);
	if (ma != mb || (ma && !lua_rawequal(l, -1, -2)))
		return false;
	lua_pop(l, ma + mb);
	size_t na = 0, nb = 0;
	lua_pushnil(l);
	while (lua_next(l, a)) {
		na++;
		lua_pushvalue(l, -2);
		lua_rawget(l, b);
		bool eq = same(l, -1, -2);
		lua_pop(l, 2);
		if (!eq) {
			lua_pop(l, 1);
			return false;
		}
	}
	lua_pushnil(l);
	while (lua_next(l, b)) {
		nb++;
		lua_pop(l, 1);
	}
	return na == nb;
}

struct arg {
	const char *s;
	size_t len;
	json_t *j;
	bool nulls;
	int rc;
};

static int decode_cb(lua_State *l)
{
	struct arg *a = lua_touserdata(l, 1);
	char err[256];
	lua_settop(l, 0);
	a->rc = hf_lua_json_decode(l, a->s, a->len, a->nulls, err, sizeof err);
	if (a->rc == 0 && lua_gettop(l) != 1)
		abort(); /* exactly the value */
	if (a->rc != 0 && (lua_gettop(l) != 0 || !strstr(err, "invalid JSON")))
		abort();
	if (a->rc != 0)
		return 0;
	if (a->nulls)
		hf_lua_push_json_nulls(l, a->j);
	else
		hf_lua_push_json(l, a->j);
	if (!same(l, 1, 2))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!L) {
		L = luaL_newstate();
		hf_lua_json_open(L);
		lua_pop(L, 1);
	}
	json_t *in = NULL;
	char err[512];
	bool ok =
	    hf_json_parse((const char *)data, size, &in, err, sizeof err) == 0;
	for (int nulls = 0; nulls < 2; nulls++) {
		struct arg a = {(const char *)data, size, in, nulls, 0};
		lua_settop(L, 0);
		lua_pushcfunction(L, decode_cb);
		lua_pushlightuserdata(L, &a);
		if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
			/* Only jansson's deep trees may fail to push (the
			 * push's own nesting check); never the decoder. */
			const char *m = lua_tostring(L, -1);
			if (!ok || a.rc != 0 ||
			    (!strstr(m, "nest") && !strstr(m, "overflow")))
				abort();
		} else if ((a.rc == 0) != ok) {
			abort(); /* accepts what jansson rejects, or not */
		}
	}
	json_decref(in);
	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT);
	return 0;
}
