/* wf_tz.c - IANA time zones from TZif files (see hf_tz.h): a small parser
 * for RFC 8536 (versions 1 to 4; the 64-bit block of version 2+ is used when
 * present) and for the POSIX TZ rule of its footer, and the offset in force
 * at an instant.
 *
 * Owns: the bytes of a TZif file to a zone, a zone to an offset. Does not
 * own: cron expressions or which local time fires (wf_cron.c). Leap-second
 * records ("right/" zones) are skipped: schedules count POSIX seconds.
 *
 * Threading: a zone is immutable once built; hf_tz_load reads one file.
 * Every count and index of the file is checked before use (fuzz_tzif). */
#include "hf_tz.h"
#include "hf_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ_NAME_MAX 64
/* A TZif file larger than this is not a zone file (the largest in tzdata
 * is under 4 KiB). */
#define TZ_FILE_MAX (256 * 1024)
/* Offsets beyond +-26 hours are refused (RFC 8536 allows -89999..93599 s). */
#define TZ_OFFSET_MAX (26 * 3600)

/* One rule of a POSIX TZ string: a date, and the local time it applies. */
struct tz_rule {
	char kind;    /* 'J' (1..365, no Feb 29), 'D' (0..365), 'M' */
	int day;      /* J, D: the day; M: the weekday 0..6 (Sunday 0) */
	int week;     /* M: 1..5 (5: the last) */
	int month;    /* M: 1..12 */
	int32_t time; /* seconds after local midnight; -167h..167h */
};

struct tz_posix {
	bool valid;
	int32_t std_off; /* seconds east of UTC */
	bool has_dst;
	int32_t dst_off;
	struct tz_rule start, end;
};

struct tz_type {
	int32_t off;
	bool dst;
};

struct hf_tz {
	char *name;
	int64_t *times; /* transitions, ascending */
	uint8_t *idx;	/* type of each transition */
	size_t ntimes;
	struct tz_type *types;
	size_t ntypes;
	struct tz_posix footer;
};

bool hf_tz_valid_name(const char *name)
{
	size_t n = strlen(name), seg = 0;
	if (n == 0 || n > TZ_NAME_MAX || name[0] == '/' || name[n - 1] == '/')
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = name[i];
		if (c == '/' || c == '\0') {
			/* an empty, "." or ".." segment */
			if (seg == 0 || (seg <= 2 && name[i - 1] == '.' &&
					 (seg == 1 || name[i - 2] == '.')))
				return false;
			seg = 0;
			continue;
		}
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '+' ||
		      c == '-' || c == '.'))
			return false;
		seg++;
	}
	return true;
}

/* --- the POSIX TZ string of the footer --- */

static bool is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A zone abbreviation: 3+ letters, or <...> of letters, digits, + and -. */
static const char *posix_name(const char *s)
{
	const char *b = s;
	if (*s == '<') {
		for (s++;
		     is_alpha(*s) || is_digit(*s) || *s == '+' || *s == '-';
		     s++)
			;
		return *s == '>' && s - b >= 4 ? s + 1 : NULL;
	}
	while (is_alpha(*s))
		s++;
	return s - b >= 3 ? s : NULL;
}

static const char *posix_num(const char *s, int max, int *out)
{
	int v = 0, n = 0;
	while (is_digit(*s) && n < 4) {
		v = v * 10 + (*s++ - '0');
		n++;
	}
	if (n == 0 || v > max)
		return NULL;
	*out = v;
	return s;
}

/* [+-]hh[:mm[:ss]] with hours up to max_h, as seconds (sign applied). */
static const char *posix_time(const char *s, int max_h, int32_t *out)
{
	int sign = 1, h = 0, m = 0, sec = 0;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	if (!(s = posix_num(s, max_h, &h)))
		return NULL;
	if (*s == ':' && !(s = posix_num(s + 1, 59, &m)))
		return NULL;
	if (*s == ':' && !(s = posix_num(s + 1, 59, &sec)))
		return NULL;
	*out = sign * (h * 3600 + m * 60 + sec);
	return s;
}

static const char *posix_rule(const char *s, struct tz_rule *r)
{
	r->time = 2 * 3600;
	if (*s == 'J') {
		r->kind = 'J';
		if (!(s = posix_num(s + 1, 365, &r->day)) || r->day < 1)
			return NULL;
	} else if (*s == 'M') {
		r->kind = 'M';
		if (!(s = posix_num(s + 1, 12, &r->month)) || r->month < 1 ||
		    *s != '.' || !(s = posix_num(s + 1, 5, &r->week)) ||
		    r->week < 1 || *s != '.' ||
		    !(s = posix_num(s + 1, 6, &r->day)))
			return NULL;
	} else if (is_digit(*s)) {
		r->kind = 'D';
		if (!(s = posix_num(s, 365, &r->day)))
			return NULL;
	} else {
		return NULL;
	}
	if (*s == '/' && !(s = posix_time(s + 1, 167, &r->time)))
		return NULL;
	return s;
}

