/* fuzz_duration.c - hf_parse_duration and hf_parse_size on NUL-terminated
 * copies of arbitrary bytes: no reads past the end, and a result is never
 * negative. */
#include "hf_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	int64_t v = -1;
	if (hf_parse_duration(s, &v) == 0 && v < 0)
		abort();
	v = -1;
	if (hf_parse_size(s, &v) == 0 && v < 0)
		abort();
	free(s);
	return 0;
}
