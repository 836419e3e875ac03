/* fuzz_egress.c - hf_egress_parse on NUL-terminated copies of arbitrary bytes,
 * as a deny list and as an allow list: no reads past the end, a message on
 * every refusal, and a parsed policy that answers for a few addresses (the
 * defaults always refusing the metadata address unless it allows link-local
 * ranges). */
#include "hf_egress.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void probe(const struct hf_egress *p)
{
	static const unsigned char v4[][4] = {
	    {169, 254, 169, 254}, {127, 0, 0, 1}, {0, 0, 0, 0}, {8, 8, 8, 8}};
	static const unsigned char v6[][16] = {
	    {0xfe, 0x80, [15] = 1},
	    {[15] = 1},
	    {[10] = 0xff, [11] = 0xff, 10, 0, 0, 1},
	};
	for (size_t i = 0; i < sizeof v4 / sizeof v4[0]; i++) {
		const char *rule = NULL;
		if (!hf_egress_allows(p, v4[i], 4, &rule) && (!rule || !*rule))
			abort();
	}
	for (size_t i = 0; i < sizeof v6 / sizeof v6[0]; i++) {
		const char *rule = NULL;
		if (!hf_egress_allows(p, v6[i], 16, &rule) && (!rule || !*rule))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	for (int allow = 0; allow < 2; allow++) {
		char err[256] = "";
		struct hf_egress *p = hf_egress_parse(
		    allow ? NULL : s, allow ? s : NULL, err, sizeof err);
		if (!p && !err[0])
			abort();
		if (p)
			probe(p);
		hf_egress_free(p);
	}
	free(s);
	return 0;
}
