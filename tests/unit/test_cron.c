/* test_cron.c - cron expressions (wf_cron.c) and time zones (wf_tz.c): the
 * syntax and its errors, month and day edges, names, steps, the day-of-month
 * / day-of-week rule, and the daylight saving transitions of Europe/Berlin
 * and America/New_York (the tzdata file and, past 2037, its footer rule). */
#include "hf_cron.h"
#include "hf_util.h"
#include "tap.h"

#include <stdlib.h>

static int64_t at(const char *iso)
{
	int64_t s = -1;
	if (hf_cron_parse_time(iso, &s) < 0) {
		fprintf(stderr, "bad time in test: %s\n", iso);
		exit(2);
	}
	return s;
}

/* The next fire of expr in zone tz after `after`, as ISO text. */
static const char *next(const char *expr, const struct hf_tz *tz,
			const char *after)
{
	static char out[24];
	struct hf_cron c;
	size_t eat;
	char err[200];
	if (hf_cron_parse(&c, expr, true, &eat, err, sizeof err) < 0) {
		snprintf(out, sizeof out, "error");
		return out;
	}
	int64_t n = hf_cron_next(&c, tz, at(after));
	if (n < 0)
		snprintf(out, sizeof out, "none");
	else
		hf_cron_iso(n, out);
	return out;
}

static void test_parse_errors(void)
{
	struct hf_cron c;
	size_t eat = 99;
	char err[200];
	CHECK(hf_cron_parse(&c, "*/15 8-18 * * MON-FRI", false, &eat, err,
			    sizeof err) == 0);
	CHECK(c.dow == 0x3e && !c.dom_star == false && !c.dow_star);
	CHECK(hf_cron_parse(&c, "0 0 * JAN,jul sun", false, &eat, err,
			    sizeof err) == 0);
	CHECK(c.mon == (1 << 1 | 1 << 7) && c.dow == 1);
	CHECK(hf_cron_parse(&c, "0 0 * * 7", false, &eat, err, sizeof err) ==
	      0);
	CHECK(c.dow == 1);
	CHECK(hf_cron_parse(&c, "5/20 * * * *", false, &eat, err, sizeof err) ==
	      0);
	CHECK(c.min == (1ULL << 5 | 1ULL << 25 | 1ULL << 45));
	CHECK(hf_cron_parse(&c, "  @Daily ", false, &eat, err, sizeof err) ==
	      0);
	CHECK(c.min == 1 && c.hour == 1);

	CHECK(hf_cron_parse(&c, "0 61 * * *", false, &eat, err, sizeof err) <
	      0);
	CHECK(eat == 2);
	CHECK(strstr(err, "hour") != NULL);
	CHECK(hf_cron_parse(&c, "61 * * * *", false, &eat, err, sizeof err) <
	      0);
	CHECK(eat == 0);
	CHECK(hf_cron_parse(&c, "* * * *", false, &eat, err, sizeof err) < 0);
	CHECK(strstr(err, "5 fields") != NULL);
	CHECK(hf_cron_parse(&c, "* * * * * *", false, &eat, err, sizeof err) <
	      0);
	CHECK(hf_cron_parse(&c, "* * * * * *", true, &eat, err, sizeof err) ==
	      0);
	CHECK(c.sec == (1ULL << 60) - 1);
	CHECK(hf_cron_parse(&c, "@reboot", false, &eat, err, sizeof err) < 0);
	CHECK(hf_cron_parse(&c, "* * 31 2 *", false, &eat, err, sizeof err) <
	      0);
	CHECK(eat == 4);
	CHECK(strstr(err, "never") != NULL);
	CHECK(hf_cron_parse(&c, "* * 30 2 MON", false, &eat, err, sizeof err) ==
	      0); /* OR: Mondays */
	CHECK(hf_cron_parse(&c, "5-1 * * * *", false, &eat, err, sizeof err) <
	      0);
	CHECK(hf_cron_parse(&c, "*/0 * * * *", false, &eat, err, sizeof err) <
	      0);
	CHECK(hf_cron_parse(&c, "1,,2 * * * *", false, &eat, err, sizeof err) <
	      0);
	CHECK(hf_cron_parse(&c, "* * * FOO *", false, &eat, err, sizeof err) <
	      0);
	CHECK(eat == 6);
	CHECK(hf_cron_parse(&c, "* * * * MONDAY", false, &eat, err,
			    sizeof err) < 0);
	CHECK(hf_cron_parse(&c, "", false, &eat, err, sizeof err) < 0);
}

