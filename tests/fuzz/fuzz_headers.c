/* fuzz_headers.c - the request's header fields as ingest collects them
 * (engine/ingest_event.c): names lower-cased and kept whole, a repeated
 * field's values joined with ", " in the arena that the join grows, values
 * that are not UTF-8 kept as "", and the event's headers_text written
 * without a tree. The input is one field a line, "name:value" (a line
 * without ':' is a name with no value), each cut at a NUL as
 * libmicrohttpd hands over C strings. The text must be a JSON object that
 * jansson reads, with no upper-case letter in a name, and every field
 * collected must be found by its lower-cased name. */
#include "../../engine/ingest_int.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1);
	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	struct hf_req_headers h = {0};
	hf_req_headers_start(&h);
	size_t added = 0;
	for (char *line = in, *next; line && added < 2 * HF_REQ_HEADERS;
	     line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *colon = strchr(line, ':');
		if (colon)
			*colon = '\0';
		hf_req_headers_add(&h, line, colon ? colon + 1 : NULL);
		added++;
	}
	hf_req_headers_finish(&h);
	json_t *v = json_loadb(h.text.data, h.text.len, 0, NULL);
	if (!json_is_object(v))
		abort();
	const char *key;
	json_t *val;
	json_object_foreach(v, key, val)
	{
		for (const char *k = key; *k; k++)
			if (*k >= 'A' && *k <= 'Z')
				abort();
		const char *got = hf_req_header(&h, key);
		if (!got || !json_is_string(val) ||
		    strcmp(got, json_string_value(val)) != 0)
			abort();
	}
	if (json_object_size(v) != h.n)
		abort();
	json_decref(v);
	hf_buf_release(&h.arena);
	hf_buf_release(&h.text);
	free(in);
	return 0;
}
