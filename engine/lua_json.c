/* lua_json.c - JSON (jansson) <-> Lua values, the `json` global, and the box
 * helper that lets C functions own resources across calls that may raise.
 *
 * Owns the mapping rules documented in hf_lua_json.h. It does not own parsing
 * (hf_json_parse in body.c, which bounds nesting) nor the sandbox (luart.c).
 * Lua -> JSON conversion never raises: it allocates nothing in Lua, so the
 * jansson values it builds can never be leaked by a longjmp. It works in C,
 * outside the count hook, so it charges itself against the running step's
 * limits (hf_luart_check): every value visited (a reused table once per use),
 * an estimate of the bytes it builds against the memory limit, and the
 * deadline. Threading: a lua_State belongs to one thread; nothing here is
 * shared. */
#include "hf_body.h"
#include "hf_limits.h"
#include "hf_lua_json.h"
#include "luart_int.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Registry keys (addresses are unique; rawgetp never allocates). */
static const char null_sentinel = 0;
static const char array_key = 0;
static const char box_key = 0;

#define ENCODE_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS)

/* ---- box ---- */

struct box {
	void *p;
	void (*release)(void *);
};

static int box_gc(lua_State *L)
{
	struct box *b = lua_touserdata(L, 1);
	if (b && b->p) {
		b->release(b->p);
		b->p = NULL;
	}
	return 0;
}

void **hf_lua_box(lua_State *L, void (*release)(void *))
{
	struct box *b = lua_newuserdatauv(L, sizeof *b, 0);
	b->p = NULL;
	b->release = release;
	lua_rawgetp(L, LUA_REGISTRYINDEX, &box_key);
	lua_setmetatable(L, -2);
	return &b->p;
}

static void release_json(void *p)
{
	json_decref(p);
}

/* ---- null and the array tag ---- */

/* json.null is a full userdata (one per state, in the registry) whose
 * payload names it: a light userdata would share the metatable of every light
 * userdata, and json.null needs its own, so that indexing it says what it
 * is. */
struct null_box {
	const void *tag; /* &null_sentinel */
};

void hf_lua_push_null(lua_State *L)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &null_sentinel);
}

bool hf_lua_is_null(lua_State *L, int idx)
{
	if (lua_type(L, idx) != LUA_TUSERDATA ||
	    lua_rawlen(L, idx) != sizeof(struct null_box))
		return false;
	const struct null_box *nb = lua_touserdata(L, idx);
	return nb->tag == (const void *)&null_sentinel;
}

/* json.null's __index and __newindex: "attempt to index json.null (a JSON
 * null) with key 'email'", at the line of the script that did it. */
static int null_index(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TSTRING)
		return luaL_error(L,
				  "attempt to index json.null (a JSON null) "
				  "with key '%s'",
				  lua_tostring(L, 2));
	return luaL_error(L, "attempt to index json.null (a JSON null)");
}

static int null_tostring(lua_State *L)
{
	lua_pushliteral(L, "json.null");
	return 1;
}

static const luaL_Reg null_meta[] = {
    {"__index", null_index},
    {"__newindex", null_index},
    {"__tostring", null_tostring},
    {NULL, NULL},
};

static void open_null(lua_State *L)
{
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &null_sentinel) != LUA_TNIL) {
		lua_pop(L, 1);
		return;
	}
	lua_pop(L, 1);
	struct null_box *nb = lua_newuserdatauv(L, sizeof *nb, 0);
	nb->tag = &null_sentinel;
	lua_createtable(L, 0, 5);
	luaL_setfuncs(L, null_meta, 0);
	lua_pushliteral(L, "json.null");
	lua_setfield(L, -2, "__name");
	lua_pushliteral(L, "json.null");
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &null_sentinel);
}

void hf_lua_mark_array(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &array_key);
	lua_setmetatable(L, idx);
}

void hf_lua_push_array_tag(lua_State *L)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &array_key);
}

