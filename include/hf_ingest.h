/* hf_ingest.h - the HTTP side (libmicrohttpd): reads a webhook within
 * --max-body, routes it, verifies its signature, evaluates the workflow-level
 * expressions, hands the event to the writer and suspends the connection until
 * the commit; answers 202 (or the sync run's answer) only then. Also serves the
 * reserved paths through the admin API module.
 *
 * The HTTP threads never run step code and never wait on the network.
 * <microhttpd.h> is included only by ingest.c. */
#ifndef HF_INGEST_H
#define HF_INGEST_H

#include "hf_server.h"
#include <jansson.h>

struct hf_ingest;

/* An answer to a request, built by ingest or the admin API. */
struct hf_answer {
	int status;
	char *body; /* malloc'd; NULL for an empty body */
	size_t len;
	const char *ctype; /* static string */
	json_t *headers;   /* extra headers, object of strings, or NULL */
	char allow[64];	   /* 405's Allow, "" otherwise */
	int retry_after;   /* seconds, 0 for none */
};
/* Sets a JSON answer {"error": MSG}. */
void hf_answer_error(struct hf_answer *a, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets a JSON answer from v (takes the reference). */
void hf_answer_json(struct hf_answer *a, int status, json_t *v);
void hf_answer_release(struct hf_answer *a);

/* Starts listening on srv->opt.listen. Returns NULL with err set when the
 * address cannot be bound. *port receives the port actually bound. */
struct hf_ingest *hf_ingest_start(struct hf_server *srv, int *port,
				  struct hf_error *err);
/* Stops accepting (new requests get 503), waits up to timeout_ms for requests
 * waiting on a commit, answers sync waiters, then stops the daemon. */
void hf_ingest_stop(struct hf_ingest *in, int64_t timeout_ms);

/* A respond: sync run is over: answers its waiting request. Any thread. */
void hf_ingest_sync_finish(struct hf_sync_waiter *waiter,
			   const struct hf_run *run);

#endif
