/* store_sqlite_query.c - the SQLite backend's reads: runs, events and
 * deliveries as the admin API and the CLI show them (README.md, "HTTP"), the
 * deliveries due for the outbox, and an event loaded again for a replay.
 *
 * What is shown is redacted (store_rows.c): a delivery's URL without its
 * user info and query values, an event's credential headers (Authorization,
 * Cookie, signatures) as "[redacted]". The stored values stay whole: the
 * outbox and replays read them here too (hf_sqlite_pending_deliveries opens
 * the sealed signing secret, hf_sqlite_load_event keeps every header).
 *
 * Not here: writes of any kind (store_sqlite.c applies them; retries and
 * prune are in store_sqlite_recover.c).
 *
 * Threading: any thread; each call borrows a read connection from the pool
 * (hf_sqlite_reader_take) and gives it back before returning, so that reads
 * see committed data only and never use the writer's connection.
 *
 * Neighbours: store_sqlite.c (the pool, the schema), store_sqlite.h,
 * store_rows.c (the cells as JSON). */
#include "hf_body.h"
#include "hf_crypto.h"
#include "hf_limits.h"
#include "store_rows.h"
#include "store_sqlite.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

/* Column i of st as a cell of kind (store_rows.h). */
static json_t *col_value(sqlite3_stmt *st, int i, enum col_kind kind, json_t *o)
{
	struct cell c = {sqlite3_column_type(st, i) == SQLITE_NULL};
	if (kind == C_TIME || kind == C_INT || kind == C_INT_OPT ||
	    kind == C_BOOL) {
		c.i = sqlite3_column_int64(st, i);
		return hf_cell_json(&c, kind, o);
	}
	c.data = kind == C_BODY || kind == C_BYTES
		     ? sqlite3_column_blob(st, i)
		     : (const void *)sqlite3_column_text(st, i);
	c.len = (size_t)sqlite3_column_bytes(st, i); /* after: see SQLite's */
	return hf_cell_json(&c, kind, o);
}

static json_t *rows_json(struct hf_sqlite_store *q, sqlite3 *db, bool one,
			 const struct shape *shape, const char *sql,
			 const char *types, ...);

static json_t *shape_row(sqlite3 *db, sqlite3_stmt *st, const struct shape *sh);

/* The nested rows of row (shape sh) as an array. */
static json_t *sub_json(sqlite3 *db, const struct shape *sh, sqlite3_stmt *row)
{
	json_t *out = json_array();
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sh->sub_sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_value(st, 1,
				   sqlite3_column_value(row, sh->sub_col));
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(out, shape_row(db, st, sh->sub));
	}
	sqlite3_finalize(st);
	return out;
}

static json_t *shape_row(sqlite3 *db, sqlite3_stmt *st, const struct shape *sh)
{
	if (!sh->cols[0].key)
		return col_value(st, 0, sh->cols[0].kind, NULL);
	json_t *o = json_object();
	for (size_t i = 0; i < sh->ncols; i++)
		json_object_set_new(o, sh->cols[i].key,
				    col_value(st, (int)i, sh->cols[i].kind, o));
	if (sh->sub)
		json_object_set_new(o, sh->sub_key, sub_json(db, sh, st));
	return o;
}

/* A query's rows as JSON (rows_json). */
struct rows {
	const struct shape *shape;
	bool one;
	json_t *out;
};

static int add_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	struct rows *r = arg;
	json_t *v = shape_row(db, st, r->shape);
	if (r->one) {
		r->out = v;
		return 1;
	}
	json_array_append_new(r->out, v);
	return 0;
}

/* The rows of sql (bound and run as hf_sqlite_each does: on db, or when db is
 * NULL on a read connection of q's), each made JSON by shape: an array of them
 * all, or with one the first alone (NULL when there is none). A query that
 * does not prepare has no rows. */
static json_t *rows_json(struct hf_sqlite_store *q, sqlite3 *db, bool one,
			 const struct shape *shape, const char *sql,
			 const char *types, ...)
{
	struct rows r = {shape, one, one ? NULL : json_array()};
	va_list ap;
	va_start(ap, types);
	hf_sqlite_veach(q, db, add_row, &r, sql, types, ap);
	va_end(ap);
	return r.out;
}

