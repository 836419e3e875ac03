/* lua_db_pg.c - the `db` global on a PostgreSQL --data database
 * (`--data postgres://…`): its connection. lua_db_pg_call.c has the calls,
 * with the API of lua_db.c (db.exec, db.query, db.one, db.tx); these two are
 * the only files of the Lua layer that include <libpq-fe.h>.
 *
 * Each runtime (one per worker) has one connection, made on its first db.*
 * call and made again on the first call after it was lost (the call that
 * found it lost fails with a message that says so; a failed attempt is not
 * repeated for HF_DATA_PG_RETRY_MS, the calls meanwhile failing at once with
 * its message). The connection is non-blocking and every wait on the server
 * (connecting, sending, reading) ends at p->limit, the step's deadline: there
 * the connection is closed, the call fails "interrupted at the step's
 * deadline", and the server, told at connect to check for closed connections
 * every HF_DATA_PG_CHECK_MS (client_connection_check_interval), stops the
 * statement. No PQcancel: it would open a blocking connection of its own.
 *
 * After each step that used the connection, an open transaction is rolled
 * back and DISCARD ALL is sent, its answer read at the next step's first call
 * (so the step does not wait for it): every step starts with the
 * connection's first settings, whatever SET, PREPARE, LISTEN, temporary table
 * or session advisory lock the step left. That first call also notices a
 * connection the server closed meanwhile (a restart) and connects again
 * before sending anything.
 *
 * Owns: the PGconn. Threading: the runtime's thread only. Neighbours:
 * lua_db.c switches here when --data is a PostgreSQL URI and brackets steps
 * with hf_lua_pg_begin_step / hf_lua_pg_end_step; lua_db_pg_call.c through
 * lua_db_pg_int.h. */
#include "lua_db_pg_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool hf_lua_pg_is_uri(const char *path)
{
	return path && (strncmp(path, "postgres://", 11) == 0 ||
			strncmp(path, "postgresql://", 13) == 0);
}

/* libpq's message on one line, without its trailing newline. */
void hf_lua_pg_flatten(const char *m, char *out, size_t size)
{
	size_t k = 0;
	bool space = false;
	for (; m && *m && k + 1 < size; m++) {
		if (*m == '\n' || *m == '\t' || *m == '\r') {
			space = k > 0;
			continue;
		}
		/* "…refused\n\tIs the server running…": a sentence each */
		if (space && k + 3 < size && isalnum((unsigned char)out[k - 1]))
			out[k++] = '.';
		if (space && k + 2 < size)
			out[k++] = ' ';
		space = false;
		out[k++] = *m;
	}
	out[k] = '\0';
}

static void ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

struct hf_lua_pg *hf_lua_pg_open(const char *uri, int64_t max_value,
				 struct hf_error *err)
{
	char *why = NULL;
	PQconninfoOption *opts = PQconninfoParse(uri, &why);
	if (!opts) {
		char m[256];
		hf_lua_pg_flatten(why ? why : "out of memory", m, sizeof m);
		PQfreemem(why);
		/* libpq quotes the URI, password and all: leave it out */
		char *at = strstr(m, uri);
		if (!at) /* cut short by the buffer */
			at = strstr(m, "\"postgres");
		if (at) {
			while (at > m && strchr(" :\"", at[-1]))
				at--;
			*at = '\0';
		}
		hf_error_set(err, NULL, 0, 0,
			     "--data: invalid PostgreSQL URI: %s", m);
		return NULL;
	}
	const char *given = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, "options") == 0 && o->val)
			given = o->val;
	struct hf_lua_pg *p = hf_xcalloc(1, sizeof *p);
	p->uri = hf_xstrdup(uri);
	p->options = hf_xasprintf("%s%s-c client_connection_check_interval=%d",
				  given ? given : "", given ? " " : "",
				  HF_DATA_PG_CHECK_MS);
	PQconninfoFree(opts);
	p->max_value = max_value;
	return p;
}

void hf_lua_pg_drop(struct hf_lua_pg *p)
{
	if (p->conn)
		PQfinish(p->conn);
	p->conn = NULL;
	p->discard_pending = false;
}

void hf_lua_pg_close(struct hf_lua_pg *p)
{
	if (!p)
		return;
	hf_lua_pg_drop(p);
	free(p->uri);
	free(p->options);
	free(p);
}

/* ---- waiting on the socket ---- */

/* Waits until the connection's socket has events (POLLIN, POLLOUT) or
 * p->limit passes. Returns the events seen, 0 at the limit, -1 on error. */
