/* store_sqlite_query.c - the SQLite backend's reads: runs, events and
 * deliveries as the admin API and the CLI show them (README.md, "HTTP"), the
 * deliveries due for the outbox, and an event loaded again for a replay.
 *
 * Not here: writes of any kind (store_sqlite.c applies them; retries and
 * prune are in store_sqlite_recover.c).
 *
 * Threading: any thread; each call borrows a read connection from the pool
 * (hf_sqlite_reader_take) and gives it back before returning, so that reads
 * see committed data only and never use the writer's connection.
 *
 * Neighbours: store_sqlite.c (the pool, the schema), store_sqlite.h. */
#include "hf_body.h"
#include "hf_limits.h"
#include "hf_verify.h"
#include "store_sqlite.h"

#include <string.h>

static json_t *col_text(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	return json_string((const char *)sqlite3_column_text(st, i));
}

static json_t *col_time(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	char at[32];
	hf_time_iso(sqlite3_column_int64(st, i), at);
	return json_string(at);
}

static json_t *steps_of(sqlite3 *db, const char *run_id)
{
	json_t *steps = json_array();
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db,
			       "SELECT step_id, status, output, error, logs,"
			       " attempts, started_at, finished_at FROM steps"
			       " WHERE run_id = ?1 ORDER BY idx",
			       -1, &st, NULL) != SQLITE_OK)
		return steps;
	bind_text(st, 1, run_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_t *o = json_object();
		json_object_set_new(o, "id", col_text(st, 0));
		json_object_set_new(o, "status", col_text(st, 1));
		json_object_set_new(o, "output", col_json(st, 2));
		json_object_set_new(o, "error", col_text(st, 3));
		json_t *logs = col_json(st, 4);
		json_object_set_new(o, "logs",
				    json_is_array(logs) ? logs : json_array());
		if (!json_is_array(logs))
			json_decref(logs);
		json_object_set_new(o, "attempts",
				    json_integer(sqlite3_column_int(st, 5)));
		json_object_set_new(o, "started_at", col_time(st, 6));
		json_object_set_new(o, "finished_at", col_time(st, 7));
		json_array_append_new(steps, o);
	}
	sqlite3_finalize(st);
	return steps;
}

#define RUN_COLUMNS                                                            \
	"id, workflow, event_id, status, attempt, created_at, started_at,"     \
	" finished_at, error, version"

static json_t *run_row(sqlite3 *db, sqlite3_stmt *st)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", col_text(st, 0));
	json_object_set_new(o, "workflow", col_text(st, 1));
	json_object_set_new(o, "event", col_text(st, 2));
	json_object_set_new(o, "status", col_text(st, 3));
	json_object_set_new(o, "attempt",
			    json_integer(sqlite3_column_int(st, 4)));
	json_object_set_new(o, "created_at", col_time(st, 5));
	json_object_set_new(o, "started_at", col_time(st, 6));
	json_object_set_new(o, "finished_at", col_time(st, 7));
	json_object_set_new(o, "error", col_text(st, 8));
	json_object_set_new(o, "version", col_text(st, 9));
	json_object_set_new(
	    o, "steps", steps_of(db, (const char *)sqlite3_column_text(st, 0)));
	return o;
}

