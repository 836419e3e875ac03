/* hf_tz.h - IANA time zones read from TZif files (RFC 8536), for schedules:
 * the UTC offset in force at any instant, without the process-wide TZ
 * variable (setenv("TZ") + localtime is not thread-safe, and glibc has no
 * per-call zone).
 *
 * A zone is loaded once (a workflow load) and then immutable: any thread may
 * read it. The data is the system's tzdata (/usr/share/zoneinfo, or $TZDIR);
 * "UTC" (and "Etc/UTC", "GMT") work without it. Times after the file's last
 * transition follow its footer's POSIX TZ rule ("CET-1CEST,M3.5.0,M10.5.0/3").
 * Pure but for hf_tz_load's file read (wf_tz.c). */
#ifndef HF_TZ_H
#define HF_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hf_tz;

/* True when name may name a zone file: [A-Za-z0-9_+-] segments separated by
 * '/', no "." or ".." segment, no leading '/', at most 64 characters. */
bool hf_tz_valid_name(const char *name);
/* Loads the zone name from the tzdata directory. Returns NULL with a message
 * in err ("unknown time zone 'Mars/Olympus'") when it cannot. */
struct hf_tz *hf_tz_load(const char *name, char *err, size_t errsize);
/* Builds a zone from a TZif file's bytes (name is kept for messages). Returns
 * NULL with a message in err when data is not a valid TZif file. */
struct hf_tz *hf_tz_parse(const char *name, const void *data, size_t len,
			  char *err, size_t errsize);
void hf_tz_free(struct hf_tz *tz); /* accepts NULL */
const char *hf_tz_name(const struct hf_tz *tz);
/* Seconds east of UTC in force at utc_s (seconds since the epoch). tz NULL:
 * UTC (0). */
int32_t hf_tz_offset(const struct hf_tz *tz, int64_t utc_s);

#endif
