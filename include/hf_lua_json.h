/* hf_lua_json.h - conversion between JSON values (jansson) and Lua values, the
 * `json` global, and a small "box" helper that lets a lua_CFunction hold a C
 * resource across calls that may raise.
 *
 * Mapping, JSON -> Lua: objects -> tables, arrays -> sequences (tagged with a
 * protected array metatable so that an empty array encodes back as []), null ->
 * the json.null sentinel (a light userdata), integers -> integers, reals ->
 * floats.
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

/* Pushes the json.null sentinel. Never raises. */
void hf_lua_push_null(lua_State *L);
/* True when the value at idx is json.null. */
bool hf_lua_is_null(lua_State *L, int idx);
/* Tags the table at idx as a JSON array (empty -> []). May raise. */
void hf_lua_mark_array(lua_State *L, int idx);

/* Pushes v (null -> json.null) as a Lua value. v stays owned by the caller, who
 * must keep it alive if this raises (memory). */
void hf_lua_push_json(lua_State *L, const json_t *v);

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
