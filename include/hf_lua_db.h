/* hf_lua_db.h - the `db` global: the --data SQLite database seen from Lua.
 *
 * Each runtime opens its own connection (WAL, busy timeout bounded by the
 * step's deadline). A step cannot change the connection or the process: PRAGMA
 * is limited to read-only introspection, no ATTACH, no temporary objects, no
 * extensions, and one value or row is capped at --max-value. Parameters
 * are always bound, never spliced. Used only from the thread that owns the
 * runtime. */
#ifndef HF_LUA_DB_H
#define HF_LUA_DB_H

#include "hf_util.h"
#include <lua.h>
#include <stdbool.h>
#include <stdint.h>

struct hf_lua_db;

/* hf_lua_db_global_init: see hf_luart.h. */

/* Opens (creating) the data database. max_value caps one value, stored row or
 * SQL text in bytes (0: HF_DEFAULT_MAX_VALUE; at most HF_DB_MAX_VALUE_MAX).
 * Returns NULL with err set on failure. */
struct hf_lua_db *hf_lua_db_open(const char *path, bool sync_full,
				 int64_t max_value, struct hf_error *err);
void hf_lua_db_close(struct hf_lua_db *d); /* accepts NULL */

/* Pushes the `db` table {exec, query, one, tx} bound to d (which must outlive
 * the state). May raise (memory). */
void hf_lua_open_db(lua_State *L, struct hf_lua_db *d);

/* Called at step start: statements running past deadline_ms (hf_mono_ms(); 0 =
 * none) are interrupted and lock waits end there. */
void hf_lua_db_begin_step(struct hf_lua_db *d, int64_t deadline_ms);
/* Called after every step, whatever its outcome: resets statements and rolls
 * back a transaction left open (a step killed inside db.tx, or a script that
 * ran BEGIN itself). Returns true when something was rolled back. */
bool hf_lua_db_end_step(struct hf_lua_db *d);

#endif
