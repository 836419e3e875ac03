/* hf_crypto.h - cryptographic primitives over OpenSSL (crypto.c, the only
 * module that includes it): HMAC-SHA256/-SHA1/-SHA512, SHA-256, hex, base64,
 * random bytes, AES-256-GCM for secrets at rest and their key. Used by the
 * signature schemes (verify.c), the Lua `crypto` global, the outbox signer and
 * workflow versions. Thread-safe. */
#ifndef HF_CRYPTO_H
#define HF_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hf_error;

/* One piece of a message MACed without copying the pieces together. */
struct hf_part {
	const void *p;
	size_t n;
};

/* The digests of the general `hmac` signature scheme. */
enum hf_hmac_alg { HF_HMAC_SHA256 = 0, HF_HMAC_SHA1, HF_HMAC_SHA512 };
#define HF_HMAC_MAX 64 /* the longest digest: SHA-512 */
/* The digest length of alg in bytes (20, 32, 64), 0 when unknown. */
size_t hf_hmac_len(enum hf_hmac_alg alg);
/* HMAC with alg over the concatenation of parts; returns its length. */
size_t hf_hmac_parts(enum hf_hmac_alg alg, const void *key, size_t klen,
		     const struct hf_part *parts, size_t nparts,
		     unsigned char out[HF_HMAC_MAX]);
void hf_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
		    unsigned char out[32]);
/* HMAC-SHA256 over the concatenation of parts. */
void hf_hmac_sha256_parts(const void *key, size_t klen,
			  const struct hf_part *parts, size_t nparts,
			  unsigned char out[32]);
void hf_sha256(const void *msg, size_t len, unsigned char out[32]);
/* Writes 2 * len hex digits and a NUL to out. */
void hf_hex_encode(const unsigned char *in, size_t len, char *out);
/* A key as stored in an indexed column: k itself up to HF_KEY_STORED_MAX
 * bytes, else "sha256:" and the hex digest of k (a PostgreSQL B-tree row
 * holds at most about 2.7 KB). Takes k (malloc'ed); returns malloc'ed. */
char *hf_key_bounded(char *k);
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

/* Secrets at rest (emit signing secrets in the state database): AES-256-GCM
 * with a 32-byte key, a random 12-byte nonce per value, aad authenticated
 * but not stored (the row's id: a sealed value moved to another row does not
 * open). hf_seal returns "v1:" + base64(nonce | ciphertext | tag), malloc'd.
 * hf_unseal returns the plaintext, malloc'd and NUL-terminated, or NULL when
 * text is not sealed, is malformed, or was sealed with another key or aad.
 * hf_is_sealed: text starts with "v1:" (older rows hold plaintext). */
char *hf_seal(const unsigned char key[32], const void *aad, size_t aadlen,
	      const void *plain, size_t len);
char *hf_unseal(const unsigned char key[32], const void *aad, size_t aadlen,
		const char *text);
bool hf_is_sealed(const char *text);
/* Overwrites n bytes of a key or secret (not optimized away). */
void hf_secret_wipe(void *p, size_t n);
/* Overwrites a NUL-terminated secret, then frees it (NULL: nothing). */
void hf_secret_free(void *s);
/* A key as text: 64 hex digits, or the base64 of 32 bytes (surrounding
 * whitespace ignored). Returns 0, or -1 when text is neither. */
int hf_secret_key_parse(const char *text, size_t len, unsigned char key[32]);
/* The key for secrets at rest: HOOKFLOW_SECRET_KEY when set; else for an
 * in-memory state (state_path NULL or ":memory:") a random one for this
 * process; else the file STATE_PATH.key, created (mode 0600, 64 hex digits
 * and a newline) when missing. Returns 0, or -1 with err set. */
int hf_secret_key_load(const char *state_path, unsigned char key[32],
		       struct hf_error *err);

#endif
