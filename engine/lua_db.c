/* lua_db.c - the `db` global on the --data SQLite database.
 *
 * db.exec(sql, ...) -> rows changed; db.query(sql, ...) -> array of rows
 * (column name -> value; INTEGER -> integer, REAL -> float, TEXT and BLOB ->
 * string, NULL -> absent); db.one(sql, ...) -> first row or nil; db.tx(fn) ->
 * fn's results, inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK and re-raise when
 * fn raises; a nested db.tx is a SAVEPOINT).
 *
 * Parameters (`?`, `?N`) are bound with sqlite3_bind_*: nil and json.null ->
 * NULL, booleans -> 0/1, integers, floats, strings; the number of arguments
 * must match the statement's. db.exec accepts several statements separated by
 * ';' only without parameters (an error otherwise: which statement would they
 * belong to?); db.query and db.one take exactly one statement.
 *
 * What a step may do to the connection (docs/security.md, "db.*") is
 * lua_db_guard.c's: the authorizer, the connection's limits, SQLite's memory
 * counted per db.* call, and the words for their refusals. This file opens the
 * connection (defensive mode on, then hf_lua_db_restrict), so every step starts
 * with the connection settings hf_lua_db_open made.
 *
 * Every statement a call holds is owned by the connection's small LRU cache
 * (or finalized before any error is raised); work that may raise in Lua runs
 * under lua_pcall so the statement is always reset before the error goes on.
 * A --data postgres://… URI makes this a thin switch: lua_db_pg.c has the
 * same API on PostgreSQL, and d->pg is set instead of d->db.
 *
 * Owns: its sqlite3 connection and statement cache. Does not own: SQLite's
 * allocator or the authorizer (lua_db_guard.c, through lua_db_int.h).
 * Threading: one connection per runtime, used by the runtime's thread only.
 * Neighbours: luart.c opens it per runtime and brackets each step with
 * hf_lua_db_begin_step / hf_lua_db_end_step; lua_sandbox.c pushes the global
 * (hf_lua_open_db); lua_json.c gives json.null and array marks. */
#include "lua_db_int.h"

#include "hf_lua_json.h"
#include "hf_luart.h"

#include <errno.h>
#include <lauxlib.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- connection ---- */

static int busy_handler(void *p, int count)
{
	struct hf_lua_db *d = p;
	int64_t now = hf_mono_ms();
	if (count == 0)
		d->busy_start = now;
	int64_t limit = d->busy_start + HF_DATA_BUSY_TIMEOUT_MS;
	if (d->deadline && d->deadline < limit)
		limit = d->deadline;
	if (now >= limit)
		return 0;
	int64_t wait = count < 4 ? 1 << count : 20;
	if (wait > limit - now)
		wait = limit - now;
	struct timespec ts = {0, (long)wait * 1000000L};
	nanosleep(&ts, NULL);
	return 1;
}

/* Interrupts a statement that runs past the step's deadline (a recursive CTE
 * never yields to the Lua hook). */
static int progress_handler(void *p)
{
	struct hf_lua_db *d = p;
	return d->deadline && hf_mono_ms() >= d->deadline;
}