/* Parses a POSIX TZ string (RFC 8536 section 3.3, with its extensions). */
static bool posix_parse(const char *s, struct tz_posix *p)
{
	int32_t off;
	memset(p, 0, sizeof *p);
	if (!(s = posix_name(s)) || !(s = posix_time(s, 24, &off)))
		return false;
	p->std_off = -off;
	if (*s == '\0') {
		p->valid = true;
		return true;
	}
	if (!(s = posix_name(s)))
		return false;
	p->has_dst = true;
	p->dst_off = p->std_off + 3600;
	if (*s != ',' && *s != '\0') {
		if (!(s = posix_time(s, 24, &off)))
			return false;
		p->dst_off = -off;
	}
	/* No rules: POSIX leaves them to the implementation; TZif footers
	 * always carry them. */
	if (*s != ',' || !(s = posix_rule(s + 1, &p->start)) || *s != ',' ||
	    !(s = posix_rule(s + 1, &p->end)) || *s != '\0')
		return false;
	p->valid = true;
	return true;
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

/* The year of day (days since the epoch), Hinnant's civil_from_days. */
static int64_t year_of_day(int64_t z)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	return yoe + era * 400 + (mp >= 10);
}

/* The instant (UTC seconds) at which rule r applies in year y, when the
 * local time before it is off seconds east of UTC. */
static int64_t rule_instant(const struct tz_rule *r, int64_t y, int32_t off)
{
	int64_t day;
	if (r->kind == 'J') {
		day = hf_days_from_civil(y, 1, 1) + r->day - 1;
		if (leap_year(y) && r->day >= 60)
			day++;
	} else if (r->kind == 'D') {
		day = hf_days_from_civil(y, 1, 1) + r->day;
	} else {
		int64_t first = hf_days_from_civil(y, r->month, 1);
		int wd = (int)(((first + 4) % 7 + 7) % 7); /* 1970-01-01: Thu */
		day = first + (r->day - wd + 7) % 7 + 7 * (r->week - 1);
		int64_t last = first + month_days(y, r->month) - 1;
		while (day > last)
			day -= 7;
	}
	return day * 86400 + r->time - off;
}

static int32_t posix_offset(const struct tz_posix *p, int64_t u)
{
	if (!p->has_dst)
		return p->std_off;
	int64_t day = u + p->std_off;
	day = (day >= 0 ? day : day - 86399) / 86400;
	int64_t y = year_of_day(day);
	int64_t start = rule_instant(&p->start, y, p->std_off);
	int64_t end = rule_instant(&p->end, y, p->dst_off);
	bool dst =
	    start < end ? u >= start && u < end : !(u >= end && u < start);
	return dst ? p->dst_off : p->std_off;
}

/* --- the TZif file --- */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tz_head {
	uint32_t isut, isstd, leap, time, type, chars;
};

/* Reads a header at p (len bytes left); returns the size of the data block
 * that follows for times of tsize bytes, or 0 when invalid. */
static size_t read_head(const unsigned char *p, size_t len, size_t tsize,
			struct tz_head *h, int *version)
{
	if (len < 44 || memcmp(p, "TZif", 4) != 0)
		return 0;
	*version = p[4] == 0 ? 1 : p[4] - '0';
	if (*version < 1 || *version > 4)
		return 0;
	h->isut = be32(p + 20);
	h->isstd = be32(p + 24);
	h->leap = be32(p + 28);
	h->time = be32(p + 32);
	h->type = be32(p + 36);
	h->chars = be32(p + 40);
	/* Bounded by the file's size before any product is taken. */
	if (h->type == 0 || h->type > 256 || h->time > TZ_FILE_MAX ||
	    h->leap > TZ_FILE_MAX || h->chars > TZ_FILE_MAX ||
	    (h->isut && h->isut != h->type) ||
	    (h->isstd && h->isstd != h->type))
		return 0;
	size_t need = (size_t)h->time * (tsize + 1) + (size_t)h->type * 6 +
		      h->chars + (size_t)h->leap * (tsize + 4) + h->isstd +
		      h->isut;
	return need <= len - 44 ? need : 0;
}