static bool is_marked_array(lua_State *L, int idx)
{
	if (!lua_getmetatable(L, idx))
		return false;
	lua_rawgetp(L, LUA_REGISTRYINDEX, &array_key);
	bool same = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return same;
}

/* ---- JSON -> Lua ---- */

static void push_value(lua_State *L, const json_t *v, int depth, bool nulls)
{
	if (depth > 2 * HF_JSON_MAX_DEPTH)
		luaL_error(L, "JSON nested too deeply");
	luaL_checkstack(L, 3, "JSON nested too deeply");
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *key;
		size_t klen;
		json_t *child;
		lua_createtable(L, 0, (int)json_object_size(v));
		json_object_keylen_foreach((json_t *)v, key, klen, child)
		{
			if (!nulls && json_is_null(child))
				continue; /* nil: absent */
			lua_pushlstring(L, key, klen);
			push_value(L, child, depth + 1, nulls);
			lua_rawset(L, -3);
		}
		break;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(v);
		lua_createtable(L, n < 1u << 24 ? (int)n : 0, 0);
		for (size_t i = 0; i < n; i++) {
			push_value(L, json_array_get(v, i), depth + 1, nulls);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		hf_lua_mark_array(L, -1);
		break;
	}
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(v));
		break;
	case JSON_REAL:
		lua_pushnumber(L, json_real_value(v));
		break;
	case JSON_TRUE:
		lua_pushboolean(L, 1);
		break;
	case JSON_FALSE:
		lua_pushboolean(L, 0);
		break;
	case JSON_NULL:
	default:
		hf_lua_push_null(L);
		break;
	}
}

void hf_lua_push_json(lua_State *L, const json_t *v)
{
	if (!v)
		lua_pushnil(L);
	else
		push_value(L, v, 0, false);
}

void hf_lua_push_json_nulls(lua_State *L, const json_t *v)
{
	if (!v)
		lua_pushnil(L);
	else
		push_value(L, v, 0, true);
}

/* ---- Lua -> JSON ---- */

struct conv {
	lua_State *L;
	const void *seen[HF_LUA_JSON_MAX_DEPTH + 1]; /* tables on the path */
	int depth;
	char path[256];
	size_t plen;
	char *err;
	size_t errsize;
	size_t nodes;	/* values visited */
	size_t checked; /* nodes at the last check of the limits */
	size_t held;	/* estimated bytes of the JSON built so far */
};

