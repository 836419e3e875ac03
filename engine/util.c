/* util.c - errors with positions, durations and sizes, clocks, ids, bounded
 * buffers, logging, aborting allocation. No third-party code; thread-safe. */
#include "hf_esc.h"
#include "hf_limits.h"
#include "hf_util.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

__attribute__((format(printf, 5, 0))) static void
verror_set(struct hf_error *err, const char *file, int line, int col,
	   const char *fmt, va_list ap)
{
	snprintf(err->file, sizeof err->file, "%s", file ? file : "");
	err->line = line;
	err->col = col;
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

void hf_error_set(struct hf_error *err, const char *file, int line, int col,
		  const char *fmt, ...)
{
	if (!err)
		return;
	va_list ap;
	va_start(ap, fmt);
	verror_set(err, file, line, col, fmt, ap);
	va_end(ap);
}

void hf_error_format(const struct hf_error *err, char *out, size_t size)
{
	if (err->file[0] && err->line > 0 && err->col > 0)
		snprintf(out, size, "%s:%d:%d: %s", err->file, err->line,
			 err->col, err->msg);
	else if (err->file[0] && err->line > 0)
		snprintf(out, size, "%s:%d: %s", err->file, err->line,
			 err->msg);
	else if (err->file[0])
		snprintf(out, size, "%s: %s", err->file, err->msg);
	else
		snprintf(out, size, "%s", err->msg);
}

void hf_diags_add(struct hf_diags *d, const char *file, int line, int col,
		  const char *fmt, ...)
{
	if (!d)
		return;
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->items = hf_xrealloc(d->items, d->cap * sizeof *d->items);
	}
	va_list ap;
	va_start(ap, fmt);
	verror_set(&d->items[d->n++], file, line, col, fmt, ap);
	va_end(ap);
}

void hf_diags_release(struct hf_diags *d)
{
	if (!d)
		return;
	free(d->items);
	d->items = NULL;
	d->n = d->cap = 0;
}

/* Parses a non-negative decimal number with an optional fraction, as in "1.5h".
 * Returns the number of characters used, 0 when there is no number. */
static size_t parse_number(const char *s, double *out)
{
	size_t i = 0;
	double v = 0;
	int digits = 0;
	while (isdigit((unsigned char)s[i])) {
		v = v * 10 + (s[i] - '0');
		i++;
		digits++;
		if (v > 1e15)
			return 0;
	}
	if (s[i] == '.') {
		double scale = 0.1;
		i++;
		while (isdigit((unsigned char)s[i])) {
			v += (s[i] - '0') * scale;
			scale /= 10;
			i++;
			digits++;
		}
	}
	if (!digits)
		return 0;
	*out = v;
	return i;
}

/* A number followed by a unit of units (the empty unit included where it is
 * listed), as the number times the unit's multiplier, truncated. */
struct unit {
	const char *name;
	double mult;
};

static int parse_units(const char *s, const struct unit *units, size_t n,
		       int64_t *out)
{
	double v;
	size_t len = s ? parse_number(s, &v) : 0;
	if (!len)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(s + len, units[i].name) == 0) {
			double x = v * units[i].mult;
			if (x > 1e15)
				return -1;
			*out = (int64_t)x;
			return 0;
		}
	}
	return -1;
}

int hf_parse_duration(const char *s, int64_t *out_ms)
{
	static const struct unit units[] = {
	    {"ms", 1},	    {"s", 1000},       {"m", 60000},
	    {"h", 3600000}, {"d", 86400000.0}, {"", 1000},
	};
	return parse_units(s, units, sizeof units / sizeof units[0], out_ms);
}

int hf_parse_size(const char *s, int64_t *out_bytes)
{
	static const struct unit units[] = {
	    {"", 1},
	    {"B", 1},
	    {"K", 1024.0},
	    {"KiB", 1024.0},
	    {"KB", 1000.0},
	    {"M", 1048576.0},
	    {"MiB", 1048576.0},
	    {"MB", 1e6},
	    {"G", 1073741824.0},
	    {"GiB", 1073741824.0},
	    {"GB", 1e9},
	};
	return parse_units(s, units, sizeof units / sizeof units[0], out_bytes);
}

/* --- Retry-After --- */

static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr",
					  "May", "Jun", "Jul", "Aug",
					  "Sep", "Oct", "Nov", "Dec"};
static const char *const day_names[] = {"Monday",   "Tuesday", "Wednesday",
					"Thursday", "Friday",  "Saturday",
					"Sunday"};

/* A cursor over a date being read; every reader returns false (and the
 * date is refused) at the first byte that does not fit. */
struct rd {
	const char *s;
};

static bool rd_lit(struct rd *r, const char *lit)
{
	size_t n = strlen(lit);
	if (strncmp(r->s, lit, n) != 0)
		return false;
	r->s += n;
	return true;
}

