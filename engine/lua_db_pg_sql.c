/* lua_db_pg_sql.c - a step's SQL made ready for PostgreSQL: `?` placeholders
 * to `$n`, and the statements a step may not run refused (hf_pg_sql.h).
 *
 * One pass over the bytes, copying them to the output. Strings, quoted
 * identifiers, comments and dollar-quoted bodies are copied whole (nothing in
 * them is a placeholder, a keyword or a function name); an unterminated one
 * runs to the end, where PostgreSQL reports the syntax error. Words outside
 * them are looked at twice: the first four words of each statement (split at
 * ';') decide whether the statement is refused, and a word followed by '('
 * is checked against the functions that reach the server's files, processes
 * or settings.
 *
 * This is a net for mistakes and for the obvious, not the boundary: a
 * function body or a DO block can still call anything the role may call
 * (docs/reference.md: the --data role should be unprivileged).
 *
 * Owns: nothing beyond the translated text it returns. Threading: pure.
 * Neighbours: lua_db_pg.c runs every db.* statement through it;
 * tests/fuzz/fuzz_pg_sql.c fuzzes it; tests/unit/test_pg_sql.c tests it. */
#include "hf_pg_sql.h"

#include "hf_util.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WORD_MAX 40 /* longer words are kept cut: no keyword is that long */
#define STMT_WORDS 4

struct scan {
	const char *s;
	size_t len, i;
	struct hf_buf out;
	int maxparam;
	int nstatements;
	bool stmt_started;		  /* the statement has a token */
	int nwords;			  /* words of the statement seen */
	char words[STMT_WORDS][WORD_MAX]; /* upper case; "" for a quoted one */
	char *error;			  /* out->error */
	size_t errsize;
};

static bool ident_start(unsigned char c)
{
	return isalpha(c) || c == '_' || c >= 0x80;
}

static bool ident_char(unsigned char c)
{
	return ident_start(c) || isdigit(c) || c == '$';
}

static void emit(struct scan *sc, const char *p, size_t n)
{
	if (hf_buf_append(&sc->out, p, n) != 0)
		abort(); /* no limit is set: cannot happen */
}

/* Index past a -- comment or block comment starting at i (nested, as
 * PostgreSQL's). */
static size_t skip_comment(const struct scan *sc, size_t i)
{
	const char *s = sc->s;
	size_t n = sc->len;
	if (s[i] == '-') {
		while (i < n && s[i] != '\n')
			i++;
		return i;
	}
	int depth = 0;
	while (i < n) {
		if (i + 1 < n && s[i] == '/' && s[i + 1] == '*') {
			depth++;
			i += 2;
		} else if (i + 1 < n && s[i] == '*' && s[i + 1] == '/') {
			i += 2;
			if (--depth == 0)
				return i;
		} else {
			i++;
		}
	}
	return n;
}

static bool comment_at(const struct scan *sc, size_t i)
{
	return i + 1 < sc->len && ((sc->s[i] == '-' && sc->s[i + 1] == '-') ||
				   (sc->s[i] == '/' && sc->s[i + 1] == '*'));
}

/* The next index at or after i that is neither space nor comment. */
static size_t next_token(const struct scan *sc, size_t i)
{
	while (i < sc->len) {
		if (isspace((unsigned char)sc->s[i]))
			i++;
		else if (comment_at(sc, i))
			i = skip_comment(sc, i);
		else
			break;
	}
	return i;
}

/* Index past a quoted run starting at the quote at i: '…' or "…" with the
 * quote doubled inside, and with backslash escapes too when backslash. */
static size_t skip_quoted(const struct scan *sc, size_t i, bool backslash)
{
	char q = sc->s[i++];
	while (i < sc->len) {
		char c = sc->s[i];
		if (backslash && c == '\\' && i + 1 < sc->len) {
			i += 2;
		} else if (c == q) {
			if (i + 1 < sc->len && sc->s[i + 1] == q)
				i += 2;
			else
				return i + 1;
		} else {
			i++;
		}
	}
	return sc->len;
}

/* The length of a dollar-quote tag ($$ or $name$) at i, or 0. */
static size_t dollar_tag(const struct scan *sc, size_t i)
{
	size_t j = i + 1;
	if (j < sc->len && sc->s[j] == '$')
		return 2;
	if (j >= sc->len || !ident_start((unsigned char)sc->s[j]))
		return 0;
	while (j < sc->len && ident_char((unsigned char)sc->s[j]) &&
	       sc->s[j] != '$')
		j++;
	return j < sc->len && sc->s[j] == '$' ? j + 1 - i : 0;
}

/* Index past the body closed by the tag of length taglen at i. */
static size_t skip_dollar(const struct scan *sc, size_t i, size_t taglen)
{
	const char *tag = sc->s + i;
	for (size_t j = i + taglen; j + taglen <= sc->len; j++)
		if (sc->s[j] == '$' && memcmp(sc->s + j, tag, taglen) == 0)
			return j + taglen;
	return sc->len;
}

