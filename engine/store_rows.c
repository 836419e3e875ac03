/* store_rows.c - a cell of the state's rows made JSON as the admin API and
 * the CLI show it (store_rows.h), for both backends: times as ISO 8601,
 * JSON text as its value, bodies as strings or base64, and what is shown
 * redacted (hf_redact.h): a URL's user info and query values, credential
 * headers and query parameters as "[redacted]".
 *
 * Pure: no database, any thread. Neighbours: store_sqlite_query.c and
 * store_pg_query.c, which read the cells and run the queries. */
#include "store_rows.h"

#include "hf_crypto.h"
#include "hf_redact.h"
#include "hf_util.h"

#include <stdlib.h>

json_t *hf_json_text(const char *text)
{
	if (!text)
		return json_null();
	/* A stored text may hold "\u0000": a query's value, a Lua string in a
	 * step's output (jansson refuses it without JSON_ALLOW_NUL). */
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	return v ? v : json_string(text);
}

json_t *hf_json_text_typed(const char *text, json_type type)
{
	json_t *v = hf_json_text(text);
	if (v && json_typeof(v) == type)
		return v;
	json_decref(v);
	return type == JSON_ARRAY ? json_array() : json_object();
}

static json_t *typed(const struct cell *c, json_type type)
{
	return hf_json_text_typed(c->null ? NULL : c->data, type);
}

/* An object's members that carry a credential (hf_header_is_secret: also
 * query parameters named token, secret, password, api-key…) shown as
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

/* A body as a string; one that is not UTF-8 base64-encoded, which row's
 * "body_encoding" says. */
static json_t *body(const struct cell *c, json_t *row)
{
	json_t *b = json_stringn(c->data ? c->data : "", c->len);
	if (!b) {
		char *enc = hf_base64_encode(c->data ? c->data : "", c->len);
		b = json_string(enc);
		free(enc);
		json_object_set_new(row, "body_encoding",
				    json_string("base64"));
	}
	return b;
}

static json_t *url(const struct cell *c)
{
	char *u = hf_redact_url(c->data);
	json_t *v = json_string(u);
	free(u);
	return v ? v : json_string(HF_REDACTED);
}

json_t *hf_cell_json(const struct cell *c, enum col_kind kind, json_t *row)
{
	switch (kind) {
	case C_INT:
		return json_integer(c->null ? 0 : c->i);
	case C_ARRAY:
		return typed(c, JSON_ARRAY);
	case C_HEADERS:
		return redact_members(typed(c, JSON_OBJECT));
	case C_BOOL:
		return json_boolean(!c->null && c->i);
	default:
		break;
	}
	if (c->null) /* a NULL body: damaged (hf_body) */
		return json_null();
	switch (kind) {
	case C_TEXT:
		return json_string(c->data);
	case C_TIME: {
		char at[32];
		hf_time_iso(c->i, at);
		return json_string(at);
	}
	case C_INT_OPT:
		return json_integer(c->i);
	case C_JSON:
		return hf_json_text(c->data);
	case C_BODY:
		return body(c, row);
	case C_URL:
		return url(c);
	case C_QUERY:
		return redact_members(hf_json_text(c->data));
	case C_BYTES:
		return json_stringn(c->data ? c->data : "", c->len);
	default:
		return json_null();
	}
}

/* --- the columns both backends show (store_rows.h) --- */

/* "node": the node that ran the step (SQLite: one node, unnamed: null). */
const struct col hf_step_cols[HF_STEP_COLS] = {
    {"id", C_TEXT},	    {"status", C_TEXT},	     {"output", C_JSON},
    {"error", C_TEXT},	    {"logs", C_ARRAY},	     {"attempts", C_INT},
    {"started_at", C_TIME}, {"finished_at", C_TIME}, {"node", C_TEXT},
};
const struct col hf_run_cols[HF_RUN_COLS] = {
    {"id", C_TEXT},	    {"workflow", C_TEXT},    {"event", C_TEXT},
    {"status", C_TEXT},	    {"attempt", C_INT},	     {"created_at", C_TIME},
    {"started_at", C_TIME}, {"finished_at", C_TIME}, {"error", C_TEXT},
    {"version", C_TEXT},    {"waiting", C_JSON}, /* hf_park.h */
};
/* The earlier attempts of a retried run. */
const struct col hf_history_cols[HF_HISTORY_COLS] = {
    {"attempt", C_INT}, {"status", C_TEXT},	 {"error", C_TEXT},
    {"steps", C_ARRAY}, {"finished_at", C_TIME},
};
const struct col hf_event_cols[HF_EVENT_COLS] = {
    {"id", C_TEXT},	     {"path", C_TEXT},	     {"method", C_TEXT},
    {"query", C_QUERY},	     {"headers", C_HEADERS}, {"body", C_BODY},
    {"received_at", C_TIME}, {"skipped", C_ARRAY},
};
const struct col hf_delivery_cols[HF_DELIVERY_COLS] = {
    {"id", C_TEXT},	    {"url", C_URL},	     {"status", C_TEXT},
    {"attempts", C_INT},    {"max_attempts", C_INT}, {"last_status", C_INT_OPT},
    {"last_error", C_TEXT}, {"run", C_TEXT},	     {"step", C_TEXT},
    {"next_at", C_TIME},    {"created_at", C_TIME},  {"updated_at", C_TIME},
    {"payload", C_BYTES}, /* hf_store_delivery_json only: a string */
};
const struct col hf_attempt_cols[HF_ATTEMPT_COLS] = {
    {"n", C_INT},      {"at", C_TIME},	       {"status", C_INT_OPT},
    {"error", C_TEXT}, {"duration_ms", C_INT},
};
static const struct col id_col[] = {{NULL, C_TEXT}};
const struct shape hf_id_shape = {id_col, 1};