/* Exactly n digits (n <= 4). */
static bool rd_digits(struct rd *r, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)r->s[i]))
			return false;
		v = v * 10 + (r->s[i] - '0');
	}
	r->s += n;
	*out = v;
	return true;
}

/* A day name: the three-letter form, or the whole name when full. */
static bool rd_day(struct rd *r, bool full)
{
	for (size_t i = 0; i < sizeof day_names / sizeof day_names[0]; i++) {
		size_t n = full ? strlen(day_names[i]) : 3;
		if (strncmp(r->s, day_names[i], n) == 0) {
			r->s += n;
			return true;
		}
	}
	return false;
}

static bool rd_month(struct rd *r, int *mon)
{
	for (int i = 0; i < 12; i++) {
		if (strncmp(r->s, month_names[i], 3) == 0) {
			r->s += 3;
			*mon = i + 1;
			return true;
		}
	}
	return false;
}

/* "HH:MM:SS" as seconds of the day. */
static bool rd_time(struct rd *r, int *secs)
{
	int h, m, s;
	if (!rd_digits(r, 2, &h) || !rd_lit(r, ":") || !rd_digits(r, 2, &m) ||
	    !rd_lit(r, ":") || !rd_digits(r, 2, &s))
		return false;
	if (h > 23 || m > 59 || s > 60) /* 60: a leap second */
		return false;
	*secs = h * 3600 + m * 60 + s;
	return true;
}

int64_t hf_days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool valid_day(int y, int m, int d)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return d >= 1 && d <= mdays[m - 1] + (m == 2 && leap);
}

/* The three forms of RFC 9110 §5.6.7: IMF-fixdate ("Sun, 06 Nov 1994
 * 08:49:37 GMT"), RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
 * ("Sun Nov  6 08:49:37 1994"), as wall ms. */
static bool parse_http_date(const char *s, int64_t *out_ms)
{
	struct rd r = {s};
	int y = 0, m = 0, d = 0, t = 0;
	bool ok;
	if (rd_day(&r, false) && rd_lit(&r, ", ")) { /* IMF-fixdate */
		ok = rd_digits(&r, 2, &d) && rd_lit(&r, " ") &&
		     rd_month(&r, &m) && rd_lit(&r, " ") &&
		     rd_digits(&r, 4, &y) && rd_lit(&r, " ") &&
		     rd_time(&r, &t) && rd_lit(&r, " GMT");
	} else if ((r.s = s, rd_day(&r, true)) && rd_lit(&r, ", ")) {
		ok = rd_digits(&r, 2, &d) && rd_lit(&r, "-") &&
		     rd_month(&r, &m) && rd_lit(&r, "-") &&
		     rd_digits(&r, 2, &y) && rd_lit(&r, " ") &&
		     rd_time(&r, &t) && rd_lit(&r, " GMT");
		y += y < 70 ? 2000 : 1900; /* a two-digit year */
	} else if ((r.s = s, rd_day(&r, false)) && rd_lit(&r, " ")) {
		ok = rd_month(&r, &m) && rd_lit(&r, " ") &&
		     (rd_lit(&r, " ") ? rd_digits(&r, 1, &d)
				      : rd_digits(&r, 2, &d)) &&
		     rd_lit(&r, " ") && rd_time(&r, &t) && rd_lit(&r, " ") &&
		     rd_digits(&r, 4, &y);
	} else {
		return false;
	}
	if (!ok || *r.s || !valid_day(y, m, d))
		return false;
	*out_ms = (hf_days_from_civil(y, m, d) * 86400 + t) * 1000;
	return true;
}

int hf_parse_retry_after(const char *s, int64_t now_ms, int64_t *delay_ms)
{
	char buf[HF_RETRY_AFTER_MAX + 1];
	if (!s)
		return -1;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0 || n > HF_RETRY_AFTER_MAX)
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	int64_t v;
	if (hf_parse_duration(buf, &v) == 0) {
		*delay_ms = v;
		return 0;
	}
	if (!parse_http_date(buf, &v))
		return -1;
	*delay_ms = v > now_ms ? v - now_ms : 0;
	return 0;
}

