/* fuzz_retry_after.c - hf_parse_retry_after (a Retry-After header's value as
 * a step passes it to retry.after) on NUL-terminated copies of arbitrary
 * bytes: no reads past the end, a delay is never negative, and a value that
 * parses gives the same delay again. */
#include "hf_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A fixed "now" (2026-01-01), so that a run is reproducible. */
	const int64_t now = 1767225600000LL;
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	int64_t v = -1, again = -1;
	if (hf_parse_retry_after(s, now, &v) == 0) {
		if (v < 0)
			abort();
		if (hf_parse_retry_after(s, now, &again) != 0 || again != v)
			abort();
	} else if (v != -1) {
		abort(); /* a refusal leaves the result untouched */
	}
	free(s);
	return 0;
}
