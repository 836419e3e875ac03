/* fuzz_lua_json.c - JSON text -> jansson (hf_json_parse) -> Lua (every null
 * kept) -> JSON must give back an equal value (or, past the Lua side's depth
 * limit, the depth error), json.encode/json.decode(s, {nulls = true}) of the
 * same value must agree, and the default push (object members that are null
 * left out) must give the value without them. */
#include "hf_body.h"
#include "hf_lua_json.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static lua_State *L;

static int push_cb(lua_State *l)
{
	hf_lua_push_json_nulls(l, lua_touserdata(l, 1));
	return 1;
}

static int push_plain_cb(lua_State *l)
{
	hf_lua_push_json(l, lua_touserdata(l, 1));
	return 1;
}

/* v without its object members that are null (a new reference). */
static json_t *without_null_members(json_t *v)
{
	if (json_is_array(v)) {
		json_t *a = json_array();
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
		    json_array_append_new(a, without_null_members(x));
		return a;
	}
	if (json_is_object(v)) {
		json_t *o = json_object();
		const char *k;
		size_t klen;
		json_t *x;
		json_object_keylen_foreach(v, k, klen, x)
		{
			if (!json_is_null(x))
				json_object_setn_new(o, k, klen,
						     without_null_members(x));
		}
		return o;
	}
	return json_incref(v);
}

/* The default push of in gives in without its null members. */
static void check_plain(json_t *in)
{
	char err[512];
	lua_settop(L, 0);
	lua_pushcfunction(L, push_plain_cb);
	lua_pushlightuserdata(L, in);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK)
		abort(); /* the nulls-kept push of the same value worked */
	json_t *out = hf_lua_to_json(L, 1, "value", err, sizeof err);
	json_t *want = without_null_members(in);
	if (!out || !json_equal(out, want))
		abort();
	json_decref(want);
	json_decref(out);
	lua_settop(L, 0);
}

/* json.decode(json.encode(v)) with v at the top; leaves the result. */
static int reencode_cb(lua_State *l)
{
	lua_getglobal(l, "json");
	lua_getfield(l, -1, "encode");
	lua_pushvalue(l, 1);
	lua_call(l, 1, 1);
	lua_getfield(l, -2, "decode");
	lua_insert(l, -2);
	lua_createtable(l, 0, 1);
	lua_pushboolean(l, 1);
	lua_setfield(l, -2, "nulls");
	lua_call(l, 2, 1);
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!L) {
		L = luaL_newstate();
		luaL_openlibs(L);
		hf_lua_json_open(L);
		lua_setglobal(L, "json");
	}
	json_t *in = NULL;
	char err[512];
	if (hf_json_parse((const char *)data, size, &in, err, sizeof err) != 0)
		return 0;
	if (!in)
		return 0;

	lua_settop(L, 0);
	lua_pushcfunction(L, push_cb);
	lua_pushlightuserdata(L, in);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		/* Only nesting can make pushing fail. */
		if (!strstr(lua_tostring(L, -1), "nest") &&
		    !strstr(lua_tostring(L, -1), "stack overflow"))
			abort();
		json_decref(in);
		lua_settop(L, 0);
		return 0;
	}
	json_t *out = hf_lua_to_json(L, 1, "value", err, sizeof err);
	if (!out) {
		if (!strstr(err, "nesting deeper than"))
			abort();
	} else {
		if (!json_equal(in, out))
			abort();
		/* Through the Lua functions as well. */
		lua_pushcfunction(L, reencode_cb);
		lua_pushvalue(L, 1);
		if (lua_pcall(L, 1, 1, 0) != LUA_OK)
			abort();
		json_t *again = hf_lua_to_json(L, -1, "value", err, sizeof err);
		/* json.decode("null") is nil, which converts back to null. */
		if (!again || !json_equal(in, again))
			abort();
		json_decref(again);
		json_decref(out);
		out = NULL;
		check_plain(in);
	}
	json_decref(out);
	json_decref(in);
	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT);
	return 0;
}