int64_t hf_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t hf_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void hf_deadline_in(int64_t ms, struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

int hf_thread_start(pthread_t *t, const char *name, void *(*fn)(void *),
		    void *arg)
{
	int rc = pthread_create(t, NULL, fn, arg);
	if (rc == 0)
		pthread_setname_np(*t, name);
	return rc;
}

void hf_time_iso(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/* Ids sort by creation: 12 hex digits of milliseconds, then 10 more of which
 * the first 4 are random per process (the server and the CLI do not collide)
 * and the last 6 a process-wide counter, so that ids made in the same
 * millisecond keep their order. They are unique, not secret. */
static atomic_uint_fast64_t id_counter;
static uint64_t id_process;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

static void id_init(void)
{
	uint64_t r;
	if (getrandom(&r, sizeof r, 0) != sizeof r)
		r = (uint64_t)hf_mono_ms() ^ ((uint64_t)getpid() << 32);
	id_process = r & 0xffff;
	atomic_store(&id_counter, (r >> 16) & 0xffffff);
}

void hf_id_new(char out[HF_ID_SIZE], const char *prefix)
{
	pthread_once(&id_once, id_init);
	uint64_t n = atomic_fetch_add(&id_counter, 1) & 0xffffff;
	/* "%s_%012llx_%010llx", cut at HF_ID_SIZE as snprintf would, written
	 * by hand: two ids per webhook on its HTTP thread, and snprintf costs
	 * ten times this. */
	static const char hex[] = "0123456789abcdef";
	char buf[HF_ID_SIZE + 32];
	size_t len = strnlen(prefix, HF_ID_SIZE);
	memcpy(buf, prefix, len);
	buf[len++] = '_';
	uint64_t t = (uint64_t)hf_now_ms() & 0xffffffffffffULL;
	for (int i = 11; i >= 0; i--, t >>= 4)
		buf[len + (size_t)i] = hex[t & 15];
	len += 12;
	buf[len++] = '_';
	uint64_t u = id_process << 24 | n;
	for (int i = 9; i >= 0; i--, u >>= 4)
		buf[len + (size_t)i] = hex[u & 15];
	len += 10;
	if (len > HF_ID_SIZE - 1)
		len = HF_ID_SIZE - 1;
	memcpy(out, buf, len);
	out[len] = '\0';
}

size_t hf_utf8_len(const void *p, size_t n, size_t *bad)
{
	const unsigned char *s = p;
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need;
	if (bad)
		*bad = 1;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0; /* overlong below */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates above */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90; /* overlong below */
		else if (c == 0xf4)
			hi = 0x8f; /* past U+10FFFF above */
	} else {
		return 0;
	}
	for (size_t i = 1; i <= need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			if (bad)
				*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

int hf_buf_append(struct hf_buf *b, const void *p, size_t n)
{
	if (b->max && b->len + n > b->max)
		return -1;
	if (b->len + n + 1 > b->cap) {
		/* p may point into data (a part of the buffer appended again):
		 * kept as an offset across the realloc, which frees the old. */
		uintptr_t d = (uintptr_t)b->data, q = (uintptr_t)p;
		bool inside = b->data && q >= d && q < d + b->cap;
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = hf_xrealloc(b->data, cap);
		b->cap = cap;
		if (inside)
			p = b->data + (q - d);
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int hf_buf_printf(struct hf_buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof small)
		return hf_buf_append(b, small, (size_t)n);
	char *big = hf_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int rc = hf_buf_append(b, big, (size_t)n);
	free(big);
	return rc;
}

void hf_buf_release(struct hf_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static void oom(size_t n)
{
	fprintf(stderr, "hookflow: out of memory allocating %zu bytes\n", n);
	abort();
}

void *hf_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *hf_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *hf_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *hf_xstrdup(const char *s)
{
	return hf_xstrndup(s, strlen(s));
}

char *hf_xstrndup(const char *s, size_t n)
{
	char *p = hf_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *hf_xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	char *p = hf_xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

char *hf_read_file(const char *path, size_t *len)
{
	return hf_read_file_max(path, HF_MAX_READ_FILE, len);
}

char *hf_read_file_max(const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct hf_buf b = {.max = max};
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			hf_buf_release(&b);
			errno = e;
			return NULL;
		}
		if (n == 0)
			break;
		if (hf_buf_append(&b, chunk, (size_t)n) < 0) {
			close(fd);
			hf_buf_release(&b);
			errno = EFBIG;
			return NULL;
		}
	}
	close(fd);
	if (!b.data)
		hf_buf_append(&b, "", 0);
	if (len)
		*len = b.len;
	return b.data;
}

static atomic_int log_level = HF_LOG_INFO;

void hf_log_set_level(enum hf_log_level level)
{
	atomic_store(&log_level, (int)level);
}

static atomic_int log_format = HF_LOG_TEXT;

int hf_log_format_parse(const char *name)
{
	static const char *names[] = {"text", "logfmt", "json"};
	for (int i = 0; i < 3; i++)
		if (name && strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

void hf_log_set_format(enum hf_log_format format)
{
	atomic_store(&log_format, (int)format);
}

bool hf_log_structured(void)
{
	return atomic_load(&log_format) != HF_LOG_TEXT;
}

static bool is_integer(const char *s)
{
	size_t i = s[0] == '-', n = strlen(s);
	if (n == i || n - i > 15 || (s[i] == '0' && n - i > 1))
		return false;
	for (; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Appends s, cut at HF_LOG_VALUE_MAX bytes, as the body of a JSON string
 * (without quotes): controls and invalid UTF-8 escaped (hf_esc.h). */
static void json_escape(struct hf_buf *b, const char *s)
{
	size_t n = strnlen(s, HF_LOG_VALUE_MAX);
	while (n && s[n] && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--; /* cut at a character boundary */
	hf_esc_append(b, s, n, HF_ESC_JSON);
}

/* A logfmt value: bare when it can be (printable ASCII without a space, a
 * quote, '=' or a backslash), else quoted with JSON's escapes. */
static void logfmt_value(struct hf_buf *b, const char *s)
{
	bool bare = *s != '\0';
	for (const char *p = s; *p && bare; p++)
		bare = *p > ' ' && *p < 0x7f && *p != '"' && *p != '=' &&
		       *p != '\\';
	if (bare && strlen(s) <= HF_LOG_VALUE_MAX) {
		hf_buf_append(b, s, strlen(s));
		return;
	}
	hf_buf_append(b, "\"", 1);
	json_escape(b, s);
	hf_buf_append(b, "\"", 1);
}

static void log_line(enum hf_log_level level, const char *msg, va_list ap)
{
	static const char *levels[] = {"debug", "info", "warn", "error"};
	struct hf_buf b = {0};
	int format = atomic_load(&log_format);
	char at[32];
	hf_time_iso(hf_now_ms(), at);
	if (format == HF_LOG_JSON) {
		hf_buf_printf(&b,
			      "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"",
			      at, levels[level]);
		json_escape(&b, msg);
		hf_buf_append(&b, "\"", 1);
	} else if (format == HF_LOG_LOGFMT) {
		hf_buf_printf(&b, "time=%s level=%s msg=", at, levels[level]);
		logfmt_value(&b, msg);
	} else {
		static const char *names[] = {"debug: ", "",
					      "warning: ", "error: "};
		hf_buf_printf(&b, "hookflow: %s", names[level]);
		hf_esc_append(&b, msg, strnlen(msg, HF_LOG_VALUE_MAX),
			      HF_ESC_TEXT);
	}
	const char *key;
	while ((key = va_arg(ap, const char *))) {
		const char *value = va_arg(ap, const char *);
		if (!value)
			continue;
		if (format == HF_LOG_JSON) {
			hf_buf_append(&b, ",\"", 2);
			json_escape(&b, key);
			hf_buf_append(&b, "\":", 2);
			if (is_integer(value)) {
				hf_buf_append(&b, value, strlen(value));
			} else {
				hf_buf_append(&b, "\"", 1);
				json_escape(&b, value);
				hf_buf_append(&b, "\"", 1);
			}
		} else {
			hf_buf_printf(&b, " %s=", key);
			logfmt_value(&b, value);
		}
	}
	hf_buf_append(&b, format == HF_LOG_JSON ? "}\n" : "\n",
		      format == HF_LOG_JSON ? 2 : 1);
	/* One write(2) per line keeps lines from different threads whole. */
	ssize_t w = write(STDERR_FILENO, b.data, b.len);
	(void)w;
	hf_buf_release(&b);
}

void hf_log_kv(enum hf_log_level level, const char *msg, ...)
{
	if ((int)level < atomic_load(&log_level))
		return;
	va_list ap;
	va_start(ap, msg);
	log_line(level, msg, ap);
	va_end(ap);
}

void hf_log(enum hf_log_level level, const char *fmt, ...)
{
	if ((int)level < atomic_load(&log_level))
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	hf_log_kv(level, msg, (const char *)NULL);
}

bool hf_http_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) &&
		    !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

int hf_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool hf_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const volatile unsigned char *x = a, *y = b;
	size_t n = alen > blen ? alen : blen;
	unsigned char diff = alen != blen;
	for (size_t i = 0; i < n; i++) {
		unsigned char cx = i < alen ? x[i] : 0;
		unsigned char cy = i < blen ? y[i] : 0;
		diff |= cx ^ cy;
	}
	return diff == 0;
}

void *hf_dl_open(const char *const *sonames)
{
	for (const char *const *n = sonames; *n; n++) {
		void *lib = dlopen(*n, RTLD_NOW | RTLD_LOCAL);
		if (lib)
			return lib;
	}
	hf_log(HF_LOG_ERROR, "cannot load %s: %s", sonames[0], dlerror());
	abort();
}

void *hf_dl_sym(void *lib, const char *name)
{
	void *p = dlsym(lib, name);
	if (!p) {
		hf_log(HF_LOG_ERROR, "no %s in the library loaded: %s", name,
		       dlerror());
		abort();
	}
	return p;
}