static void test_utc(void)
{
	/* Friday evening to Monday morning. */
	CHECK_STR(next("*/15 8-18 * * MON-FRI", NULL, "2026-12-04T18:50:00Z"),
		  "2026-12-07T08:00:00Z");
	CHECK_STR(next("*/15 8-18 * * MON-FRI", NULL, "2026-12-07T08:00:00Z"),
		  "2026-12-07T08:15:00Z");
	/* Strictly after. */
	CHECK_STR(next("0 * * * *", NULL, "2026-01-01T10:00:00Z"),
		  "2026-01-01T11:00:00Z");
	CHECK_STR(next("0 * * * *", NULL, "2026-01-01T09:59:59Z"),
		  "2026-01-01T10:00:00Z");
	/* Month and year edges. */
	CHECK_STR(next("0 0 31 * *", NULL, "2026-04-15T00:00:00Z"),
		  "2026-05-31T00:00:00Z");
	CHECK_STR(next("0 0 29 2 *", NULL, "2026-03-01T00:00:00Z"),
		  "2028-02-29T00:00:00Z");
	CHECK_STR(next("59 23 31 12 *", NULL, "2026-12-31T23:59:00Z"),
		  "2027-12-31T23:59:00Z");
	CHECK_STR(next("0 0 1 JAN *", NULL, "2026-12-31T23:59:59Z"),
		  "2027-01-01T00:00:00Z");
	/* Both day fields restricted: either; one '*': both. */
	CHECK_STR(next("0 0 13 * FRI", NULL, "2026-01-01T00:00:00Z"),
		  "2026-01-02T00:00:00Z");
	CHECK_STR(next("0 0 */10 * MON", NULL, "2026-01-01T00:00:00Z"),
		  "2026-05-11T00:00:00Z");
	CHECK_STR(next("0 0 * * 0", NULL, "2026-01-01T00:00:00Z"),
		  "2026-01-04T00:00:00Z");
	/* Macros. */
	CHECK_STR(next("@hourly", NULL, "2026-05-05T05:05:05Z"),
		  "2026-05-05T06:00:00Z");
	CHECK_STR(next("@daily", NULL, "2026-05-05T05:05:05Z"),
		  "2026-05-06T00:00:00Z");
	CHECK_STR(next("@weekly", NULL, "2026-05-05T05:05:05Z"),
		  "2026-05-10T00:00:00Z");
	CHECK_STR(next("@monthly", NULL, "2026-05-05T05:05:05Z"),
		  "2026-06-01T00:00:00Z");
	CHECK_STR(next("@yearly", NULL, "2026-05-05T05:05:05Z"),
		  "2027-01-01T00:00:00Z");
	/* Steps and lists. */
	CHECK_STR(next("5/20 * * * *", NULL, "2026-05-05T05:45:00Z"),
		  "2026-05-05T06:05:00Z");
	CHECK_STR(next("0 9-17/4 * * *", NULL, "2026-05-05T13:00:00Z"),
		  "2026-05-05T17:00:00Z");
	CHECK_STR(next("0 0 1 1,jul *", NULL, "2026-02-01T00:00:00Z"),
		  "2026-07-01T00:00:00Z");
	/* Seconds (tests only). */
	CHECK_STR(next("*/2 * * * * *", NULL, "2026-05-05T05:05:05Z"),
		  "2026-05-05T05:05:06Z");
}

