/* hf_pg_sql.h - a step's SQL made ready for PostgreSQL (lua_db_pg_sql.c):
 * SQLite-style `?` placeholders become `$n`, and statements a step must not
 * run on the shared --data connection are refused. Pure: no libpq, no Lua, so
 * that a fuzz target and the unit tests can call it.
 *
 * The scanner knows PostgreSQL's lexical structure as far as placeholders need
 * it: '…' strings ('' inside), E'…' strings (backslash escapes too), "…"
 * quoted identifiers, -- comments and nested block comments, $tag$…$tag$
 * dollar quoting, and identifiers that contain '$'. Outside those:
 *
 *   ?      the next parameter (one more than the highest so far, as SQLite)
 *   ?N     parameter N (1..HF_PG_SQL_MAX_PARAMS)
 *   ??     a literal '?' (PostgreSQL's jsonb operators ?, ?| and ?& are ??, ??|
 *          and ??&)
 *   $N     left as it is, and counted as parameter N
 *
 * Everything else is copied byte for byte. */
#ifndef HF_PG_SQL_H
#define HF_PG_SQL_H

#include <stddef.h>

/* PostgreSQL's protocol counts parameters in 16 bits. */
#define HF_PG_SQL_MAX_PARAMS 65535

struct hf_pg_sql {
	char *text;	 /* the translated SQL, NUL-terminated (malloc) */
	size_t len;	 /* its length */
	int nparams;	 /* the highest parameter number used */
	int nstatements; /* statements with more than spaces and comments */
	char error[224]; /* why the SQL was refused */
};

/* Translates sql[0..len). Returns 0 with out filled in, or -1 with
 * out->error set and out->text NULL: a NUL byte, a parameter number out of
 * range, or a statement a step may not run (COPY, ALTER SYSTEM / ROLE / USER /
 * GROUP / DATABASE, SET ROLE, SET SESSION AUTHORIZATION, LOAD, LISTEN, and
 * calls of server-side file, process and setting functions such as
 * pg_read_file(), lo_import(), pg_reload_conf(), dblink(), or
 * set_config('role', …)). */
int hf_pg_sql_translate(const char *sql, size_t len, struct hf_pg_sql *out);
void hf_pg_sql_release(struct hf_pg_sql *s);

#endif
