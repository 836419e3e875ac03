/* outbox_int.h - the outbox's internals shared by its files: outbox.c (the
 * thread: scans, starts, reaps), outbox_poll.c (the multi handle and its
 * wait), outbox_attempt.c (one attempt as a curl easy handle),
 * outbox_record.c (an attempt's outcome through the writer),
 * outbox_busy.c (the busy set and the per-host table). Not for other
 * modules; <curl/curl.h> is included here for the outbox's files only. */
#ifndef HF_OUTBOX_INT_H
#define HF_OUTBOX_INT_H

#include "hf_limits.h"
#include "hf_store.h"
#include "hf_util.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct hf_egress;

/* The ids of deliveries that a scan must skip: read ahead, in flight, or
 * their attempt's record not yet committed. A done id (its record
 * committed) is dropped at the next sweep. Not locked: the outbox holds its
 * lock around every call. Zeroed to start. */
struct hf_busy_id {
	char id[HF_DELIVERY_ID_SIZE];
	bool done;
};
struct hf_busy {
	struct hf_busy_id *ids;
	size_t n, cap;
	uint32_t *slots; /* hash index of ids: position + 1, 0 = empty */
	size_t nslots;	 /* a power of two, at least twice n */
};
bool hf_busy_has(const struct hf_busy *b, const char *id);
void hf_busy_add(struct hf_busy *b, const char *id);
void hf_busy_done(struct hf_busy *b, const char *id); /* unknown id: no-op */
void hf_busy_sweep(struct hf_busy *b);		      /* drops the done ids */
void hf_busy_free(struct hf_busy *b);

/* Attempts in flight and ready, per host (host:port). Outbox thread only.
 * Zeroed to start; free items at the end. */
struct hf_host {
	char name[256];
	int inflight, ready;
};
struct hf_hosts {
	struct hf_host *items;
	size_t n, cap;
};
/* The host's entry, made when missing. The pointer is valid until the next
 * hf_hosts_get or hf_hosts_put. */
struct hf_host *hf_hosts_get(struct hf_hosts *t, const char *name);
/* Drops h when nothing of its host is in flight or ready, so the table stays
 * as small as the number of hosts being delivered to. */
void hf_hosts_put(struct hf_hosts *t, struct hf_host *h);
/* The host:port of url (lower-case, no credentials) into out: the table's
 * key. */
void hf_host_of(const char *url, char *out, size_t size);

/* The request headers hookflow sets (outbox_attempt.c): Content-Type,
 * User-Agent, Expect, webhook-id, webhook-timestamp, webhook-signature. */
#define HF_JOB_HEADERS 6

/* One attempt in flight, or a due delivery read ahead (the ready list).
 * url, payload, hjson and secret point into the job's own allocation. */
struct job {
	char id[HF_DELIVERY_ID_SIZE];
	char host[256]; /* host:port, lower-case, for the per-host cap */
	char *url;
	char *payload;
	size_t len;
	char *hjson;  /* the emit's headers (JSON object text), or NULL */
	char *secret; /* NULL: unsigned */
	int64_t timeout_ms;
	/* The request headers, built when the attempt starts: the emit's own
	 * (curl_slist_append, up to custom_last), then hookflow's, whose
	 * nodes and lines are the job's (not curl's to free). */
	struct curl_slist *headers; /* the list curl is given */
	struct curl_slist *custom, *custom_last;
	struct curl_slist own[HF_JOB_HEADERS];
	char id_line[HF_DELIVERY_ID_SIZE + 16];
	char ts_line[48];
	char *sig_line; /* NULL: unsigned */
	int attempts;	/* made before this one */
	int max_attempts;
	int64_t backoff_ms;
	CURL *easy;
	int64_t started_mono;
	int64_t started_wall;
	char retry_after[64];
	char errbuf[CURL_ERROR_SIZE];
	const struct hf_egress *egress;
	struct hf_outbox *ob;
	char refused[160]; /* why the policy refused a connection; "" = not */
	struct job *next;
};

/* A socket of the multi handle (outbox_poll.c), by fd: what curl watches
 * (want) and what the epoll set has (reg), WANT_* bits; ours: opened and
 * closed through the outbox's callbacks. */
struct hf_outbox_fd {
	bool ours;
	unsigned char want, reg;
};

/* The record of one attempt on its way to the writer. */
struct record {
	struct hf_write w;
	struct hf_outbox *ob;
	int tries;	      /* refused while the database could write */
	struct record *again; /* in ob->unsaved */
};