static void test_berlin(void)
{
	char err[200];
	struct hf_tz *tz = hf_tz_load("Europe/Berlin", err, sizeof err);
	CHECK(tz != NULL);
	if (!tz)
		return;
	CHECK(hf_tz_offset(tz, at("2026-01-15T12:00:00Z")) == 3600);
	CHECK(hf_tz_offset(tz, at("2026-07-15T12:00:00Z")) == 7200);
	CHECK(hf_tz_offset(tz, at("2045-07-15T12:00:00Z")) == 7200); /* rule */
	CHECK(hf_tz_offset(tz, at("2045-12-15T12:00:00Z")) == 3600);
	/* Spring forward, 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z):
	 * 02:30 does not exist and fires once, at 03:00 CEST. */
	CHECK_STR(next("30 2 * * *", tz, "2026-03-28T12:00:00Z"),
		  "2026-03-29T01:00:00Z");
	CHECK_STR(next("30 2 * * *", tz, "2026-03-29T01:00:00Z"),
		  "2026-03-30T00:30:00Z");
	CHECK_STR(next("*/30 * * * *", tz, "2026-03-29T00:30:00Z"),
		  "2026-03-29T01:00:00Z");
	CHECK_STR(next("*/30 * * * *", tz, "2026-03-29T01:00:00Z"),
		  "2026-03-29T01:30:00Z");
	CHECK_STR(next("0 2,3 * * *", tz, "2026-03-29T00:00:00Z"),
		  "2026-03-29T01:00:00Z");
	CHECK_STR(next("0 2,3 * * *", tz, "2026-03-29T01:00:00Z"),
		  "2026-03-30T00:00:00Z");
	/* Fall back, 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z): 02:30
	 * happens twice and fires once, the first time. */
	CHECK_STR(next("30 2 * * *", tz, "2026-10-24T12:00:00Z"),
		  "2026-10-25T00:30:00Z");
	CHECK_STR(next("30 2 * * *", tz, "2026-10-25T00:30:00Z"),
		  "2026-10-26T01:30:00Z");
	CHECK_STR(next("0 * * * *", tz, "2026-10-25T00:00:00Z"),
		  "2026-10-25T02:00:00Z");
	/* Every minute across the repeated hour: none in its second pass. */
	CHECK_STR(next("* * * * *", tz, "2026-10-25T00:59:00Z"),
		  "2026-10-25T02:00:00Z");
	/* Past the file's last transition: the footer's rule. */
	CHECK_STR(next("30 2 * * *", tz, "2045-03-25T12:00:00Z"),
		  "2045-03-26T01:00:00Z");
	CHECK_STR(next("30 2 * * *", tz, "2045-10-28T12:00:00Z"),
		  "2045-10-29T00:30:00Z");
	CHECK_STR(next("0 9 * * MON-FRI", tz, "2026-12-05T12:00:00Z"),
		  "2026-12-07T08:00:00Z");
	hf_tz_free(tz);
}

static void test_new_york(void)
{
	char err[200];
	struct hf_tz *tz = hf_tz_load("America/New_York", err, sizeof err);
	CHECK(tz != NULL);
	if (!tz)
		return;
	CHECK(hf_tz_offset(tz, at("2026-01-15T12:00:00Z")) == -5 * 3600);
	CHECK(hf_tz_offset(tz, at("2026-07-15T12:00:00Z")) == -4 * 3600);
	/* 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z). */
	CHECK_STR(next("30 2 * * *", tz, "2026-03-07T12:00:00Z"),
		  "2026-03-08T07:00:00Z");
	CHECK_STR(next("30 2 * * *", tz, "2026-03-08T07:00:00Z"),
		  "2026-03-09T06:30:00Z");
	/* 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z): 01:30 twice. */
	CHECK_STR(next("30 1 * * *", tz, "2026-10-31T12:00:00Z"),
		  "2026-11-01T05:30:00Z");
	CHECK_STR(next("30 1 * * *", tz, "2026-11-01T05:30:00Z"),
		  "2026-11-02T06:30:00Z");
	CHECK_STR(next("0 0 * * *", tz, "2026-12-31T12:00:00Z"),
		  "2027-01-01T05:00:00Z");
	/* The footer's rule: 2045-03-12 and 2045-11-05. */
	CHECK_STR(next("30 2 * * *", tz, "2045-03-11T12:00:00Z"),
		  "2045-03-12T07:00:00Z");
	CHECK_STR(next("30 1 * * *", tz, "2045-11-04T12:00:00Z"),
		  "2045-11-05T05:30:00Z");
	hf_tz_free(tz);
}

