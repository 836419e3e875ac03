/* store_pg_sql.c - the PostgreSQL backend's statements: hf_pg_exec and its
 * friends (parameters bound from a type string, text mended to valid UTF-8,
 * statements prepared once on the writer's connection, a pooled connection
 * the server dropped replaced once), column helpers, and the binary arrays
 * that the multi-row inserts send to unnest().
 *
 * Threading: any thread, on a connection it holds (the writer's only by the
 * thread applying writes).
 *
 * Neighbours: store_pg.c (the connections), store_pg.h. */
#include "store_pg.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdint.h>
#include <string.h>

/* --- statements --- */

bool hf_pg_ok(const PGresult *r)
{
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* s with each byte that is not part of valid UTF-8 as U+FFFD (PostgreSQL
 * refuses such text; SQLite stores it), or NULL when s is valid. */
static char *mend_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;
	while (*p && (n = hf_utf8_len(p, SIZE_MAX, NULL)) > 0)
		p += n;
	if (!*p)
		return NULL;
	struct hf_buf b = {0};
	p = (const unsigned char *)s;
	while (*p) {
		n = hf_utf8_len(p, SIZE_MAX, NULL);
		if (n) {
			hf_buf_append(&b, p, n);
			p += n;
		} else {
			hf_buf_append(&b, "\xef\xbf\xbd", 3);
			p++;
		}
	}
	hf_buf_append(&b, "", 1);
	return b.data;
}

#define MAX_PARAMS 24

/* The binary array's header (ndim 1, or 0 when empty), filled in before
 * it is sent: returns its length. */
static size_t arr_finish(struct hf_pg_arr *a)
{
	uint32_t h[5] = {htonl(a->n ? 1 : 0), htonl(a->nulls ? 1 : 0),
			 htonl(a->oid), htonl((uint32_t)a->n), htonl(1)};
	memcpy(a->buf, h, sizeof h);
	if (!a->n)
		return 12;
	return a->len;
}

/* The prepared statement's name for sql on q's writer connection, prepared
 * now when it was not; NULL: not prepared (the table is full). */
static const char *prepared_name(struct hf_pg_store *q, const char *sql,
				 int nparams, char name[16])
{
	for (int i = 0; i < q->nprepared; i++)
		if (q->prepared[i] == sql) {
			snprintf(name, 16, "hf%d", i);
			return name;
		}
	if (q->nprepared == HF_PG_PREPARED)
		return NULL;
	snprintf(name, 16, "hf%d", q->nprepared);
	PGresult *r = PQprepare(q->wconn, name, sql, nparams, NULL);
	bool ok = hf_pg_ok(r);
	PQclear(r);
	if (!ok)
		return NULL;
	q->prepared[q->nprepared++] = sql;
	return name;
}

PGresult *hf_pg_vexec(struct hf_pg_store *q, PGconn *c, const char *sql,
		      const char *types, va_list ap)
{
	if (!c)
		return NULL;
	int n = (int)strlen(types);
	assert(n <= MAX_PARAMS);
	const char *vals[MAX_PARAMS];
	int lens[MAX_PARAMS], fmts[MAX_PARAMS];
	char nums[MAX_PARAMS][24];
	char *owned[MAX_PARAMS];
	for (int i = 0; i < n; i++) {
		owned[i] = NULL;
		lens[i] = 0;
		fmts[i] = 0;
		int64_t v;
		switch (types[i]) {
		case 't':
			vals[i] = va_arg(ap, const char *);
			if (vals[i] && (owned[i] = mend_utf8(vals[i])))
				vals[i] = owned[i];
			break;
		case 'i':
			snprintf(nums[i], sizeof nums[i], "%d",
				 va_arg(ap, int));
			vals[i] = nums[i];
			break;
		case 'I':
		case 'J':
			v = va_arg(ap, int64_t);
			snprintf(nums[i], sizeof nums[i], "%lld", (long long)v);
			vals[i] = types[i] == 'J' && v == 0 ? NULL : nums[i];
			break;
		case 'b':
			vals[i] = va_arg(ap, const char *);
			lens[i] = (int)va_arg(ap, size_t);
			if (!vals[i])
				vals[i] = "";
			fmts[i] = 1;
			break;
		case 'a': {
			struct hf_pg_arr *a = va_arg(ap, struct hf_pg_arr *);
			lens[i] = (int)arr_finish(a);
			vals[i] = a->buf;
			fmts[i] = 1;
			break;
		}
		default:
			assert(!"hf_pg_exec: a type is t, i, I, J, b or a");
		}
	}
	char name[16];
	const char *stmt =
	    q && c == q->wconn ? prepared_name(q, sql, n, name) : NULL;
	PGresult *r = stmt ? PQexecPrepared(c, stmt, n, vals, lens, fmts, 0)
			   : PQexecParams(c, sql, n, NULL, vals, lens, fmts, 0);
	for (int i = 0; i < n; i++)
		free(owned[i]);
	hf_pg_note_state(q, c, r);
	return r;
}

PGresult *hf_pg_exec(struct hf_pg_store *q, PGconn *c, const char *sql,
		     const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	PGresult *r = hf_pg_vexec(q, c, sql, types, ap);
	va_end(ap);
	return r;
}

