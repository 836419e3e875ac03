/* crypto.c - the cryptographic primitives, over OpenSSL's libcrypto:
 * HMAC-SHA256 (also over several pieces without copying them), SHA-256
 * (one-shot and streaming), hex and base64, and random bytes for tokens and
 * ids.
 *
 * The only module that includes OpenSSL. Thread-safe: the HMAC implementation
 * is fetched once; nothing else is kept. Signature schemes built on these live
 * in verify.c; the Lua `crypto` global in lua_lib.c. OpenSSL failures here mean
 * a broken installation or no memory: they abort, as hf_xmalloc does. */
#include "hf_crypto.h"

#include "hf_util.h"

#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIGEST_LEN 32

static EVP_MAC *hmac_impl;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
	hmac_impl = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* HMAC-SHA256 over the concatenation of parts, without copying the body.
 * OpenSSL failures here mean a broken installation: abort like on OOM. */
void hf_hmac_sha256_parts(const void *key, size_t klen,
			  const struct hf_part *parts, size_t nparts,
			  unsigned char out[32])
{
	static const unsigned char empty[1];
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
	    OSSL_PARAM_construct_end(),
	};
	size_t outlen = 0;

	pthread_once(&hmac_once, hmac_fetch);
	EVP_MAC_CTX *ctx = hmac_impl ? EVP_MAC_CTX_new(hmac_impl) : NULL;
	if (!ctx || !EVP_MAC_init(ctx, klen ? key : empty, klen, params))
		goto fail;
	for (size_t i = 0; i < nparts; i++)
		if (parts[i].n && !EVP_MAC_update(ctx, parts[i].p, parts[i].n))
			goto fail;
	if (!EVP_MAC_final(ctx, out, &outlen, DIGEST_LEN) ||
	    outlen != DIGEST_LEN)
		goto fail;
	EVP_MAC_CTX_free(ctx);
	return;
fail:
	fprintf(stderr, "hookflow: OpenSSL HMAC-SHA256 failed\n");
	abort();
}

void hf_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
		    unsigned char out[32])
{
	struct hf_part p = {msg, mlen};
	hf_hmac_sha256_parts(key, klen, &p, 1, out);
}

void hf_sha256(const void *msg, size_t len, unsigned char out[32])
{
	static const unsigned char empty[1];
	if (!EVP_Digest(len ? msg : empty, len, out, NULL, EVP_sha256(),
			NULL)) {
		fprintf(stderr, "hookflow: OpenSSL SHA-256 failed\n");
		abort();
	}
}

void hf_hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

char *hf_base64_encode(const void *in, size_t len)
{
	/* EVP_EncodeBlock takes an int: encode in chunks of a multiple of 3. */
	enum { CHUNK = 3 * 16384 };
	const unsigned char *p = in;
	char *out = hf_xmalloc((len + 2) / 3 * 4 + 1);
	size_t o = 0;
	out[0] = '\0';
	while (len) {
		size_t n = len < CHUNK ? len : CHUNK;
		o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, p,
					     (int)n);
		p += n;
		len -= n;
	}
	out[o] = '\0';
	return out;
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
	       c == '\v';
}

/* Validates strictly (alphabet, '=' only as final padding; whitespace is
 * skipped, missing padding tolerated), then lets OpenSSL decode, which counts
 * padding as zero bytes: those are taken off the length. */
unsigned char *hf_base64_decode(const char *in, size_t len, size_t *outlen)
{
	char *clean = hf_xmalloc(len + 4);
	unsigned char *out = NULL;
	size_t n = 0, pad = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (is_space(c))
			continue;
		if (c == '=') {
			pad++;
		} else if (pad || b64val(c) < 0) {
			goto done; /* data after padding, or not base64 */
		}
		clean[n++] = (char)c;
	}
	if (pad > 2 || (n - pad) % 4 == 1)
		goto done;
	if (pad && n % 4 != 0)
		goto done; /* padding present but wrong */
	while (n % 4) {
		clean[n++] = '=';
		pad++;
	}
	if (n > INT_MAX)
		goto done;
	out = hf_xmalloc(n / 4 * 3 + 1);
	int got = n ? EVP_DecodeBlock(out, (unsigned char *)clean, (int)n) : 0;
	if (got < 0 || (size_t)got < pad) {
		free(out);
		out = NULL;
		goto done;
	}
	*outlen = (size_t)got - pad;
done:
	free(clean);
	return out;
}

struct hf_sha256 {
	EVP_MD_CTX *md;
};

struct hf_sha256 *hf_sha256_begin(void)
{
	struct hf_sha256 *h = hf_xmalloc(sizeof *h);
	h->md = EVP_MD_CTX_new();
	if (!h->md || !EVP_DigestInit_ex(h->md, EVP_sha256(), NULL))
		abort(); /* out of memory, as hf_xmalloc */
	return h;
}

void hf_sha256_update(struct hf_sha256 *h, const void *p, size_t len)
{
	EVP_DigestUpdate(h->md, p, len);
}

void hf_sha256_end(struct hf_sha256 *h, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_DigestFinal_ex(h->md, md, &mdlen);
	hf_hex_encode(md, mdlen < 32 ? mdlen : 32, hex);
	EVP_MD_CTX_free(h->md);
	free(h);
}

int hf_random_bytes(void *buf, size_t n)
{
	return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}
