/* ingest_event.c - a webhook's event as made from its request, on its HTTP
 * thread: the event, its strings and its body in one allocation
 * (hf_req_event), the query's tree only when there is a query, and the
 * headers without a jansson tree: the names lowercased (cut at 255
 * bytes), a repeated field's values joined with ", ", a value that is not
 * UTF-8 kept as "" and a name that is not dropped - what the tree built by
 * json_object_set_new made of them before. Looked up here (signatures, the
 * body's kind), written once as the event's headers_text; the tree is parsed
 * from that text on first use, if ever (hf_event_headers: a body that is not
 * JSON, a default dedupe header). A tree cost about 14 allocations a request.
 *
 * The names and values live in one buffer, the text in another, that a
 * request keeps for the next one on its thread (req_new in ingest.c).
 *
 * Threading: the request's HTTP thread only. Neighbours: ingest.c (the
 * request), answer.c (the JSON string escapes), run.c (the packed event). */
#include "hf_answer.h"
#include "hf_body.h"
#include "hf_json_check.h"
#include "hf_redact.h"
#include "ingest_int.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

/* Whether s (n bytes) is UTF-8 as jansson accepts it (hf_utf8_len). */
static bool utf8_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = hf_utf8_len(s + i, n - i, NULL);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

static const char *at(const struct hf_req_headers *h, uint32_t off)
{
	return h->arena.data + off;
}

/* Appends s (n bytes) and a NUL to the arena; returns its offset. */
static uint32_t put(struct hf_req_headers *h, const char *s, size_t n)
{
	uint32_t off = (uint32_t)h->arena.len;
	hf_buf_append(&h->arena, s, n);
	hf_buf_append(&h->arena, "", 1);
	return off;
}

static ssize_t find(const struct hf_req_headers *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(at(h, h->name[i]), name) == 0)
			return (ssize_t)i;
	return -1;
}

/* One header, its name lower-cased (nlen bytes). */
static void collect_named(struct hf_req_headers *h, const char *name,
			  size_t nlen, const char *value)
{
	if (!utf8_ok((const unsigned char *)name, nlen))
		return; /* jansson refused such a key */
	if (!value)
		value = "";
	size_t vlen = strlen(value);
	if (!utf8_ok((const unsigned char *)value, vlen))
		vlen = 0; /* not UTF-8: kept as "" */
	ssize_t prev = find(h, name);
	if (prev >= 0) {
		/* "prev, value", after what it replaces: the arena grows
		 * (pv points into it: hf_buf_append keeps it valid) */
		const char *pv = at(h, h->value[prev]);
		size_t plen = strlen(pv);
		uint32_t off = (uint32_t)h->arena.len;
		hf_buf_append(&h->arena, pv, plen);
		hf_buf_append(&h->arena, ", ", 2);
		hf_buf_append(&h->arena, value, vlen);
		hf_buf_append(&h->arena, "", 1);
		h->value[prev] = off;
		return;
	}
	if (h->n >= HF_REQ_HEADERS)
		return; /* past HF_MAX_HEADERS: answered 431 before */
	h->name[h->n] = put(h, name, nlen);
	h->value[h->n] = put(h, value, vlen);
	h->n++;
}

void hf_req_headers_add(struct hf_req_headers *h, const char *key,
			const char *value)
{
	/* The whole name, lower-cased (on the stack when short): a name cut
	 * short would lose what redaction looks for ("...-token"). */
	size_t i = strlen(key);
	char small[256];
	char *name = i < sizeof small ? small : hf_xmalloc(i + 1);
	for (size_t k = 0; k < i; k++)
		name[k] = (char)tolower((unsigned char)key[k]);
	name[i] = '\0';
	collect_named(h, name, i, value);
	if (name != small)
		free(name);
}

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind,
			       const char *key, const char *value)
{
	hf_req_headers_add(cls, key, value);
	return MHD_YES;
}