/* --- runs --- */

/* "node": the node that ran the step (one node here, unnamed: null). */
static const struct shape step_shape = {hf_step_cols, HF_STEP_COLS};

/* A run with its event's id and its version's hash (schema version 2). */
#define RUN_COLUMNS                                                            \
	"r.id, r.workflow, e.id, r.status, r.attempt, r.created_at,"           \
	" r.started_at, r.finished_at, r.error, v.version, CASE WHEN"          \
	" r.status = 'waiting' THEN r.waiting END, r.steps FROM runs r"        \
	" LEFT JOIN events e ON e.rid = r.event"                               \
	" LEFT JOIN workflow_versions v ON v.vid = r.vid"

/* Its steps by its last step row (runs.steps), the column after those
 * shown. */
static const struct shape run_shape = {
    hf_run_cols,
    HF_RUN_COLS,
    "steps",
    &step_shape,
    "SELECT step_id, status, output, error, logs, attempts, started_at,"
    " finished_at, NULL FROM " HF_STEPS_OF_P1 " ORDER BY idx",
    HF_RUN_COLS};

/* The steps of the run ?3 in its band ?1..?2. */
#define STEPS_OF_ID                                                            \
	HF_STEPS_OF("SELECT steps FROM runs WHERE rid BETWEEN ?1 AND ?2 AND"   \
		    " id = ?3")

json_t *hf_sqlite_steps_json(sqlite3 *db, const char *run_id)
{
	int64_t lo = hf_sqlite_band(run_id);
	return rows_json(NULL, db, false, &step_shape,
			 "SELECT step_id, status, output, error, logs,"
			 " attempts, started_at, finished_at, NULL"
			 " FROM " STEPS_OF_ID " ORDER BY idx",
			 "IIt", lo, lo + ((1 << HF_BAND_BITS) - 1), run_id);
}

/* The earlier attempts of a retried run, oldest first (run_history). */
static const struct shape history_shape = {hf_history_cols, HF_HISTORY_COLS};

/* Adds run's "history" (with history), and drops its "waiting" unless it
 * waits. */
static void add_history(struct hf_sqlite_store *q, json_t *run, bool history)
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
		      " run_history WHERE run_id = ?1 ORDER BY attempt",
		      "t", id));
}

json_t *hf_sqlite_run_json(struct hf_store *s, const char *run_id)
{
	int64_t lo = hf_sqlite_band(run_id);
	json_t *run =
	    rows_json(sq(s), NULL, true, &run_shape,
		      "SELECT " RUN_COLUMNS
		      " WHERE r.rid BETWEEN ?1 AND ?2 AND r.id = ?3",
		      "IIt", lo, lo + ((1 << HF_BAND_BITS) - 1), run_id);
	if (run)
		add_history(sq(s), run, true);
	return run;
}

/* A run alone, without its steps (the column after those shown unread). */
static const struct shape run_summary_shape = {hf_run_cols, HF_RUN_COLS};

json_t *hf_sqlite_runs_json(struct hf_store *s, const char *workflow,
			    const char *status, int limit, bool steps)
{
	json_t *runs = rows_json(
	    sq(s), NULL, false, steps ? &run_shape : &run_summary_shape,
	    "SELECT " RUN_COLUMNS " WHERE (?1 IS NULL OR r.workflow = ?1)"
	    " AND (?2 IS NULL OR r.status = ?2)"
	    " ORDER BY r.rid DESC LIMIT ?3",
	    "tti", workflow, status, limit > 0 ? limit : HF_LIST_DEFAULT_RUNS);
	size_t i;
	json_t *run;
	json_array_foreach(runs, i, run) add_history(sq(s), run, steps);
	return json_pack("{s:o}", "runs", runs);
}

/* --- events --- */

