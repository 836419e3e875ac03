/* fuzz_json_check.c - hf_json_check never accepts what hf_json_parse
 * (jansson) refuses: what ingest validates without a tree, the workers can
 * decode. (It may refuse what jansson accepts: ingest then parses, as it
 * does for the error message, and keeps the tree.) */
#include "hf_body.h"
#include "hf_json_check.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	json_t *v = NULL;
	int rc = hf_json_parse((const char *)data, size, &v, err, sizeof err);
	json_decref(v);
	if (hf_json_check((const char *)data, size) && rc != 0)
		abort();
	return 0;
}
