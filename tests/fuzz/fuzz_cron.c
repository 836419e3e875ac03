/* fuzz_cron.c - hf_cron_parse on a NUL-terminated copy of arbitrary bytes
 * (with and without the seconds field), then, for an expression it accepts,
 * a few hf_cron_next searches in UTC and in a zone with daylight saving:
 * every fire time lies strictly after the instant asked about, and the
 * search ends. Also hf_cron_parse_time. */
#include "hf_cron.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Europe/Berlin as a POSIX rule only (a TZif file with no transitions and
 * a footer), so that the target needs no tzdata. */
static const unsigned char berlin[] =
    "TZif2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\1\0\0\0\4"
    "\0\0\x0e\x10\0\0"
    "CET\0"
    "TZif2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\1\0\0\0\4"
    "\0\0\x0e\x10\0\0"
    "CET\0"
    "\nCET-1CEST,M3.5.0,M10.5.0/3\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	struct hf_cron c;
	size_t at = 0;
	char err[256];
	char e2[128];
	struct hf_tz *tz = hf_tz_parse("Europe/Berlin", berlin,
				       sizeof berlin - 1, e2, sizeof e2);
	if (!tz)
		abort();
	for (int secs = 0; secs < 2; secs++) {
		if (hf_cron_parse(&c, s, secs, &at, err, sizeof err) < 0) {
			if (at > size)
				abort();
			continue;
		}
		/* Around a spring-forward and a fall-back, and an ordinary day.
		 */
		static const int64_t starts[] = {1774742400, 1792886400,
						 1765000000};
		for (size_t i = 0; i < 3; i++) {
			int64_t t = starts[i];
			for (int k = 0; k < 4; k++) {
				int64_t n =
				    hf_cron_next(&c, k & 1 ? tz : NULL, t);
				if (n == -1)
					break;
				if (n <= t)
					abort();
				t = n;
			}
		}
	}
	int64_t v;
	char iso[24];
	if (hf_cron_parse_time(s, &v) == 0)
		hf_cron_iso(v, iso);
	hf_tz_free(tz);
	free(s);
	return 0;
}
