/* wf_cron.c - cron expressions and their next fire time (see hf_cron.h).
 *
 * A search over local wall-clock time, written as seconds since the epoch as
 * if the zone were UTC: next_wall finds the first matching wall time, field
 * by field, jumping to the next allowed value of the field that fails; then
 * wall_instant maps it to the one instant it fires at (the earlier of two
 * for a repeated time, the end of the gap for a skipped one). That mapping
 * never decreases, so the first wall time whose instant lies after the given
 * one is the answer.
 *
 * Owns: the expression syntax and the search. Does not own: time zone data
 * (wf_tz.c), when the server fires (schedule.c), the YAML (workflow.c).
 * Pure; any thread. Fuzzed by tests/fuzz/fuzz_cron.c. */
#include "hf_cron.h"
#include "hf_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Searching further than this finds nothing that a parse would accept. */
#define CRON_HORIZON_S (10LL * 366 * 86400)

struct field {
	const char *name;
	int lo, hi;
	const char *const *names; /* names[i] stands for lo + i, or NULL */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY",
					  "JUN", "JUL", "AUG", "SEP", "OCT",
					  "NOV", "DEC", NULL};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED",
					"THU", "FRI", "SAT", NULL};

static const struct field fields[] = {
    {"second", 0, 59, NULL},	   {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},	   {"day-of-month", 1, 31, NULL},
    {"month", 1, 12, month_names}, {"day-of-week", 0, 7, day_names},
};

static const struct {
	const char *name;
	const char *fields;
} macros[] = {
    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* A number or a name of the field at s (n bytes); -1 when neither. */
static int value_of(const struct field *f, const char *s, size_t n)
{
	if (n == 0)
		return -1;
	if (s[0] >= '0' && s[0] <= '9') {
		int v = 0;
		for (size_t i = 0; i < n; i++) {
			if (s[i] < '0' || s[i] > '9' || v > 1000)
				return -1;
			v = v * 10 + (s[i] - '0');
		}
		return v;
	}
	for (int i = 0; f->names && f->names[i]; i++)
		if (n == 3 && strncasecmp(s, f->names[i], 3) == 0)
			return f->lo + i;
	return -1;
}

/* One field's text [s, s+n) into *bits. Returns 0 or -1 with err. */
static int parse_field(const struct field *f, const char *s, size_t n,
		       uint64_t *bits, char *err, size_t errsize)
{
	*bits = 0;
	size_t i = 0;
	while (i <= n) {
		size_t e = i;
		while (e < n && s[e] != ',')
			e++;
		const char *el = s + i;
		size_t len = e - i;
		const char *slash = memchr(el, '/', len);
		size_t blen = slash ? (size_t)(slash - el) : len;
		const char *dash = memchr(el, '-', blen);
		int a, b, step = 1;
		if (blen == 1 && el[0] == '*') {
			a = f->lo;
			b = f->hi;
		} else if (dash) {
			a = value_of(f, el, (size_t)(dash - el));
			b = value_of(f, dash + 1,
				     blen - (size_t)(dash - el) - 1);
		} else {
			a = value_of(f, el, blen);
			b = slash ? f->hi : a;
		}
		if (slash) {
			step = value_of(&fields[0], slash + 1,
					len - blen - 1); /* digits only */
			if (step < 1 || step > f->hi - f->lo + 1) {
				snprintf(err, errsize,
					 "invalid step in %s field '%.*s'",
					 f->name, (int)n, s);
				return -1;
			}
		}
		if (a < f->lo || b > f->hi || a < 0 || b < 0) {
			snprintf(err, errsize,
				 "invalid %s field '%.*s' (expected %d-%d%s)",
				 f->name, (int)n, s, f->lo, f->hi,
				 f->names == month_names ? " or JAN-DEC"
				 : f->names		 ? " or SUN-SAT"
							 : "");
			return -1;
		}
		if (a > b) {
			snprintf(err, errsize,
				 "invalid %s field '%.*s' (range %d-%d is "
				 "backwards)",
				 f->name, (int)n, s, a, b);
			return -1;
		}
		for (int v = a; v <= b; v += step)
			*bits |= 1ULL << v;
		i = e + 1;
	}
	return 0;
}

static bool leap_year(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	return mdays[m - 1] + (m == 2 && leap_year(y));
}

int hf_cron_parse(struct hf_cron *c, const char *expr, bool allow_seconds,
		  size_t *err_at, char *err, size_t errsize)
{
	const char *text = expr;
	size_t base = 0;
	memset(c, 0, sizeof *c);
	*err_at = 0;
	while (*text == ' ' || *text == '\t')
		text++, base++;
	if (*text == '@') {
		size_t n = strcspn(text, " \t");
		for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
			if (strlen(macros[i].name) == n &&
			    strncasecmp(text, macros[i].name, n) == 0 &&
			    text[n + strspn(text + n, " \t")] == '\0')
				return hf_cron_parse(c, macros[i].fields, false,
						     err_at, err, errsize);
		*err_at = base;
		snprintf(err, errsize,
			 "unknown cron macro '%.*s' (expected @hourly, @daily, "
			 "@weekly, @monthly or @yearly)",
			 (int)n, text);
		return -1;
	}
	const char *start[7];
	size_t len[7], nf = 0;
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, " \t");
		if (nf < 7) {
			start[nf] = p;
			len[nf] = n;
		}
		nf++;
		p += n;
		p += strspn(p, " \t");
	}
	size_t want = allow_seconds && nf == 6 ? 6 : 5;
	if (nf != want) {
		*err_at = base;
		snprintf(err, errsize,
			 "cron expression needs 5 fields (minute hour "
			 "day-of-month month day-of-week), not %zu",
			 nf);
		return -1;
	}
	uint64_t bits[6] = {1, 0, 0, 0, 0, 0};
	for (size_t i = 0; i < nf; i++) {
		size_t f = i + 6 - nf;
		if (parse_field(&fields[f], start[i], len[i], &bits[f], err,
				errsize) < 0) {
			*err_at = (size_t)(start[i] - expr);
			return -1;
		}
	}
	c->sec = bits[0];
	c->min = bits[1];
	c->hour = (uint32_t)bits[2];
	c->dom = (uint32_t)bits[3];
	c->mon = (uint16_t)bits[4];
	c->dow = (uint8_t)((bits[5] | bits[5] >> 7) & 0x7f); /* 7: Sunday */
	c->dom_star = start[nf - 3][0] == '*';
	c->dow_star = start[nf - 1][0] == '*';
	if (c->dow_star) {
		/* Both day fields must hold: some month must have the day. */
		bool ok = false;
		for (int m = 1; m <= 12 && !ok; m++)
			for (int d = 1; d <= month_days(2000, m) && !ok; d++)
				ok = (c->mon >> m & 1) && (c->dom >> d & 1);
		if (!ok) {
			*err_at = (size_t)(start[nf - 3] - expr);
			snprintf(err, errsize,
				 "cron expression never fires (no such day "
				 "in those months)");
			return -1;
		}
	}
	return 0;
}

