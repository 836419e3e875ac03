/* lua_db_guard.c - what a step may do to the connection of the `db` global
 * (docs/security.md, "db.*").
 *
 * An authorizer allows PRAGMA only for the read-only introspection pragmas of
 * introspection[] (any other, read or write, is refused, also through a
 * pragma_NAME() table-valued function), refuses ATTACH, DETACH, temporary
 * tables, views, triggers and indexes (they would outlive the step on this
 * shared connection) and load_extension(); extension loading is off,
 * trusted_schema is off (defensive mode is set by hf_lua_db_open). So every
 * step starts with the connection settings hf_lua_db_open made. One value
 * (string, blob, stored row) and the SQL text are capped at --max-value
 * (SQLITE_LIMIT_LENGTH and SQLITE_LIMIT_SQL_LENGTH), checked before SQLite
 * allocates it; and since a result row of many such values is never one stored
 * value, SQLite's heap (given to it by hf_lua_db_global_init) is also counted
 * per thread while a db.* call runs: one call may take at most 2 x --max-value
 * + HF_DB_CALL_SLACK more than it had (process-wide limits such as
 * sqlite3_hard_heap_limit would reach the state database too). The refusals
 * are worded for the step's author by hf_lua_db_describe.
 *
 * Owns: SQLite's allocator and page-cache configuration (process-wide,
 * installed once before any connection) and the per-thread budget. Does not
 * own: the connection, its statements or the db.* calls (lua_db.c). Threading:
 * the budget is thread-local; the authorizer runs on the thread of the runtime
 * that owns the connection. Neighbours: lua_db.c calls in through lua_db_int.h;
 * server.c and cmd_run.c call hf_lua_db_global_init before any SQLite
 * connection opens. */
#include "lua_db_int.h"

#include "hf_luart.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- SQLite's memory, counted per db.* call ---- */

/* The allocator given to SQLite: malloc with an 8-byte size header (as
 * SQLite's own), charging the calling thread's budget while `on`. */
static _Thread_local struct {
	bool on;
	bool hit;     /* an allocation was refused: the budget ran out */
	int64_t left; /* bytes the current call may still take */
} tl_mem;
static bool mem_counted; /* hf_lua_db_global_init installed mem_methods */

static void *mem_malloc(int n)
{
	if (tl_mem.on && n > tl_mem.left) {
		tl_mem.hit = true;
		return NULL;
	}
	int64_t *p = malloc((size_t)n + 8);
	if (!p)
		return NULL;
	p[0] = n;
	if (tl_mem.on)
		tl_mem.left -= n;
	return p + 1;
}

static void mem_free(void *v)
{
	if (!v)
		return;
	int64_t *p = (int64_t *)v - 1;
	if (tl_mem.on)
		tl_mem.left += p[0];
	free(p);
}

static int mem_size(void *v)
{
	return v ? (int)((int64_t *)v - 1)[0] : 0;
}

static void *mem_realloc(void *v, int n)
{
	if (!v)
		return mem_malloc(n);
	int64_t old = mem_size(v);
	if (tl_mem.on && n - old > tl_mem.left) {
		tl_mem.hit = true;
		return NULL;
	}
	int64_t *p = realloc((int64_t *)v - 1, (size_t)n + 8);
	if (!p)
		return NULL;
	p[0] = n;
	if (tl_mem.on)
		tl_mem.left -= n - old;
	return p + 1;
}

static int mem_roundup(int n)
{
	return (n + 7) & ~7;
}

static int mem_init(void *app)
{
	(void)app;
	return SQLITE_OK;
}

static void mem_shutdown(void *app)
{
	(void)app;
}

static const sqlite3_mem_methods mem_methods = {
    mem_malloc,	 mem_free, mem_realloc,	 mem_size,
    mem_roundup, mem_init, mem_shutdown, NULL,
};

bool hf_lua_db_global_init(void)
{
	if (!mem_counted &&
	    sqlite3_config(SQLITE_CONFIG_MALLOC, &mem_methods) == SQLITE_OK) {
		mem_counted = true;
		/* No initial bulk of page-cache lines per connection (SQLite's
		 * default: 20, about 87 KB written at the first read, on each
		 * of the server's connections: half a MiB of RSS at rest).
		 * Pages are allocated as the cache grows instead. */
		sqlite3_config(SQLITE_CONFIG_PAGECACHE, (void *)NULL, 0, 0);
		/* No memory statistics: with them every SQLite allocation,
		 * on every connection, takes one process-wide mutex, which
		 * the writer, the disk backlog's loader and the readers then
		 * contend for (futex waits in a profile of a drain). Nothing
		 * here reads them: the budget above counts on its own. */
		sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	}
	return mem_counted;
}

