/* fuzz_framing.c - the HTTP framing checks (http_frame.c) on arbitrary input.
 *
 * The input is "TARGET\nNAME:VALUE\nNAME:VALUE...": the first line is the raw
 * request target, each further line a header field split at its first ':'
 * (the value without leading blanks, as libmicrohttpd hands it over; a line
 * without ':' is a name with an empty value). The verdict is checked for both
 * HTTP/1.1 and HTTP/1.0 against what the checks promise: a refusal has a
 * status and a reason; an accepted target decodes to a path without NUL,
 * control characters or a ".." segment; accepted headers frame the body one
 * way only. */
#include "hf_http_frame.h"
#include "hf_limits.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_framing: %s\n", what);
		abort();
	}
}

static void check_verdict(const struct hf_frame *f)
{
	check(f->status == 0 || f->status == 400 || f->status == 414 ||
		  f->status == 431,
	      "unexpected status");
	check(memchr(f->error, '\0', sizeof f->error) != NULL,
	      "reason not terminated");
	check(!f->status || f->error[0], "a refusal without a reason");
}

/* An accepted target: its path, decoded once here, means what it says. */
static void check_accepted_path(const char *t, size_t len)
{
	size_t seg = 0, dots = 0;
	for (size_t i = 0; i <= len && (i == len || t[i] != '?'); i++) {
		unsigned c = i < len ? (unsigned char)t[i] : '/';
		check(i == len || (c > 0x20 && c != 0x7f), "raw CTL accepted");
		if (c == '%') {
			check(i + 2 < len, "short escape accepted");
			char hex[3] = {t[i + 1], t[i + 2], 0};
			c = (unsigned)strtoul(hex, NULL, 16);
			check(c >= 0x20 && c != 0x7f && c != '/',
			      "encoded NUL, CTL or '/' accepted");
			i += 2;
		} else if (c == '/') {
			check(!(seg == 2 && dots == 2), "'..' accepted");
			seg = dots = 0;
			continue;
		}
		seg++;
		dots += c == '.';
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	const char *nl = memchr(p, '\n', size);
	size_t tlen = nl ? (size_t)(nl - p) : size;
	size_t at = hf_frame_origin(p, tlen);
	check(at <= tlen, "origin past the target");
	if (at) {
		size_t s = p[4] == ':' ? 7 : 8; /* http:// or https:// */
		check(at >= s && strncasecmp(p, s == 7 ? "http://" : "https://",
					     s) == 0,
		      "origin of a target that is not absolute");
		for (size_t i = s; i < at; i++)
			check(p[i] != '/' && p[i] != '?',
			      "origin inside the path");
		check(at == tlen || p[at] == '/' || p[at] == '?',
		      "origin not at the path");
	}
	struct hf_frame f;
	hf_frame_init(&f);
	size_t query = 0;
	int st = hf_frame_target(&f, p, tlen, &query);
	check(st == f.status && query <= tlen, "target verdict");
	check_verdict(&f);
	if (!st)
		check_accepted_path(p, tlen);
	for (p = nl ? nl + 1 : end; p < end;) {
		nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		const char *v = colon ? colon + 1 : eol;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		hf_frame_header(&f, p, (size_t)((colon ? colon : eol) - p), v,
				(size_t)(eol - v));
		p = nl ? nl + 1 : end;
	}
	for (int http11 = 0; http11 < 2; http11++) {
		struct hf_frame g = f;
		st = hf_frame_finish(&g, http11);
		check(st == g.status, "finish verdict");
		check_verdict(&g);
		if (st)
			continue;
		check(g.nheaders <= HF_MAX_HEADERS, "too many headers");
		check(g.head <= HF_HEAD_MAX, "head size");
		check(!(g.nte && g.nlength) && g.nte <= 1 && g.nlength <= 1,
		      "two framings accepted");
		check(g.nhost <= 1 && (!http11 || g.nhost == 1), "Host");
		check(!g.nte || (http11 && g.te_chunked), "Transfer-Encoding");
	}
	return 0;
}
