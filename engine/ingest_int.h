/* ingest_int.h - internals shared by the files of the ingest module: ingest.c
 * (reading, routing, verifying and dispatching a request), ingest_loop.c (the
 * HTTP threads and their daemons) and ingest_sync.c (the request while its
 * connection is suspended: the write, the sync waiters, their answers).
 * Private: included only from engine/, never from include/. The public API is
 * hf_ingest.h. <microhttpd.h> is included by the .c files only. */
#ifndef HF_INGEST_INT_H
#define HF_INGEST_INT_H

#include "hf_backlog.h"
#include "hf_http_frame.h"
#include "hf_ingest.h"
#include "hf_limits.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_MATCH HF_MAX_MATCH

struct MHD_Connection;
struct MHD_Daemon;

enum req_state { READING, WAITING, ANSWERING };

/* ingest_event.c: a request's headers as the event keeps them, without a
 * tree; names and values are offsets into arena (kept from one request to
 * the next on an HTTP thread). Past HF_MAX_HEADERS a request is answered 431
 * before they are collected. */
#define HF_REQ_HEADERS (HF_MAX_HEADERS + 1)
struct hf_req_headers {
	size_t n;
	uint32_t name[HF_REQ_HEADERS], value[HF_REQ_HEADERS];
	struct hf_buf arena;
	struct hf_buf text; /* the event's headers_text, copied into it */
};

struct req {
	enum req_state state;
	struct hf_ingest *in;
	struct hf_http_loop *loop; /* the thread the connection belongs to */
	struct MHD_Connection *conn;
	bool started;		/* on_request was called */
	struct hf_frame frame;	/* the framing checks (http_frame.c) */
	const char *target_end; /* the raw target's NUL, as on_target saw it */
	char *target;		/* a copy of the raw target (signatures) */
	bool ops;		/* a reserved path */
	bool too_large;
	size_t discarded; /* bytes read and dropped past --max-body */
	bool answered_early;
	/* A 503 decided before the body was read, answered once it was (the
	 * body is discarded): the keep-alive connection survives. */
	bool refuse;
	struct hf_snapshot *snap;
	struct hf_workflow *wfs[MAX_MATCH];
	size_t nwfs;
	struct hf_buf body;
	struct hf_answer ans;

	/* while WAITING */
	struct hf_write w;
	struct hf_event *ev;
	/* The runs; those not handed to the scheduler (stored on disk,
	 * duplicates, not stored) are freed with the request, on its HTTP
	 * thread (req_free), not on the writer's. */
	struct hf_run *runs[MAX_MATCH];
	size_t nruns;
	enum hf_place place; /* memory (admitted) or disk (reserved) */
	bool dropped[MAX_MATCH];
	struct req *resume_next; /* answered at the end of the writer's batch */
	/* Held rather than suspended (hf_ingest_submit): the connection
	 * stays in its thread's loop, whose handler call finds the answer
	 * once the writer set `committed` (its last touch of the request).
	 * `held` is set before the write is submitted and never changed
	 * while the writer has it; the loop counts the request (hf_http_loop
	 * .held) while it is WAITING. A held request whose connection closed
	 * first waits for its commit on its loop's `abandoned` list. */
	bool held;
	atomic_bool committed;
	struct req *abandoned_next;
	/* What the commit said, turned into the answer on the HTTP thread
	 * (hf_ingest_answer_commit): the writer allocates nothing for it. */
	enum { OUT_NONE, OUT_STORED, OUT_DUPLICATE, OUT_FAILED } outcome;
	size_t nids; /* the runs stored: ids[0..nids) */
	struct hf_sync_waiter *waiter;
	char sync_run_id[HF_ID_SIZE];
	/* No run was made and a `respond: sync` workflow declined: the
	 * stored event answers 404 instead of 202. */
	bool sync_declined;
	/* A signal (hf_park.h, ingest_signal.c): the wait_for step of the
	 * request's path (from r->snap), or a run.resume_url request; what it
	 * resumed (ids), set before the request is resumed. */
	const struct hf_step *signal;
	/* A workflow's cancel_on: names the request's path (flow.c). */
	bool cancel_on;
	bool resume;
	json_t *resumed;
	bool signal_failed;	/* stored, but its runs could not be resumed */
	const char *signal_why; /* why not, when the signal's limits say */
	/* A signal admitted (hf_ingest_signal_admit): its body as the step's
	 * output, and its place among the signals to match, until handed to
	 * hf_park_signal (else given back by req_free). */
	char *signal_output;
	bool signal_reserved;

	/* Not cleared for a new request (req_new): read only as far as their
	 * counts (headers.n, nids) say, or kept buffers. */
	struct hf_req_headers headers; /* collected by process() */
	char ids[MAX_MATCH][HF_ID_SIZE];
};
/* What req_new clears of a recycled request. */
#define REQ_CLEARED offsetof(struct req, headers)

/* An HTTP thread and its daemon (ingest_loop.c). With --http-io poll, one
 * daemon with libmicrohttpd's own threads (wake_fd -1). */
