/* store_pg_query.c - the PostgreSQL backend's reads: runs, events and
 * deliveries as the admin API and the CLI show them (README.md, "HTTP"), the
 * deliveries due for the outbox, and an event loaded again for a replay;
 * the same JSON as the SQLite backend's (store_sqlite_query.c), column for
 * column.
 *
 * What is shown is redacted (hf_redact.h): a delivery's URL without its
 * user info and query values, an event's credential headers (Authorization,
 * Cookie, signatures) as "[redacted]". The stored values stay whole: the
 * outbox and replays read them here too (hf_pg_pending_deliveries opens
 * the sealed signing secret, hf_pg_load_event keeps every header).
 *
 * Not here: writes of any kind (store_pg.c, store_pg_apply.c; retries and
 * prune are in store_pg_recover.c).
 *
 * Threading: any thread; each call borrows a connection from the pool
 * (hf_pg_reader_take) and gives it back before returning: reads see
 * committed data only and never use the writer's connection.
 *
 * Neighbours: store_pg.c (the pool, the schema), store_pg.h. */
#include "hf_body.h"
#include "hf_crypto.h"
#include "hf_limits.h"
#include "hf_redact.h"
#include "hf_verify.h"
#include "store_pg.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

static json_t *col_text(const PGresult *r, int i, int c)
{
	const char *t = pg_text(r, i, c);
	return t ? json_string(t) : json_null();
}

/* A column of JSON text when it holds a value of type (an array or an
 * object), else an empty one. */
static json_t *col_typed(const PGresult *r, int i, int c, json_type type)
{
	json_t *v = hf_pg_json(r, i, c);
	if (v && json_typeof(v) == type)
		return v;
	json_decref(v);
	return type == JSON_ARRAY ? json_array() : json_object();
}

#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

/* How a column shows in JSON (as store_sqlite_query.c's). */
enum col_kind {
	C_TEXT,	   /* a string, or null */
	C_TIME,	   /* ms since the epoch as ISO 8601, or null */
	C_INT,	   /* an integer (0 for NULL) */
	C_INT_OPT, /* an integer, or null */
	C_JSON,	   /* JSON text as its value */
	C_ARRAY,   /* JSON text of an array, else [] */
	C_BODY,	   /* a body: a string, or base64 with "body_encoding" */
	C_URL,	   /* a URL, its credentials redacted (hf_redact_url) */
	C_HEADERS, /* request headers, credentials redacted */
	C_QUERY,   /* query parameters, credentials redacted */
	C_BYTES,   /* a bytea as a string (as SQLite reads a blob as text) */
	C_BOOL,	   /* a boolean */
};

struct col {
	const char *key; /* NULL: the row is this column's value alone */
	enum col_kind kind;
};

/* How a query's rows become JSON: the columns in order, then (optional) a
 * nested list of rows: sub_sql run with the row's id (column 0) as $1 on the
 * same connection, its rows made JSON by sub, as the member sub_key. */
struct shape {
	const struct col *cols;
	size_t ncols;
	const char *sub_key;
	const struct shape *sub;
	const char *sub_sql;
};

static json_t *rows_json(struct hf_pg_store *q, PGconn *c, bool one,
			 const struct shape *shape, const char *sql,
			 const char *types, ...);

static json_t *col_time(const PGresult *r, int i, int c)
{
	if (PQgetisnull(r, i, c))
		return json_null();
	char at[32];
	hf_time_iso(pg_int(r, i, c), at);
	return json_string(at);
}

static json_t *col_body(const PGresult *r, int i, int c, json_t *o)
{
	size_t len;
	unsigned char *body = hf_pg_bytes(r, i, c, &len);
	json_t *b = json_stringn((const char *)body, len);
	if (!b) {
		char *enc = hf_base64_encode(body, len);
		b = json_string(enc);
		free(enc);
		json_object_set_new(o, "body_encoding", json_string("base64"));
	}
	free(body);
	return b;
}

static json_t *col_url(const PGresult *r, int i, int c)
{
	const char *t = pg_text(r, i, c);
	if (!t)
		return json_null();
	char *url = hf_redact_url(t);
	json_t *v = json_string(url);
	free(url);
	return v ? v : json_string(HF_REDACTED);
}

