/* fuzz_github_form.c - hf_body_decode_event on arbitrary bytes sent as a
 * GitHub form delivery (Content-Type application/x-www-form-urlencoded, an
 * X-GitHub-Event header): either 0 with NULL or a value that dumps, or -1
 * with no value and a message that names the payload field. */
#include "hf_body.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *headers = json_pack("{s:s,s:s}", "content-type",
				    "application/x-www-form-urlencoded",
				    "x-github-event", "issues");
	json_t *out = NULL;
	char err[512] = "";
	int rc = hf_body_decode_event(headers, (const char *)data, size, &out,
				      err, sizeof err);
	if (rc == 0) {
		char *text = out ? json_dumps(out, JSON_ENCODE_ANY) : NULL;
		if (out && !text)
			abort();
		free(text);
	} else if (rc != -1 || out || !strstr(err, "payload field")) {
		abort();
	}
	json_decref(out);
	json_decref(headers);
	return 0;
}
