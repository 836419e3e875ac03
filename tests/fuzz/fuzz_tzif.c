/* fuzz_tzif.c - hf_tz_parse on arbitrary bytes as a TZif file: no read past
 * the input, no crash; for a file it accepts, offsets at instants across
 * the whole range (before the first transition, between, after the last,
 * the footer's rule far out) and a cron search in it that ends. */
#include "hf_cron.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	/* An exact-size copy, so that a read past the end is caught. */
	uint8_t *copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	struct hf_tz *tz = hf_tz_parse("fuzz", copy, size, err, sizeof err);
	if (tz) {
		static const int64_t t[] = {
		    INT64_MIN / 4, -2147483648LL, 0, 1774742400, 2147483647LL,
		    4102444800LL,  INT64_MAX / 4};
		for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
			int32_t o = hf_tz_offset(tz, t[i]);
			if (o < -26 * 3600 || o > 26 * 3600)
				abort();
		}
		struct hf_cron c;
		size_t at;
		if (hf_cron_parse(&c, "30 2 * * *", false, &at, err,
				  sizeof err) < 0)
			abort();
		int64_t n = 1774742400;
		for (int k = 0; k < 3 && n >= 0; k++) {
			int64_t m = hf_cron_next(&c, tz, n);
			if (m != -1 && m <= n)
				abort();
			n = m;
		}
	}
	hf_tz_free(tz);
	free(copy);
	return 0;
}
