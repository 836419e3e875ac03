/* verify_hdrs.h - request headers for the signature tests (test_verify.c,
 * test_verify_hmac.c): a NULL-terminated list of lower-case name/value, read
 * through hf_header_fn. */
#ifndef VERIFY_HDRS_H
#define VERIFY_HDRS_H

#include <stddef.h>
#include <string.h>

struct hdrs {
	const char *kv[16];
};

static inline const char *get(void *ctx, const char *name)
{
	struct hdrs *h = ctx;
	for (size_t i = 0; h->kv[i]; i += 2)
		if (strcmp(h->kv[i], name) == 0)
			return h->kv[i + 1];
	return NULL;
}

#endif
