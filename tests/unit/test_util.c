/* test_util.c - durations, sizes and Retry-After values (good and bad
 * spellings), constant-time comparison, bounded buffers, errors, the format
 * and uniqueness of ids, and log lines in each format (controls escaped). */
#include "hf_util.h"
#include "tap.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t dur(const char *s)
{
	int64_t v = -12345;
	return hf_parse_duration(s, &v) == 0 ? v : -1;
}

static int64_t size(const char *s)
{
	int64_t v = -12345;
	return hf_parse_size(s, &v) == 0 ? v : -1;
}

static void test_duration(void)
{
	CHECK(dur("500ms") == 500);
	CHECK(dur("30s") == 30000);
	CHECK(dur("2m") == 120000);
	CHECK(dur("1h") == 3600000);
	CHECK(dur("7d") == 7LL * 86400000);
	CHECK(dur("1.5s") == 1500);
	CHECK(dur("0s") == 0);
	CHECK(dur("10") == 10000); /* a bare number is seconds */
	CHECK(dur("") == -1);
	CHECK(dur("s") == -1);
	CHECK(dur("-1s") == -1);
	CHECK(dur("10x") == -1);
	CHECK(dur("1 s") == -1);
	CHECK(dur(" 1s") == -1);
	CHECK(dur("1sm") == -1);
	CHECK(dur("1e3s") == -1);
	CHECK(dur("99999999999999999999d") == -1);
	CHECK(dur(NULL) == -1);
	int64_t v = 77;
	CHECK(hf_parse_duration("bad", &v) == -1 && v == 77); /* untouched */
}

/* Retry-After against a fixed "now": 1994-11-06 08:49:30 GMT. */
#define RA_NOW (784111770LL * 1000)
static int64_t ra(const char *s)
{
	int64_t v = -12345;
	return hf_parse_retry_after(s, RA_NOW, &v) == 0 ? v : -1;
}

static void test_retry_after(void)
{
	CHECK(ra("120") == 120000); /* delay-seconds */
	CHECK(ra("0") == 0);
	CHECK(ra(" 2\t") == 2000); /* spaces around it */
	CHECK(ra("30s") == 30000); /* durations */
	CHECK(ra("2m") == 120000);
	CHECK(ra("1.5") == 1500);
	CHECK(ra("250ms") == 250);
	/* The three HTTP-date forms of one instant, 7 s after now. */
	CHECK(ra("Sun, 06 Nov 1994 08:49:37 GMT") == 7000);
	CHECK(ra("Sunday, 06-Nov-94 08:49:37 GMT") == 7000);
	CHECK(ra("Sun Nov  6 08:49:37 1994") == 7000);
	CHECK(ra("Sun Nov 16 08:49:37 1994") == 7000 + 10 * 86400000LL);
	/* A date already past is "now"; the day name is not checked. */
	CHECK(ra("Sat, 01 Jan 1994 00:00:00 GMT") == 0);
	CHECK(ra("Mon, 06 Nov 1994 08:49:37 GMT") == 7000);
	CHECK(ra("Thu, 29 Feb 1996 00:00:00 GMT") ==
	      (825552000LL - 784111770LL) * 1000);
	CHECK(ra("Thursday, 31-Dec-69 23:59:59 GMT") ==
	      (3155759999LL - 784111770LL) * 1000); /* two digits: 2069 */
	CHECK(ra("Fri, 31 Dec 9999 23:59:59 GMT") > 0);
	/* Refused. */
	CHECK(ra("") == -1);
	CHECK(ra("   ") == -1);
	CHECK(ra(NULL) == -1);
	CHECK(ra("-5") == -1);
	CHECK(ra("-1s") == -1);
	CHECK(ra("soon") == -1);
	CHECK(ra("1e3") == -1);
	CHECK(ra("99999999999999999999") == -1);
	CHECK(ra("Sun, 06 Nov 1994 08:49:37 UTC") == -1);
	CHECK(ra("Sun, 06 Nov 1994 08:49:37 GMT x") == -1);
	CHECK(ra("Sun, 6 Nov 1994 08:49:37 GMT") == -1);
	CHECK(ra("Sun, 31 Nov 1994 08:49:37 GMT") == -1);
	CHECK(ra("Sun, 29 Feb 1995 08:49:37 GMT") == -1);
	CHECK(ra("Sun, 00 Nov 1994 08:49:37 GMT") == -1);
	CHECK(ra("Sun, 06 Nov 1994 24:00:00 GMT") == -1);
	CHECK(ra("Sun, 06 Nov 1994 08:60:00 GMT") == -1);
	CHECK(ra("Sun, 06 Foo 1994 08:49:37 GMT") == -1);
	CHECK(ra("Sun, 06 Nov 1994 08:49 GMT") == -1);
	CHECK(ra("Sun Nov 6 08:49:37 1994") == -1);
	CHECK(ra("Sunday, 06-Nov-1994 08:49:37 GMT") == -1);
	CHECK(ra("Funday, 06-Nov-94 08:49:37 GMT") == -1);
	char longs[200];
	memset(longs, '1', sizeof longs - 1);
	longs[sizeof longs - 1] = '\0';
	CHECK(ra(longs) == -1); /* past HF_RETRY_AFTER_MAX */
	int64_t v = 77;
	CHECK(hf_parse_retry_after("bad", RA_NOW, &v) == -1 && v == 77);
}

