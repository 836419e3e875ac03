/* hf_lua_json.h - conversion between JSON values (jansson) and Lua values, the
 * `json` global, and a small "box" helper that lets a lua_CFunction hold a C
 * resource across calls that may raise.
 *
 * Mapping, JSON -> Lua: objects -> tables, arrays -> sequences (tagged with a
 * protected array metatable so that an empty array encodes back as []), null ->
 * the json.null sentinel inside arrays (keeping positions) and at the top, and
 * an object member whose value is null is left out (reads as nil) unless
 * nulls are kept (hf_lua_push_json_nulls, json.decode(s, {nulls = true})).
 * json.null is a full userdata with a protected metatable: indexing it raises
 * "attempt to index json.null (a JSON null) with key 'x'"; tostring gives
 * "json.null". Integers -> integers, reals -> floats.
 *
 * Lua -> JSON: nil and json.null -> null; booleans; integers stay integers;
 * floats (NaN and infinities are errors); strings (must be valid UTF-8); tables
 * whose keys are exactly 1..n -> arrays; tables with only string keys ->
 * objects; an empty table -> {} unless it carries the array tag (json.array{}
 * or a decoded
 * []); mixed keys, sparse arrays, other key types, cycles, nesting deeper than
 * HF_LUA_JSON_MAX_DEPTH, functions, userdata and threads are errors that name
 * the path ("output.foo[3]: cannot convert a function to JSON").
 *
 * Used only from the thread that owns the lua_State. */
#ifndef HF_LUA_JSON_H
#define HF_LUA_JSON_H

#include <jansson.h>
#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

#define HF_LUA_JSON_MAX_DEPTH 256

/* Pushes the `json` library table {encode, decode, null, array}. Also registers
 * the array tag and the box metatable, so it must be called once per state
 * before the other functions here. May raise (memory). */
void hf_lua_json_open(lua_State *L);

/* Pushes the json.null sentinel (nil before hf_lua_json_open). Never raises
 * (one stack slot, as lua_push* functions take). */
void hf_lua_push_null(lua_State *L);
/* True when the value at idx is json.null. */
bool hf_lua_is_null(lua_State *L, int idx);
/* Tags the table at idx as a JSON array (empty -> []). May raise. */
void hf_lua_mark_array(lua_State *L, int idx);

/* Pushes v as a Lua value: object members that are null left out, null in
 * arrays (and v itself null) as json.null. v stays owned by the caller, who
 * must keep it alive if this raises (memory). */
void hf_lua_push_json(lua_State *L, const json_t *v);
/* The same, keeping every null (object members too) as json.null. */
void hf_lua_push_json_nulls(lua_State *L, const json_t *v);

/* Pushes the metatable that tags tables as JSON arrays. Never raises. */
void hf_lua_push_array_tag(lua_State *L);

/* Decodes JSON text s straight into a Lua value (lua_json_decode.c): accepts
 * what hf_json_parse accepts (same nesting limit), maps values as
 * hf_lua_push_json (or hf_lua_push_json_nulls when nulls) does, a top-level
 * null as json.null. Returns 0 with the value pushed, or -1 with nothing
 * pushed and a message ("invalid JSON at byte N: ...") in err. Raises on
 * memory (the running step's limit) and past the step's deadline. */
int hf_lua_json_decode(lua_State *L, const char *s, size_t len, bool nulls,
		       char *err, size_t errsize);

/* Converts the value at idx to JSON. root names the value in messages
 * ("output"). Returns a new reference, or NULL with a message such as
 * "output.a[2]: cannot convert a function to JSON" written into err. Never
 * raises: it allocates nothing in Lua. */
json_t *hf_lua_to_json(lua_State *L, int idx, const char *root, char *err,
		       size_t errsize);

/* Pushes a userdata box owning a C pointer: when the box is collected or closed
 * (to-be-closed variable), release(*box) runs if *box is not NULL. Returns the
 * slot to store the pointer in. Create the box before acquiring the resource;
 * set *box = NULL after releasing it by hand. May raise (memory). */
void **hf_lua_box(lua_State *L, void (*release)(void *));

#endif