struct hf_lua_db *hf_lua_db_open(const char *path, bool sync_full,
				 int64_t max_value, struct hf_error *err)
{
	struct hf_lua_db *d = hf_xcalloc(1, sizeof *d);
	d->max_value = max_value > 0 ? max_value : HF_DEFAULT_MAX_VALUE;
	if (hf_lua_pg_is_uri(path)) {
		d->pg = hf_lua_pg_open(path, d->max_value, err);
		if (!d->pg) {
			free(d);
			return NULL;
		}
		return d;
	}
	char *errmsg = NULL;
	struct stat sb;
	bool created = *path && strcmp(path, ":memory:") != 0 &&
		       stat(path, &sb) != 0 && errno == ENOENT;
	int rc = sqlite3_open_v2(path, &d->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK)
		goto fail;
	/* A new file is made private before anything is written to it; SQLite
	 * gives its -wal and -shm files the database file's mode. (chmod, not
	 * open and close: that would drop the POSIX locks of the connections
	 * other workers hold on the file.) */
	if (created)
		chmod(path, 0600);
	sqlite3_busy_handler(d->db, busy_handler, d);
	sqlite3_progress_handler(d->db, 1000, progress_handler, d);
	/* no schema corruption through writable_schema */
	sqlite3_db_config(d->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	rc = sqlite3_exec(d->db,
			  sync_full ? "PRAGMA journal_mode=WAL;"
				      "PRAGMA synchronous=FULL"
				    : "PRAGMA journal_mode=WAL;"
				      "PRAGMA synchronous=NORMAL",
			  NULL, NULL, &errmsg);
	if (rc != SQLITE_OK)
		goto fail;
	hf_lua_db_restrict(d);
	return d;
fail:
	hf_error_set(err, path, 0, 0, "cannot open data database: %s",
		     errmsg ? errmsg : sqlite3_errmsg(d->db));
	sqlite3_free(errmsg);
	sqlite3_close(d->db);
	free(d);
	return NULL;
}

void hf_lua_db_close(struct hf_lua_db *d)
{
	if (!d)
		return;
	hf_lua_pg_close(d->pg);
	for (int i = 0; i < HF_DB_STMT_CACHE; i++) {
		sqlite3_finalize(d->cache[i].stmt);
		free(d->cache[i].sql);
	}
	sqlite3_close(d->db);
	free(d);
}

void hf_lua_db_begin_step(struct hf_lua_db *d, int64_t deadline_ms)
{
	hf_lua_db_mem_off();
	if (d)
		d->deadline = deadline_ms;
	if (d && d->pg)
		hf_lua_pg_begin_step(d->pg, deadline_ms);
}

bool hf_lua_db_end_step(struct hf_lua_db *d)
{
	hf_lua_db_mem_off();
	if (!d)
		return false;
	if (d->pg)
		return hf_lua_pg_end_step(d->pg);
	for (int i = 0; i < HF_DB_STMT_CACHE; i++) {
		if (d->cache[i].stmt)
			sqlite3_reset(d->cache[i].stmt);
		d->cache[i].busy = false;
	}
	d->tx_depth = 0;
	d->deadline = 0;
	if (sqlite3_get_autocommit(d->db))
		return false;
	sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
	return true;
}

/* ---- statement cache ---- */

/* Prepares sql (or takes it from the cache). *multi tells whether more than
 * whitespace follows the first statement. Returns NULL on error (or when sql
 * holds no statement). */
static sqlite3_stmt *acquire(struct hf_lua_db *d, const char *sql, size_t len,
			     bool *multi)
{
	*multi = false;
	for (int i = 0; i < HF_DB_STMT_CACHE; i++) {
		struct cached *c = &d->cache[i];
		if (c->sql && !c->busy && c->len == len &&
		    memcmp(c->sql, sql, len) == 0) {
			c->busy = true;
			c->used = ++d->clock;
			return c->stmt;
		}
	}
	sqlite3_stmt *st = NULL;
	const char *tail = NULL;
	if (sqlite3_prepare_v2(d->db, sql, (int)len, &st, &tail) != SQLITE_OK ||
	    !st)
		return NULL;
	const char *end = sql + len;
	while (tail && tail < end &&
	       (*tail == ' ' || *tail == '\t' || *tail == '\n' ||
		*tail == '\r' || *tail == ';'))
		tail++;
	if (tail && tail < end) {
		sqlite3_stmt *next = NULL;
		if (sqlite3_prepare_v2(d->db, tail, (int)(end - tail), &next,
				       NULL) != SQLITE_OK ||
		    next)
			*multi = true;
		sqlite3_finalize(next);
	}
	if (*multi || len > HF_DB_STMT_CACHE_SQL_MAX)
		return st;
	struct cached *victim = NULL;
	for (int i = 0; i < HF_DB_STMT_CACHE; i++) {
		struct cached *c = &d->cache[i];
		if (c->busy)
			continue;
		if (!c->sql) {
			victim = c;
			break;
		}
		if (!victim || c->used < victim->used)
			victim = c;
	}
	if (!victim)
		return st;
	sqlite3_finalize(victim->stmt);
	free(victim->sql);
	victim->sql = hf_xstrndup(sql, len);
	victim->len = len;
	victim->stmt = st;
	victim->busy = true;
	victim->used = ++d->clock;
	return st;
}

static void release(struct hf_lua_db *d, sqlite3_stmt *st)
{
	for (int i = 0; i < HF_DB_STMT_CACHE; i++) {
		if (d->cache[i].stmt == st && d->cache[i].busy) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			d->cache[i].busy = false;
			return;
		}
	}
	sqlite3_finalize(st);
}

