/* verify_int.h - internals shared by verify.c (the fixed schemes, the entry
 * point) and verify_hmac.c (the general `hmac` scheme, its presets, `token`
 * and `basic`). Private to engine/; the API is include/hf_verify.h. */
#ifndef HF_VERIFY_INT_H
#define HF_VERIFY_INT_H

#include "hf_verify.h"

#include <stddef.h>
#include <stdint.h>

/* A header value with surrounding whitespace taken off; s is not
 * NUL-terminated at s + n. */
struct val {
	const char *s;
	size_t n;
};

/* verify.c. Fetches and trims a header. Returns 1 when present, 0 when
 * absent, -1 when longer than HF_SIGNATURE_HEADER_MAX. */
int vf_header(hf_header_fn get, void *ctx, const char *name, struct val *v);

/* verify_hmac.c. Each returns NULL when the request passes, else the reason:
 * static, or written to buf (size bytes, may be 0) when it names a header. */
const char *vf_verify_hmac(const struct hf_verify_conf *conf,
			   const struct hf_verify_req *req, hf_header_fn get,
			   void *ctx, const void *body, size_t len,
			   int64_t now_s, char *buf, size_t size);
const char *vf_verify_token(const struct hf_verify_conf *conf,
			    const struct hf_verify_req *req, hf_header_fn get,
			    void *ctx, char *buf, size_t size);
const char *vf_verify_basic(const struct hf_verify_conf *conf, hf_header_fn get,
			    void *ctx);

#endif