/* An object's members that carry a credential (hf_header_is_secret) shown as
 * HF_REDACTED. */
static json_t *redact_members(json_t *h)
{
	if (!json_is_object(h))
		return h;
	const char *name;
	json_t *v;
	json_object_foreach(h, name, v)
	{
		if (hf_header_is_secret(name))
			json_object_set_new(h, name, json_string(HF_REDACTED));
	}
	return h;
}

static json_t *col_value(const PGresult *r, int i, int c, enum col_kind kind,
			 json_t *o)
{
	switch (kind) {
	case C_TEXT:
		return col_text(r, i, c);
	case C_TIME:
		return col_time(r, i, c);
	case C_INT_OPT:
		if (PQgetisnull(r, i, c))
			return json_null();
		/* fall through */
	case C_INT:
		return json_integer(pg_int(r, i, c));
	case C_JSON:
		return hf_pg_json(r, i, c);
	case C_ARRAY:
		return col_typed(r, i, c, JSON_ARRAY);
	case C_BODY:
		return col_body(r, i, c, o);
	case C_URL:
		return col_url(r, i, c);
	case C_HEADERS:
		return redact_members(col_typed(r, i, c, JSON_OBJECT));
	case C_QUERY:
		return redact_members(hf_pg_json(r, i, c));
	case C_BOOL:
		return json_boolean(!PQgetisnull(r, i, c) &&
				    PQgetvalue(r, i, c)[0] == 't');
	case C_BYTES: {
		if (PQgetisnull(r, i, c))
			return json_null();
		size_t len;
		unsigned char *b = hf_pg_bytes(r, i, c, &len);
		json_t *v = json_stringn((const char *)b, len);
		free(b);
		return v;
	}
	}
	return json_null();
}

static json_t *shape_row(PGconn *c, const PGresult *r, int i,
			 const struct shape *sh)
{
	if (!sh->cols[0].key)
		return col_value(r, i, 0, sh->cols[0].kind, NULL);
	json_t *o = json_object();
	for (size_t k = 0; k < sh->ncols; k++)
		json_object_set_new(
		    o, sh->cols[k].key,
		    col_value(r, i, (int)k, sh->cols[k].kind, o));
	if (sh->sub)
		json_object_set_new(o, sh->sub_key,
				    rows_json(NULL, c, false, sh->sub,
					      sh->sub_sql, "t",
					      pg_text(r, i, 0)));
	return o;
}

struct rows {
	const struct shape *shape;
	bool one;
	json_t *out;
};

static int add_row(PGconn *c, PGresult *r, int i, void *arg)
{
	struct rows *rs = arg;
	json_t *v = shape_row(c, r, i, rs->shape);
	if (rs->one) {
		rs->out = v;
		return 1;
	}
	json_array_append_new(rs->out, v);
	return 0;
}

/* The rows of sql (on c, or when c is NULL on a pooled connection), each
 * made JSON by shape: an array of them all, or with one the first alone
 * (NULL when there is none). */
static json_t *rows_json(struct hf_pg_store *q, PGconn *c, bool one,
			 const struct shape *shape, const char *sql,
			 const char *types, ...)
{
	struct rows rs = {shape, one, one ? NULL : json_array()};
	va_list ap;
	va_start(ap, types);
	hf_pg_veach(q, c, add_row, &rs, sql, types, ap);
	va_end(ap);
	return rs.out;
}

/* --- runs --- */

/* "node": the node that ran the step. */
static const struct col step_cols[] = {
    {"id", C_TEXT},	    {"status", C_TEXT},	     {"output", C_JSON},
    {"error", C_TEXT},	    {"logs", C_ARRAY},	     {"attempts", C_INT},
    {"started_at", C_TIME}, {"finished_at", C_TIME}, {"node", C_TEXT},
};
static const struct shape step_shape = {step_cols, NCOLS(step_cols)};

#define RUN_COLUMNS                                                            \
	"id, workflow, event_id, status, attempt, created_at, started_at,"     \
	" finished_at, error, version, CASE WHEN status = 'waiting' THEN"      \
	" waiting END"