/* ---- calls ---- */

enum mode { MODE_EXEC, MODE_QUERY, MODE_ONE };

struct call {
	struct hf_lua_db *d;
	sqlite3_stmt *stmt;
	const char *what; /* "db.exec" */
	enum mode mode;
};

static int raise_sqlite(lua_State *L, struct hf_lua_db *d, const char *what,
			int rc)
{
	char msg[512];
	hf_lua_db_describe(d, rc, msg, sizeof msg);
	return luaL_error(L, "%s: %s", what, msg);
}

static void bind_args(lua_State *L, struct call *c, int first, int nargs)
{
	int want = sqlite3_bind_parameter_count(c->stmt);
	if (nargs != want)
		luaL_error(L, "%s: statement has %d parameter%s, %d given",
			   c->what, want, want == 1 ? "" : "s", nargs);
	for (int i = 0; i < nargs; i++) {
		int a = first + i, rc;
		switch (lua_type(L, a)) {
		case LUA_TNIL:
			rc = sqlite3_bind_null(c->stmt, i + 1);
			break;
		case LUA_TBOOLEAN:
			rc = sqlite3_bind_int(c->stmt, i + 1,
					      lua_toboolean(L, a));
			break;
		case LUA_TNUMBER:
			if (lua_isinteger(L, a))
				rc = sqlite3_bind_int64(c->stmt, i + 1,
							lua_tointeger(L, a));
			else
				rc = sqlite3_bind_double(c->stmt, i + 1,
							 lua_tonumber(L, a));
			break;
		case LUA_TSTRING: {
			size_t n;
			const char *s = lua_tolstring(L, a, &n);
			rc = sqlite3_bind_text64(c->stmt, i + 1, s, n,
						 SQLITE_TRANSIENT, SQLITE_UTF8);
			break;
		}
		case LUA_TUSERDATA:
			if (hf_lua_is_null(L, a)) {
				rc = sqlite3_bind_null(c->stmt, i + 1);
				break;
			}
			/* fall through */
		default:
			luaL_error(L, "%s: cannot bind a %s (parameter %d)",
				   c->what, luaL_typename(L, a), i + 1);
			return;
		}
		if (rc != SQLITE_OK)
			raise_sqlite(L, c->d, c->what, rc);
	}
}

static void push_row(lua_State *L, sqlite3_stmt *st)
{
	int n = sqlite3_column_count(st);
	lua_createtable(L, 0, n);
	for (int i = 0; i < n; i++) {
		const char *name = sqlite3_column_name(st, i);
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER:
			lua_pushinteger(L, sqlite3_column_int64(st, i));
			break;
		case SQLITE_FLOAT:
			lua_pushnumber(L, sqlite3_column_double(st, i));
			break;
		case SQLITE_TEXT: {
			const char *s =
			    (const char *)sqlite3_column_text(st, i);
			lua_pushlstring(L, s ? s : "",
					(size_t)sqlite3_column_bytes(st, i));
			break;
		}
		case SQLITE_BLOB: {
			const char *s = sqlite3_column_blob(st, i);
			lua_pushlstring(L, s ? s : "",
					(size_t)sqlite3_column_bytes(st, i));
			break;
		}
		default:
			continue; /* NULL: the column is absent */
		}
		lua_setfield(L, -2, name ? name : "?");
	}
}