/* Its runs by the event's rid, the column after those shown. */
static const struct shape event_shape = {
    hf_event_cols,
    HF_EVENT_COLS,
    "runs",
    &hf_id_shape,
    "SELECT id FROM (SELECT id, rid FROM runs WHERE rid BETWEEN"
    " " HF_RUNS_NEAR_P1 " AND event = ?1 UNION ALL SELECT id, rid FROM"
    " runs WHERE event = ?1 AND " HF_RUNS_LATE ") ORDER BY rid",
    HF_EVENT_COLS};

json_t *hf_sqlite_event_json(struct hf_store *s, const char *event_id)
{
	int64_t lo = hf_sqlite_band(event_id);
	return rows_json(sq(s), NULL, true, &event_shape,
			 "SELECT id, path, method, query, headers,"
			 " hf_body(body, body_size), received_at, skipped,"
			 " rid FROM events"
			 " WHERE rid BETWEEN ?1 AND ?2 AND id = ?3",
			 "IIt", lo, lo + ((1 << HF_BAND_BITS) - 1), event_id);
}

/* --- deliveries --- */

#define DELIVERY_COLUMNS                                                       \
	"id, url, status, attempts, max_attempts, last_status, last_error,"    \
	" run_id, step_id, next_at, created_at, updated_at"

static const struct shape delivery_shape = {hf_delivery_cols,
					    HF_DELIVERY_COLS - 1};

/* Newest first: by creation time (an emit's id may be the caller's own, so
 * the id says nothing of the order), then by insertion for the emits of one
 * step, which share their creation time. */
json_t *hf_sqlite_deliveries_json(struct hf_store *s, const char *status,
				  int limit)
{
	json_t *list = rows_json(
	    sq(s), NULL, false, &delivery_shape,
	    "SELECT " DELIVERY_COLUMNS " FROM deliveries WHERE (?1 IS"
	    " NULL OR status = ?1) ORDER BY created_at DESC, rowid DESC"
	    " LIMIT ?2",
	    "ti", status, limit > 0 ? limit : HF_LIST_DEFAULT_DELIVERIES);
	return json_pack("{s:o}", "deliveries", list);
}

static const struct shape attempt_shape = {hf_attempt_cols, HF_ATTEMPT_COLS};

/* One delivery: with its payload and its attempts. */
static const struct shape delivery_full_shape = {
    hf_delivery_cols, HF_DELIVERY_COLS, "attempts_log", &attempt_shape,
    "SELECT n, at, status, error, duration_ms FROM delivery_attempts"
    " WHERE delivery_id = ?1 ORDER BY n"};

json_t *hf_sqlite_delivery_json(struct hf_store *s, const char *id)
{
	return rows_json(sq(s), NULL, true, &delivery_full_shape,
			 "SELECT " DELIVERY_COLUMNS
			 ", payload FROM deliveries WHERE id = ?1",
			 "t", id);
}

/* --- the outbox and replays --- */

/* hf_sqlite_pending_deliveries' callback, and how many it was given. */
struct pending {
	struct hf_sqlite_store *q;
	int (*fn)(const struct hf_delivery *d, void *arg);
	void *arg;
	int n;
};

/* A delivery's signing secret opened (hf_unseal), or NULL: said once per
 * process (the server checked the pending ones at start: only rows stored
 * since with another key get here). */
static char *open_secret(struct hf_sqlite_store *q, const char *id,
			 const char *sealed)
{
	static atomic_bool said;
	struct hf_error err = {0};
	char *plain = hf_sqlite_key(q, &err) == 0
			  ? hf_unseal(q->key, id, strlen(id), sealed)
			  : NULL;
	if (!plain && !atomic_exchange(&said, true))
		hf_log(HF_LOG_ERROR,
		       "delivery %s: its signing secret does not open with "
		       "this key (HOOKFLOW_SECRET_KEY, else %s.key); it is "
		       "not sent%s%s",
		       id, q->path, err.msg[0] ? ": " : "", err.msg);
	return plain;
}

