/* test_lua_json.c - JSON <-> Lua conversion and the json global: round trips
 * of every JSON type, nulls, integer vs float, and each conversion error. */
#include "hf_lua_json.h"
#include "tap.h"

#include <lauxlib.h>
#include <lualib.h>
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

/* JSON text -> Lua (hf_lua_push_json: object members that are null left out)
 * -> JSON text, compared with want. */
static void check_plain(const char *text, const char *want)
{
	json_error_t je;
	json_t *in = json_loads(text, JSON_DECODE_ANY, &je);
	lua_pushcfunction(L, push_plain_cb);
	lua_pushlightuserdata(L, in);
	char err[256] = "";
	json_t *out = NULL;
	if (lua_pcall(L, 1, 1, 0) == LUA_OK)
		out = hf_lua_to_json(L, -1, "value", err, sizeof err);
	char *got = out ? json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY |
					      JSON_SORT_KEYS)
			: NULL;
	CHECK_STR(got ? got : err, want);
	free(got);
	json_decref(in);
	json_decref(out);
	lua_settop(L, 0);
}

/* JSON text -> Lua (every null kept) -> JSON; returns true when the result
 * equals the input. */
static bool round_trip(const char *text)
{
	json_error_t je;
	json_t *in = json_loads(text, JSON_DECODE_ANY, &je);
	if (!in) {
		fprintf(stderr, "bad test JSON: %s\n", text);
		return false;
	}
	lua_pushcfunction(L, push_cb);
	lua_pushlightuserdata(L, in);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		json_decref(in);
		lua_settop(L, 0);
		return false;
	}
	char err[256];
	json_t *out = hf_lua_to_json(L, -1, "value", err, sizeof err);
	bool eq = out && json_equal(in, out);
	if (!eq)
		fprintf(stderr, "round trip of %s failed: %s\n", text,
			out ? "not equal" : err);
	json_decref(in);
	json_decref(out);
	lua_settop(L, 0);
	return eq;
}

/* Runs a Lua chunk returning one value and converts it; returns the JSON (or
 * NULL with err). */
static json_t *lua_to(const char *chunk, char *err, size_t size)
{
	if (luaL_dostring(L, chunk) != LUA_OK) {
		snprintf(err, size, "lua: %s", lua_tostring(L, -1));
		lua_settop(L, 0);
		return NULL;
	}
	json_t *j = hf_lua_to_json(L, -1, "output", err, size);
	lua_settop(L, 0);
	return j;
}

static void check_error(const char *chunk, const char *want)
{
	char err[512] = "";
	json_t *j = lua_to(chunk, err, sizeof err);
	CHECK(j == NULL);
	json_decref(j);
	if (!strstr(err, want))
		fprintf(stderr, "for %s: got '%s', want '%s'\n", chunk, err,
			want);
	CHECK(strstr(err, want) != NULL);
}

/* Runs a chunk that must return the string want. */
static void check_lua(const char *chunk, const char *want)
{
	const char *got = "(error)";
	if (luaL_dostring(L, chunk) == LUA_OK && lua_isstring(L, -1))
		got = lua_tostring(L, -1);
	else if (lua_isstring(L, -1))
		got = lua_tostring(L, -1);
	CHECK_STR(got, want);
	lua_settop(L, 0);
}

/* Runs a chunk that must return a string containing want. */
static void check_lua_has(const char *chunk, const char *want)
{
	const char *got = "(error)";
	(void)luaL_dostring(L, chunk);
	if (lua_isstring(L, -1))
		got = lua_tostring(L, -1);
	if (!strstr(got, want))
		fprintf(stderr, "for %s: got '%s', want '%s'\n", chunk, got,
			want);
	CHECK(strstr(got, want) != NULL);
	lua_settop(L, 0);
}

static void test_round_trips(void)
{
	CHECK(round_trip("{}"));
	CHECK(round_trip("[]"));
	CHECK(round_trip("null"));
	CHECK(round_trip("true"));
	CHECK(round_trip("false"));
	CHECK(round_trip("0"));
	CHECK(round_trip("-42"));
	CHECK(round_trip("9007199254740993"));
	CHECK(round_trip("-9223372036854775808"));
	CHECK(round_trip("1.5"));
	CHECK(round_trip("1.0"));
	CHECK(round_trip("-0.25e-10"));
	CHECK(round_trip("\"\""));
	CHECK(round_trip("\"h\\u00e9llo \\u2603 \\ud83d\\ude00\""));
	CHECK(round_trip("[null]"));
	CHECK(round_trip("[1,null,3]"));
	CHECK(round_trip("[null,null,null]"));
	CHECK(round_trip("{\"a\":null}"));
	CHECK(round_trip("[[],{},[[]],{\"x\":[]}]"));
	CHECK(round_trip("{\"a\":1,\"b\":[1,2.5,\"x\",null,true,false],"
			 "\"c\":{\"d\":{\"e\":\"f\"}},\"\":0,\"k y\":1}"));
	CHECK(round_trip("{\"1\":\"string key that looks like a number\"}"));
}