struct hf_tz *hf_tz_parse(const char *name, const void *data, size_t len,
			  char *err, size_t errsize)
{
	const unsigned char *p = data;
	struct tz_head h;
	int version = 0;
	size_t tsize = 4, block = read_head(p, len, 4, &h, &version);
	const char *why = "not a TZif file";
	struct hf_tz *tz = NULL;
	if (!block)
		goto bad;
	if (version >= 2) {
		/* Skip the 32-bit block: the 64-bit one follows it. */
		p += 44 + block;
		len -= 44 + block;
		tsize = 8;
		int v2 = 0;
		if (!(block = read_head(p, len, 8, &h, &v2)))
			goto bad;
	}
	tz = hf_xcalloc(1, sizeof *tz);
	tz->name = hf_xstrdup(name);
	tz->ntimes = h.time;
	tz->ntypes = h.type;
	tz->times = hf_xcalloc(h.time ? h.time : 1, sizeof *tz->times);
	tz->idx = hf_xcalloc(h.time ? h.time : 1, 1);
	tz->types = hf_xcalloc(h.type, sizeof *tz->types);
	const unsigned char *d = p + 44;
	for (size_t i = 0; i < h.time; i++) {
		tz->times[i] =
		    tsize == 8 ? be64(d + i * 8) : (int32_t)be32(d + i * 4);
		if (i && tz->times[i] <= tz->times[i - 1]) {
			why = "transitions out of order";
			goto bad;
		}
	}
	d += (size_t)h.time * tsize;
	for (size_t i = 0; i < h.time; i++) {
		tz->idx[i] = d[i];
		if (d[i] >= h.type) {
			why = "transition of an unknown type";
			goto bad;
		}
	}
	d += h.time;
	for (size_t i = 0; i < h.type; i++, d += 6) {
		int32_t off = (int32_t)be32(d);
		if (off < -TZ_OFFSET_MAX || off > TZ_OFFSET_MAX ||
		    d[5] >= (h.chars ? h.chars : 1)) {
			why = "invalid local time type";
			goto bad;
		}
		tz->types[i].off = off;
		tz->types[i].dst = d[4] != 0;
	}
	if (version >= 2) {
		/* The footer: "\nTZ-string\n" right after the block. */
		const char *f = (const char *)p + 44 + block;
		size_t flen = len - 44 - block;
		if (flen < 2 || f[0] != '\n') {
			why = "missing footer";
			goto bad;
		}
		const char *nl = memchr(f + 1, '\n', flen - 1);
		if (!nl || nl - f - 1 > 127) {
			why = "invalid footer";
			goto bad;
		}
		char rule[128];
		memcpy(rule, f + 1, (size_t)(nl - f - 1));
		rule[nl - f - 1] = '\0';
		if (rule[0] && !posix_parse(rule, &tz->footer)) {
			why = "invalid TZ rule in the footer";
			goto bad;
		}
	}
	return tz;
bad:
	snprintf(err, errsize, "time zone '%s': %s", name, why);
	hf_tz_free(tz);
	return NULL;
}

static struct hf_tz *fixed_utc(const char *name)
{
	struct hf_tz *tz = hf_xcalloc(1, sizeof *tz);
	tz->name = hf_xstrdup(name);
	tz->types = hf_xcalloc(1, sizeof *tz->types);
	tz->ntypes = 1;
	return tz;
}

struct hf_tz *hf_tz_load(const char *name, char *err, size_t errsize)
{
	if (!hf_tz_valid_name(name)) {
		snprintf(err, errsize, "invalid time zone name '%s'", name);
		return NULL;
	}
	const char *dir = getenv("TZDIR");
	if (!dir || !*dir)
		dir = "/usr/share/zoneinfo";
	char *path = hf_xasprintf("%s/%s", dir, name);
	size_t len = 0;
	char *data = hf_read_file(path, &len);
	int e = errno;
	free(path);
	if (!data && (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0))
		return fixed_utc(name); /* without tzdata installed */
	if (!data) {
		snprintf(err, errsize, "unknown time zone '%s'%s", name,
			 e == ENOENT || e == EISDIR || e == ENOTDIR
			     ? ""
			     : " (cannot read its tzdata file)");
		return NULL;
	}
	struct hf_tz *tz = NULL;
	char why[160];
	if (len <= TZ_FILE_MAX)
		tz = hf_tz_parse(name, data, len, why, sizeof why);
	if (!tz)
		snprintf(err, errsize,
			 "unknown time zone '%s' (not a valid tzdata file)",
			 name);
	free(data);
	return tz;
}

void hf_tz_free(struct hf_tz *tz)
{
	if (!tz)
		return;
	free(tz->name);
	free(tz->times);
	free(tz->idx);
	free(tz->types);
	free(tz);
}

const char *hf_tz_name(const struct hf_tz *tz)
{
	return tz ? tz->name : "UTC";
}

int32_t hf_tz_offset(const struct hf_tz *tz, int64_t u)
{
	if (!tz)
		return 0;
	if (tz->ntimes == 0 || u < tz->times[0]) {
		if (tz->ntimes == 0 && tz->footer.valid)
			return posix_offset(&tz->footer, u);
		return tz->types[0].off;
	}
	if (u >= tz->times[tz->ntimes - 1] && tz->footer.valid)
		return posix_offset(&tz->footer, u);
	size_t lo = 0, hi = tz->ntimes; /* times[lo] <= u < times[hi] */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (tz->times[mid] <= u)
			lo = mid;
		else
			hi = mid;
	}
	return tz->types[tz->idx[lo]].off;
}