/* "WHAT is not allowed (WHY)" */
static int refuse(struct scan *sc, const char *what, const char *why)
{
	snprintf(sc->error, sc->errsize, "%s is not allowed (%s)", what, why);
	return -1;
}

/* ---- statements ---- */

static bool word_is(const struct scan *sc, int k, const char *kw)
{
	return k < sc->nwords && strcmp(sc->words[k], kw) == 0;
}

/* SET [SESSION | LOCAL] ROLE / SESSION AUTHORIZATION, or the same settings
 * by name (SET role = …). k: the word after SET. */
static bool sets_identity(const struct scan *sc, int k)
{
	if (word_is(sc, k, "ROLE") || word_is(sc, k, "SESSION_AUTHORIZATION"))
		return true;
	if (word_is(sc, k, "SESSION") && word_is(sc, k + 1, "AUTHORIZATION"))
		return true;
	return false;
}

/* Checks the statement's words so far. */
static int check_statement(struct scan *sc)
{
	static const char *const alter[] = {"SYSTEM", "ROLE",	  "USER",
					    "GROUP",  "DATABASE", NULL};
	if (word_is(sc, 0, "COPY"))
		return refuse(sc, "COPY",
			      "it reaches files, programs or the connection's "
			      "copy protocol; use INSERT and SELECT");
	if (word_is(sc, 0, "LOAD"))
		return refuse(sc, "LOAD", "it loads a library into the server");
	if (word_is(sc, 0, "LISTEN"))
		return refuse(sc, "LISTEN",
			      "nothing reads notifications on a step's "
			      "connection");
	if (word_is(sc, 0, "ALTER"))
		for (int i = 0; alter[i]; i++)
			if (word_is(sc, 1, alter[i])) {
				char what[32];
				snprintf(what, sizeof what, "ALTER %s",
					 alter[i]);
				return refuse(sc, what,
					      "it changes the server or later "
					      "connections");
			}
	if (word_is(sc, 0, "SET") &&
	    (sets_identity(sc, 1) ||
	     ((word_is(sc, 1, "SESSION") || word_is(sc, 1, "LOCAL")) &&
	      sets_identity(sc, 2))))
		return refuse(sc, "SET ROLE / SESSION AUTHORIZATION",
			      "a step runs as the --data role");
	return 0;
}

static int add_word(struct scan *sc, const char *w, size_t n, bool quoted)
{
	sc->stmt_started = true;
	if (sc->nwords >= STMT_WORDS)
		return 0;
	char *dst = sc->words[sc->nwords++];
	size_t k = 0;
	if (!quoted)
		for (; k < n && k + 1 < WORD_MAX; k++)
			dst[k] = (char)toupper((unsigned char)w[k]);
	dst[k] = '\0';
	return check_statement(sc);
}

static void end_statement(struct scan *sc)
{
	if (sc->stmt_started)
		sc->nstatements++;
	sc->stmt_started = false;
	sc->nwords = 0;
}

/* ---- functions ---- */

/* Functions that reach the server's files, processes or settings rather than
 * data (most need superuser or a pg_* role; refused whatever the role). */
static const char *const denied_functions[] = {
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_logdir_ls",
    "lo_import",
    "lo_export",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_drop_replication_slot",
    NULL,
};

/* Families refused by prefix: directory listings, other databases. */
static const char *const denied_prefixes[] = {"pg_ls_", "dblink", NULL};

static bool denied_name(const char *name)
{
	for (int i = 0; denied_functions[i]; i++)
		if (strcmp(name, denied_functions[i]) == 0)
			return true;
	for (int i = 0; denied_prefixes[i]; i++)
		if (strncmp(name, denied_prefixes[i],
			    strlen(denied_prefixes[i])) == 0)
			return true;
	return false;
}

/* set_config('role' | 'session_authorization', …): the call's first argument
 * is the string literal at i (just past the '('). */
static bool sets_identity_by_call(const struct scan *sc, size_t i)
{
	i = next_token(sc, i);
	if (i >= sc->len || sc->s[i] != '\'')
		return false;
	size_t end = skip_quoted(sc, i, false);
	size_t n = end > i + 1 ? end - i - 2 : 0;
	const char *v = sc->s + i + 1;
	return (n == 4 && strncasecmp(v, "role", 4) == 0) ||
	       (n == 21 && strncasecmp(v, "session_authorization", 21) == 0);
}

/* A word (lower case if it was not quoted) that ends at i: refused when it is
 * called. */
static int check_call(struct scan *sc, const char *name, size_t i)
{
	size_t j = next_token(sc, i);
	if (j >= sc->len || sc->s[j] != '(')
		return 0;
	if (denied_name(name)) {
		char what[WORD_MAX + 2];
		snprintf(what, sizeof what, "%s()", name);
		return refuse(sc, what,
			      "it reaches the server's files, processes or "
			      "settings, not data");
	}
	if (strcmp(name, "set_config") == 0 && sets_identity_by_call(sc, j + 1))
		return refuse(sc, "set_config('role', …)",
			      "a step runs as the --data role");
	return 0;
}

/* ---- placeholders ---- */