static json_t *fail(struct conv *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static json_t *fail(struct conv *c, const char *fmt, ...)
{
	char msg[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errsize, "%s: %s", c->path, msg);
	return NULL;
}

/* Appends a path component; the path is cut (with "...") when it gets long. */
static void path_push(struct conv *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void path_push(struct conv *c, const char *fmt, ...)
{
	if (c->plen >= sizeof c->path - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(c->path + c->plen, sizeof c->path - c->plen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof c->path - c->plen) {
		memcpy(c->path + sizeof c->path - 4, "...", 4);
		c->plen = sizeof c->path - 1;
	} else {
		c->plen += (size_t)n;
	}
}

static bool is_ident(const char *s, size_t n)
{
	if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!(ch == '_' || (ch >= 'a' && ch <= 'z') ||
		      (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
			return false;
	}
	return true;
}

/* Estimated bytes jansson takes per value: a scalar, the extra of an object
 * (its hash table) and of an array, per member, per array slot. */
enum {
	EST_SCALAR = 48,
	EST_OBJECT = 176,
	EST_ARRAY = 80,
	EST_MEMBER = 48,
	EST_SLOT = 8,
};

/* Counts one value of bytes (estimated) and checks the limits every
 * HF_LUA_JSON_CHECK_EVERY values or after a big one. False (after fail)
 * when a limit is hit. */
static bool charge(struct conv *c, size_t bytes)
{
	c->held += bytes;
	if (++c->nodes > HF_LUA_JSON_MAX_NODES) {
		fail(c, "too many values to convert to JSON (more than %d)",
		     HF_LUA_JSON_MAX_NODES);
		return false;
	}
	if (c->nodes - c->checked < HF_LUA_JSON_CHECK_EVERY && bytes < 65536)
		return true;
	char msg[128];
	long long work = (long long)(c->nodes - c->checked);
	c->checked = c->nodes;
	if (hf_luart_check(c->L, work, c->held, msg, sizeof msg) == 0)
		return true;
	fail(c, "%s", msg);
	return false;
}

static json_t *conv_value(struct conv *c, int idx);

static json_t *conv_child(struct conv *c, int idx, size_t saved)
{
	json_t *j = conv_value(c, idx);
	if (j) {
		c->plen = saved;
		c->path[saved] = '\0';
	}
	return j;
}

/* What the keys of a table say about it. */
struct keys {
	size_t n;
	lua_Integer maxk; /* the largest positive integer key */
	bool ints, strs;
};

/* Classifies the keys of the table at idx. Returns false (after fail) when
 * the table cannot be JSON: keys of another type, both kinds, or holes. */
static bool classify_keys(struct conv *c, int idx, struct keys *k)
{
	lua_State *L = c->L;
	const char *bad = NULL;
	*k = (struct keys){0};
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		k->n++;
		if (lua_type(L, -1) == LUA_TSTRING) {
			k->strs = true;
		} else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
			k->ints = true;
			if (lua_tointeger(L, -1) > k->maxk)
				k->maxk = lua_tointeger(L, -1);
		} else if (!bad) {
			bad = lua_type(L, -1) == LUA_TNUMBER
				  ? "number"
				  : lua_typename(L, lua_type(L, -1));
		}
	}
	if (bad && strcmp(bad, "number") == 0)
		fail(c,
		     "cannot convert a table with non-positive or fractional "
		     "%s keys to JSON",
		     bad);
	else if (bad)
		fail(c, "cannot convert a table with %s keys to JSON", bad);
	else if (k->ints && k->strs)
		fail(c, "cannot convert a table with both array and string "
			"keys to JSON");
	else if (k->ints && (size_t)k->maxk != k->n)
		fail(c, "cannot convert a sparse array to JSON (use json.null "
			"for holes)");
	else
		return true;
	return false;
}

/* The table at idx, keys 1..n, as a JSON array. */
static json_t *conv_array(struct conv *c, int idx, size_t n)
{
	lua_State *L = c->L;
	size_t saved = c->plen;
	json_t *out = json_array();
	c->held += n * EST_SLOT;
	for (size_t i = 1; out && i <= n; i++) {
		lua_rawgeti(L, idx, (lua_Integer)i);
		path_push(c, "[%zu]", i);
		json_t *j = conv_child(c, lua_gettop(L), saved);
		lua_pop(L, 1);
		if (!j || json_array_append_new(out, j) != 0) {
			json_decref(out);
			out = NULL;
		}
	}
	return out;
}

/* The table at idx, all keys strings, as a JSON object. */
static json_t *conv_object(struct conv *c, int idx)
{
	lua_State *L = c->L;
	size_t saved = c->plen;
	json_t *out = json_object();
	lua_pushnil(L);
	while (out && lua_next(L, idx)) {
		size_t klen;
		const char *k = lua_tolstring(L, -2, &klen);
		c->held += EST_MEMBER + klen;
		if (is_ident(k, klen))
			path_push(c, ".%s", k);
		else
			path_push(c, "[\"%.40s\"]", k);
		json_t *j = conv_child(c, lua_gettop(L), saved);
		lua_pop(L, 1);
		if (!j) {
			json_decref(out);
			out = NULL;
			lua_pop(L, 1); /* the key: iteration ends */
			break;
		}
		if (json_object_setn_new(out, k, klen, j) != 0) {
			json_decref(out);
			out = NULL;
			lua_pop(L, 1);
			fail(c, "key is not valid UTF-8");
			break;
		}
		c->plen = saved;
		c->path[saved] = '\0';
	}
	return out;
}

static json_t *conv_table(struct conv *c, int idx)
{
	lua_State *L = c->L;
	const void *p = lua_topointer(L, idx);
	for (int i = 0; i < c->depth; i++)
		if (c->seen[i] == p)
			return fail(c, "cycle: a table contains itself");
	if (c->depth >= HF_LUA_JSON_MAX_DEPTH)
		return fail(c, "nesting deeper than %d levels",
			    HF_LUA_JSON_MAX_DEPTH);
	if (!lua_checkstack(L, 4))
		return fail(c, "nesting too deep");
	struct keys k;
	if (!classify_keys(c, idx, &k))
		return NULL;
	bool array = k.ints || (k.n == 0 && is_marked_array(L, idx));
	if (!charge(c, array ? EST_ARRAY : EST_OBJECT))
		return NULL;
	c->seen[c->depth++] = p;
	json_t *out = array ? conv_array(c, idx, k.n) : conv_object(c, idx);
	c->depth--;
	return out;
}

static json_t *conv_value(struct conv *c, int idx)
{
	lua_State *L = c->L;
	size_t len = lua_type(L, idx) == LUA_TSTRING ? lua_rawlen(L, idx) : 0;
	if (!charge(c, EST_SCALAR + len))
		return NULL;
	switch (lua_type(L, idx)) {
	case LUA_TNONE:
	case LUA_TNIL:
		return json_null();
	case LUA_TBOOLEAN:
		return json_boolean(lua_toboolean(L, idx));
	case LUA_TNUMBER: {
		if (lua_isinteger(L, idx))
			return json_integer((json_int_t)lua_tointeger(L, idx));
		double d = lua_tonumber(L, idx);
		if (isnan(d))
			return fail(c, "cannot convert %s to JSON", "NaN");
		if (isinf(d))
			return fail(c, "cannot convert %s to JSON",
				    d > 0 ? "inf" : "-inf");
		return json_real(d);
	}
	case LUA_TSTRING: {
		size_t n;
		const char *s = lua_tolstring(L, idx, &n);
		json_t *j = json_stringn(s, n);
		if (!j)
			return fail(c, "string is not valid UTF-8");
		return j;
	}
	case LUA_TTABLE:
		return conv_table(c, idx);
	case LUA_TUSERDATA:
		if (hf_lua_is_null(L, idx))
			return json_null();
		return fail(c, "cannot convert a %s to JSON", "userdata");
	default:
		return fail(c, "cannot convert a %s to JSON",
			    lua_typename(L, lua_type(L, idx)));
	}
}

json_t *hf_lua_to_json(lua_State *L, int idx, const char *root, char *err,
		       size_t errsize)
{
	struct conv c;
	c.L = L;
	c.depth = 0;
	c.err = err;
	c.errsize = errsize;
	c.plen = 0;
	c.path[0] = '\0';
	c.nodes = c.checked = c.held = 0;
	path_push(&c, "%s", root);
	int top = lua_gettop(L);
	json_t *j = conv_value(&c, lua_absindex(L, idx));
	lua_settop(L, top);
	return j;
}

/* ---- the json library ---- */

static int l_encode(lua_State *L)
{
	char err[512];
	luaL_checkany(L, 1);
	lua_settop(L, 1);
	void **box = hf_lua_box(L, release_json);
	json_t *j = hf_lua_to_json(L, 1, "value", err, sizeof err);
	if (!j) {
		hf_luart_reraise(L);
		return luaL_error(L, "json.encode: %s", err);
	}
	*box = j;
	size_t n = json_dumpb(j, NULL, 0, ENCODE_FLAGS);
	if (n == 0)
		return luaL_error(L, "json.encode: cannot encode value");
	luaL_Buffer b;
	char *p = luaL_buffinitsize(L, &b, n);
	json_dumpb(j, p, n, ENCODE_FLAGS);
	luaL_pushresultsize(&b, n);
	json_decref(j);
	*box = NULL;
	return 1;
}

/* What jansson may take to parse s (an upper bound: every bracket a
 * container, every comma or colon a value). */
static size_t parse_estimate(const char *s, size_t len)
{
	size_t est = len;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '{')
			est += EST_OBJECT + EST_SCALAR;
		else if (s[i] == '[')
			est += EST_ARRAY + EST_SCALAR;
		else if (s[i] == ',' || s[i] == ':')
			est += EST_SCALAR + EST_MEMBER;
	}
	return est;
}

