/* hf_crypto.h - cryptographic primitives over OpenSSL (crypto.c, the only
 * module that includes it): HMAC-SHA256, SHA-256, hex, base64, random bytes.
 * Used by the signature schemes (verify.c), the Lua `crypto` global, the
 * outbox signer and workflow versions. Thread-safe. */
#ifndef HF_CRYPTO_H
#define HF_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

/* One piece of a message MACed without copying the pieces together. */
struct hf_part {
	const void *p;
	size_t n;
};

void hf_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
		    unsigned char out[32]);
/* HMAC-SHA256 over the concatenation of parts. */
void hf_hmac_sha256_parts(const void *key, size_t klen,
			  const struct hf_part *parts, size_t nparts,
			  unsigned char out[32]);
void hf_sha256(const void *msg, size_t len, unsigned char out[32]);
/* Writes 2 * len hex digits and a NUL to out. */
void hf_hex_encode(const unsigned char *in, size_t len, char *out);
/* SHA-256 over several pieces (workflow versions): begin, update as often as
 * needed, end writes 64 hex digits and a NUL to hex and frees the state.
 * Allocation failure aborts, as hf_xmalloc does. */
struct hf_sha256;
struct hf_sha256 *hf_sha256_begin(void);
void hf_sha256_update(struct hf_sha256 *h, const void *p, size_t len);
void hf_sha256_end(struct hf_sha256 *h, char hex[65]);
/* Fills buf with n bytes from OpenSSL's CSPRNG (tokens). Returns 0 or -1. */
int hf_random_bytes(void *buf, size_t n);
/* Base64 (standard alphabet, padded). Encode returns a malloc'd NUL-terminated
 * string. Decode returns a malloc'd buffer and its length in *outlen, or NULL
 * when the input is not base64. */
char *hf_base64_encode(const void *in, size_t len);
unsigned char *hf_base64_decode(const char *in, size_t len, size_t *outlen);

#endif
