/* hf_util.h - small shared helpers: errors with positions, durations and sizes,
 * clocks, ids, bounded buffers, logging and allocation that aborts on OOM.
 *
 * Everything here is thread-safe and free of third-party headers, so every
 * module may include it. */
#ifndef HF_UTIL_H
#define HF_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A problem found in a file, reported as FILE:LINE:COL: MSG. line/col are
 * 1-based, 0 when unknown. */
struct hf_error {
	char file[512];
	int line;
	int col;
	char msg[1024];
};

/* A growable list of errors, for `check`, which reports every problem it finds.
 */
struct hf_diags {
	struct hf_error *items;
	size_t n;
	size_t cap;
};

void hf_error_set(struct hf_error *err, const char *file, int line, int col,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Formats err as "FILE:LINE:COL: MSG" (parts omitted when unknown) into out. */
void hf_error_format(const struct hf_error *err, char *out, size_t size);

void hf_diags_add(struct hf_diags *d, const char *file, int line, int col,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void hf_diags_release(struct hf_diags *d);

/* Parses "500ms", "30s", "2m", "1h", "7d" (a bare number is seconds) into
 * milliseconds. Returns 0, or -1 when s is not a duration (out untouched). */
int hf_parse_duration(const char *s, int64_t *out_ms);
/* Parses "512", "64KiB", "1MiB", "1GiB" (also KB/MB/GB as powers of 1000 and
 * K/M/G as powers of 1024) into bytes. Returns 0 or -1. */
int hf_parse_size(const char *s, int64_t *out_bytes);

/* A Retry-After header's value (RFC 9110 §10.2.3) or a duration, as the delay
 * in ms from now_ms: delay-seconds ("120"), a duration as hf_parse_duration
 * takes it ("30s", "1.5m"), or an HTTP-date in any of its three forms (a date
 * already past is a delay of 0). Spaces and tabs around it are ignored.
 * Returns 0, or -1 when s is none of these or longer than
 * HF_RETRY_AFTER_MAX bytes (*delay_ms untouched). Pure: no clock, no locale.
 */
int hf_parse_retry_after(const char *s, int64_t now_ms, int64_t *delay_ms);

int64_t hf_now_ms(void);  /* wall clock, ms since the epoch */
int64_t hf_mono_ms(void); /* monotonic clock, ms */
struct timespec;
/* The wall-clock time ms from now, as pthread_cond_timedwait takes it. */
void hf_deadline_in(int64_t ms, struct timespec *ts);
/* pthread_create, the thread named (at most 15 bytes) before this returns:
 * /proc shows the name from the thread's first moment. Returns 0 or an
 * errno, as pthread_create. */
int hf_thread_start(pthread_t *t, const char *name, void *(*fn)(void *),
		    void *arg);
/* Formats wall ms as "2026-11-26T23:21:42.123Z". */
void hf_time_iso(int64_t ms, char out[32]);

/* Ids are a prefix, 12 hex digits of milliseconds and 10 random hex digits, so
 * that they sort by creation time: "ev_0193a1b2c3d4_9f8e7d6c5b". */
#define HF_ID_SIZE 32
void hf_id_new(char out[HF_ID_SIZE], const char *prefix);

/* A buffer that refuses to grow past max (0 = no limit). */
struct hf_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};
/* Appends n bytes and keeps data NUL-terminated; p may point into the buffer
 * itself. Returns 0, or -1 past max (the buffer is left as it was). */
int hf_buf_append(struct hf_buf *b, const void *p, size_t n);
/* The length (1 to 4) of the valid UTF-8 sequence at p, n >= 1 bytes left
 * from p on, or 0 when none starts there (RFC 3629, as jansson accepts it:
 * no overlong forms, no surrogates, nothing past U+10FFFF). On 0, *bad
 * (unless NULL) is the length of the maximal invalid subpart, which Unicode's
 * recommended practice replaces by one U+FFFD. Bytes are read in order and no
 * further than the first that fails, so a NUL ends a NUL-terminated s. */
size_t hf_utf8_len(const void *p, size_t n, size_t *bad);
int hf_buf_printf(struct hf_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void hf_buf_release(struct hf_buf *b);

/* Allocation that aborts the process when memory is exhausted, as Redis does:
 * there is no sensible recovery from a failed small allocation. */
void *hf_xmalloc(size_t n);
void *hf_xcalloc(size_t n, size_t size);
void *hf_xrealloc(void *p, size_t n);
char *hf_xstrdup(const char *s);
char *hf_xstrndup(const char *s, size_t n);
char *hf_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads a whole file of at most HF_MAX_READ_FILE bytes. Returns a
 * NUL-terminated buffer (caller frees) or NULL with errno set (EFBIG past the
 * limit: a path to /dev/zero or a pipe that never ends stops there). */
char *hf_read_file(const char *path, size_t *len);
/* The same with a limit of max bytes. */
char *hf_read_file_max(const char *path, size_t max, size_t *len);

enum hf_log_level { HF_LOG_DEBUG, HF_LOG_INFO, HF_LOG_WARN, HF_LOG_ERROR };
/* One line to stderr: "hookflow: MSG". Thread-safe. */
void hf_log(enum hf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void hf_log_set_level(enum hf_log_level level);

/* How lines look on stderr (`serve --log-format`): text is "hookflow: MSG";
 * logfmt is "time=… level=… msg=… key=value…"; json is one object a line with
 * "time", "level", "msg" and the keys. Set once, before threads start. */
enum hf_log_format { HF_LOG_TEXT, HF_LOG_LOGFMT, HF_LOG_JSON };
/* "text", "logfmt", "json" -> the format, -1 when unknown. */
int hf_log_format_parse(const char *name);
void hf_log_set_format(enum hf_log_format format);
/* True with logfmt or json: callers then log every outcome, not only
 * failures, since log shippers index them. */
bool hf_log_structured(void);
/* One line: msg, then pairs of (const char *key, const char *value) ended by a
 * NULL key. A NULL value leaves its pair out. In json, a value that is a
 * plain decimal integer is written as a number. Thread-safe. */
void hf_log_kv(enum hf_log_level level, const char *msg, ...)
    __attribute__((sentinel));

/* True when s is an HTTP token (RFC 9110): a valid header name or method. */
bool hf_http_token(const char *s);

/* The value of a hex digit (either case), or -1. */
int hf_hexval(unsigned char c);

/* Constant-time comparison of two byte strings of possibly different lengths.
 * Returns true when equal. */
bool hf_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (after
 * Howard Hinnant's days_from_civil); m is 1..12. For parsing dates without
 * the locale and time zone of timegm/mktime. */
int64_t hf_days_from_civil(int64_t y, int m, int d);

/* dlopen()s the first of sonames (NULL-terminated) that loads, never to be
 * closed (dl_*.c: libraries loaded on their first call). None loading is a
 * broken installation: logs the loader's message and aborts. */
void *hf_dl_open(const char *const *sonames);
/* The address of name in lib (hf_dl_open); logs and aborts when missing. */
void *hf_dl_sym(void *lib, const char *name);

#endif
