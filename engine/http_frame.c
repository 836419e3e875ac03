/* http_frame.c - strict HTTP/1.1 framing checks (see hf_http_frame.h).
 *
 * What a proxy in front and this server could read differently is refused
 * (RFC 9112 sections 3, 5, 6 and 7): Content-Length with Transfer-Encoding, a
 * coding other than chunked, repeated framing fields, whitespace in a header
 * name, control characters (a bare CR) in a value, no or two Host fields, and
 * a path that means something else once decoded. The limits are in
 * hf_limits.h. Pure: no I/O, no allocation; fuzzed by tests/fuzz/
 * fuzz_framing.c. */
#include "hf_http_frame.h"
#include "hf_limits.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void hf_frame_init(struct hf_frame *f)
{
	memset(f, 0, sizeof *f);
	f->te_chunked = true;
}

/* Records the first refusal only. */
static int refuse(struct hf_frame *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(struct hf_frame *f, int status, const char *fmt, ...)
{
	if (f->status)
		return f->status;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->error, sizeof f->error, fmt, ap);
	va_end(ap);
	f->status = status;
	return status;
}

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The path (target up to the query) decoded once: its bytes must stay in
 * their segments and mean no parent. */
static int check_path(struct hf_frame *f, const char *p, size_t len)
{
	size_t seg = 0;	 /* decoded bytes in this segment */
	size_t dots = 0; /* of which '.' */
	for (size_t i = 0; i <= len; i++) {
		if (i == len || p[i] == '/') {
			if (seg == 2 && dots == 2)
				return refuse(f, 400,
					      "a '..' segment in the path");
			seg = dots = 0;
			continue;
		}
		unsigned char c = (unsigned char)p[i];
		if (c == '%') {
			int hi =
			    i + 2 < len ? hexval((unsigned char)p[i + 1]) : -1;
			int lo = hi >= 0 ? hexval((unsigned char)p[i + 2]) : -1;
			if (lo < 0)
				return refuse(f, 400,
					      "invalid percent-encoding "
					      "in the path");
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
			if (c == 0)
				return refuse(f, 400, "%%00 in the path");
			if (is_ctl(c))
				return refuse(f, 400,
					      "an encoded control character "
					      "in the path");
			if (c == '/')
				return refuse(f, 400,
					      "an encoded '/' (%%2F) in the "
					      "path");
		}
		seg++;
		dots += c == '.';
	}
	return 0;
}

const char *hf_frame_route_problem(const char *path, size_t *at)
{
	size_t start = 0; /* of the segment */
	for (size_t i = 0;; i++) {
		if (path[i] == '%') {
			*at = i;
			return "a '%': requests are matched percent-decoded (a "
			       "sender's %41 is A), so write the characters "
			       "themselves";
		}
		if (path[i] != '/' && path[i] != '\0')
			continue;
		size_t seg = i - start;
		*at = start;
		if (seg == 2 && path[start] == '.' && path[start + 1] == '.')
			return "a '..' segment is answered 400 by the server";
		if (seg == 1 && path[start] == '.')
			return "a '.' segment is removed by HTTP clients "
			       "before sending (RFC 3986)";
		if (path[i] == '\0')
			return NULL;
		start = i + 1;
	}
}

size_t hf_frame_origin(const char *target, size_t len)
{
	size_t i = len > 7 && strncasecmp(target, "http://", 7) == 0	? 7
		   : len > 8 && strncasecmp(target, "https://", 8) == 0 ? 8
									: 0;
	if (i)
		while (i < len && target[i] != '/' && target[i] != '?')
			i++;
	return i;
}

