/* lua_db_int.h - internals shared by the files of the `db` global: lua_db.c
 * (the connection, its statement cache, db.exec/query/one/tx) and
 * lua_db_guard.c (what a step may do to the connection: SQLite's memory counted
 * per call, the authorizer, the connection's limits and the messages for their
 * refusals). Private: included only from engine/, never from include/. The
 * public API is hf_lua_db.h (and hf_lua_db_global_init in hf_luart.h).
 *
 * sqlite3 and sqlite3_stmt are named by their struct tags here so that only
 * lua_db*.c include <sqlite3.h>. */
#ifndef HF_LUA_DB_INT_H
#define HF_LUA_DB_INT_H

#include "hf_limits.h"
#include "hf_lua_db.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;
struct sqlite3_stmt;

struct cached {
	char *sql; /* NULL: free slot */
	size_t len;
	struct sqlite3_stmt *stmt;
	uint64_t used; /* LRU clock */
	bool busy;     /* handed out to a running call */
};

struct hf_lua_pg;

struct hf_lua_db {
	struct hf_lua_pg
	    *pg; /* --data postgres://…: db.* goes there, db NULL */
	struct sqlite3 *db;
	int64_t deadline;   /* mono ms, 0 = none */
	int64_t busy_start; /* mono ms when the current lock wait began */
	int tx_depth;	    /* db.tx nesting */
	int64_t max_value;  /* --max-value: SQLITE_LIMIT_LENGTH */
	uint64_t clock;
	char denied[192]; /* why the authorizer refused the last statement */
	struct cached cache[HF_DB_STMT_CACHE];
};

/* --- lua_db_guard.c --- */

/* A db.* call begins on d: a fresh budget of SQLite memory for this thread,
 * unless the call runs inside another, which keeps the outer one. Returns
 * whether it did (then the caller must not end the budget). */
bool hf_lua_db_mem_call(const struct hf_lua_db *d);
/* The call is over (or SQLite runs for the engine, not the step). */
void hf_lua_db_mem_off(void);

/* What a step may reach: settings made by hf_lua_db_open only, this file
 * only, values up to d->max_value; installs the authorizer. Called after the
 * engine's own PRAGMAs. */
void hf_lua_db_restrict(struct hf_lua_db *d);

/* Why the last statement on d failed with SQLite code rc, in the step
 * author's words (the authorizer's refusal, the memory budget, the deadline,
 * --max-value, else SQLite's message). */
void hf_lua_db_describe(struct hf_lua_db *d, int rc, char *msg, size_t size);

/* "64MiB", as --max-value is written. */
void hf_lua_db_format_size(int64_t n, char *out, size_t size);

/* --- lua_db_pg.c: the same API on PostgreSQL --- */

/* True when --data names a PostgreSQL database (postgres:// or
 * postgresql://). */
bool hf_lua_pg_is_uri(const char *path);
/* Checks the URI; connects on first use. NULL with err set on a malformed
 * URI. */
struct hf_lua_pg *hf_lua_pg_open(const char *uri, int64_t max_value,
				 struct hf_error *err);
void hf_lua_pg_close(struct hf_lua_pg *p);
/* hf_lua_open_db, hf_lua_db_begin_step, hf_lua_db_end_step for PostgreSQL. */
void hf_lua_pg_push(lua_State *L, struct hf_lua_pg *p);
void hf_lua_pg_begin_step(struct hf_lua_pg *p, int64_t deadline_ms);
bool hf_lua_pg_end_step(struct hf_lua_pg *p);

#endif