/* json.decode's options table at index 2: {nulls = true} keeps object
 * members that are null as json.null. */
static bool decode_nulls(lua_State *L)
{
	if (lua_isnoneornil(L, 2))
		return false;
	luaL_checktype(L, 2, LUA_TTABLE);
	int type = lua_getfield(L, 2, "nulls");
	if (type != LUA_TNIL && type != LUA_TBOOLEAN)
		luaL_error(L, "json.decode: option nulls must be a boolean");
	bool nulls = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return nulls;
}

static int l_decode(lua_State *L)
{
	char err[256];
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	bool nulls = decode_nulls(L);
	lua_settop(L, 1);
	if (hf_luart_check(L, (long long)(len / 64), parse_estimate(s, len),
			   err, sizeof err) != 0) {
		hf_luart_reraise(L);
		return luaL_error(L, "json.decode: %s", err);
	}
	/* Straight into Lua (lua_json_decode.c); it accepts what jansson
	 * accepts, so jansson only runs on a text it rejects, for its message
	 * (and, were they ever to differ, for the value). */
	if (hf_lua_json_decode(L, s, len, nulls, err, sizeof err) == 0) {
		if (hf_lua_is_null(L, -1)) {
			lua_pop(L, 1);
			lua_pushnil(L);
		}
		return 1;
	}
	void **box = hf_lua_box(L, release_json);
	json_t *j = NULL;
	if (hf_json_parse(s, len, &j, err, sizeof err) != 0)
		return luaL_error(L, "json.decode: %s", err);
	*box = j;
	if (!j || json_is_null(j))
		lua_pushnil(L);
	else if (nulls)
		hf_lua_push_json_nulls(L, j);
	else
		hf_lua_push_json(L, j);
	json_decref(j);
	*box = NULL;
	return 1;
}