/* --- the search --- */

/* Hinnant's civil_from_days. */
static void civil(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* The smallest bit >= from set in bits (up to hi), or -1. */
static int next_bit(uint64_t bits, int from, int hi)
{
	for (int b = from; b <= hi; b++)
		if (bits >> b & 1)
			return b;
	return -1;
}

static bool day_matches(const struct hf_cron *c, int64_t day, int d)
{
	int wd = (int)(((day + 4) % 7 + 7) % 7); /* 1970-01-01: Thursday */
	bool dom = c->dom >> d & 1, dow = c->dow >> wd & 1;
	return c->dom_star || c->dow_star ? dom && dow : dom || dow;
}

/* The first wall time >= w that matches, or -1 past limit. */
static int64_t next_wall(const struct hf_cron *c, int64_t w, int64_t limit)
{
	while (w <= limit) {
		int64_t day = floor_div(w, 86400), y;
		int64_t sod = w - day * 86400;
		int m, d;
		civil(day, &y, &m, &d);
		if (!(c->mon >> m & 1)) {
			int nm = next_bit(c->mon, m + 1, 12);
			w = (nm > 0 ? hf_days_from_civil(y, nm, 1)
				    : hf_days_from_civil(y + 1, 1, 1)) *
			    86400;
			continue;
		}
		if (!day_matches(c, day, d)) {
			w = (day + 1) * 86400;
			continue;
		}
		int h = (int)(sod / 3600), mi = (int)(sod / 60 % 60),
		    s = (int)(sod % 60);
		int nh = next_bit(c->hour, h, 23);
		if (nh < 0) {
			w = (day + 1) * 86400;
			continue;
		}
		if (nh != h) {
			w = day * 86400 + nh * 3600;
			continue;
		}
		int nmi = next_bit(c->min, mi, 59);
		if (nmi != mi) {
			w = day * 86400 + h * 3600 +
			    (nmi < 0 ? 3600 : (int64_t)nmi * 60);
			continue;
		}
		int ns = next_bit(c->sec, s, 59);
		if (ns != s) {
			w = day * 86400 + h * 3600 + mi * 60 +
			    (ns < 0 ? 60 : ns);
			continue;
		}
		return w;
	}
	return -1;
}

/* A day on either side covers every offset (at most 26 hours). */
#define SPAN (26 * 3600)

/* The instant wall time w fires at: the earliest instant whose local time is
 * w, or, when w falls in a gap, the first instant after the gap. */
static int64_t wall_instant(const struct hf_tz *tz, int64_t w)
{
	int32_t cand[3] = {hf_tz_offset(tz, w - SPAN), hf_tz_offset(tz, w),
			   hf_tz_offset(tz, w + SPAN)};
	int64_t best = 0;
	bool found = false;
	int32_t lo_off = cand[0], hi_off = cand[0];
	for (int i = 0; i < 3; i++) {
		if (cand[i] < lo_off)
			lo_off = cand[i];
		if (cand[i] > hi_off)
			hi_off = cand[i];
		int64_t u = w - cand[i];
		if (hf_tz_offset(tz, u) == cand[i] && (!found || u < best)) {
			best = u;
			found = true;
		}
	}
	if (found)
		return best;
	/* A gap: the transition lies in (w - hi_off, w - lo_off]. */
	int64_t lo = w - hi_off, hi = w - lo_off;
	int32_t before = hf_tz_offset(tz, lo);
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		if (hf_tz_offset(tz, mid) == before)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

int64_t hf_cron_next(const struct hf_cron *c, const struct hf_tz *tz,
		     int64_t after_s)
{
	/* No wall time before after_s + the smallest offset around can map
	 * past after_s. */
	int32_t lo_off = hf_tz_offset(tz, after_s);
	for (int i = -1; i <= 1; i += 2) {
		int32_t o = hf_tz_offset(tz, after_s + i * SPAN);
		if (o < lo_off)
			lo_off = o;
	}
	int64_t w = after_s + lo_off;
	int64_t limit = w + CRON_HORIZON_S;
	for (;;) {
		w = next_wall(c, w, limit);
		if (w < 0)
			return -1;
		int64_t u = wall_instant(tz, w);
		if (u > after_s)
			return u;
		w++;
	}
}

void hf_cron_iso(int64_t s, char out[24])
{
	int64_t day = floor_div(s, 86400), y;
	int64_t sod = s - day * 86400;
	int m, d;
	civil(day, &y, &m, &d);
	snprintf(out, 24, "%04d-%02d-%02dT%02d:%02d:%02dZ",
		 (int)(y < 0	  ? 0
		       : y > 9999 ? 9999
				  : y),
		 m, d, (int)(sod / 3600), (int)(sod / 60 % 60),
		 (int)(sod % 60));
}

/* n digits at s into *v; false when not digits. */
static bool digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

int hf_cron_parse_time(const char *s, int64_t *out_s)
{
	size_t n = strlen(s);
	if (n > 0 && n <= 12 && strspn(s, "0123456789") == n) {
		*out_s = strtoll(s, NULL, 10);
		return 0;
	}
	int y, mo, d, h, mi, sec = 0;
	if (n < 16 || !digits(s, 4, &y) || s[4] != '-' ||
	    !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi))
		return -1;
	const char *p = s + 16;
	if (*p == ':') {
		if (!digits(p + 1, 2, &sec))
			return -1;
		p += 3;
		if (*p == '.')
			for (p++; *p >= '0' && *p <= '9'; p++)
				;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 ||
	    mi > 59 || sec > 59)
		return -1;
	int off = 0, oh, om;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;
		if (!digits(p + 1, 2, &oh))
			return -1;
		p += 3;
		if (*p == ':')
			p++;
		if (!digits(p, 2, &om) || oh > 23 || om > 59)
			return -1;
		p += 2;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -1;
	}
	if (*p)
		return -1;
	*out_s = hf_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
		 sec - off;
	return 0;
}