static const struct col run_cols[] = {
    {"id", C_TEXT},	    {"workflow", C_TEXT},    {"event", C_TEXT},
    {"status", C_TEXT},	    {"attempt", C_INT},	     {"created_at", C_TIME},
    {"started_at", C_TIME}, {"finished_at", C_TIME}, {"error", C_TEXT},
    {"version", C_TEXT},    {"waiting", C_JSON}, /* hf_park.h */
};
static const struct shape run_shape = {
    run_cols, NCOLS(run_cols), "steps", &step_shape,
    "SELECT step_id, status, output, error, logs, attempts, started_at,"
    " finished_at, node FROM steps WHERE run_id = $1 ORDER BY idx"};

json_t *hf_pg_steps_json(PGconn *c, const char *run_id)
{
	return rows_json(NULL, c, false, &step_shape, run_shape.sub_sql, "t",
			 run_id);
}

/* The earlier attempts of a retried run, oldest first (run_history). */
static const struct col history_cols[] = {
    {"attempt", C_INT}, {"status", C_TEXT},	 {"error", C_TEXT},
    {"steps", C_ARRAY}, {"finished_at", C_TIME},
};
static const struct shape history_shape = {history_cols, NCOLS(history_cols)};

static void add_history(struct hf_pg_store *q, json_t *run)
{
	/* "waiting" (hf_park.h) only on a run that waits. */
	if (json_is_null(json_object_get(run, "waiting")))
		json_object_del(run, "waiting");
	const char *id = json_string_value(json_object_get(run, "id"));
	if (!id)
		return;
	json_object_set_new(
	    run, "history",
	    rows_json(q, NULL, false, &history_shape,
		      "SELECT attempt, status, error, steps, finished_at FROM"
		      " run_history WHERE run_id = $1 ORDER BY attempt",
		      "t", id));
}

json_t *hf_pg_run_json(struct hf_store *s, const char *run_id)
{
	json_t *run = rows_json(
	    pq(s), NULL, true, &run_shape,
	    "SELECT " RUN_COLUMNS " FROM runs WHERE id = $1", "t", run_id);
	if (run)
		add_history(pq(s), run);
	return run;
}

json_t *hf_pg_runs_json(struct hf_store *s, const char *workflow,
			const char *status, int limit)
{
	json_t *runs = rows_json(pq(s), NULL, false, &run_shape,
				 "SELECT " RUN_COLUMNS " FROM runs"
				 " WHERE ($1::text IS NULL OR workflow = $1)"
				 " AND ($2::text IS NULL OR status = $2)"
				 " ORDER BY id DESC LIMIT $3",
				 "tti", workflow, status,
				 limit > 0 ? limit : HF_LIST_DEFAULT_RUNS);
	size_t i;
	json_t *run;
	json_array_foreach(runs, i, run) add_history(pq(s), run);
	return json_pack("{s:o}", "runs", runs);
}

/* --- nodes (store_pg_node.c) --- */

static const struct col node_cols[] = {
    {"id", C_INT},	    {"name", C_TEXT},
    {"epoch", C_INT},	    {"heartbeat_at", C_TIME},
    {"started_at", C_TIME}, {"alive", C_BOOL},
};
static const struct shape node_shape = {node_cols, NCOLS(node_cols)};

json_t *hf_pg_nodes_json(struct hf_store *s)
{
	json_t *nodes = rows_json(
	    pq(s), NULL, false, &node_shape,
	    "SELECT id, name, epoch, heartbeat_at, started_at, stopped_at IS"
	    " NULL AND heartbeat_at >= (extract(epoch from clock_timestamp())"
	    " * 1000)::int8 - lease_ms FROM nodes ORDER BY id",
	    "");
	return json_pack("{s:o}", "nodes", nodes);
}

/* --- events --- */

static const struct col id_col[] = {{NULL, C_TEXT}};
static const struct shape id_shape = {id_col, 1};

static const struct col event_cols[] = {
    {"id", C_TEXT},	     {"path", C_TEXT},	     {"method", C_TEXT},
    {"query", C_QUERY},	     {"headers", C_HEADERS}, {"body", C_BODY},
    {"received_at", C_TIME}, {"skipped", C_ARRAY},
};
static const struct shape event_shape = {
    event_cols, NCOLS(event_cols), "runs", &id_shape,
    "SELECT id FROM runs WHERE event_id = $1 ORDER BY id"};

