/* lua_db_pg_call.c - db.exec, db.query, db.one and db.tx on a PostgreSQL
 * --data database (lua_db_pg.c has the connection).
 *
 * A statement goes through hf_pg_sql_translate (lua_db_pg_sql.c: `?` to `$n`,
 * refused statements), then the extended protocol with parameters as text:
 * nil and json.null NULL, booleans bool, integers int8, floats float8,
 * strings of valid UTF-8 without NUL untyped (the server infers the type
 * from the context), other strings binary bytea. db.exec with several
 * statements and no parameters uses the simple protocol (the statements then
 * run as one transaction). Rows arrive one at a time (single-row mode), each
 * at most --max-value bytes: bool -> boolean, int2/int4/int8/oid -> integer,
 * float4/float8 -> float, numeric -> integer when integral and in range, else
 * float; json/jsonb -> decoded (object members that are null left out, a null
 * in an array json.null, a top-level null absent); bytea -> string; anything
 * else -> its text; NULL -> absent. db.exec returns the rows changed, from
 * the command tags of INSERT, UPDATE, DELETE and MERGE.
 *
 * db.tx is BEGIN … COMMIT, SAVEPOINT … RELEASE when nested, rolled back when
 * fn raises. A COMMIT that the server turned into ROLLBACK (a statement in the
 * transaction failed and its error was caught) raises.
 *
 * Owns: the results, parameters and JSON values of the call that runs, all
 * released (and the connection left idle or closed) before the call returns
 * or raises: Lua work that may raise (rows, json) runs under lua_pcall.
 * Threading: the runtime's thread only. Neighbours: lua_db_pg.c through
 * lua_db_pg_int.h; lua_json.c gives json.null, array marks and JSON to Lua. */
#include "lua_db_pg_int.h"

#include "hf_lua_json.h"
#include "hf_pg_sql.h"

#include <jansson.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- calls ---- */

enum mode { MODE_EXEC, MODE_QUERY, MODE_ONE };

/* One db.exec/query/one call: what must be released however it ends. */
struct call {
	struct hf_lua_pg *p;
	const char *what; /* "db.exec" */
	enum mode mode;
	struct hf_pg_sql sql;
	PGresult *res;	      /* the result being read */
	json_t *json;	      /* a json value being pushed */
	unsigned char *bytes; /* an unescaped bytea being pushed */
	bool running; /* a query was sent and its results not all read */
	int nparams;
	Oid *types;
	const char **values;
	int *lengths, *formats;
	char *numbers;	 /* text of number parameters, 32 bytes each */
	char error[512]; /* the first error the server reported */
};

static void release_call(struct call *c)
{
	PQclear(c->res);
	c->res = NULL;
	json_decref(c->json);
	c->json = NULL;
	PQfreemem(c->bytes);
	c->bytes = NULL;
	hf_pg_sql_release(&c->sql);
	free(c->types);
	free(c->values);
	free(c->lengths);
	free(c->formats);
	free(c->numbers);
	c->types = NULL;
	c->values = NULL;
	c->lengths = c->formats = NULL;
	c->numbers = NULL;
}