static int wait_socket(struct hf_lua_pg *p, PGconn *c, short events)
{
	int fd = PQsocket(c);
	if (fd < 0)
		return -1;
	for (;;) {
		int ms = -1;
		if (p->limit) {
			int64_t left = p->limit - hf_mono_ms();
			if (left <= 0)
				return 0;
			ms = left > INT_MAX ? INT_MAX : (int)left;
		}
		struct pollfd pfd = {fd, events, 0};
		int r = poll(&pfd, 1, ms);
		if (r > 0)
			return pfd.revents ? pfd.revents : events;
		if (r == 0)
			continue; /* the limit is checked above */
		if (errno != EINTR)
			return -1;
	}
}

/* Sends what libpq has buffered. */
enum pg_io hf_lua_pg_flush(struct hf_lua_pg *p)
{
	for (;;) {
		int r = PQflush(p->conn);
		if (r == 0)
			return IO_OK;
		if (r < 0)
			return IO_LOST;
		int ev = wait_socket(p, p->conn, POLLIN | POLLOUT);
		if (ev == 0)
			return IO_TIMEOUT;
		if (ev < 0)
			return IO_LOST;
		if ((ev & POLLIN) && !PQconsumeInput(p->conn))
			return IO_LOST;
	}
}

/* The next result of the running query (NULL when it is over). */
enum pg_io hf_lua_pg_next_result(struct hf_lua_pg *p, PGresult **res)
{
	*res = NULL;
	while (PQisBusy(p->conn)) {
		int ev = wait_socket(p, p->conn, POLLIN);
		if (ev == 0)
			return IO_TIMEOUT;
		if (ev < 0 || !PQconsumeInput(p->conn))
			return IO_LOST;
	}
	*res = PQgetResult(p->conn);
	if (!*res && PQstatus(p->conn) == CONNECTION_BAD)
		return IO_LOST;
	return IO_OK;
}

/* Reads and drops the rest of the running query's results. */
enum pg_io hf_lua_pg_drain(struct hf_lua_pg *p)
{
	for (;;) {
		PGresult *r;
		enum pg_io io = hf_lua_pg_next_result(p, &r);
		if (io != IO_OK)
			return io;
		if (!r)
			return IO_OK;
		ExecStatusType st = PQresultStatus(r);
		PQclear(r);
		if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT ||
		    st == PGRES_COPY_BOTH)
			return IO_LOST; /* never started by a step: give up */
	}
}

/* ---- the connection ---- */

/* The answer to the DISCARD ALL sent after the last step; and whether the
 * server closed the connection since (a restart between steps), so that the
 * first statement of a step goes to a live connection. */
void hf_lua_pg_settle(struct hf_lua_pg *p)
{
	if (!p->conn)
		return;
	if (p->discard_pending) {
		p->discard_pending = false;
		PGresult *r;
		bool ok = true;
		for (;;) {
			if (hf_lua_pg_next_result(p, &r) != IO_OK) {
				ok = false;
				break;
			}
			if (!r)
				break;
			if (PQresultStatus(r) != PGRES_COMMAND_OK)
				ok = false;
			PQclear(r);
		}
		if (!ok) {
			hf_lua_pg_drop(p);
			return;
		}
	}
	int fd = PQsocket(p->conn);
	struct pollfd pfd = {fd, POLLIN, 0};
	if (fd < 0 ||
	    (poll(&pfd, 1, 0) > 0 &&
	     (!PQconsumeInput(p->conn) || PQstatus(p->conn) != CONNECTION_OK)))
		hf_lua_pg_drop(p);
}

/* Makes the connection if there is none. Returns 0, or -1 with msg set. */
int hf_lua_pg_connect(struct hf_lua_pg *p, char *msg, size_t size)
{
	if (p->conn)
		return 0;
	int64_t now = hf_mono_ms();
	if (now < p->retry_at) {
		snprintf(msg, size, "cannot connect to PostgreSQL (--data): %s",
			 p->last_error);
		return -1;
	}
	const char *const keys[] = {"fallback_application_name", "dbname",
				    "options", "client_encoding", NULL};
	const char *const vals[] = {"hookflow-data", p->uri, p->options, "UTF8",
				    NULL};
	PGconn *c = PQconnectStartParams(keys, vals, 1);
	int64_t saved = p->limit;
	p->limit = now + HF_DATA_PG_CONNECT_MS;
	if (p->deadline && p->deadline < p->limit)
		p->limit = p->deadline;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	const char *why = NULL;
	bool at_deadline = false;
	while (c && PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	       st != PGRES_POLLING_FAILED) {
		int ev = wait_socket(
		    p, c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT);
		if (ev == 0) {
			at_deadline = p->limit == p->deadline;
			why = at_deadline
				  ? "no answer before the step's deadline"
				  : "timed out";
			break;
		}
		st = PQconnectPoll(c);
	}
	p->limit = saved;
	if (c && !why && st == PGRES_POLLING_OK &&
	    PQstatus(c) == CONNECTION_OK) {
		PQsetNoticeProcessor(c, ignore_notice, NULL);
		PQsetnonblocking(c, 1);
		p->conn = c;
		p->gen++;
		p->retry_at = 0;
		return 0;
	}
	hf_lua_pg_flatten(why ? why
			  : c ? PQerrorMessage(c)
			      : "out of memory",
			  p->last_error, sizeof p->last_error);
	PQfinish(c);
	/* the step's own deadline says nothing about the server */
	p->retry_at = at_deadline ? 0 : hf_mono_ms() + HF_DATA_PG_RETRY_MS;
	snprintf(msg, size, "cannot connect to PostgreSQL (--data): %s",
		 p->last_error);
	return -1;
}