json_t *hf_pg_event_json(struct hf_store *s, const char *event_id)
{
	return rows_json(pq(s), NULL, true, &event_shape,
			 "SELECT id, path, method, query, headers,"
			 " body, received_at, skipped FROM events"
			 " WHERE id = $1",
			 "t", event_id);
}

/* --- deliveries --- */

#define DELIVERY_COLUMNS                                                       \
	"id, url, status, attempts, max_attempts, last_status, last_error,"    \
	" run_id, step_id, next_at, created_at, updated_at"

static const struct col delivery_cols[] = {
    {"id", C_TEXT},	    {"url", C_URL},	     {"status", C_TEXT},
    {"attempts", C_INT},    {"max_attempts", C_INT}, {"last_status", C_INT_OPT},
    {"last_error", C_TEXT}, {"run", C_TEXT},	     {"step", C_TEXT},
    {"next_at", C_TIME},    {"created_at", C_TIME},  {"updated_at", C_TIME},
    {"payload", C_BYTES}, /* hf_store_delivery_json only */
};
static const struct shape delivery_shape = {delivery_cols,
					    NCOLS(delivery_cols) - 1};

/* Newest first: by creation time, then by insertion (seq, SQLite's rowid). */
json_t *hf_pg_deliveries_json(struct hf_store *s, const char *status, int limit)
{
	json_t *list = rows_json(
	    pq(s), NULL, false, &delivery_shape,
	    "SELECT " DELIVERY_COLUMNS " FROM deliveries WHERE ($1::text IS"
	    " NULL OR status = $1) ORDER BY created_at DESC, seq DESC"
	    " LIMIT $2",
	    "ti", status, limit > 0 ? limit : HF_LIST_DEFAULT_DELIVERIES);
	return json_pack("{s:o}", "deliveries", list);
}

static const struct col attempt_cols[] = {
    {"n", C_INT},      {"at", C_TIME},	       {"status", C_INT_OPT},
    {"error", C_TEXT}, {"duration_ms", C_INT},
};
static const struct shape attempt_shape = {attempt_cols, NCOLS(attempt_cols)};

static const struct shape delivery_full_shape = {
    delivery_cols, NCOLS(delivery_cols), "attempts_log", &attempt_shape,
    "SELECT n, at, status, error, duration_ms FROM delivery_attempts"
    " WHERE delivery_id = $1 ORDER BY n"};

json_t *hf_pg_delivery_json(struct hf_store *s, const char *id)
{
	return rows_json(pq(s), NULL, true, &delivery_full_shape,
			 "SELECT " DELIVERY_COLUMNS
			 ", payload FROM deliveries WHERE id = $1",
			 "t", id);
}

/* --- the outbox and replays --- */

struct pending {
	struct hf_pg_store *q;
	int (*fn)(const struct hf_delivery *d, void *arg);
	void *arg;
	int n;
};

static char *open_secret(struct hf_pg_store *q, const char *id,
			 const char *sealed)
{
	static atomic_bool said;
	struct hf_error err = {0};
	char *plain = hf_pg_key(q, &err) == 0
			  ? hf_unseal(q->key, id, strlen(id), sealed)
			  : NULL;
	if (!plain && !atomic_exchange(&said, true))
		hf_log(HF_LOG_ERROR,
		       "delivery %s: its signing secret does not open with "
		       "this key (HOOKFLOW_SECRET_KEY, else the one kept in "
		       "the state database); it is not sent%s%s",
		       id, err.msg[0] ? ": " : "", err.msg);
	return plain;
}

