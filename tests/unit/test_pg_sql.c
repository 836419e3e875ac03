/* test_pg_sql.c - a step's SQL made ready for PostgreSQL (lua_db_pg_sql.c):
 * `?` placeholders to `$n` everywhere but in strings, quoted identifiers,
 * comments and dollar-quoted bodies; `?N`, `$N` and `??`; statements counted;
 * and the statements and calls a step may not run refused. */
#include "hf_pg_sql.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* The translation of sql, or the refusal as "!MESSAGE" (caller frees). */
static char *tr(const char *sql, int *nparams, int *nstatements)
{
	struct hf_pg_sql s;
	if (hf_pg_sql_translate(sql, strlen(sql), &s) != 0) {
		size_t n = strlen(s.error) + 2;
		char *e = malloc(n);
		e[0] = '!';
		memcpy(e + 1, s.error, n - 1);
		return e;
	}
	if (nparams)
		*nparams = s.nparams;
	if (nstatements)
		*nstatements = s.nstatements;
	return s.text;
}

#define TR(in, want, np, ns)                                                   \
	do {                                                                   \
		int tr_np = -1, tr_ns = -1;                                    \
		char *tr_out = tr(in, &tr_np, &tr_ns);                         \
		CHECK_STR(tr_out, want);                                       \
		CHECK(tr_np == (np));                                          \
		CHECK(tr_ns == (ns));                                          \
		free(tr_out);                                                  \
	} while (0)

/* sql is refused with a message containing part. */
#define REFUSED(sql, part)                                                     \
	do {                                                                   \
		char *rf_out = tr(sql, NULL, NULL);                            \
		CHECK(rf_out[0] == '!' && strstr(rf_out, part) != NULL);       \
		if (!(rf_out[0] == '!' && strstr(rf_out, part)))               \
			fprintf(stderr, "  for %s: %s\n", sql, rf_out);        \
		free(rf_out);                                                  \
	} while (0)

#define ALLOWED(sql)                                                           \
	do {                                                                   \
		char *al_out = tr(sql, NULL, NULL);                            \
		CHECK(al_out[0] != '!');                                       \
		if (al_out[0] == '!')                                          \
			fprintf(stderr, "  for %s: %s\n", sql, al_out);        \
		free(al_out);                                                  \
	} while (0)

static void test_placeholders(void)
{
	TR("SELECT ?", "SELECT $1", 1, 1);
	TR("SELECT ?, ?, ?", "SELECT $1, $2, $3", 3, 1);
	TR("SELECT ?2, ?1, ?", "SELECT $2, $1, $3", 3, 1);
	TR("SELECT ?1 + ?1", "SELECT $1 + $1", 1, 1);
	TR("SELECT $1, $2", "SELECT $1, $2", 2, 1);
	TR("SELECT x FROM t WHERE j ?? 'k' AND n = ?",
	   "SELECT x FROM t WHERE j ? 'k' AND n = $1", 1, 1);
	TR("SELECT j ??| array['a']", "SELECT j ?| array['a']", 0, 1);
	TR("SELECT 1", "SELECT 1", 0, 1);
	TR("", "", 0, 0);
	TR("  -- only a comment\n /* and ? this */ ;",
	   "  -- only a comment\n /* and ? this */ ;", 0, 0);
}

static void test_not_placeholders(void)
{
	TR("SELECT '?', ?", "SELECT '?', $1", 1, 1);
	TR("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", 1, 1);
	TR("SELECT E'\\' ?', ?", "SELECT E'\\' ?', $1", 1, 1);
	TR("SELECT e'\\\\', ?", "SELECT e'\\\\', $1", 1, 1);
	TR("SELECT \"a?\" FROM t WHERE x = ?",
	   "SELECT \"a?\" FROM t WHERE x = $1", 1, 1);
	TR("SELECT \"a\"\"?\", ?", "SELECT \"a\"\"?\", $1", 1, 1);
	TR("SELECT 1 -- ?\n, ?", "SELECT 1 -- ?\n, $1", 1, 1);
	TR("SELECT /* ? /* ? */ ? */ ?", "SELECT /* ? /* ? */ ? */ $1", 1, 1);
	TR("SELECT $$?$$, ?", "SELECT $$?$$, $1", 1, 1);
	TR("SELECT $a$ ? $b$ ? $b$ ? $a$, ?",
	   "SELECT $a$ ? $b$ ? $b$ ? $a$, $1", 1, 1);
	TR("DO $body$ BEGIN PERFORM 1; END $body$",
	   "DO $body$ BEGIN PERFORM 1; END $body$", 0, 1);
	/* '$' inside an identifier is no dollar quote */
	TR("SELECT a$b$ FROM t WHERE x = ?", "SELECT a$b$ FROM t WHERE x = $1",
	   1, 1);
	/* the quote of E'…' only after a lone E */
	TR("SELECT me'?' ", "SELECT me'?' ", 0, 1);
	/* unterminated: copied to the end, for the server to report */
	TR("SELECT '?", "SELECT '?", 0, 1);
	TR("SELECT $x$ ?", "SELECT $x$ ?", 0, 1);
	TR("SELECT /* ?", "SELECT /* ?", 0, 1);
}