/* The budget: see lua_db_int.h. */
bool hf_lua_db_mem_call(const struct hf_lua_db *d)
{
	if (tl_mem.on)
		return true;
	tl_mem.left = 2 * d->max_value + HF_DB_CALL_SLACK;
	tl_mem.hit = false;
	tl_mem.on = mem_counted;
	return false;
}

void hf_lua_db_mem_off(void)
{
	tl_mem.on = false;
}

/* ---- the authorizer and the connection's limits ---- */

/* Read-only introspection: the only pragmas a step may run (with any
 * argument: a table or index name). */
static const char *const introspection[] = {
    "table_info",	"table_xinfo",	     "table_list",
    "index_list",	"index_info",	     "index_xinfo",
    "foreign_key_list", "foreign_key_check", NULL,
};

/* Refuses the statement being prepared, saying why (fmt takes one string). */
#define DENY(d, ...)                                                           \
	(snprintf((d)->denied, sizeof(d)->denied, __VA_ARGS__), SQLITE_DENY)

static int authorizer(void *p, int action, const char *a1, const char *a2,
		      const char *dbname, const char *trigger)
{
	struct hf_lua_db *d = p;
	(void)dbname;
	(void)trigger;
	switch (action) {
	case SQLITE_PRAGMA:
		for (int i = 0; introspection[i]; i++)
			if (a1 && strcasecmp(a1, introspection[i]) == 0)
				return SQLITE_OK;
		return DENY(d,
			    "PRAGMA %s is not allowed (read-only introspection "
			    "pragmas only)",
			    a1 ? a1 : "?");
	case SQLITE_ATTACH: /* VACUUM too: it attaches its copy */
		return DENY(d,
			    "ATTACH (or VACUUM) is not allowed (db.* reaches "
			    "the --data database only)");
	case SQLITE_DETACH:
		return DENY(d, "DETACH is not allowed (db.* reaches the --data "
			       "database only)");
	case SQLITE_CREATE_TEMP_TABLE:
	case SQLITE_CREATE_TEMP_VIEW:
	case SQLITE_CREATE_TEMP_TRIGGER:
	case SQLITE_CREATE_TEMP_INDEX:
		return DENY(d, "temporary tables, views and triggers are not "
			       "allowed (they would outlive the step)");
	case SQLITE_FUNCTION:
		if (a2 && strcasecmp(a2, "load_extension") == 0)
			return DENY(d, "%s is not allowed", a2);
		return SQLITE_OK;
	default:
		return SQLITE_OK;
	}
}

/* The engine's own PRAGMAs ran before: from here on, a step's statements pass
 * the authorizer. */
void hf_lua_db_restrict(struct hf_lua_db *d)
{
	int64_t max = d->max_value;
	if (max > HF_DB_MAX_VALUE_MAX)
		max = HF_DB_MAX_VALUE_MAX;
	sqlite3_limit(d->db, SQLITE_LIMIT_LENGTH, (int)max);
	sqlite3_limit(d->db, SQLITE_LIMIT_SQL_LENGTH, (int)max);
	/* no ATTACH (nor VACUUM INTO, which attaches) */
	sqlite3_limit(d->db, SQLITE_LIMIT_ATTACHED, 0);
	sqlite3_db_config(d->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0,
			  NULL);
	sqlite3_db_config(d->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_set_authorizer(d->db, authorizer, d);
}

/* ---- messages ---- */

void hf_lua_db_format_size(int64_t n, char *out, size_t size)
{
	static const struct {
		const char *name;
		int64_t mult;
	} units[] = {{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (n && n % units[i].mult == 0) {
			snprintf(out, size, "%lld%s",
				 (long long)(n / units[i].mult), units[i].name);
			return;
		}
	snprintf(out, size, "%lld bytes", (long long)n);
}

void hf_lua_db_describe(struct hf_lua_db *d, int rc, char *msg, size_t size)
{
	char sz[32];
	const char *m = sqlite3_errmsg(d->db);
	if (d->denied[0]) {
		snprintf(msg, size, "%s", d->denied);
	} else if (rc == SQLITE_NOMEM && tl_mem.hit) {
		hf_lua_db_format_size(2 * d->max_value + HF_DB_CALL_SLACK, sz,
				      sizeof sz);
		snprintf(msg, size,
			 "more than %s of SQLite memory in one call (2 x "
			 "--max-value + %d MiB)",
			 sz, HF_DB_CALL_SLACK >> 20);
	} else if (rc == SQLITE_INTERRUPT) {
		snprintf(msg, size, "interrupted at the step's deadline");
	} else if ((rc & 0xff) == SQLITE_TOOBIG) {
		hf_lua_db_format_size(d->max_value, sz, sizeof sz);
		snprintf(msg, size, "%s larger than --max-value (%s)",
			 strcmp(m, "statement too long") == 0 ? "SQL statement"
							      : "value",
			 sz);
	} else {
		snprintf(msg, size, "%s", m);
	}
}
