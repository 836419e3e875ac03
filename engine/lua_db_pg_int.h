/* lua_db_pg_int.h - internals shared by the two files of the `db` global on
 * PostgreSQL: lua_db_pg.c (the connection: made, waited on, settled between
 * steps, dropped) and lua_db_pg_call.c (db.exec/query/one/tx: parameters,
 * rows, transactions). Private: included by those two only, the files of the
 * Lua layer that include <libpq-fe.h>. */
#ifndef HF_LUA_DB_PG_INT_H
#define HF_LUA_DB_PG_INT_H

#include "lua_db_int.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Type OIDs (pg_type.dat): fixed since PostgreSQL 7. */
enum {
	OID_BOOL = 16,
	OID_BYTEA = 17,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT4 = 23,
	OID_OID = 26,
	OID_JSON = 114,
	OID_FLOAT4 = 700,
	OID_FLOAT8 = 701,
	OID_NUMERIC = 1700,
	OID_JSONB = 3802,
};

struct hf_lua_pg {
	char *uri;
	char *options; /* the URI's options plus the connection check */
	PGconn *conn;
	uint64_t gen;	  /* bumped at each new connection */
	uint64_t tx_gen;  /* the connection the outermost db.tx began on */
	int tx_depth;	  /* db.tx nesting */
	int64_t deadline; /* the step's, mono ms; 0 = none */
	int64_t limit;	  /* waits end here (mono ms); 0 = none */
	int64_t max_value;
	bool used; /* the step ran a statement */
	bool busy; /* a statement is in flight (no Lua may call in) */
	bool discard_pending; /* DISCARD ALL sent, its answer not read */
	int64_t retry_at;     /* no connection attempt before (mono ms) */
	char last_error[256]; /* why the last attempt failed */
};

/* How a wait on the server ended. */
enum pg_io { IO_OK = 0, IO_TIMEOUT = -1, IO_LOST = -2 };

/* libpq's message on one line, without its trailing newline. */
void hf_lua_pg_flatten(const char *m, char *out, size_t size);
/* Closes the connection (a later call connects again). */
void hf_lua_pg_drop(struct hf_lua_pg *p);
/* Makes the connection if there is none, within HF_DATA_PG_CONNECT_MS and
 * the step's deadline. Returns 0, or -1 with msg set. */
int hf_lua_pg_connect(struct hf_lua_pg *p, char *msg, size_t size);
/* At a step's first call: reads the answer to the DISCARD ALL sent after the
 * last step, and drops a connection the server has closed since. */
void hf_lua_pg_settle(struct hf_lua_pg *p);

/* Waits end at p->limit. Sends what libpq holds. */
enum pg_io hf_lua_pg_flush(struct hf_lua_pg *p);
/* The running query's next result into *res (NULL: no more). */
enum pg_io hf_lua_pg_next_result(struct hf_lua_pg *p, PGresult **res);
/* Reads and drops the rest of the running query's results. */
enum pg_io hf_lua_pg_drain(struct hf_lua_pg *p);
/* Words for io (the deadline, or the lost connection), then drops the
 * connection. */
void hf_lua_pg_lost(struct hf_lua_pg *p, enum pg_io io, char *msg, size_t size);
/* A statement without parameters or rows (BEGIN, COMMIT, SAVEPOINT …);
 * its command tag copied into tag (may be NULL). Returns 0, or -1 with msg
 * set (the connection dropped when it failed rather than the statement). */
int hf_lua_pg_control(struct hf_lua_pg *p, const char *sql, char *tag,
		      size_t tagsize, char *msg, size_t size);
/* A limit for cleaning up: the step's deadline, or HF_DATA_PG_GRACE_MS past
 * now when it has passed. */
int64_t hf_lua_pg_grace(const struct hf_lua_pg *p);

#endif