struct hf_outbox {
	struct hf_store *store;
	const struct hf_egress *egress; /* NULL: the default policy */
	/* Made on the first attempt (hf_outbox_multi): curl's global set-up
	 * loads OpenSSL's providers (about 2 MiB), which a server that never
	 * emits does not need. Until then the thread waits on idle_cond. Set
	 * once, by the outbox thread; read by any thread to wake it. */
	_Atomic(CURLM *) multi;
	/* The multi handle's wait (outbox_poll.c): an epoll set, the eventfd
	 * that wakes it, when curl's timer is due (mono ms, -1: none), the
	 * sockets by fd. Made with the multi handle (-1 before); outbox thread
	 * only, but for evfd. */
	int epfd, evfd;
	int64_t curl_due;
	struct hf_outbox_fd *fds;
	size_t nfds;
	pthread_mutex_t idle_lock;
	pthread_cond_t idle_cond;
	pthread_t thread;
	atomic_bool stop;
	atomic_bool kicked;
	struct job *jobs; /* in flight: outbox thread only */
	int njobs;
	/* Due, read by a scan, not started yet (oldest first): a scan reads a
	 * page of due rows at once instead of one query per free slot. Bounded
	 * by HF_OUTBOX_READY rows and HF_OUTBOX_READY_BYTES of payload. Outbox
	 * thread only. */
	struct job *ready, **ready_tail;
	int nready;
	size_t ready_bytes;
	/* Where a scan that is not complete starts (next_at, wall ms, and
	 * seq among the rows of that next_at; scan() in outbox.c). Outbox
	 * thread only. */
	int64_t cursor, cursor_seq;
	/* Easy handles of finished attempts, for the next ones (their
	 * allocations cost as much as the request): the options every
	 * attempt sets alike stay set (outbox_attempt.c). Outbox thread
	 * only. */
	CURL *spare[HF_OUTBOX_MAX_INFLIGHT];
	int nspare;
	/* Attempts in flight and ready, per host (outbox thread only). */
	struct hf_hosts hosts;

	pthread_mutex_t lock; /* busy, writes */
	pthread_cond_t cond;
	struct hf_busy busy;
	int writes; /* attempt records submitted, not yet committed */
	/* The thread waits for a commit (launch stopped at the bound on
	 * writes): the next recorded() wakes it. Other commits do not, so
	 * that the writer does not pay a wake-up per delivery. */
	bool want_wake;
	/* Records the writer could not commit, to submit again (counted in
	 * writes); closed: the thread left, nobody will. */
	struct record *unsaved;
	bool closed;
};

/* outbox_poll.c. The multi handle, made on first use (NULL: it cannot
 * be). Outbox thread only. */
CURLM *hf_outbox_multi(struct hf_outbox *ob);
/* Wakes the outbox thread (its wait in hf_outbox_idle). Any thread. */
void hf_outbox_wake(struct hf_outbox *ob);
/* Waits up to ms for a socket, curl's timer or a wake-up, and hands curl
 * what is due. Outbox thread only. */
void hf_outbox_idle(struct hf_outbox *ob, int ms);
/* Calls curl back when its timer is due (new transfers: at once). */
void hf_outbox_run_timers(struct hf_outbox *ob);
/* A connection's socket was opened (attempt's open-socket callback) or is
 * to be closed (CURLOPT_CLOSESOCKETFUNCTION, data ob). */
void hf_outbox_socket_opened(struct hf_outbox *ob, curl_socket_t fd);
int hf_outbox_close_socket(void *ob, curl_socket_t fd);

/* outbox_attempt.c. */
/* A due delivery as a job, not started: everything copied out of the row. */
struct job *hf_outbox_prepare(struct hf_outbox *ob, const struct hf_delivery *d,
			      const char *host);
/* Starts an attempt of a prepared job: its headers (the signature's
 * timestamp is now) and its transfer. Returns 0, or -1 (j not kept). */
int hf_outbox_begin(struct hf_outbox *ob, struct job *j);
/* Frees a job; its easy handle is reset and kept for the next attempt. */
void hf_outbox_job_free(struct hf_outbox *ob, struct job *j);

/* outbox_record.c. An attempt ended with rc: its outcome decided, logged,
 * counted and submitted to the writer. Outbox thread only. */
void hf_outbox_finish(struct hf_outbox *ob, struct job *j, CURLcode rc);
/* Submits again the records the writer could not commit. With drop (the
 * thread is leaving), those it cannot take now are dropped. */
void hf_outbox_record_again(struct hf_outbox *ob, bool drop);

#endif