/* h->text from the collected headers. */
static void write_text(struct hf_req_headers *h)
{
	struct hf_buf *b = &h->text;
	b->len = 0;
	b->max = 0;
	hf_buf_append(b, "{", 1);
	for (size_t i = 0; i < h->n; i++) {
		const char *name = at(h, h->name[i]), *v = at(h, h->value[i]);
		hf_buf_append(b, i ? ",\"" : "\"", i ? 2 : 1);
		hf_json_string_dump(b, name, strlen(name));
		hf_buf_append(b, "\":\"", 3);
		hf_json_string_dump(b, v, strlen(v));
		hf_buf_append(b, "\"", 1);
	}
	hf_buf_append(b, "}", 1);
}

void hf_req_headers_start(struct hf_req_headers *h)
{
	h->n = 0;
	h->arena.len = 0;
	h->arena.max = 0;
}

void hf_req_headers_collect(struct hf_req_headers *h, struct MHD_Connection *c)
{
	hf_req_headers_start(h);
	MHD_get_connection_values(c, MHD_HEADER_KIND, collect, h);
	write_text(h);
}

void hf_req_headers_redact(struct hf_req_headers *h, const char *name)
{
	ssize_t i = find(h, name);
	if (i < 0)
		return;
	h->value[i] = put(h, HF_REDACTED, strlen(HF_REDACTED));
	write_text(h);
}

void hf_req_headers_finish(struct hf_req_headers *h)
{
	write_text(h);
}

const char *hf_req_header(void *ctx, const char *name)
{
	const struct hf_req_headers *h = ctx;
	ssize_t i = find(h, name);
	return i < 0 ? NULL : at(h, h->value[i]);
}

/* --- the query, the event --- */

/* The query as sent (the raw target past its '?'), decoded as a form: '+' as
 * a space, a repeated name keeps its last value, invalid UTF-8 as U+FFFD,
 * NUL kept in values (hf_query_decode). libmicrohttpd's own parse would drop
 * a value that is not UTF-8 and cut one at a NUL. */
json_t *hf_req_query(const char *target)
{
	const char *q = target ? strchr(target, '?') : NULL;
	if (!q || !q[1])
		return NULL;
	return hf_query_decode(q + 1, strlen(q + 1));
}

static char *pack(char **at, const char *s, size_t n)
{
	char *p = *at;
	memcpy(p, s, n);
	p[n] = '\0';
	*at += n + 1;
	return p;
}

/* A large body's event: the strings apart, the body taken over rather than
 * copied (its buffer is not kept for the next request anyway). */
static struct hf_event *event_apart(struct req *r, const char *url,
				    const char *method, const char *qt)
{
	struct hf_event *ev = hf_event_new();
	ev->method = hf_xstrdup(method);
	ev->path = hf_xstrdup(url);
	ev->headers_text =
	    hf_xstrndup(r->headers.text.data, r->headers.text.len);
	ev->query_text = hf_xstrdup(qt);
	ev->body = r->body.data;
	ev->body_len = r->body.len;
	memset(&r->body, 0, sizeof r->body);
	return ev;
}

/* Makes r->ev from the request, once verified: id, method, path, headers
 * (their text: above), query (the tree q, taken, and its text),
 * the body, and the time, in one allocation with the event
 * (hf_event_new_packed) rather than six, freed on whichever thread lets the
 * event go. The request keeps its body's buffer for the next one. */
struct hf_event *hf_req_event(struct req *r, const char *url,
			      const char *method, json_t *q)
{
	char *qtext = q ? hf_json_strings_text(q) : NULL;
	const char *qt = qtext ? qtext : "{}";
	size_t ml = strlen(method), pl = strlen(url), ql = strlen(qt);
	size_t hl = r->headers.text.len, bl = r->body.len;
	struct hf_event *ev;
	if (bl > HF_BODY_KEEP) {
		ev = event_apart(r, url, method, qt);
	} else {
		char *at;
		ev = hf_event_new_packed(ml + pl + hl + ql + bl + 5, &at);
		ev->method = pack(&at, method, ml);
		ev->path = pack(&at, url, pl);
		ev->headers_text = pack(&at, r->headers.text.data, hl);
		ev->query_text = pack(&at, qt, ql);
		ev->body = pack(&at, r->body.data ? r->body.data : "", bl);
		ev->body_len = bl;
	}
	r->ev = ev;
	hf_id_new(ev->id, "ev");
	ev->query = q;
	ev->received_at = hf_now_ms();
	free(qtext);
	return ev;
}