static int pending_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	(void)db;
	struct pending *p = arg;
	struct hf_delivery d = {
	    .id = (const char *)sqlite3_column_text(st, 0),
	    .url = (const char *)sqlite3_column_text(st, 1),
	    .payload = sqlite3_column_blob(st, 2),
	    .payload_len = (size_t)sqlite3_column_bytes(st, 2),
	    .headers = (const char *)sqlite3_column_text(st, 3),
	    .secret = (const char *)sqlite3_column_text(st, 4),
	    .attempts = sqlite3_column_int(st, 5),
	    .max_attempts = sqlite3_column_int(st, 6),
	    .backoff_ms = sqlite3_column_int64(st, 7),
	    .timeout_ms = sqlite3_column_int64(st, 8),
	    .next_at = sqlite3_column_int64(st, 9),
	    .seq = sqlite3_column_int64(st, 10),
	};
	if (!d.id || !d.url)
		return 0;
	if (!d.payload)
		d.payload = "";
	char *plain = NULL;
	if (hf_is_sealed(d.secret) &&
	    !(plain = open_secret(p->q, d.id, d.secret)))
		return 0; /* not sent: unsigned, it would be refused */
	if (plain)
		d.secret = plain;
	p->n++;
	int rc = p->fn(&d, p->arg);
	hf_secret_free(plain);
	return rc != 0;
}

/* The outbox scans many times a second: its statement stays prepared on
 * each reader connection that ran it (found again by its text; reset, it
 * holds no snapshot), finalized when the reader closes (store_sqlite.c).
 * The rows of one next_at (the emits of one step share it) come in rowid
 * order, and a scan from a cursor starts at its rowid: the rowid is in the
 * partial index, so the rows before it are passed over in the index,
 * without reading them. */
static const char pending_sql[] = "SELECT id, url, payload, headers, secret,"
				  " attempts, max_attempts, backoff_ms,"
				  " timeout_ms, next_at, rowid FROM deliveries"
				  " WHERE status = 'pending' AND next_at >= ?2"
				  " AND (next_at > ?2 OR rowid >= ?3)"
				  " ORDER BY next_at, rowid LIMIT ?1";