static lua_Integer changes_since(sqlite3 *db, sqlite3_int64 before)
{
	return sqlite3_total_changes64(db) != before
		   ? (lua_Integer)sqlite3_changes64(db)
		   : 0;
}

/* Runs under lua_pcall: (call, args...) -> result. */
static int call_inner(lua_State *L)
{
	struct call *c = lua_touserdata(L, 1);
	sqlite3 *db = c->d->db;
	bind_args(L, c, 2, lua_gettop(L) - 1);
	int rc;
	switch (c->mode) {
	case MODE_EXEC: {
		sqlite3_int64 before = sqlite3_total_changes64(db);
		while ((rc = sqlite3_step(c->stmt)) == SQLITE_ROW)
			;
		if (rc != SQLITE_DONE)
			return raise_sqlite(L, c->d, c->what, rc);
		lua_pushinteger(L, changes_since(db, before));
		return 1;
	}
	case MODE_QUERY: {
		lua_newtable(L);
		hf_lua_mark_array(L, -1);
		lua_Integer n = 0;
		while ((rc = sqlite3_step(c->stmt)) == SQLITE_ROW) {
			push_row(L, c->stmt);
			lua_rawseti(L, -2, ++n);
		}
		if (rc != SQLITE_DONE)
			return raise_sqlite(L, c->d, c->what, rc);
		return 1;
	}
	case MODE_ONE:
	default:
		rc = sqlite3_step(c->stmt);
		if (rc == SQLITE_ROW)
			push_row(L, c->stmt);
		else if (rc == SQLITE_DONE)
			lua_pushnil(L);
		else
			return raise_sqlite(L, c->d, c->what, rc);
		return 1;
	}
}

/* db.exec with several statements and no parameters: each statement is
 * prepared, run and finalized before the next; nothing in Lua happens while
 * one is held. */
static int exec_multi(lua_State *L, struct hf_lua_db *d, const char *sql,
		      size_t len)
{
	const char *p = sql, *end = sql + len;
	lua_Integer total = 0;
	char msg[512];
	while (p < end) {
		sqlite3_stmt *st = NULL;
		const char *tail = NULL;
		d->denied[0] = '\0';
		int rc =
		    sqlite3_prepare_v2(d->db, p, (int)(end - p), &st, &tail);
		if (rc != SQLITE_OK)
			return raise_sqlite(L, d, "db.exec", rc);
		if (!st)
			break;
		sqlite3_int64 before = sqlite3_total_changes64(d->db);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		if (rc != SQLITE_DONE) {
			hf_lua_db_describe(d, rc, msg, sizeof msg);
			sqlite3_finalize(st);
			return luaL_error(L, "db.exec: %s", msg);
		}
		total += changes_since(d->db, before);
		sqlite3_finalize(st);
		p = tail;
	}
	lua_pushinteger(L, total);
	return 1;
}