static int pending_row(PGconn *c, PGresult *r, int i, void *arg)
{
	(void)c;
	struct pending *p = arg;
	size_t len = 0;
	unsigned char *payload = hf_pg_bytes(r, i, 2, &len);
	struct hf_delivery d = {
	    .id = pg_text(r, i, 0),
	    .url = pg_text(r, i, 1),
	    .payload = payload,
	    .payload_len = len,
	    .headers = pg_text(r, i, 3),
	    .secret = pg_text(r, i, 4),
	    .attempts = (int)pg_int(r, i, 5),
	    .max_attempts = (int)pg_int(r, i, 6),
	    .backoff_ms = pg_int(r, i, 7),
	    .timeout_ms = pg_int(r, i, 8),
	    .next_at = pg_int(r, i, 9),
	};
	int rc = 0;
	char *plain = NULL;
	if (!d.id || !d.url)
		goto done;
	if (hf_is_sealed(d.secret) &&
	    !(plain = open_secret(p->q, d.id, d.secret)))
		goto done; /* not sent: unsigned, it would be refused */
	if (plain)
		d.secret = plain;
	p->n++;
	rc = p->fn(&d, p->arg) != 0;
done:
	hf_secret_free(plain);
	free(payload);
	return rc;
}

/* No order among rows of one next_at (seq 0): from_seq is not used, and a
 * scan from a cursor reads again the rows at it (the outbox skips those it
 * has). */
int hf_pg_pending_deliveries(struct hf_store *s, int64_t from, int64_t from_seq,
			     int limit,
			     int (*fn)(const struct hf_delivery *d, void *arg),
			     void *arg)
{
	(void)from_seq;
	struct pending p = {pq(s), fn, arg, 0};
	if (hf_pg_each(pq(s), NULL, pending_row, &p,
		       "SELECT id, url, payload, headers, secret,"
		       " attempts, max_attempts, backoff_ms,"
		       " timeout_ms, next_at FROM deliveries"
		       " WHERE status = 'pending' AND next_at >= $2"
		       " ORDER BY next_at LIMIT $1",
		       "iI", limit, from) < 0)
		return -1;
	return p.n;
}

static int event_struct_row(PGconn *c, PGresult *r, int i, void *arg)
{
	(void)c;
	struct hf_event *ev = hf_event_new();
	snprintf(ev->id, sizeof ev->id, "%s", pg_text(r, i, 0));
	ev->path = hf_xstrdup(pg_text(r, i, 1));
	ev->method = hf_xstrdup(pg_text(r, i, 2));
	ev->query = col_typed(r, i, 3, JSON_OBJECT);
	ev->headers = col_typed(r, i, 4, JSON_OBJECT);
	ev->body = (char *)hf_pg_bytes(r, i, 5, &ev->body_len);
	ev->received_at = pg_int(r, i, 6);
	ev->skipped = json_array();
	char err[256];
	hf_body_decode_event(ev->headers, ev->body, ev->body_len, &ev->decoded,
			     err, sizeof err);
	*(struct hf_event **)arg = ev;
	return 1;
}

struct hf_event *hf_pg_load_event_on(struct hf_pg_store *q, PGconn *c,
				     const char *event_id)
{
	struct hf_event *ev = NULL;
	hf_pg_each(q, c, event_struct_row, &ev,
		   "SELECT id, path, method, query, headers,"
		   " body, received_at FROM events WHERE id = $1",
		   "t", event_id);
	return ev;
}

struct hf_event *hf_pg_load_event(struct hf_store *s, const char *event_id)
{
	return hf_pg_load_event_on(pq(s), NULL, event_id);
}

/* --- schedules --- */

struct text_out {
	char *out;
	size_t size;
};

static int text_row(PGconn *c, PGresult *r, int i, void *arg)
{
	(void)c;
	struct text_out *t = arg;
	const char *v = pg_text(r, i, 0);
	snprintf(t->out, t->size, "%s", v ? v : "");
	return 1;
}

int hf_pg_dedupe_last(struct hf_store *s, const char *workflow,
		      const char *prefix, char *out, size_t size)
{
	/* Keys compare as bytes (COLLATE "C"); '~' sorts after every
	 * character a schedule's key holds. */
	struct text_out t = {out, size};
	char *end = hf_xasprintf("%s~", prefix);
	int n = hf_pg_each(pq(s), NULL, text_row, &t,
			   "SELECT key FROM dedupe WHERE workflow = $1"
			   " AND key > $2 AND key < $3"
			   " ORDER BY key DESC LIMIT 1",
			   "ttt", workflow, prefix, end);
	free(end);
	return n < 0 ? -1 : n > 0 ? 1 : 0;
}