/* Why the connection failed (then dropped), for a message. */
void hf_lua_pg_lost(struct hf_lua_pg *p, enum pg_io io, char *msg, size_t size)
{
	if (io == IO_TIMEOUT) {
		snprintf(msg, size, "interrupted at the step's deadline");
	} else {
		char m[256];
		hf_lua_pg_flatten(p->conn ? PQerrorMessage(p->conn) : "", m,
				  sizeof m);
		snprintf(msg, size,
			 "lost the connection to PostgreSQL (--data)%s%s; the "
			 "next call connects again",
			 *m ? ": " : "", m);
	}
	hf_lua_pg_drop(p);
}

/* A control statement (BEGIN, COMMIT, SAVEPOINT …) on the live connection.
 * Copies its command tag into tag. Returns 0, or -1 with msg set (the
 * connection dropped when it failed rather than the statement). */
int hf_lua_pg_control(struct hf_lua_pg *p, const char *sql, char *tag,
		      size_t tagsize, char *msg, size_t size)
{
	if (tag)
		tag[0] = '\0';
	if (!p->conn) {
		snprintf(msg, size, "no connection to PostgreSQL (--data)");
		return -1;
	}
	enum pg_io io =
	    PQsendQuery(p->conn, sql) ? hf_lua_pg_flush(p) : IO_LOST;
	msg[0] = '\0';
	PGresult *r = NULL;
	while (io == IO_OK && (io = hf_lua_pg_next_result(p, &r)) == IO_OK &&
	       r) {
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_FATAL_ERROR && !msg[0]) {
			hf_lua_pg_flatten(
			    PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY), msg,
			    size);
		} else if (st == PGRES_COMMAND_OK && tag) {
			snprintf(tag, tagsize, "%s", PQcmdStatus(r));
		}
		PQclear(r);
	}
	if (io != IO_OK) {
		hf_lua_pg_lost(p, io, msg, size);
		return -1;
	}
	return msg[0] ? -1 : 0;
}

/* ---- steps ---- */

void hf_lua_pg_begin_step(struct hf_lua_pg *p, int64_t deadline_ms)
{
	p->deadline = deadline_ms;
	p->limit = deadline_ms;
}

/* A wait limit for cleaning up: the deadline, or a little past it when it
 * has passed. */
int64_t hf_lua_pg_grace(const struct hf_lua_pg *p)
{
	int64_t now = hf_mono_ms();
	if (!p->deadline)
		return now + HF_DATA_PG_CONNECT_MS;
	return (p->deadline > now ? p->deadline : now) + HF_DATA_PG_GRACE_MS;
}

bool hf_lua_pg_end_step(struct hf_lua_pg *p)
{
	if (!p)
		return false;
	bool rolled = false;
	p->tx_depth = 0;
	if (!p->used) {
		/* untouched (an expression, a step without db.*): the answer
		 * to the last DISCARD ALL may still be on its way */
		p->deadline = p->limit = 0;
		return false;
	}
	p->limit = hf_lua_pg_grace(p);
	if (p->conn) {
		char msg[256];
		switch (PQtransactionStatus(p->conn)) {
		case PQTRANS_IDLE:
			break;
		case PQTRANS_INTRANS:
		case PQTRANS_INERROR:
			rolled = true;
			if (hf_lua_pg_control(p, "ROLLBACK", NULL, 0, msg,
					      sizeof msg))
				hf_lua_pg_drop(p);
			break;
		default:
			hf_lua_pg_drop(p);
			break;
		}
	}
	/* Whatever the step set on the session goes; the answer is read at
	 * the next call, so the step does not wait for it. */
	if (p->conn) {
		if (PQsendQuery(p->conn, "DISCARD ALL") &&
		    hf_lua_pg_flush(p) == IO_OK)
			p->discard_pending = true;
		else
			hf_lua_pg_drop(p);
	}
	p->used = false;
	p->deadline = p->limit = 0;
	return rolled;
}