static struct hf_lua_db *self(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

struct request {
	struct hf_lua_db *d;
	const char *what;
	enum mode mode;
};

/* Runs under lua_pcall with SQLite's memory counted: (request, sql,
 * args...) -> result. */
static int run_counted(lua_State *L)
{
	struct request *r = lua_touserdata(L, 1);
	struct hf_lua_db *d = r->d;
	const char *what = r->what;
	size_t len;
	const char *sql = lua_tolstring(L, 2, &len);
	int nargs = lua_gettop(L) - 2;
	d->denied[0] = '\0';
	bool multi;
	sqlite3_stmt *st = acquire(d, sql, len, &multi);
	if (!st) {
		if (sqlite3_errcode(d->db) != SQLITE_OK)
			return raise_sqlite(L, d, what, sqlite3_errcode(d->db));
		return luaL_error(L, "%s: no SQL statement given", what);
	}
	if (multi) {
		release(d, st);
		if (r->mode != MODE_EXEC)
			return luaL_error(L, "%s: takes a single statement",
					  what);
		if (nargs > 0)
			return luaL_error(L, "db.exec: parameters cannot be "
					     "used with several statements");
		return exec_multi(L, d, sql, len);
	}
	struct call c = {d, st, what, r->mode};
	lua_pushcfunction(L, call_inner);
	lua_pushlightuserdata(L, &c);
	for (int i = 3; i <= nargs + 2; i++)
		lua_pushvalue(L, i);
	int status = lua_pcall(L, nargs + 1, 1, 0);
	release(d, st);
	if (status != LUA_OK)
		return lua_error(L);
	return 1;
}

/* A db.* call: its SQLite memory is counted from here to the end, however it
 * ends (a call made while another runs, should Lua ever allow it, shares the
 * outer budget). */
static int run(lua_State *L, const char *what, enum mode mode)
{
	struct request r = {self(L), what, mode};
	luaL_checkstring(L, 1);
	int nargs = lua_gettop(L) - 1;
	luaL_checkstack(L, nargs + 8, "too many parameters");
	lua_pushcfunction(L, run_counted);
	lua_pushlightuserdata(L, &r);
	for (int i = 1; i <= nargs + 1; i++)
		lua_pushvalue(L, i);
	bool outer = hf_lua_db_mem_call(r.d);
	int status = lua_pcall(L, nargs + 2, 1, 0);
	if (!outer)
		hf_lua_db_mem_off();
	if (status != LUA_OK)
		return lua_error(L);
	return 1;
}

static int l_exec(lua_State *L)
{
	return run(L, "db.exec", MODE_EXEC);
}

static int l_query(lua_State *L)
{
	return run(L, "db.query", MODE_QUERY);
}

static int l_one(lua_State *L)
{
	return run(L, "db.one", MODE_ONE);
}

/* Runs one control statement (BEGIN, COMMIT, SAVEPOINT...). Returns the
 * SQLite code; the message is copied into msg. */
static int control(struct hf_lua_db *d, const char *sql, char *msg, size_t size)
{
	int rc = sqlite3_exec(d->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		snprintf(msg, size, "%s", sqlite3_errmsg(d->db));
	return rc;
}

static void rollback(struct hf_lua_db *d, int depth)
{
	char sql[64];
	if (depth == 0) {
		sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
		return;
	}
	snprintf(sql, sizeof sql, "ROLLBACK TO hf_tx_%d; RELEASE hf_tx_%d",
		 depth, depth);
	sqlite3_exec(d->db, sql, NULL, NULL, NULL);
}

static int l_tx(lua_State *L)
{
	struct hf_lua_db *d = self(L);
	char sql[64], msg[512];
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_settop(L, 1);
	int depth = d->tx_depth;
	if (depth == 0)
		snprintf(sql, sizeof sql, "BEGIN IMMEDIATE");
	else
		snprintf(sql, sizeof sql, "SAVEPOINT hf_tx_%d", depth);
	if (control(d, sql, msg, sizeof msg) != SQLITE_OK)
		return luaL_error(L, "db.tx: %s", msg);
	d->tx_depth = depth + 1;
	lua_pushvalue(L, 1);
	int status = lua_pcall(L, 0, LUA_MULTRET, 0);
	d->tx_depth = depth;
	if (status != LUA_OK) {
		rollback(d, depth);
		return lua_error(L);
	}
	if (depth == 0)
		snprintf(sql, sizeof sql, "COMMIT");
	else
		snprintf(sql, sizeof sql, "RELEASE hf_tx_%d", depth);
	if (control(d, sql, msg, sizeof msg) != SQLITE_OK) {
		rollback(d, depth);
		return luaL_error(L, "db.tx: cannot commit: %s", msg);
	}
	return lua_gettop(L) - 1;
}

static const luaL_Reg db_funcs[] = {
    {"exec", l_exec}, {"query", l_query}, {"one", l_one},
    {"tx", l_tx},     {NULL, NULL},
};

void hf_lua_open_db(lua_State *L, struct hf_lua_db *d)
{
	if (d->pg) {
		hf_lua_pg_push(L, d->pg);
		return;
	}
	luaL_newlibtable(L, db_funcs);
	lua_pushlightuserdata(L, d);
	luaL_setfuncs(L, db_funcs, 1);
}
