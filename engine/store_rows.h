/* store_rows.h - how the state's rows show in the admin API and the CLI, the
 * same for both backends (private to engine/): each column's kind, a query's
 * shape (its columns, then an optional nested list of rows), and a cell
 * made JSON with its redaction (store_rows.c). A backend reads the cell off
 * its own result (store_sqlite_query.c, store_pg_query.c) and runs the
 * shape's queries itself. */
#ifndef HF_STORE_ROWS_H
#define HF_STORE_ROWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

/* How a column shows in JSON. */
enum col_kind {
	C_TEXT,	   /* a string, or null */
	C_TIME,	   /* ms since the epoch as ISO 8601, or null */
	C_INT,	   /* an integer (0 for NULL) */
	C_INT_OPT, /* an integer, or null */
	C_JSON,	   /* JSON text as its value (a string when it is not JSON) */
	C_ARRAY,   /* JSON text of an array, else [] */
	C_BODY,	   /* a body: a string, or base64 with "body_encoding" */
	C_URL,	   /* a URL, its credentials redacted (hf_redact_url) */
	C_HEADERS, /* request headers, credentials redacted */
	C_QUERY,   /* query parameters, credentials redacted */
	C_BYTES,   /* bytes as a string (PostgreSQL's bytea) */
	C_BOOL,	   /* a boolean */
};

struct col {
	const char *key; /* NULL: the row is this column's value alone */
	enum col_kind kind;
};

/* How a query's rows become JSON: the columns in order, then (optional) a
 * nested list of rows: sub_sql run with the row's column sub_col (which may
 * come after the ncols shown) as its one parameter on the same connection,
 * its rows made JSON by sub, as the member sub_key. */
struct shape {
	const struct col *cols;
	size_t ncols;
	const char *sub_key;
	const struct shape *sub;
	const char *sub_sql;
	int sub_col;
};

/* The columns both backends show, in the order their queries select them
 * (store_rows.c), and a row that is its one text column alone. */
#define HF_STEP_COLS 9
#define HF_RUN_COLS 11
#define HF_HISTORY_COLS 5
#define HF_EVENT_COLS 8
#define HF_DELIVERY_COLS 13
#define HF_ATTEMPT_COLS 5
/* the last, "payload", in hf_store_delivery_json only */
extern const struct col hf_step_cols[HF_STEP_COLS];
extern const struct col hf_run_cols[HF_RUN_COLS];
extern const struct col hf_history_cols[HF_HISTORY_COLS];
extern const struct col hf_event_cols[HF_EVENT_COLS];
extern const struct col hf_delivery_cols[HF_DELIVERY_COLS];
extern const struct col hf_attempt_cols[HF_ATTEMPT_COLS];
extern const struct shape hf_id_shape;

/* One cell as the backend read it: SQL NULL, or its bytes (text: NUL
 * -terminated; C_BODY and C_BYTES: any bytes) and, for C_TIME, C_INT,
 * C_INT_OPT and C_BOOL, its value as an integer. */
struct cell {
	bool null;
	const char *data;
	size_t len;
	int64_t i;
};

/* The cell as JSON, as a column of kind shows (a new reference). A C_BODY
 * that is not UTF-8 sets "body_encoding" in row. */
json_t *hf_cell_json(const struct cell *c, enum col_kind kind, json_t *row);

/* JSON text as its value: JSON null for NULL text, a string when the text
 * is not JSON (a new reference). */
json_t *hf_json_text(const char *text);

/* JSON text when it holds a value of type (an array or an object), else an
 * empty one (a new reference). */
json_t *hf_json_text_typed(const char *text, json_type type);

#endif