static void test_zones(void)
{
	char err[200];
	CHECK(!hf_tz_valid_name("../etc/passwd"));
	CHECK(!hf_tz_valid_name("/etc/passwd"));
	CHECK(!hf_tz_valid_name("Europe/./Berlin"));
	CHECK(!hf_tz_valid_name(""));
	CHECK(hf_tz_valid_name("America/Argentina/Buenos_Aires"));
	CHECK(hf_tz_valid_name("Etc/GMT+5"));
	CHECK(hf_tz_load("Mars/Olympus", err, sizeof err) == NULL);
	CHECK(strstr(err, "unknown time zone 'Mars/Olympus'") != NULL);
	CHECK(hf_tz_load("../../etc/passwd", err, sizeof err) == NULL);
	struct hf_tz *tz = hf_tz_load("UTC", err, sizeof err);
	CHECK(tz && hf_tz_offset(tz, 0) == 0);
	hf_tz_free(tz);
	tz = hf_tz_load("Asia/Kolkata", err, sizeof err);
	CHECK(tz && hf_tz_offset(tz, at("2030-01-01T00:00:00Z")) == 19800);
	CHECK_STR(next("0 9 * * *", tz, "2030-01-01T00:00:00Z"),
		  "2030-01-01T03:30:00Z");
	hf_tz_free(tz);
	/* Southern hemisphere, DST across the new year. */
	tz = hf_tz_load("Australia/Sydney", err, sizeof err);
	CHECK(tz && hf_tz_offset(tz, at("2045-01-01T00:00:00Z")) == 39600);
	CHECK(tz && hf_tz_offset(tz, at("2045-07-01T00:00:00Z")) == 36000);
	hf_tz_free(tz);
	CHECK(hf_tz_parse("x", "TZif", 4, err, sizeof err) == NULL);
	CHECK(hf_tz_parse("x", "", 0, err, sizeof err) == NULL);
}

static void test_times(void)
{
	int64_t s;
	char out[24];
	CHECK(hf_cron_parse_time("2026-12-06T03:30:00Z", &s) == 0);
	hf_cron_iso(s, out);
	CHECK_STR(out, "2026-12-06T03:30:00Z");
	CHECK(hf_cron_parse_time("2026-12-06T04:30:00+01:00", &s) == 0);
	hf_cron_iso(s, out);
	CHECK_STR(out, "2026-12-06T03:30:00Z");
	CHECK(hf_cron_parse_time("2026-12-06 03:30Z", &s) == 0);
	CHECK(hf_cron_parse_time("2026-12-06T03:30:00.250Z", &s) == 0);
	CHECK(hf_cron_parse_time("1765000000", &s) == 0 && s == 1765000000);
	CHECK(hf_cron_parse_time("2026-02-30T00:00:00Z", &s) < 0);
	CHECK(hf_cron_parse_time("2026-12-06T03:30:00", &s) < 0);
	CHECK(hf_cron_parse_time("yesterday", &s) < 0);
	hf_cron_iso(0, out);
	CHECK_STR(out, "1970-01-01T00:00:00Z");
}

int main(void)
{
	test_parse_errors();
	test_utc();
	test_berlin();
	test_new_york();
	test_zones();
	test_times();
	return tap_done();
}
