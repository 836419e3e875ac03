/* hf_cron.h - cron expressions of `on.schedule` and their fire times in an
 * IANA time zone (wf_cron.c; zones: hf_tz.h).
 *
 * Five fields, minute hour day-of-month month day-of-week, each `*`, a value,
 * a range `a-b`, a step `*\/s`, `a-b/s` or `a/s` (from a to the field's end),
 * or a comma-separated list of those; months JAN-DEC and weekdays SUN-SAT by
 * name (any case), weekday 7 is Sunday too. @yearly (@annually), @monthly,
 * @weekly, @daily (@midnight) and @hourly stand for their five fields. As in
 * Vixie cron, when both day fields are restricted (neither starts with `*`) a
 * day matches either; otherwise both. With allow_seconds, a sixth field in
 * front gives the second (tests only: HOOKFLOW_TEST_CRON_SECONDS=1).
 *
 * Daylight saving: a local time that does not exist (skipped when clocks go
 * forward) fires once, at the first instant after the gap; a local time that
 * happens twice (clocks go back) fires once, the first time.
 *
 * Pure: no clock, no locale, no environment; any thread. */
#ifndef HF_CRON_H
#define HF_CRON_H

#include "hf_tz.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A parsed expression: one bit per allowed value of each field. */
struct hf_cron {
	uint64_t sec;  /* 0..59; only bit 0 without a seconds field */
	uint64_t min;  /* 0..59 */
	uint32_t hour; /* 0..23 */
	uint32_t dom;  /* 1..31 */
	uint16_t mon;  /* 1..12 */
	uint8_t dow;   /* 0..6, Sunday 0 */
	bool dom_star; /* the field starts with '*' */
	bool dow_star;
};

/* Parses expr into c. Returns 0, or -1 with a message in err and the byte
 * offset in expr of the field at fault in *err_at. */
int hf_cron_parse(struct hf_cron *c, const char *expr, bool allow_seconds,
		  size_t *err_at, char *err, size_t errsize);
/* The first fire time strictly after after_s (UTC seconds since the epoch)
 * with local times read in tz (NULL: UTC), or -1 when there is none within
 * the next ten years. */
int64_t hf_cron_next(const struct hf_cron *c, const struct hf_tz *tz,
		     int64_t after_s);
/* s (UTC seconds) as "2026-03-29T01:00:00Z". */
void hf_cron_iso(int64_t s, char out[24]);
/* Parses "YYYY-MM-DDTHH:MM[:SS][.fff](Z|+HH:MM|-HH:MM)" (a space for 'T' is
 * taken too) or decimal Unix seconds. Returns 0 with *out_s, or -1. */
int hf_cron_parse_time(const char *s, int64_t *out_s);

#endif