static void test_size(void)
{
	CHECK(size("64KiB") == 65536);
	CHECK(size("1MiB") == 1048576);
	CHECK(size("512") == 512);
	CHECK(size("1GB") == 1000000000);
	CHECK(size("1GiB") == 1073741824);
	CHECK(size("2K") == 2048);
	CHECK(size("3KB") == 3000);
	CHECK(size("10B") == 10);
	CHECK(size("KiB") == -1);
	CHECK(size("") == -1);
	CHECK(size("-1KiB") == -1);
	CHECK(size("1TiB") == -1);
	CHECK(size("1 KiB") == -1);
	CHECK(size("1kib") == -1);
	CHECK(size(NULL) == -1);
}

static void test_ct_equal(void)
{
	CHECK(hf_ct_equal("abc", 3, "abc", 3));
	CHECK(!hf_ct_equal("abc", 3, "abd", 3));
	CHECK(!hf_ct_equal("abc", 3, "ab", 2));
	CHECK(!hf_ct_equal("ab", 2, "abc", 3));
	CHECK(!hf_ct_equal("ab\0", 3, "ab", 2)); /* length counts */
	CHECK(hf_ct_equal("", 0, "", 0));
	CHECK(!hf_ct_equal("", 0, "a", 1));
}

static void test_buf(void)
{
	struct hf_buf b = {.max = 8};
	CHECK(hf_buf_append(&b, "12345", 5) == 0);
	CHECK(hf_buf_append(&b, "678", 3) == 0);
	CHECK(b.len == 8 && strcmp(b.data, "12345678") == 0);
	/* Past max: refused, buffer unchanged. */
	CHECK(hf_buf_append(&b, "9", 1) == -1);
	CHECK(b.len == 8 && strcmp(b.data, "12345678") == 0);
	CHECK(hf_buf_printf(&b, "%d", 1) == -1);
	CHECK(b.len == 8);
	hf_buf_release(&b);
	CHECK(b.data == NULL && b.len == 0);

	struct hf_buf u = {0}; /* no limit; printf longer than its stack copy */
	char big[2000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CHECK(hf_buf_printf(&u, "<%s>", big) == 0);
	CHECK(u.len == 2001 && u.data[0] == '<' && u.data[2000] == '>' &&
	      u.data[2001] == '\0');
	CHECK(hf_buf_append(&u, NULL, 0) == 0);
	hf_buf_release(&u);

	/* A part of the buffer appended again, across the realloc that frees
	 * the old data (what joining a repeated header does): ASan sees a
	 * read of freed memory if the pointer is not carried over. */
	struct hf_buf a = {0};
	hf_buf_append(&a, big, 200);
	size_t cap = a.cap;
	CHECK(hf_buf_append(&a, a.data + 1, 199) == 0);
	CHECK(a.cap > cap && a.len == 399);
	CHECK(memcmp(a.data + 200, big, 199) == 0);
	hf_buf_release(&a);
}

static void test_error(void)
{
	struct hf_error e;
	char out[256];
	hf_error_set(&e, "wf/a.yml", 3, 7, "bad '%s'", "x");
	hf_error_format(&e, out, sizeof out);
	CHECK_STR(out, "wf/a.yml:3:7: bad 'x'");
	hf_error_set(&e, "wf/a.yml", 3, 0, "m");
	hf_error_format(&e, out, sizeof out);
	CHECK_STR(out, "wf/a.yml:3: m");
	hf_error_set(&e, NULL, 0, 0, "m");
	hf_error_format(&e, out, sizeof out);
	CHECK_STR(out, "m");

	struct hf_diags d = {0};
	for (int i = 0; i < 20; i++)
		hf_diags_add(&d, "f", i + 1, 1, "problem %d", i);
	CHECK(d.n == 20 && d.items[19].line == 20);
	CHECK_STR(d.items[19].msg, "problem 19");
	hf_diags_release(&d);
	CHECK(d.n == 0 && d.items == NULL);
}

/* "ev_" + 12 hex digits of ms + "_" + 10 random hex digits. */
static int id_ok(const char *id, const char *prefix)
{
	size_t p = strlen(prefix);
	if (strncmp(id, prefix, p) != 0 || id[p] != '_' ||
	    strlen(id) != p + 24 || id[p + 13] != '_')
		return 0;
	for (size_t i = p + 1; i < p + 24; i++)
		if (i != p + 13 && !isxdigit((unsigned char)id[i]))
			return 0;
	return 1;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_id(void)
{
	enum { N = 2000 };
	char(*ids)[HF_ID_SIZE] = malloc(N * sizeof *ids);
	int bad = 0;
	for (int i = 0; i < N; i++) {
		hf_id_new(ids[i], "ev");
		if (!id_ok(ids[i], "ev"))
			bad++;
	}
	CHECK(bad == 0);
	CHECK(id_ok(ids[0], "ev"));

	/* The time part is the current time and never goes backwards. */
	char ms[13];
	memcpy(ms, ids[0] + 3, 12);
	ms[12] = '\0';
	long long t = strtoll(ms, NULL, 16);
	CHECK(llabs(t - (long long)hf_now_ms()) < 10000);
	CHECK(strncmp(ids[0] + 3, ids[N - 1] + 3, 12) <= 0);

	qsort(ids, N, sizeof *ids, cmp);
	int dups = 0;
	for (int i = 1; i < N; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			dups++;
	CHECK(dups == 0);
	free(ids);

	char run[HF_ID_SIZE];
	hf_id_new(run, "run");
	CHECK(id_ok(run, "run"));
}

/* Runs one log call with stderr sent to a file; returns what it wrote. */
static char *captured(void (*fn)(void))
{
	static char out[8192];
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	dup2(fileno(tmp), STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	size_t n = fread(out, 1, sizeof out - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	return out;
}

static void log_plain(void)
{
	hf_log(HF_LOG_WARN, "disk %s", "full");
}

static void log_fields(void)
{
	hf_log_kv(HF_LOG_INFO, "run finished", "run", "run_1", "skip", NULL,
		  "status", "succeeded", "attempt", "2", "error",
		  "say \"hi\"\nnow", "zero", "007", (const char *)NULL);
}

/* A run's error as a sender could make it: a line forged after a CR and a
 * newline, an OSC title, a C1 CSI, a lone 0x9b, a backslash. */
#define HOSTILE                                                                \
	"x\x1b]0;pwned\x07\r\nhookflow: listening on http://evil:80\x7f"       \
	"\xc2\x9b"                                                             \
	"2J\x9b\\"

static void log_hostile(void)
{
	hf_log(HF_LOG_INFO, "run r (w) failed: %s", HOSTILE);
}

static void log_hostile_kv(void)
{
	hf_log_kv(HF_LOG_WARN, "run finished", "run", "r", "error", HOSTILE,
		  (const char *)NULL);
}

/* Each format writes one line, without a raw control of C0, DEL, C1. */
static void test_log_escapes(void)
{
	CHECK_STR(captured(log_hostile),
		  "hookflow: run r (w) failed: x\\x1b]0;pwned\\x07\\r\\n"
		  "hookflow: listening on http://evil:80\\x7f\\u009b2J\\x9b"
		  "\\\\\n");
	CHECK_STR(captured(log_hostile_kv),
		  "hookflow: warning: run finished run=r error=\"x\\u001b]0;"
		  "pwned\\u0007\\u000d\\nhookflow: listening on http://evil:80"
		  "\\u007f\\u009b2J\\ufffd\\\\\"\n");
	for (int f = HF_LOG_LOGFMT; f <= HF_LOG_JSON; f++) {
		hf_log_set_format((enum hf_log_format)f);
		const char *s = captured(log_hostile);
		CHECK(strstr(s, "x\\u001b]0;pwned\\u0007\\u000d\\nhookflow: "
				"listening on http://evil:80\\u007f\\u009b2J"
				"\\ufffd\\\\") != NULL);
		CHECK(strchr(s, '\n') == s + strlen(s) - 1);
		CHECK(!strchr(s, '\x1b') && !strchr(s, '\r') &&
		      !strstr(s, "\xc2\x9b") && !strchr(s, (char)0x9b));
	}
	hf_log_set_format(HF_LOG_TEXT);
}

static void test_log(void)
{
	CHECK(hf_log_format_parse("text") == HF_LOG_TEXT);
	CHECK(hf_log_format_parse("logfmt") == HF_LOG_LOGFMT);
	CHECK(hf_log_format_parse("json") == HF_LOG_JSON);
	CHECK(hf_log_format_parse("xml") == -1);
	CHECK(hf_log_format_parse(NULL) == -1);

	CHECK(!hf_log_structured());
	CHECK_STR(captured(log_plain), "hookflow: warning: disk full\n");
	CHECK_STR(captured(log_fields),
		  "hookflow: run finished run=run_1 status=succeeded attempt=2 "
		  "error=\"say \\\"hi\\\"\\nnow\" zero=007\n");

	hf_log_set_format(HF_LOG_LOGFMT);
	CHECK(hf_log_structured());
	const char *s = captured(log_fields);
	CHECK(strncmp(s, "time=", 5) == 0);
	CHECK(
	    strstr(s,
		   " level=info msg=\"run finished\" run=run_1 "
		   "status=succeeded attempt=2 error=\"say \\\"hi\\\"\\nnow\" "
		   "zero=007\n") != NULL);
	s = captured(log_plain);
	CHECK(strstr(s, " level=warn msg=\"disk full\"\n") != NULL);

	hf_log_set_format(HF_LOG_JSON);
	s = captured(log_fields);
	CHECK(strncmp(s, "{\"time\":\"", 9) == 0);
	/* Integers as numbers (not with a leading zero), the rest as strings.
	 */
	CHECK(strstr(s, "\"level\":\"info\",\"msg\":\"run finished\","
			"\"run\":\"run_1\",\"status\":\"succeeded\","
			"\"attempt\":2,\"error\":\"say \\\"hi\\\"\\nnow\","
			"\"zero\":\"007\"}\n") != NULL);
	s = captured(log_plain);
	CHECK(strstr(s, "\"level\":\"warn\",\"msg\":\"disk full\"}\n") != NULL);
	hf_log_set_format(HF_LOG_TEXT);
}

/* The one UTF-8 decoder (ingest, bodies, logs, Lua, PostgreSQL text):
 * RFC 3629's table, and the maximal invalid subpart of each failure. */
static void test_utf8_len(void)
{
	static const struct {
		const char *s;
		size_t n, len, bad;
	} cases[] = {
	    {"a", 1, 1, 1},
	    {"\xc3\xa9", 2, 2, 1},	   /* é */
	    {"\xe2\x82\xac", 3, 3, 1},	   /* € */
	    {"\xf0\x9f\x98\x80", 4, 4, 1}, /* 😀 */
	    {"\xf4\x8f\xbf\xbf", 4, 4, 1}, /* U+10FFFF */
	    {"\xc3", 1, 0, 1},		   /* cut short */
	    {"\xe2\x82", 2, 0, 2},	   /* cut short after two */
	    {"\xc0\xaf", 2, 0, 1},	   /* overlong, never valid */
	    {"\xe0\x9f\xbf", 3, 0, 1},	   /* overlong three */
	    {"\xf0\x8f\xbf\xbf", 4, 0, 1}, /* overlong four */
	    {"\xed\xa0\x80", 3, 0, 1},	   /* a surrogate */
	    {"\xf4\x90\x80\x80", 4, 0, 1}, /* past U+10FFFF */
	    {"\xf5\x80\x80\x80", 4, 0, 1}, /* never a first byte */
	    {"\x80", 1, 0, 1},		   /* a lone continuation */
	    {"\xe2\x28\xa1", 3, 0, 1},	   /* second byte not one */
	    {"\xf0\x9f\x98\x28", 4, 0, 3}, /* fourth byte not one */
	    {"\xe2\x82", 9, 0, 2},	   /* a NUL ends it, not n */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t bad = 99;
		size_t len = hf_utf8_len(cases[i].s, cases[i].n, &bad);
		CHECK(len == cases[i].len);
		CHECK(len || bad == cases[i].bad);
		CHECK(hf_utf8_len(cases[i].s, cases[i].n, NULL) == len);
	}
}

int main(void)
{
	test_utf8_len();
	test_log();
	test_log_escapes();
	test_duration();
	test_retry_after();
	test_size();
	test_ct_equal();
	test_buf();
	test_error();
	test_id();
	return tap_done();
}