/* json.array([t]): tags t (or a new table) so that it encodes as an array even
 * when empty. */
static int l_array(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	if (lua_getmetatable(L, 1)) {
		lua_pop(L, 1);
		if (!is_marked_array(L, 1))
			return luaL_error(L,
					  "json.array: table has a metatable");
		return 1;
	}
	hf_lua_mark_array(L, 1);
	return 1;
}

static const luaL_Reg json_funcs[] = {
    {"encode", l_encode},
    {"decode", l_decode},
    {"array", l_array},
    {NULL, NULL},
};

void hf_lua_json_open(lua_State *L)
{
	/* The array tag: protected so that scripts cannot change it (it is
	 * shared by every step that decodes JSON). */
	lua_rawgetp(L, LUA_REGISTRYINDEX, &array_key);
	if (lua_isnil(L, -1)) {
		lua_newtable(L);
		lua_pushliteral(L, "json.array");
		lua_setfield(L, -2, "__name");
		lua_pushliteral(L, "json.array");
		lua_setfield(L, -2, "__metatable");
		lua_rawsetp(L, LUA_REGISTRYINDEX, &array_key);

		lua_newtable(L);
		lua_pushcfunction(L, box_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, box_gc);
		lua_setfield(L, -2, "__close");
		lua_pushliteral(L, "hf.box");
		lua_setfield(L, -2, "__metatable");
		lua_rawsetp(L, LUA_REGISTRYINDEX, &box_key);
	}
	lua_pop(L, 1);
	open_null(L);

	luaL_newlib(L, json_funcs);
	hf_lua_push_null(L);
	lua_setfield(L, -2, "null");
}
