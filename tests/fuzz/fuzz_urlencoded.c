/* fuzz_urlencoded.c - one urlencoded decoder on arbitrary bytes: always an
 * object whose keys and values are valid UTF-8 (NUL bytes allowed), so that it
 * dumps and parses back to an equal object. Built twice (see meson.build):
 * fuzz_form with FUZZ_DECODE=hf_form_decode, fuzz_query with
 * FUZZ_DECODE=hf_query_decode (URL query strings). */
#include "hf_body.h"

#include <stdint.h>
#include <stdlib.h>

#ifndef FUZZ_DECODE
#error "FUZZ_DECODE must name the decoder (hf_form_decode or hf_query_decode)"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *o = FUZZ_DECODE((const char *)data, size);
	if (!json_is_object(o))
		abort();
	char *text = json_dumps(o, JSON_COMPACT);
	json_error_t je;
	json_t *back = text ? json_loads(text, JSON_ALLOW_NUL, &je) : NULL;
	if (!back || !json_equal(o, back))
		abort();
	json_decref(back);
	free(text);
	json_decref(o);
	return 0;
}
