/* answer.c - an HTTP answer as data (status, body, content type, extra
 * headers), built by the admin API and by ingest, sent by ingest.c, the one
 * module that speaks libmicrohttpd; and the JSON texts the ingest path writes
 * itself rather than through jansson's tree and dump (a dozen allocations a
 * request). Any thread; no state. */
#include "hf_answer.h"
#include "hf_body.h"
#include "hf_util.h"

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
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	size_t len = n < 0		      ? 0
		     : (size_t)n < sizeof msg ? (size_t)n
					      : sizeof msg - 1;
	/* A path or a name in the message is what the sender wrote, and the
	 * message may be cut inside a character: made valid UTF-8, so that
	 * the body is always {"error":...} (jansson refuses anything else). */
	struct hf_buf b = {0};
	hf_utf8_append(&b, msg, len, true);
	hf_answer_json(
	    a, status,
	    json_pack("{s:s%}", "error", b.len ? b.data : "", b.len));
	hf_buf_release(&b);
}

void hf_answer_release(struct hf_answer *a)
{
	free(a->body);
	json_decref(a->headers);
	memset(a, 0, sizeof *a);
}

/* A JSON string's contents as jansson's compact dump writes them: '"', '\\'
 * and the control characters escaped, the rest (UTF-8) as it is. */
static void dump_escaped(struct hf_buf *b, const char *s, size_t n)
{
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		hf_buf_append(b, s + run, i - run);
		run = i + 1;
		const char *e = c == '"'    ? "\\\""
				: c == '\\' ? "\\\\"
				: c == '\b' ? "\\b"
				: c == '\f' ? "\\f"
				: c == '\n' ? "\\n"
				: c == '\r' ? "\\r"
				: c == '\t' ? "\\t"
					    : NULL;
		if (e)
			hf_buf_append(b, e, 2);
		else /* jansson's case */
			hf_buf_printf(b, "\\u%04X", c);
	}
	hf_buf_append(b, s + run, n - run);
}

void hf_json_string_dump(struct hf_buf *b, const char *s, size_t n)
{
	dump_escaped(b, s, n);
}

char *hf_json_strings_text(json_t *obj)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		if (!json_is_string(v))
			return json_dumps(obj, JSON_COMPACT);
	}
	struct hf_buf b = {0};
	hf_buf_append(&b, "{", 1);
	bool first = true;
	json_object_foreach(obj, key, v)
	{
		hf_buf_append(&b, first ? "\"" : ",\"", first ? 1 : 2);
		dump_escaped(&b, key, strlen(key));
		hf_buf_append(&b, "\":\"", 3);
		dump_escaped(&b, json_string_value(v), json_string_length(v));
		hf_buf_append(&b, "\"", 1);
		first = false;
	}
	hf_buf_append(&b, "}", 1);
	return b.data;
}