static void test_types(void)
{
	/* Integers stay integers, floats stay floats. */
	check_lua("return math.type(json.decode('1'))", "integer");
	check_lua("return math.type(json.decode('1.0'))", "float");
	check_lua("return json.encode(3)", "3");
	check_lua("return json.encode(1.0)", "1.0");
	check_lua("return json.encode(2^53)", "9007199254740992.0");
	check_lua("return json.encode(math.maxinteger)", "9223372036854775807");
	/* null inside containers is json.null; top-level null is nil. */
	check_lua("local t = json.decode('[1,null,3]') "
		  "return tostring(#t == 3 and t[2] == json.null)",
		  "true");
	/* An object member that is null is nil, unless {nulls = true}. */
	check_lua("return tostring(json.decode('{\"a\":null}').a == nil)",
		  "true");
	check_lua("return tostring(json.decode('{\"a\":null}', {nulls = "
		  "true}).a == json.null)",
		  "true");
	check_lua("return json.encode(json.decode('{\"a\":null,\"b\":[null,"
		  "{\"c\":null}]}'))",
		  "{\"b\":[null,{}]}");
	check_lua("return json.encode(json.decode('{\"a\":null,\"b\":[null,"
		  "{\"c\":null}]}', {nulls = true}))",
		  "{\"a\":null,\"b\":[null,{\"c\":null}]}");
	check_lua("return select(2, pcall(json.decode, '[]', {nulls = 1}))",
		  "json.decode: option nulls must be a boolean");
	/* json.null: named when indexed, printed and protected. */
	check_lua_has(
	    "return select(2, pcall(function() return "
	    "json.null.email end))",
	    "\"]:1: attempt to index json.null (a JSON null) with key "
	    "'email'");
	check_lua_has("return select(2, pcall(function() json.null[1] = 2 "
		      "end))",
		      "\"]:1: attempt to index json.null (a JSON null)");
	check_lua("return tostring(json.null)", "json.null");
	check_lua("return getmetatable(json.null)", "json.null");
	check_lua("return type(json.null)", "userdata");
	check_plain("{\"a\":null,\"b\":1}", "{\"b\":1}");
	check_plain("[null,{\"a\":null}]", "[null,{}]");
	check_plain("null", "null");
	check_lua("return tostring(json.decode('null'))", "nil");
	check_lua("return json.encode({a = json.null})", "{\"a\":null}");
	check_lua("return json.encode(nil)", "null");
	/* Empty tables: {} unless tagged as an array. */
	check_lua("return json.encode({})", "{}");
	check_lua("return json.encode(json.array())", "[]");
	check_lua("return json.encode(json.array({1,2}))", "[1,2]");
	check_lua("return json.encode(json.decode('[]'))", "[]");
	check_lua("return json.encode(json.decode('{\"a\":[]}'))",
		  "{\"a\":[]}");
	check_lua("return json.encode({b = 1, a = {true, false}})",
		  "{\"a\":[true,false],\"b\":1}");
	check_lua("return json.encode('caf\\u{e9}')", "\"caf\xc3\xa9\"");
	/* The array tag is protected. */
	check_lua("return tostring(getmetatable(json.decode('[]')))",
		  "json.array");
	check_lua("local ok, e = pcall(setmetatable, json.decode('[]'), {}) "
		  "return tostring(ok)",
		  "false");
	/* decode errors name the problem. */
	check_lua("local ok, e = pcall(json.decode, '{bad') return e",
		  "json.decode: invalid JSON at line 1, column 4: string or "
		  "'}' expected near 'bad'");
	check_lua("local ok, e = pcall(json.encode, function() end) return e",
		  "json.encode: value: cannot convert a function to JSON");
}

static void test_errors(void)
{
	check_error("return function() end",
		    "output: cannot convert a function to JSON");
	check_error("return {foo = {1, 2, print}}",
		    "output.foo[3]: cannot convert a function to JSON");
	check_error("return {['a b'] = {co = coroutine.create(print)}}",
		    "output[\"a b\"].co: cannot convert a thread to JSON");
	check_error("return {x = io.stdout}",
		    "output.x: cannot convert a userdata to JSON");
	check_error("local t = {} t.self = t return t", "output.self: cycle");
	check_error("local t = {} t[1] = {t} return t", "output[1][1]: cycle");
	check_error("return {1, 2, x = 3}",
		    "output: cannot convert a table with both array and "
		    "string keys");
	check_error("return {1, nil, 3}", "output: cannot convert a sparse "
					  "array");
	check_error("return {[0] = 'a'}", "non-positive or fractional");
	check_error("return {[1.5] = 'a'}", "non-positive or fractional");
	check_error("return {[true] = 1}",
		    "cannot convert a table with boolean keys");
	check_error("return {n = 0/0}", "output.n: cannot convert NaN");
	check_error("return {math.huge}", "output[1]: cannot convert inf");
	check_error("return {s = '\\xff'}",
		    "output.s: string is not valid UTF-8");
	check_error("return {['\\xff'] = 1}", "key is not valid UTF-8");
	check_error("local t = {} local c = t for i = 1, 300 do c.x = {} "
		    "c = c.x end return t",
		    "nesting deeper than 256 levels");
	/* Shared (not cyclic) tables are fine. */
	char err[256];
	json_t *j =
	    lua_to("local s = {1} return {a = s, b = s}", err, sizeof err);
	CHECK(j != NULL);
	json_decref(j);
	/* A depth of exactly 256 converts. */
	j = lua_to("local t = {} local c = t for i = 1, 255 do c.x = {} "
		   "c = c.x end return t",
		   err, sizeof err);
	CHECK(j != NULL);
	json_decref(j);
}

static void test_box(void)
{
	/* A box frees its pointer when collected. */
	char *p = malloc(16);
	void **box = hf_lua_box(L, free);
	*box = p;
	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT); /* valgrind would report a leak otherwise */
	CHECK(lua_gettop(L) == 0);
}

int main(void)
{
	L = luaL_newstate();
	luaL_openlibs(L);
	hf_lua_json_open(L);
	lua_setglobal(L, "json");
	test_round_trips();
	test_types();
	test_errors();
	test_box();
	lua_close(L);
	return tap_done();
}
