/* answer.c - an HTTP answer as data (status, body, content type, extra
 * headers), built by the admin API and by ingest, sent by ingest.c, the one
 * module that speaks libmicrohttpd. Any thread; no state. */
#include "hf_answer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hf_answer_json(struct hf_answer *a, int status, json_t *v)
{
	free(a->body);
	a->status = status;
	a->body = json_dumps(v, JSON_COMPACT);
	a->len = a->body ? strlen(a->body) : 0;
	a->ctype = "application/json";
	json_decref(v);
}

void hf_answer_error(struct hf_answer *a, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	hf_answer_json(a, status, json_pack("{s:s}", "error", msg));
}

void hf_answer_release(struct hf_answer *a)
{
	free(a->body);
	json_decref(a->headers);
	memset(a, 0, sizeof *a);
}