struct hf_http_loop {
	struct hf_ingest *in;
	struct MHD_Daemon *d;
	int wake_fd; /* eventfd in d's epoll set, or -1 */
	pthread_t th;
	bool running; /* th started */
	bool failed;  /* the event loop failed once (logged) */
	atomic_bool stop;
	bool woken; /* writer only: answered in this batch, to wake */
	/* This thread's only: its held requests (struct req.held), and those
	 * of them whose connection closed before their commit. */
	int held;
	struct req *abandoned;
	int outer_fd; /* epoll over d's epoll fd: the wait while held > 0 */
};

struct hf_ingest {
	struct hf_engine *eng;
	struct hf_http_loop *loops;
	int nloops;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Requests held or suspended on a commit or a sync run. Atomic: the hot
	 * path touches no lock; only a drain waits on it (polling). */
	atomic_int waiting;
	struct hf_sync_waiter *waiters;
};
/* ingest.c. Starts one libmicrohttpd daemon whose requests this module
 * handles (on l's thread): on sa, or on the listening socket listen_fd when
 * it is >= 0; with pool > 0 threads of libmicrohttpd's own (flags then hold
 * MHD_USE_INTERNAL_POLLING_THREAD); at most limit connections. NULL when it
 * cannot (the address is taken). */
struct sockaddr_in;
struct MHD_Daemon *hf_ingest_daemon(struct hf_http_loop *l, unsigned flags,
				    const struct sockaddr_in *sa, int listen_fd,
				    unsigned pool, unsigned limit);
/* ingest_loop.c. Wakes loop l's thread once a connection of its was resumed
 * (MHD_resume_connection) or a held request committed: nothing with
 * libmicrohttpd's own threads. */
void hf_http_wake(struct hf_http_loop *l);
/* ingest.c. Frees the requests on l's abandoned list whose commit is over
 * (counted and logged as answered): on l's thread, or once it has ended. */
void hf_ingest_reap(struct hf_http_loop *l);

/* ingest_sync.c. Hands the event r->ev and its nruns runs (r->runs) to the
 * writer and suspends the connection until the commit's answer resumes it,
 * or, on one of hookflow's own HTTP threads, holds it (struct req.held);
 * with a `respond: sync` run, makes the request's waiter first. The caller
 * counted the request in hf_ingest.waiting. */
void hf_ingest_submit(struct req *r, size_t nruns);
/* ingest_sync.c. The resumed request's answer from its commit's outcome
 * (202, 200 duplicate, 503), logged and counted: on its HTTP thread. */
void hf_ingest_answer_commit(struct req *r);
/* ingest_sync.c. Resumes a suspended request now, its answer set (any
 * thread). */
void hf_ingest_resume_now(struct req *r);
/* ingest_signal.c. After its commit: hands a stored signal to the parked
 * runs (hf_park_signal); the request resumes with "resumed" once they are.
 * Writer thread, in the commit's done(). */
void hf_ingest_signal_stored(struct req *r, bool answer);
/* ingest_signal.c. Before a signal is stored (HTTP thread): false, with the
 * answer set, when its body is larger than a step's output may be (413) or
 * too many signals wait to be matched (503, Retry-After); else it holds a
 * place until hf_ingest_signal_stored or hf_ingest_signal_free. */
bool hf_ingest_signal_admit(struct req *r);
/* ingest_signal.c. What an admitted signal still holds (req_free). */
void hf_ingest_signal_free(struct req *r);
/* ingest_signal.c. A POST to run.resume_url (r->resume), body read:
 * checks the token, hands the body to the parked runs, suspends. */
enum hf_ingest_rc { HF_INGEST_ANSWER, HF_INGEST_SUSPENDED };
enum hf_ingest_rc hf_ingest_resume(struct req *r, const char *url);

/* ingest_event.c. Collects the request's headers into h and writes h->text,
 * the event's headers_text: the compact JSON object hf_json_strings_text
 * wrote of the tree (h's buffers kept). */
void hf_req_headers_collect(struct hf_req_headers *h, struct MHD_Connection *c);
/* The same, one field at a time (what collect does for each; the fuzz target
 * tests/fuzz/fuzz_headers.c): start, add each, finish (writes h->text). */
void hf_req_headers_start(struct hf_req_headers *h);
void hf_req_headers_add(struct hf_req_headers *h, const char *key,
			const char *value);
void hf_req_headers_finish(struct hf_req_headers *h);
/* Replaces the value of the header named name (lower-case), if sent, with
 * HF_REDACTED, and writes h->text again. */
void hf_req_headers_redact(struct hf_req_headers *h, const char *name);
/* ingest_event.c. The value of the header named name (lowercase), or NULL;
 * ctx is a struct hf_req_headers (an hf_header_fn). */
const char *hf_req_header(void *ctx, const char *name);

/* ingest_event.c. The query parameters of a raw target ("/p?a=1") as a
 * tree, or NULL when there are none (the event's query text is then "{}"). */
json_t *hf_req_query(const char *target);
/* ingest_event.c. Makes r->ev once the request is verified, from r->headers,
 * r->body (copied, r keeping its buffer, up to HF_BODY_KEEP; else taken)
 * and the query tree q (taken). */
struct hf_event *hf_req_event(struct req *r, const char *url,
			      const char *method, json_t *q);

/* ingest_sync.c. Answers every live sync waiter 202 (their runs go on) and
 * resumes its request: at shutdown. */
void hf_ingest_answer_waiters(struct hf_ingest *in);

#endif