static bool valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		int more;
		uint32_t cp;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			more = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + (size_t)more >= n)
			return false;
		for (int k = 1; k <= more; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((more == 1 && cp < 0x80) || (more == 2 && cp < 0x800) ||
		    (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += (size_t)more + 1;
	}
	return true;
}

static void too_big(lua_State *L, struct call *c, const char *thing)
{
	char sz[32];
	hf_lua_db_format_size(c->p->max_value, sz, sizeof sz);
	luaL_error(L, "%s: %s larger than --max-value (%s)", c->what, thing,
		   sz);
}

/* The parameters at first.. as libpq's arrays. */
static void bind_args(lua_State *L, struct call *c, int first, int nargs)
{
	int want = c->sql.nparams;
	if (nargs != want)
		luaL_error(L, "%s: statement has %d parameter%s, %d given",
			   c->what, want, want == 1 ? "" : "s", nargs);
	c->nparams = nargs;
	if (!nargs)
		return;
	c->types = hf_xcalloc((size_t)nargs, sizeof *c->types);
	c->values = hf_xcalloc((size_t)nargs, sizeof *c->values);
	c->lengths = hf_xcalloc((size_t)nargs, sizeof *c->lengths);
	c->formats = hf_xcalloc((size_t)nargs, sizeof *c->formats);
	c->numbers = hf_xcalloc((size_t)nargs, 32);
	for (int i = 0; i < nargs; i++) {
		int a = first + i;
		char *num = c->numbers + 32 * i;
		switch (lua_type(L, a)) {
		case LUA_TNIL:
			break;
		case LUA_TBOOLEAN:
			c->types[i] = OID_BOOL;
			c->values[i] = lua_toboolean(L, a) ? "t" : "f";
			break;
		case LUA_TNUMBER:
			if (lua_isinteger(L, a)) {
				c->types[i] = OID_INT8;
				snprintf(num, 32, "%lld",
					 (long long)lua_tointeger(L, a));
			} else {
				double v = lua_tonumber(L, a);
				c->types[i] = OID_FLOAT8;
				if (isnan(v))
					snprintf(num, 32, "NaN");
				else if (isinf(v))
					snprintf(num, 32, "%sInfinity",
						 v < 0 ? "-" : "");
				else
					snprintf(num, 32, "%.17g", v);
			}
			c->values[i] = num;
			break;
		case LUA_TSTRING: {
			size_t n;
			const char *s = lua_tolstring(L, a, &n);
			if ((int64_t)n > c->p->max_value)
				too_big(L, c, "value");
			c->values[i] = s;
			if (!valid_utf8((const unsigned char *)s, n)) {
				c->types[i] = OID_BYTEA;
				c->formats[i] = 1;
				c->lengths[i] = (int)n;
			}
			break;
		}
		case LUA_TUSERDATA:
			if (hf_lua_is_null(L, a))
				break;
			/* fall through */
		default:
			luaL_error(L, "%s: cannot bind a %s (parameter %d)",
				   c->what, luaL_typename(L, a), i + 1);
			return;
		}
	}
}

/* Pushes the JSON text v[0..n) decoded (nothing pushed for a top-level
 * null: the column is then absent). Returns whether it pushed. */
static bool push_json(lua_State *L, struct call *c, const char *v, size_t n)
{
	json_error_t jerr;
	c->json = json_loadb(v, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!c->json) {
		/* nested past jansson's depth: an error, as json.decode's
		 * (pushed as text it would pass for a string) */
		if (json_error_code(&jerr) == json_error_stack_overflow)
			luaL_error(L, "%s: JSON nested too deeply", c->what);
		/* beyond what jansson reads (an integer past 64 bits) */
		lua_pushlstring(L, v, n);
		return true;
	}
	bool pushed = !json_is_null(c->json);
	if (pushed)
		hf_lua_push_json(L, c->json);
	json_decref(c->json);
	c->json = NULL;
	return pushed;
}

/* Pushes row 0 of c->res as a table (column name -> value). */
static void push_row(lua_State *L, struct call *c)
{
	PGresult *r = c->res;
	int n = PQnfields(r);
	int64_t bytes = 0;
	for (int i = 0; i < n; i++)
		bytes += PQgetlength(r, 0, i);
	if (bytes > c->p->max_value)
		too_big(L, c, "row");
	lua_createtable(L, 0, n);
	for (int i = 0; i < n; i++) {
		if (PQgetisnull(r, 0, i))
			continue; /* NULL: the column is absent */
		const char *v = PQgetvalue(r, 0, i);
		size_t len = (size_t)PQgetlength(r, 0, i);
		switch (PQftype(r, i)) {
		case OID_BOOL:
			lua_pushboolean(L, v[0] == 't');
			break;
		case OID_INT2:
		case OID_INT4:
		case OID_INT8:
		case OID_OID:
			lua_pushinteger(L, (lua_Integer)strtoll(v, NULL, 10));
			break;
		case OID_FLOAT4:
		case OID_FLOAT8:
			lua_pushnumber(L, strtod(v, NULL));
			break;
		case OID_NUMERIC:
			/* "12" -> integer, "1.5" and "1e30" -> float; NaN and
			 * Infinity are Lua's too */
			if (!lua_stringtonumber(L, v))
				lua_pushnumber(L, strtod(v, NULL));
			break;
		case OID_JSON:
		case OID_JSONB:
			if (!push_json(L, c, v, len))
				continue;
			break;
		case OID_BYTEA: {
			size_t blen = 0;
			c->bytes =
			    PQunescapeBytea((const unsigned char *)v, &blen);
			if (!c->bytes)
				luaL_error(L, "%s: out of memory", c->what);
			lua_pushlstring(L, (const char *)c->bytes, blen);
			PQfreemem(c->bytes);
			c->bytes = NULL;
			break;
		}
		default:
			lua_pushlstring(L, v, len);
			break;
		}
		lua_setfield(L, -2, PQfname(r, i));
	}
}

/* Rows changed by a command, from its tag ("INSERT 0 3", "UPDATE 2"). */
static lua_Integer changes(PGresult *r)
{
	const char *tag = PQcmdStatus(r);
	static const char *const writes[] = {"INSERT ", "UPDATE ", "DELETE ",
					     "MERGE ", NULL};
	for (int i = 0; writes[i]; i++)
		if (strncmp(tag, writes[i], strlen(writes[i])) == 0)
			return (lua_Integer)strtoll(PQcmdTuples(r), NULL, 10);
	return 0;
}

/* Raises the call's failure on the connection (lost, or the deadline). */
static int raise_io(lua_State *L, struct call *c, enum pg_io io)
{
	char msg[400];
	c->running = false;
	hf_lua_pg_lost(c->p, io, msg, sizeof msg);
	return luaL_error(L, "%s: %s", c->what, msg);
}

/* Runs under lua_pcall: (call, args...) -> result. */
static int call_inner(lua_State *L)
{
	struct call *c = lua_touserdata(L, 1);
	struct hf_lua_pg *p = c->p;
	bind_args(L, c, 2, lua_gettop(L) - 1);
	char msg[400];
	if (hf_lua_pg_connect(p, msg, sizeof msg) != 0)
		return luaL_error(L, "%s: %s", c->what, msg);
	p->used = true;
	int ok;
	if (c->nparams == 0 && c->sql.nstatements > 1)
		ok = PQsendQuery(p->conn, c->sql.text);
	else
		ok = PQsendQueryParams(p->conn, c->sql.text, c->nparams,
				       c->types, c->values, c->lengths,
				       c->formats, 0);
	if (!ok)
		return raise_io(L, c, IO_LOST);
	c->running = true;
	PQsetSingleRowMode(p->conn);
	enum pg_io io = hf_lua_pg_flush(p);
	if (io != IO_OK)
		return raise_io(L, c, io);
	lua_Integer total = 0, n = 0;
	if (c->mode == MODE_QUERY) {
		lua_newtable(L);
		hf_lua_mark_array(L, -1);
	}
	for (;;) {
		io = hf_lua_pg_next_result(p, &c->res);
		if (io != IO_OK)
			return raise_io(L, c, io);
		if (!c->res)
			break;
		switch (PQresultStatus(c->res)) {
		case PGRES_SINGLE_TUPLE:
			if (c->error[0] || c->mode == MODE_EXEC ||
			    (c->mode == MODE_ONE && n > 0))
				break;
			push_row(L, c);
			if (c->mode == MODE_QUERY)
				lua_rawseti(L, -2, ++n);
			else
				n++;
			break;
		case PGRES_TUPLES_OK:
		case PGRES_COMMAND_OK:
			total += changes(c->res);
			break;
		case PGRES_FATAL_ERROR:
			if (!c->error[0]) {
				char m[400];
				hf_lua_pg_flatten(
				    PQresultErrorField(c->res,
						       PG_DIAG_MESSAGE_PRIMARY),
				    m, sizeof m);
				const char *code = PQresultErrorField(
				    c->res, PG_DIAG_SQLSTATE);
				snprintf(c->error, sizeof c->error,
					 "%s (SQLSTATE %s)", m,
					 code ? code : "?");
			}
			break;
		case PGRES_COPY_IN:
		case PGRES_COPY_OUT:
		case PGRES_COPY_BOTH:
			PQclear(c->res);
			c->res = NULL;
			c->running = false;
			hf_lua_pg_drop(p);
			return luaL_error(L, "%s: COPY is not allowed",
					  c->what);
		default:
			break;
		}
		PQclear(c->res);
		c->res = NULL;
	}
	c->running = false;
	if (c->error[0])
		return luaL_error(L, "%s: %s", c->what, c->error);
	if (c->mode == MODE_EXEC)
		lua_pushinteger(L, total);
	else if (c->mode == MODE_ONE && n == 0)
		lua_pushnil(L);
	return 1;
}

static struct hf_lua_pg *self(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

static int run(lua_State *L, const char *what, enum mode mode)
{
	struct hf_lua_pg *p = self(L);
	size_t len;
	const char *sql = luaL_checklstring(L, 1, &len);
	int nargs = lua_gettop(L) - 1;
	luaL_checkstack(L, nargs + 8, "too many parameters");
	struct call c = {.p = p, .what = what, .mode = mode};
	/* Rows are pushed while the statement runs; no Lua a step writes runs
	 * then (no __gc, and errors stop at our pcall), but should some, it
	 * must not send on the busy connection. */
	if (p->busy)
		return luaL_error(L, "%s: called while another db.* call runs",
				  what);
	if ((int64_t)len > p->max_value)
		too_big(L, &c, "SQL statement");
	if (hf_pg_sql_translate(sql, len, &c.sql) != 0)
		return luaL_error(L, "%s: %s", what, c.sql.error);
	const char *refuse = NULL;
	if (c.sql.nstatements == 0)
		refuse = "no SQL statement given";
	else if (mode == MODE_EXEC && nargs > 0 && c.sql.nstatements > 1)
		refuse = "parameters cannot be used with several statements";
	else if (mode != MODE_EXEC && c.sql.nstatements > 1)
		refuse = "takes a single statement";
	else if (p->tx_depth > 0 && (!p->conn || p->gen != p->tx_gen))
		refuse = "the connection to PostgreSQL was lost inside db.tx "
			 "(its transaction was rolled back)";
	if (refuse) {
		hf_pg_sql_release(&c.sql);
		return luaL_error(L, "%s: %s", what, refuse);
	}
	if (!p->used)
		hf_lua_pg_settle(p);
	lua_pushcfunction(L, call_inner);
	lua_pushlightuserdata(L, &c);
	for (int i = 2; i <= nargs + 1; i++)
		lua_pushvalue(L, i);
	p->busy = true;
	int status = lua_pcall(L, nargs + 1, 1, 0);
	p->busy = false;
	release_call(&c);
	/* Lua raised while rows were coming (memory, a row too big): read the
	 * rest, so the connection is ready for the next call. */
	if (c.running && p->conn) {
		p->limit = hf_lua_pg_grace(p);
		if (hf_lua_pg_drain(p) != IO_OK)
			hf_lua_pg_drop(p);
		p->limit = p->deadline;
	}
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

/* ---- db.tx ---- */

static void rollback(struct hf_lua_pg *p, int depth)
{
	char sql[96], msg[256];
	if (!p->conn || p->gen != p->tx_gen)
		return;
	p->limit = hf_lua_pg_grace(p);
	if (depth == 0)
		snprintf(sql, sizeof sql, "ROLLBACK");
	else
		snprintf(sql, sizeof sql,
			 "ROLLBACK TO SAVEPOINT hf_tx_%d; RELEASE SAVEPOINT "
			 "hf_tx_%d",
			 depth, depth);
	if (hf_lua_pg_control(p, sql, NULL, 0, msg, sizeof msg) != 0)
		hf_lua_pg_drop(p);
	p->limit = p->deadline;
}

static int l_tx(lua_State *L)
{
	struct hf_lua_pg *p = self(L);
	char sql[64], msg[400], tag[64];
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_settop(L, 1);
	if (p->busy)
		return luaL_error(L,
				  "db.tx: called while another db.* call runs");
	int depth = p->tx_depth;
	if (depth == 0) {
		if (!p->used)
			hf_lua_pg_settle(p);
		if (hf_lua_pg_connect(p, msg, sizeof msg) != 0)
			return luaL_error(L, "db.tx: %s", msg);
		p->used = true;
		p->tx_gen = p->gen;
		snprintf(sql, sizeof sql, "BEGIN");
	} else {
		if (!p->conn || p->gen != p->tx_gen)
			return luaL_error(L,
					  "db.tx: the connection to PostgreSQL "
					  "was lost inside db.tx (its "
					  "transaction was rolled back)");
		snprintf(sql, sizeof sql, "SAVEPOINT hf_tx_%d", depth);
	}
	if (hf_lua_pg_control(p, sql, NULL, 0, msg, sizeof msg) != 0)
		return luaL_error(L, "db.tx: %s", msg);
	p->tx_depth = depth + 1;
	lua_pushvalue(L, 1);
	int status = lua_pcall(L, 0, LUA_MULTRET, 0);
	p->tx_depth = depth;
	if (status != LUA_OK) {
		rollback(p, depth);
		return lua_error(L);
	}
	if (!p->conn || p->gen != p->tx_gen)
		return luaL_error(L, "db.tx: the connection to PostgreSQL was "
				     "lost inside db.tx (its transaction was "
				     "rolled back)");
	if (depth == 0)
		snprintf(sql, sizeof sql, "COMMIT");
	else
		snprintf(sql, sizeof sql, "RELEASE SAVEPOINT hf_tx_%d", depth);
	if (hf_lua_pg_control(p, sql, tag, sizeof tag, msg, sizeof msg) != 0) {
		rollback(p, depth);
		return luaL_error(L, "db.tx: cannot commit: %s", msg);
	}
	/* COMMIT of a transaction in which a statement failed (its error
	 * caught with pcall) rolls back, and says so in its tag only. */
	if (depth == 0 && strcmp(tag, "ROLLBACK") == 0)
		return luaL_error(L, "db.tx: cannot commit: a statement in the "
				     "transaction failed, so it was rolled "
				     "back");
	return lua_gettop(L) - 1;
}

static const luaL_Reg db_funcs[] = {
    {"exec", l_exec}, {"query", l_query}, {"one", l_one},
    {"tx", l_tx},     {NULL, NULL},
};

void hf_lua_pg_push(lua_State *L, struct hf_lua_pg *p)
{
	luaL_newlibtable(L, db_funcs);
	lua_pushlightuserdata(L, p);
	luaL_setfuncs(L, db_funcs, 1);
}