static void test_statements(void)
{
	TR("CREATE TABLE a(x int); INSERT INTO a VALUES (1);",
	   "CREATE TABLE a(x int); INSERT INTO a VALUES (1);", 0, 2);
	TR("SELECT ';'; SELECT \";\"", "SELECT ';'; SELECT \";\"", 0, 2);
	TR(";;;", ";;;", 0, 0);
}

static void test_errors(void)
{
	REFUSED("SELECT ?0", "out of range");
	REFUSED("SELECT ?65536", "out of range");
	REFUSED("SELECT $99999999999", "out of range");
	struct hf_pg_sql s;
	CHECK(hf_pg_sql_translate("SELECT 1\0", 9, &s) == -1 &&
	      strstr(s.error, "NUL"));
	CHECK(s.text == NULL);
}

static void test_refused(void)
{
	REFUSED("COPY t FROM PROGRAM 'id'", "COPY is not allowed");
	REFUSED("copy t to stdout", "COPY is not allowed");
	REFUSED("SELECT 1; COPY t FROM '/etc/passwd'", "COPY");
	REFUSED("  /* x */ COPY t FROM STDIN", "COPY");
	REFUSED("ALTER SYSTEM SET work_mem = '1GB'", "ALTER SYSTEM");
	REFUSED("alter role me set statement_timeout = 0", "ALTER ROLE");
	REFUSED("ALTER USER me SET search_path = x", "ALTER USER");
	REFUSED("ALTER DATABASE d SET x = 1", "ALTER DATABASE");
	REFUSED("SET ROLE postgres", "SET ROLE");
	REFUSED("set local role postgres", "SET ROLE");
	REFUSED("SET SESSION ROLE postgres", "SET ROLE");
	REFUSED("SET SESSION AUTHORIZATION postgres", "SESSION AUTHORIZATION");
	REFUSED("SET role = 'x'", "SET ROLE");
	REFUSED("SET session_authorization TO x", "SET ROLE");
	REFUSED("LOAD 'auto_explain'", "LOAD");
	REFUSED("LISTEN chan", "LISTEN");
	REFUSED("SELECT pg_read_file('/etc/passwd')", "pg_read_file()");
	REFUSED("SELECT PG_READ_BINARY_FILE ('x')", "pg_read_binary_file()");
	REFUSED("SELECT pg_catalog.pg_ls_dir('.')", "pg_ls_dir()");
	REFUSED("SELECT \"pg_read_file\"('x')", "pg_read_file()");
	REFUSED("SELECT lo_import('/etc/passwd')", "lo_import()");
	REFUSED("SELECT lo_export(1, '/tmp/x')", "lo_export()");
	REFUSED("SELECT pg_reload_conf()", "pg_reload_conf()");
	REFUSED("SELECT pg_terminate_backend(1)", "pg_terminate_backend()");
	REFUSED("SELECT * FROM dblink('host=x', 'select 1') AS t(a int)",
		"dblink()");
	REFUSED("SELECT pg_read_file /* c */ ('x')", "pg_read_file()");
	REFUSED("SELECT set_config('role', 'postgres', false)",
		"set_config('role'");
	REFUSED("SELECT set_config( 'Session_Authorization', 'x', true)",
		"set_config('role'");
}

static void test_allowed(void)
{
	ALLOWED("SELECT 'COPY t FROM PROGRAM', 'pg_read_file(1)'");
	ALLOWED("SELECT 1 -- COPY\n");
	ALLOWED("CREATE TABLE copy(x int)"); /* a word, not the statement */
	ALLOWED("UPDATE t SET role = 'admin' WHERE id = ?");
	ALLOWED("INSERT INTO t(x) VALUES (1) ON CONFLICT (x) DO UPDATE SET "
		"role = excluded.role");
	ALLOWED("SET LOCAL statement_timeout = '1s'");
	ALLOWED("SET search_path TO public");
	ALLOWED("RESET ROLE");
	ALLOWED("SELECT pg_read_file FROM t"); /* a column, not a call */
	ALLOWED("SELECT set_config('app.user', ?, true)");
	ALLOWED("SELECT pg_advisory_xact_lock(1)");
	ALLOWED("ALTER TABLE t ADD COLUMN role text");
	ALLOWED("SELECT 1; SELECT 2");
	ALLOWED("NOTIFY chan, 'x'");
}

int main(void)
{
	test_placeholders();
	test_not_placeholders();
	test_statements();
	test_errors();
	test_refused();
	test_allowed();
	return tap_done();
}