int hf_frame_target(struct hf_frame *f, const char *target, size_t len,
		    size_t *query)
{
	const char *q = memchr(target, '?', len);
	size_t qat = q ? (size_t)(q - target) : len;
	if (query)
		*query = qat;
	if (len > HF_MAX_URI_BYTES)
		return refuse(f, 414, "request target longer than %d bytes",
			      HF_MAX_URI_BYTES);
	size_t params = qat < len ? 1 : 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)target[i];
		if (is_ctl(c) || c == ' ')
			return refuse(f, 400,
				      "invalid character in the "
				      "request target");
		params += i > qat && c == '&';
	}
	f->head += len + HF_HEAD_RECORD * params;
	if (params > HF_MAX_QUERY_PARAMS)
		return refuse(f, 431, "more than %d query parameters",
			      HF_MAX_QUERY_PARAMS);
	return check_path(f, target, qat);
}

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') ||
	       ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The name for a message: printable ASCII, at most 40 bytes. */
#define SHOWN_MAX 40
static void shown_name(char out[SHOWN_MAX + 1], const char *name, size_t nlen)
{
	size_t n = nlen < SHOWN_MAX ? nlen : SHOWN_MAX;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[n] = '\0';
}

static bool name_is(const char *name, size_t nlen, const char *want)
{
	return nlen == strlen(want) && strncasecmp(name, want, nlen) == 0;
}

static void check_value(struct hf_frame *f, const char *name, size_t nlen,
			const char *value, size_t vlen)
{
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)value[i];
		if (!is_ctl(c) || c == '\t')
			continue;
		char shown[SHOWN_MAX + 1];
		shown_name(shown, name, nlen);
		refuse(f, 400, "%s in header '%s'",
		       c == '\r' ? "a bare CR" : "a control character", shown);
		return;
	}
}

void hf_frame_header(struct hf_frame *f, const char *name, size_t nlen,
		     const char *value, size_t vlen)
{
	f->head += nlen + vlen + 4 + HF_HEAD_RECORD; /* ": " and CRLF */
	if (++f->nheaders > HF_MAX_HEADERS) {
		refuse(f, 431, "more than %d header fields", HF_MAX_HEADERS);
		return;
	}
	bool token = nlen > 0;
	for (size_t i = 0; i < nlen && token; i++)
		token = is_tchar((unsigned char)name[i]);
	if (!token) {
		char shown[SHOWN_MAX + 1];
		shown_name(shown, name, nlen);
		refuse(f, 400, "invalid header name '%s'", shown);
		return;
	}
	check_value(f, name, nlen, value, vlen);
	if (name_is(name, nlen, "Host")) {
		f->nhost++;
	} else if (name_is(name, nlen, "Cookie")) {
		f->head += vlen;
	} else if (name_is(name, nlen, "Content-Length")) {
		f->nlength++;
		bool digits = vlen > 0;
		for (size_t i = 0; i < vlen && digits; i++)
			digits = value[i] >= '0' && value[i] <= '9';
		if (!digits)
			refuse(f, 400, "invalid Content-Length");
	} else if (name_is(name, nlen, "Transfer-Encoding")) {
		f->nte++;
		if (!name_is(value, vlen, "chunked"))
			f->te_chunked = false;
	}
}

void hf_frame_head(struct hf_frame *f, size_t bytes, size_t records)
{
	f->head += bytes + HF_HEAD_RECORD * records;
}

int hf_frame_finish(struct hf_frame *f, bool http11)
{
	if (f->nte && f->nlength)
		return refuse(f, 400,
			      "both Content-Length and Transfer-Encoding");
	if (f->nte > 1)
		return refuse(f, 400, "more than one Transfer-Encoding header");
	if (f->nte && !f->te_chunked)
		return refuse(f, 400,
			      "a Transfer-Encoding other than "
			      "'chunked'");
	if (f->nte && !http11)
		return refuse(f, 400,
			      "Transfer-Encoding in an HTTP/1.0 request");
	if (f->nlength > 1)
		return refuse(f, 400, "more than one Content-Length header");
	if (f->nhost > 1)
		return refuse(f, 400, "more than one Host header");
	if (http11 && f->nhost == 0)
		return refuse(f, 400, "no Host header (HTTP/1.1 requires one)");
	if (f->head > HF_HEAD_MAX)
		return refuse(f, 431,
			      "request line and headers larger than %d bytes "
			      "(%d more for each header field, query "
			      "parameter and cookie)",
			      HF_HEAD_MAX, HF_HEAD_RECORD);
	return f->status;
}
