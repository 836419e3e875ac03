/* hf_http_frame.h - strict HTTP/1.1 framing checks (RFC 9112) on a request as
 * it was received: its raw request target and each header field. Pure: no
 * I/O, no allocation, no locks; ingest.c feeds it what libmicrohttpd parsed and
 * refuses the request (and closes the connection) when it says so. */
#ifndef HF_HTTP_FRAME_H
#define HF_HTTP_FRAME_H

#include <stdbool.h>
#include <stddef.h>

/* The verdict on one request. Zero it (or hf_frame_init) before use. */
struct hf_frame {
	int status;	 /* 0 while acceptable, else 400, 414 or 431 */
	char error[128]; /* why, when status != 0 (for {"error": ...}) */
	size_t nheaders, nhost, nlength, nte;
	size_t head; /* the bytes the head takes in MHD's pool (HF_HEAD_MAX) */
	bool te_chunked; /* every Transfer-Encoding was exactly "chunked" */
};

void hf_frame_init(struct hf_frame *f);

/* Where the path of an absolute-form target ("http://host/p?q", which an
 * origin server must accept: RFC 9112 section 3.2.2) begins, else 0: the
 * scheme's and host's bytes, which the origin form leaves out. */
size_t hf_frame_origin(const char *target, size_t len);

/* Checks the request target as received, before any percent-decoding, with
 * its query (len bytes, which may hold a NUL: it is refused). Refuses a
 * target longer than HF_MAX_URI_BYTES (414), more than HF_MAX_QUERY_PARAMS
 * query parameters (431), control characters or spaces, and a path whose
 * one percent-decoding is invalid or yields a NUL or another control
 * character, a '/', or a ".." segment (400). Returns f->status. When *query
 * is not NULL it receives the offset of the first '?' (len when none). */
int hf_frame_target(struct hf_frame *f, const char *target, size_t len,
		    size_t *query);

/* Why a request can never reach the route path (a workflow's path, as a
 * request's is once decoded), or NULL when one can: a ".." segment, which
 * hf_frame_target refuses; a "." segment, which clients remove before
 * sending (RFC 3986 section 5.2.4); a '%', since routes are matched on the
 * decoded path (a sender's "%41" reaches "A", and "%" only as "%25", which
 * no sender writing the path as shown sends). *at receives the offset of
 * the segment or character. */
const char *hf_frame_route_problem(const char *path, size_t *at);

/* Checks one header field as received (name without the colon, value
 * without leading whitespace) and counts what it takes in libmicrohttpd's
 * pool (a Cookie field's value twice: MHD parses a copy). Records the first
 * error only. */
void hf_frame_header(struct hf_frame *f, const char *name, size_t nlen,
		     const char *value, size_t vlen);

/* Adds to the head's size what the caller knows and the checks above do not
 * see: the method and version's bytes, and the cookies libmicrohttpd parsed
 * (one record each). */
void hf_frame_head(struct hf_frame *f, size_t bytes, size_t records);

/* After every header: the checks over them all (Content-Length with
 * Transfer-Encoding, repeated fields, Host for HTTP/1.1) and the head's size
 * (431 past HF_HEAD_MAX). Returns f->status. */
int hf_frame_finish(struct hf_frame *f, bool http11);

#endif
