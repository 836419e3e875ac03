/* store_pg_query.c - the PostgreSQL backend's reads: runs, events and
 * deliveries as the admin API and the CLI show them (README.md, "HTTP"), the
 * deliveries due for the outbox, and an event loaded again for a replay;
 * the same JSON as the SQLite backend's (store_sqlite_query.c), column for
 * column.
 *
 * What is shown is redacted (store_rows.c): a delivery's URL without its
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
 * Neighbours: store_pg.c (the pool, the schema), store_pg.h, store_rows.c
 * (the cells as JSON). */
#include "hf_body.h"
#include "hf_crypto.h"
#include "hf_limits.h"
#include "store_pg.h"
#include "store_rows.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

/* Column c of row i as a cell of kind (store_rows.h). */
static json_t *col_value(const PGresult *r, int i, int c, enum col_kind kind,
			 json_t *o)
{
	struct cell cl = {PQgetisnull(r, i, c)};
	if (cl.null)
		return hf_cell_json(&cl, kind, o);
	if (kind == C_TIME || kind == C_INT || kind == C_INT_OPT) {
		cl.i = pg_int(r, i, c);
		return hf_cell_json(&cl, kind, o);
	}
	if (kind == C_BOOL) {
		cl.i = PQgetvalue(r, i, c)[0] == 't';
		return hf_cell_json(&cl, kind, o);
	}
	if (kind != C_BODY && kind != C_BYTES) {
		cl.data = PQgetvalue(r, i, c);
		cl.len = (size_t)PQgetlength(r, i, c);
		return hf_cell_json(&cl, kind, o);
	}
	unsigned char *b = hf_pg_bytes(r, i, c, &cl.len); /* bytea */
	cl.data = (const char *)b;
	json_t *v = hf_cell_json(&cl, kind, o);
	free(b);
	return v;
}

static json_t *rows_json(struct hf_pg_store *q, PGconn *c, bool one,
			 const struct shape *shape, const char *sql,
			 const char *types, ...);

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
					      pg_text(r, i, sh->sub_col)));
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
static const struct shape step_shape = {hf_step_cols, HF_STEP_COLS};

#define RUN_COLUMNS                                                            \
	"id, workflow, event_id, status, attempt, created_at, started_at,"     \
	" finished_at, error, version, CASE WHEN status = 'waiting' THEN"      \
	" waiting END"

static const struct shape run_shape = {
    hf_run_cols, HF_RUN_COLS, "steps", &step_shape,
    "SELECT step_id, status, output, error, logs, attempts, started_at,"
    " finished_at, node FROM steps WHERE run_id = $1 ORDER BY idx"};

json_t *hf_pg_steps_json(PGconn *c, const char *run_id)
{
	return rows_json(NULL, c, false, &step_shape, run_shape.sub_sql, "t",
			 run_id);
}

/* The earlier attempts of a retried run, oldest first (run_history). */
static const struct shape history_shape = {hf_history_cols, HF_HISTORY_COLS};

/* Adds run's "history" (with history), and drops its "waiting" unless it
 * waits. */
static void add_history(struct hf_pg_store *q, json_t *run, bool history)
{
	/* "waiting" (hf_park.h) only on a run that waits. */
	if (json_is_null(json_object_get(run, "waiting")))
		json_object_del(run, "waiting");
	const char *id = json_string_value(json_object_get(run, "id"));
	if (!id || !history)
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
		add_history(pq(s), run, true);
	return run;
}

/* A run alone, without its steps. */
static const struct shape run_summary_shape = {hf_run_cols, HF_RUN_COLS};

json_t *hf_pg_runs_json(struct hf_store *s, const char *workflow,
			const char *status, int limit, bool steps)
{
	json_t *runs = rows_json(
	    pq(s), NULL, false, steps ? &run_shape : &run_summary_shape,
	    "SELECT " RUN_COLUMNS " FROM runs"
	    " WHERE ($1::text IS NULL OR workflow = $1)"
	    " AND ($2::text IS NULL OR status = $2)"
	    " ORDER BY id DESC LIMIT $3",
	    "tti", workflow, status, limit > 0 ? limit : HF_LIST_DEFAULT_RUNS);
	size_t i;
	json_t *run;
	json_array_foreach(runs, i, run) add_history(pq(s), run, steps);
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

static const struct shape event_shape = {
    hf_event_cols, HF_EVENT_COLS, "runs", &hf_id_shape,
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

static const struct shape delivery_shape = {hf_delivery_cols,
					    HF_DELIVERY_COLS - 1};

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

static const struct shape attempt_shape = {hf_attempt_cols, HF_ATTEMPT_COLS};

static const struct shape delivery_full_shape = {
    hf_delivery_cols, HF_DELIVERY_COLS, "attempts_log", &attempt_shape,
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
	ev->query = hf_json_text_typed(pg_text(r, i, 3), JSON_OBJECT);
	ev->headers = hf_json_text_typed(pg_text(r, i, 4), JSON_OBJECT);
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