static sqlite3_stmt *pending_stmt(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	while ((st = sqlite3_next_stmt(db, st)))
		if (!sqlite3_stmt_busy(st) &&
		    strcmp(sqlite3_sql(st), pending_sql) == 0)
			return st;
	if (sqlite3_prepare_v3(db, pending_sql, -1, SQLITE_PREPARE_PERSISTENT,
			       &st, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

int hf_sqlite_pending_deliveries(
    struct hf_store *s, int64_t from, int64_t from_seq, int limit,
    int (*fn)(const struct hf_delivery *d, void *arg), void *arg)
{
	struct hf_sqlite_store *q = sq(s);
	struct pending p = {q, fn, arg, 0};
	sqlite3 *db = hf_sqlite_reader_take(q);
	sqlite3_stmt *st = db ? pending_stmt(db) : NULL;
	int rc = SQLITE_ERROR;
	if (st) {
		sqlite3_bind_int(st, 1, limit);
		sqlite3_bind_int64(st, 2, from);
		sqlite3_bind_int64(st, 3, from_seq);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			if (pending_row(db, st, &p) != 0)
				break;
		sqlite3_reset(st);
	}
	hf_sqlite_reader_give(q, db);
	/* A read that failed part-way is a failed scan (as hf_sqlite_each's):
	 * the outbox reads from the first pending row next time. */
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? p.n : -1;
}

struct hf_event *hf_sqlite_event_row(sqlite3_stmt *st, int idc, int col)
{
	/* A NULL body: damaged (hf_body), no event to replay. */
	if (sqlite3_column_type(st, idc) == SQLITE_NULL ||
	    sqlite3_column_type(st, col + 4) == SQLITE_NULL)
		return NULL;
	struct hf_event *ev = hf_event_new();
	snprintf(ev->id, sizeof ev->id, "%s",
		 (const char *)sqlite3_column_text(st, idc));
	ev->path = hf_xstrdup((const char *)sqlite3_column_text(st, col));
	ev->method = hf_xstrdup((const char *)sqlite3_column_text(st, col + 1));
	ev->query = hf_json_text_typed(
	    (const char *)sqlite3_column_text(st, col + 2), JSON_OBJECT);
	ev->headers = hf_json_text_typed(
	    (const char *)sqlite3_column_text(st, col + 3), JSON_OBJECT);
	const char *body = sqlite3_column_blob(st, col + 4);
	ev->body_len = (size_t)sqlite3_column_bytes(st, col + 4);
	ev->body = hf_xstrndup(body ? body : "", ev->body_len);
	ev->received_at = sqlite3_column_int64(st, col + 5);
	ev->skipped = json_array();
	/* The body is decoded on first use (hf_event_body), if ever: a page
	 * of the disk backlog does not pay for it. */
	return ev;
}

/* Copies n bytes at p, NUL-terminated, to *at; moves *at on. */
static char *pack(const void *p, size_t n, char **at)
{
	char *s = *at;
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	*at += n + 1;
	return s;
}

struct hf_event *hf_sqlite_event_row_text(sqlite3_stmt *st, int idc, int col)
{
	if (sqlite3_column_type(st, idc) == SQLITE_NULL)
		return NULL;
	/* path, method, query, headers, body: one block with the event. */
	const void *p[5];
	size_t n[5], extra = 0;
	for (int k = 0; k < 5; k++) {
		p[k] = k == 4 ? sqlite3_column_blob(st, col + k)
			      : sqlite3_column_text(st, col + k);
		n[k] = (size_t)sqlite3_column_bytes(st, col + k);
		extra += n[k] + 1;
	}
	char *at;
	struct hf_event *ev = hf_event_new_packed(extra, &at);
	snprintf(ev->id, sizeof ev->id, "%s",
		 (const char *)sqlite3_column_text(st, idc));
	ev->path = pack(p[0], n[0], &at);
	ev->method = pack(p[1], n[1], &at);
	/* The trees are parsed on first use (hf_event_headers), if ever;
	 * SQL NULL stays NULL, as no text. */
	ev->query_text = p[2] ? pack(p[2], n[2], &at) : NULL;
	ev->headers_text = p[3] ? pack(p[3], n[3], &at) : NULL;
	ev->body = pack(p[4], n[4], &at);
	ev->body_len = n[4];
	ev->received_at = sqlite3_column_int64(st, col + 5);
	/* The body is decoded on first use (hf_event_body), if ever: a page
	 * of the disk backlog does not pay for it. */
	return ev;
}

static int event_struct_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	(void)db;
	*(struct hf_event **)arg = hf_sqlite_event_row(st, 0, 1);
	return 1;
}

struct hf_event *hf_sqlite_load_event(struct hf_store *s, const char *event_id)
{
	struct hf_event *ev = NULL;
	int64_t lo = hf_sqlite_band(event_id);
	if (!event_id)
		return NULL;
	hf_sqlite_each(sq(s), NULL, event_struct_row, &ev,
		       "SELECT id, path, method, query, headers,"
		       " hf_body(body, body_size), received_at FROM events"
		       " WHERE rid BETWEEN ?1 AND ?2 AND id = ?3",
		       "IIt", lo, lo + ((1 << HF_BAND_BITS) - 1), event_id);
	return ev;
}

/* --- dedupe keys (schedules) --- */

struct text_out {
	char *out;
	size_t size;
};

static int text_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	(void)db;
	struct text_out *t = arg;
	const char *v = (const char *)sqlite3_column_text(st, 0);
	snprintf(t->out, t->size, "%s", v ? v : "");
	return 1;
}

int hf_sqlite_dedupe_last(struct hf_store *s, const char *workflow,
			  const char *prefix, char *out, size_t size)
{
	/* The primary key (workflow, key) answers the range at once; '~'
	 * sorts after every character a schedule's key holds. */
	struct text_out t = {out, size};
	char *end = hf_xasprintf("%s~", prefix);
	int n = hf_sqlite_each(sq(s), NULL, text_row, &t,
			       "SELECT key FROM dedupe WHERE workflow = ?1"
			       " AND key > ?2 AND key < ?3"
			       " ORDER BY key DESC LIMIT 1",
			       "ttt", workflow, prefix, end);
	free(end);
	return n < 0 ? -1 : n > 0 ? 1 : 0;
}
