/* hf_ingest.h - the HTTP side (libmicrohttpd): reads a webhook within
 * --max-body, routes it, verifies its signature, evaluates the workflow-level
 * expressions, hands the event to the writer and suspends the connection until
 * the commit; answers 202 (or the sync run's answer) only then. Also serves the
 * reserved paths through the admin API module.
 *
 * The HTTP threads never run step code and never wait on the network.
 * <microhttpd.h> is included only by ingest*.c. */
#ifndef HF_INGEST_H
#define HF_INGEST_H

#include "hf_answer.h"
#include "hf_engine.h"

struct hf_ingest;

/* Starts listening on eng->opt.listen. Returns NULL with err set when the
 * address cannot be bound. *port receives the port actually bound. */
struct hf_ingest *hf_ingest_start(struct hf_engine *eng, int *port,
				  struct hf_error *err);
/* Stops accepting (new requests get 503), waits up to timeout_ms for requests
 * waiting on a commit, answers sync waiters, then stops the daemon. */
void hf_ingest_stop(struct hf_ingest *in, int64_t timeout_ms);

/* The writer's batch is over (hf_store_on_batch_end, writer thread): resumes
 * the requests whose commit it answered, all at once. */
void hf_ingest_batch_end(void);

/* A respond: sync run is over: answers its waiting request. Any thread. */
void hf_ingest_sync_finish(struct hf_sync_waiter *waiter,
			   const struct hf_run *run);

#endif