/* Reads the decimal number at i (at most 9 digits matter); returns the index
 * past the digits. */
static size_t read_number(const struct scan *sc, size_t i, long *v)
{
	*v = 0;
	while (i < sc->len && isdigit((unsigned char)sc->s[i])) {
		if (*v < 100000000)
			*v = *v * 10 + (sc->s[i] - '0');
		i++;
	}
	return i;
}

static int use_param(struct scan *sc, long n)
{
	if (n < 1 || n > HF_PG_SQL_MAX_PARAMS) {
		snprintf(sc->error, sc->errsize,
			 "parameter number %ld out of range (1 to %d)", n,
			 HF_PG_SQL_MAX_PARAMS);
		return -1;
	}
	if (n > sc->maxparam)
		sc->maxparam = (int)n;
	return 0;
}

/* ---- the pass ---- */

/* One token at sc->i, copied to the output. Returns 0 or -1 (refused). */
static int step(struct scan *sc)
{
	const char *s = sc->s;
	size_t i = sc->i, n = sc->len;
	unsigned char c = (unsigned char)s[i];
	size_t end;
	if (isspace(c)) {
		end = i + 1;
	} else if (comment_at(sc, i)) {
		end = skip_comment(sc, i);
	} else if (c == ';') {
		end_statement(sc);
		end = i + 1;
	} else if (c == '\'') {
		/* E'…' is handled with its word below */
		sc->stmt_started = true;
		end = skip_quoted(sc, i, false);
	} else if (c == '"') {
		end = skip_quoted(sc, i, false);
		size_t len = end - i >= 2 ? end - i - 2 : 0;
		char name[WORD_MAX];
		snprintf(name, sizeof name, "%.*s", (int)len, s + i + 1);
		if (add_word(sc, "", 0, true) != 0 ||
		    (!memchr(s + i + 1, '"', len) && len < WORD_MAX &&
		     check_call(sc, name, end) != 0))
			return -1;
	} else if (c == '$' && i + 1 < n && isdigit((unsigned char)s[i + 1])) {
		long v;
		end = read_number(sc, i + 1, &v);
		sc->stmt_started = true;
		if (use_param(sc, v) != 0)
			return -1;
	} else if (c == '$' && dollar_tag(sc, i)) {
		sc->stmt_started = true;
		end = skip_dollar(sc, i, dollar_tag(sc, i));
	} else if (c == '?') {
		sc->stmt_started = true;
		if (i + 1 < n && s[i + 1] == '?') {
			emit(sc, "?", 1);
			sc->i = i + 2;
			return 0;
		}
		long v;
		end = read_number(sc, i + 1, &v);
		if (end == i + 1)
			v = (long)sc->maxparam + 1;
		if (use_param(sc, v) != 0)
			return -1;
		char num[16];
		int k = snprintf(num, sizeof num, "$%ld", v);
		emit(sc, num, (size_t)k);
		sc->i = end;
		return 0;
	} else if (ident_start(c)) {
		end = i;
		while (end < n && ident_char((unsigned char)s[end]))
			end++;
		size_t len = end - i;
		if (len == 1 && (c == 'E' || c == 'e') && end < n &&
		    s[end] == '\'') {
			/* an escape string: backslash escapes the quote */
			sc->stmt_started = true;
			end = skip_quoted(sc, end, true);
		} else {
			char name[WORD_MAX];
			size_t k = 0;
			for (; k < len && k + 1 < WORD_MAX; k++)
				name[k] =
				    (char)tolower((unsigned char)s[i + k]);
			name[k] = '\0';
			if (add_word(sc, s + i, len, false) != 0 ||
			    (len < WORD_MAX && check_call(sc, name, end) != 0))
				return -1;
		}
	} else if (isdigit(c)) {
		/* a number (1e5, 0x1F): never a word, a '$' after it is
		 * PostgreSQL's to reject */
		end = i;
		while (end < n && ident_char((unsigned char)s[end]))
			end++;
		sc->stmt_started = true;
	} else {
		sc->stmt_started = true;
		end = i + 1;
	}
	emit(sc, s + i, end - i);
	sc->i = end;
	return 0;
}

int hf_pg_sql_translate(const char *sql, size_t len, struct hf_pg_sql *out)
{
	memset(out, 0, sizeof *out);
	if (memchr(sql, '\0', len)) {
		snprintf(out->error, sizeof out->error,
			 "SQL text contains a NUL byte");
		return -1;
	}
	struct scan sc = {.s = sql, .len = len};
	sc.error = out->error;
	sc.errsize = sizeof out->error;
	emit(&sc, "", 0);
	while (sc.i < len)
		if (step(&sc) != 0) {
			hf_buf_release(&sc.out);
			return -1;
		}
	end_statement(&sc);
	out->text = sc.out.data;
	out->len = sc.out.len;
	out->nparams = sc.maxparam;
	out->nstatements = sc.nstatements;
	return 0;
}

void hf_pg_sql_release(struct hf_pg_sql *s)
{
	if (!s)
		return;
	free(s->text);
	s->text = NULL;
}