int hf_pg_run(struct hf_pg_store *q, PGconn *c, const char *sql,
	      const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	PGresult *r = hf_pg_vexec(q, c, sql, types, ap);
	va_end(ap);
	int rc = hf_pg_ok(r) ? (int)strtol(PQcmdTuples(r), NULL, 10) : -1;
	if (r && rc < 0 && c && PQstatus(c) == CONNECTION_OK)
		hf_log(HF_LOG_DEBUG, "state database: %s",
		       PQresultErrorMessage(r));
	PQclear(r);
	return rc;
}

int hf_pg_veach(struct hf_pg_store *q, PGconn *c,
		int (*row)(PGconn *c, PGresult *r, int i, void *arg), void *arg,
		const char *sql, const char *types, va_list ap)
{
	PGconn *conn = c ? c : hf_pg_reader_take(q);
	va_list again;
	va_copy(again, ap);
	PGresult *r = hf_pg_vexec(q, conn, sql, types, ap);
	if (!c && conn && !hf_pg_ok(r) && PQstatus(conn) == CONNECTION_BAD) {
		/* A pooled connection the server dropped: once more on a new
		 * one. */
		PQclear(r);
		PQfinish(conn);
		conn = hf_pg_connect(q, NULL);
		r = hf_pg_vexec(q, conn, sql, types, again);
	}
	va_end(again);
	int n = -1;
	if (hf_pg_ok(r)) {
		n = 0;
		int rows = PQntuples(r);
		while (n < rows) {
			if (row(conn, r, n++, arg) != 0)
				break;
		}
	}
	PQclear(r);
	if (!c)
		hf_pg_reader_give(q, conn);
	return n;
}

int hf_pg_each(struct hf_pg_store *q, PGconn *c,
	       int (*row)(PGconn *c, PGresult *r, int i, void *arg), void *arg,
	       const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	int n = hf_pg_veach(q, c, row, arg, sql, types, ap);
	va_end(ap);
	return n;
}

json_t *hf_pg_json(const PGresult *r, int i, int col)
{
	const char *text = pg_text(r, i, col);
	if (!text)
		return json_null();
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
	return v ? v : json_string(text);
}

unsigned char *hf_pg_bytes(const PGresult *r, int i, int col, size_t *len)
{
	const char *text = pg_text(r, i, col);
	unsigned char *raw =
	    text ? PQunescapeBytea((const unsigned char *)text, len) : NULL;
	if (!raw) {
		*len = 0;
		return (unsigned char *)hf_xstrdup("");
	}
	/* libpq's memory, freed with PQfreemem: copied, NUL-terminated. */
	unsigned char *out = hf_xmalloc(*len + 1);
	memcpy(out, raw, *len);
	out[*len] = '\0';
	PQfreemem(raw);
	return out;
}

/* --- binary arrays --- */

void hf_pg_arr_init(struct hf_pg_arr *a, unsigned oid)
{
	*a = (struct hf_pg_arr){.oid = oid};
	hf_pg_arr_reset(a);
}

void hf_pg_arr_reset(struct hf_pg_arr *a)
{
	if (a->cap < 20) {
		a->cap = 256;
		a->buf = hf_xrealloc(a->buf, a->cap);
	}
	a->len = 20; /* the header, filled in by arr_finish */
	a->n = 0;
	a->nulls = false;
}

void hf_pg_arr_free(struct hf_pg_arr *a)
{
	free(a->buf);
	*a = (struct hf_pg_arr){0};
}

static void arr_put(struct hf_pg_arr *a, const void *p, int32_t n)
{
	size_t need = a->len + 4 + (n > 0 ? (size_t)n : 0);
	if (need > a->cap) {
		while (a->cap < need)
			a->cap *= 2;
		a->buf = hf_xrealloc(a->buf, a->cap);
	}
	uint32_t len = htonl((uint32_t)n);
	memcpy(a->buf + a->len, &len, 4);
	a->len += 4;
	if (n > 0) {
		memcpy(a->buf + a->len, p, (size_t)n);
		a->len += (size_t)n;
	}
	if (n < 0)
		a->nulls = true;
	a->n++;
}

void hf_pg_arr_text(struct hf_pg_arr *a, const char *s)
{
	if (!s) {
		arr_put(a, NULL, -1);
		return;
	}
	char *mended = mend_utf8(s);
	const char *t = mended ? mended : s;
	arr_put(a, t, (int32_t)strlen(t));
	free(mended);
}

void hf_pg_arr_bytes(struct hf_pg_arr *a, const void *p, size_t n)
{
	arr_put(a, p ? p : "", (int32_t)n);
}

void hf_pg_arr_int8(struct hf_pg_arr *a, int64_t v)
{
	uint64_t u = (uint64_t)v;
	unsigned char be[8];
	for (int i = 7; i >= 0; i--) {
		be[i] = (unsigned char)(u & 0xff);
		u >>= 8;
	}
	arr_put(a, be, 8);
}

void hf_pg_arr_int8_or_null(struct hf_pg_arr *a, int64_t v)
{
	if (v)
		hf_pg_arr_int8(a, v);
	else
		arr_put(a, NULL, -1);
}

/* Remembers the SQLSTATE of a failed statement on the writer's connection
 * (store_fault tells by it whether the database or the write failed). */
void hf_pg_note_state(struct hf_pg_store *q, PGconn *c, const PGresult *r)
{
	if (!q || c != q->wconn || hf_pg_ok(r))
		return;
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	snprintf(q->last_state, sizeof q->last_state, "%s", st ? st : "08000");
}
