/* fuzz_json.c - hf_json_parse on arbitrary bytes: never crashes or overflows
 * the stack, always reports an error or returns a value that dumps and parses
 * back to an equal value. */
#include "hf_body.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	json_t *v = NULL;
	if (hf_json_parse((const char *)data, size, &v, err, sizeof err) < 0) {
		if (v || !err[0])
			abort();
		return 0;
	}
	char *text = json_dumps(v, JSON_ENCODE_ANY);
	if (!text)
		abort();
	json_t *back = NULL;
	if (hf_json_parse(text, strlen(text), &back, err, sizeof err) < 0 ||
	    !json_equal(v, back))
		abort();
	json_decref(back);
	free(text);
	json_decref(v);
	return 0;
}