json_t *hf_sqlite_run_json(struct hf_store *s, const char *run_id)
{
	struct hf_sqlite_store *q = sq(s);
	sqlite3 *db = hf_sqlite_reader_take(q);
	sqlite3_stmt *st = NULL;
	json_t *out = NULL;
	if (!db || sqlite3_prepare_v2(
		       db, "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1", -1,
		       &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, run_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		out = run_row(db, st);
done:
	sqlite3_finalize(st);
	hf_sqlite_reader_give(q, db);
	return out;
}

json_t *hf_sqlite_runs_json(struct hf_store *s, const char *workflow,
			    const char *status, int limit)
{
	struct hf_sqlite_store *q = sq(s);
	sqlite3 *db = hf_sqlite_reader_take(q);
	sqlite3_stmt *st = NULL;
	json_t *runs = json_array();
	if (!db || sqlite3_prepare_v2(db,
				      "SELECT " RUN_COLUMNS " FROM runs"
				      " WHERE (?1 IS NULL OR workflow = ?1)"
				      " AND (?2 IS NULL OR status = ?2)"
				      " ORDER BY id DESC LIMIT ?3",
				      -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, workflow);
	bind_text(st, 2, status);
	sqlite3_bind_int(st, 3, limit > 0 ? limit : HF_LIST_DEFAULT_RUNS);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(runs, run_row(db, st));
done:
	sqlite3_finalize(st);
	hf_sqlite_reader_give(q, db);
	return json_pack("{s:o}", "runs", runs);
}

json_t *hf_sqlite_event_json(struct hf_store *s, const char *event_id)
{
	struct hf_sqlite_store *q = sq(s);
	sqlite3 *db = hf_sqlite_reader_take(q);
	sqlite3_stmt *st = NULL;
	json_t *o = NULL;
	if (!db || sqlite3_prepare_v2(db,
				      "SELECT id, path, method, query, headers,"
				      " body, received_at, skipped FROM events"
				      " WHERE id = ?1",
				      -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, event_id);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto done;
	o = json_object();
	json_object_set_new(o, "id", col_text(st, 0));
	json_object_set_new(o, "path", col_text(st, 1));
	json_object_set_new(o, "method", col_text(st, 2));
	json_object_set_new(o, "query", col_json(st, 3));
	json_object_set_new(o, "headers", col_json(st, 4));
	const char *body = sqlite3_column_blob(st, 5);
	int blen = sqlite3_column_bytes(st, 5);
	json_t *b = json_stringn(body ? body : "", (size_t)blen);
	if (!b) { /* not UTF-8: show it base64-encoded, and say so */
		char *enc = hf_base64_encode(body ? body : "", (size_t)blen);
		b = json_string(enc);
		free(enc);
		json_object_set_new(o, "body_encoding", json_string("base64"));
	}
	json_object_set_new(o, "body", b);
	json_object_set_new(o, "received_at", col_time(st, 6));
	json_t *skipped = col_json(st, 7);
	json_object_set_new(o, "skipped",
			    json_is_array(skipped) ? skipped : json_array());
	if (!json_is_array(skipped))
		json_decref(skipped);
	sqlite3_finalize(st);
	st = NULL;
	json_t *runs = json_array();
	if (sqlite3_prepare_v2(db,
			       "SELECT id FROM runs WHERE event_id = ?1"
			       " ORDER BY id",
			       -1, &st, NULL) == SQLITE_OK) {
		bind_text(st, 1, event_id);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(runs, col_text(st, 0));
	}
	json_object_set_new(o, "runs", runs);
done:
	sqlite3_finalize(st);
	hf_sqlite_reader_give(q, db);
	return o;
}

static json_t *delivery_row(sqlite3_stmt *st)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", col_text(st, 0));
	json_object_set_new(o, "url", col_text(st, 1));
	json_object_set_new(o, "status", col_text(st, 2));
	json_object_set_new(o, "attempts",
			    json_integer(sqlite3_column_int(st, 3)));
	json_object_set_new(o, "max_attempts",
			    json_integer(sqlite3_column_int(st, 4)));
	if (sqlite3_column_type(st, 5) == SQLITE_NULL)
		json_object_set_new(o, "last_status", json_null());
	else
		json_object_set_new(o, "last_status",
				    json_integer(sqlite3_column_int(st, 5)));
	json_object_set_new(o, "last_error", col_text(st, 6));
	json_object_set_new(o, "run", col_text(st, 7));
	json_object_set_new(o, "step", col_text(st, 8));
	json_object_set_new(o, "next_at", col_time(st, 9));
	json_object_set_new(o, "created_at", col_time(st, 10));
	json_object_set_new(o, "updated_at", col_time(st, 11));
	return o;
}

#define DELIVERY_COLUMNS                                                       \
	"id, url, status, attempts, max_attempts, last_status, last_error,"    \
	" run_id, step_id, next_at, created_at, updated_at"

json_t *hf_sqlite_deliveries_json(struct hf_store *s, const char *status,
				  int limit)
{
	struct hf_sqlite_store *q = sq(s);
	sqlite3 *db = hf_sqlite_reader_take(q);
	sqlite3_stmt *st = NULL;
	json_t *list = json_array();
	if (!db || sqlite3_prepare_v2(db,
				      "SELECT " DELIVERY_COLUMNS
				      " FROM deliveries WHERE (?1 IS NULL OR"
				      " status = ?1) ORDER BY id DESC LIMIT ?2",
				      -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, status);
	sqlite3_bind_int(st, 2, limit > 0 ? limit : HF_LIST_DEFAULT_DELIVERIES);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(list, delivery_row(st));
done:
	sqlite3_finalize(st);
	hf_sqlite_reader_give(q, db);
	return json_pack("{s:o}", "deliveries", list);
}

json_t *hf_sqlite_delivery_json(struct hf_store *s, const char *id)
{
	struct hf_sqlite_store *q = sq(s);
	sqlite3 *db = hf_sqlite_reader_take(q);
	sqlite3_stmt *st = NULL;
	json_t *o = NULL;
	if (!db || sqlite3_prepare_v2(db,
				      "SELECT " DELIVERY_COLUMNS
				      ", payload FROM deliveries WHERE id = ?1",
				      -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto done;
	o = delivery_row(st);
	json_object_set_new(o, "payload", col_text(st, 12));
	sqlite3_finalize(st);
	st = NULL;
	json_t *attempts = json_array();
	if (sqlite3_prepare_v2(db,
			       "SELECT n, at, status, error, duration_ms FROM"
			       " delivery_attempts WHERE delivery_id = ?1"
			       " ORDER BY n",
			       -1, &st, NULL) == SQLITE_OK) {
		bind_text(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			json_t *a = json_object();
			json_object_set_new(
			    a, "n", json_integer(sqlite3_column_int(st, 0)));
			json_object_set_new(a, "at", col_time(st, 1));
			if (sqlite3_column_type(st, 2) == SQLITE_NULL)
				json_object_set_new(a, "status", json_null());
			else
				json_object_set_new(
				    a, "status",
				    json_integer(sqlite3_column_int(st, 2)));
			json_object_set_new(a, "error", col_text(st, 3));
			json_object_set_new(
			    a, "duration_ms",
			    json_integer(sqlite3_column_int64(st, 4)));
			json_array_append_new(attempts, a);
		}
	}
	json_object_set_new(o, "attempts_log", attempts);
done:
	sqlite3_finalize(st);
	hf_sqlite_reader_give(q, db);
	return o;
}

int hf_sqlite_pending_deliveries(struct hf_store *s, int limit,
				 int (*fn)(const struct hf_delivery *d,
					   void *arg),
				 void *arg)
{
	struct hf_sqlite_store *q = sq(s);
	sqlite3 *db = hf_sqlite_reader_take(q);
	sqlite3_stmt *st = NULL;
	int n = -1;
	if (!db ||
	    sqlite3_prepare_v2(db,
			       "SELECT id, url, payload, headers, secret,"
			       " attempts, max_attempts, backoff_ms,"
			       " timeout_ms, next_at FROM deliveries"
			       " WHERE status = 'pending' ORDER BY"
			       " next_at LIMIT ?1",
			       -1, &st, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_int(st, 1, limit);
	n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
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
		};
		if (!d.id || !d.url)
			continue;
		if (!d.payload)
			d.payload = "";
		n++;
		if (fn(&d, arg) != 0)
			break;
	}
done:
	sqlite3_finalize(st);
	hf_sqlite_reader_give(q, db);
	return n;
}

struct hf_event *hf_sqlite_load_event(struct hf_store *s, const char *event_id)
{
	struct hf_sqlite_store *q = sq(s);
	sqlite3 *db = hf_sqlite_reader_take(q);
	sqlite3_stmt *st = NULL;
	struct hf_event *ev = NULL;
	if (!db || sqlite3_prepare_v2(db,
				      "SELECT id, path, method, query, headers,"
				      " body, received_at FROM events WHERE"
				      " id = ?1",
				      -1, &st, NULL) != SQLITE_OK)
		goto done;
	bind_text(st, 1, event_id);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto done;
	ev = hf_event_new();
	snprintf(ev->id, sizeof ev->id, "%s",
		 (const char *)sqlite3_column_text(st, 0));
	ev->path = hf_xstrdup((const char *)sqlite3_column_text(st, 1));
	ev->method = hf_xstrdup((const char *)sqlite3_column_text(st, 2));
	ev->query = col_json(st, 3);
	if (!json_is_object(ev->query)) {
		json_decref(ev->query);
		ev->query = json_object();
	}
	ev->headers = col_json(st, 4);
	if (!json_is_object(ev->headers)) {
		json_decref(ev->headers);
		ev->headers = json_object();
	}
	const char *body = sqlite3_column_blob(st, 5);
	ev->body_len = (size_t)sqlite3_column_bytes(st, 5);
	ev->body = hf_xstrndup(body ? body : "", ev->body_len);
	ev->received_at = sqlite3_column_int64(st, 6);
	ev->skipped = json_array();
	/* Decoded again as ingest did; it was valid then. */
	char err[256];
	hf_body_decode(hf_body_kind_of(json_string_value(
			   json_object_get(ev->headers, "content-type"))),
		       ev->body, ev->body_len, &ev->decoded, err, sizeof err);
done:
	sqlite3_finalize(st);
	hf_sqlite_reader_give(q, db);
	return ev;
}
