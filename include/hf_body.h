/* hf_body.h - decoding of inbound bodies: JSON (with a nesting limit, so that
 * 100k '[' is an error and not a stack overflow) and
 * application/x-www-form-urlencoded, plus query strings. Pure functions on
 * untrusted input; each has a fuzz target. */
#ifndef HF_BODY_H
#define HF_BODY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct hf_buf;

enum hf_body_kind {
	HF_BODY_OTHER = 0, /* kept raw only; event.body is nil */
	HF_BODY_JSON,
	HF_BODY_FORM,
};

/* Classifies a Content-Type value ("application/json; charset=utf-8",
 * "application/vnd.api+json", "application/x-www-form-urlencoded"). NULL is
 * OTHER. */
enum hf_body_kind hf_body_kind_of(const char *content_type);

/* Decodes body per kind. On success returns 0 and *out (new reference; NULL for
 * HF_BODY_OTHER or an empty body). On failure returns -1 and writes a one-line
 * message (where and what, e.g. "invalid JSON at line 1, column 7: ...") into
 * err. */
int hf_body_decode(enum hf_body_kind kind, const char *body, size_t len,
		   json_t **out, char *err, size_t errsize);

/* Decodes a request's body as event.body: per its Content-Type (headers:
 * lower-case names), as hf_body_decode does, and a GitHub form delivery (a
 * form with an "x-github-event" header and a "payload" field: GitHub's default
 * content type) as the JSON of that field. Same contract; a payload that is
 * not JSON is an error ("invalid JSON in the form's payload field: ..."). */
int hf_body_decode_event(const json_t *headers, const char *body, size_t len,
			 json_t **out, char *err, size_t errsize);
/* The same from the two headers it reads, where there is no tree of them
 * (the HTTP threads): Content-Type and whether X-GitHub-Event was sent. */
int hf_body_decode_sent(const char *content_type, bool github, const char *body,
			size_t len, json_t **out, char *err, size_t errsize);

/* Parses JSON text with the nesting limit of hf_limits.h. Same contract. */
int hf_json_parse(const char *text, size_t len, json_t **out, char *err,
		  size_t errsize);

/* Decodes "a=1&b=x+y&c=%41" into {"a":"1","b":"x y","c":"A"} (a repeated key
 * keeps the last value; invalid UTF-8 is replaced by U+FFFD, and so is NUL in
 * keys; "a" alone is "a":""). Returns a new object. */
json_t *hf_form_decode(const char *s, size_t len);

/* Appends s[0..n) to out as valid UTF-8: each maximal invalid subpart as one
 * U+FFFD, and each NUL too when no_nul. */
void hf_utf8_append(struct hf_buf *out, const char *s, size_t n, bool no_nul);

/* Decodes a URL query string (without the '?') by the same rules as a form.
 * Returns a new object; NULL or empty input gives {}. */
json_t *hf_query_decode(const char *query, size_t len);

#endif
