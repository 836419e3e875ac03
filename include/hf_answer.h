/* hf_answer.h - an answer to an HTTP request as plain data, built by the admin
 * API and by ingest and sent by ingest (answer.c). */
#ifndef HF_ANSWER_H
#define HF_ANSWER_H

#include <jansson.h>
#include <stddef.h>

/* An answer to a request, built by ingest or the admin API. ingest.c sends
 * every answer with X-Content-Type-Options: nosniff besides these. */
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
/* The compact JSON text of a flat object of strings (the headers, the
 * query), as json_dumps(JSON_COMPACT) writes it, in one buffer: json_dumps
 * costs about ten allocations (its buffer's growth, the cycle check's table,
 * the final copy). Anything else is left to json_dumps. Returns a malloc'd
 * text. */
char *hf_json_strings_text(json_t *obj);
struct hf_buf;
/* Appends the contents of a JSON string holding s (n bytes of UTF-8) as
 * hf_json_strings_text writes them (no quotes). */
void hf_json_string_dump(struct hf_buf *b, const char *s, size_t n);

#endif
