/* crypto.c - the cryptographic primitives: HMAC-SHA256, -SHA1 and -SHA512
 * (also over several pieces without copying them) over OpenSSL's libcrypto,
 * SHA-256 (one-shot and streaming) over GnuTLS, hex and base64, and random
 * bytes for tokens and ids, and AES-256-GCM sealing of secrets at rest with
 * the key from HOOKFLOW_SECRET_KEY or a key file beside the state database.
 *
 * The only module that calls OpenSSL or GnuTLS (dl_crypto.c loads
 * libcrypto). Thread-safe: the HMAC implementation is fetched once; nothing
 * else is kept.
 *
 * Memory at rest: libcrypto is not linked but loaded on its first call
 * (dl_crypto.c: its mapping costs about 1.5 MiB of RSS, and OpenSSL 3's
 * providers about 2 MiB more once initialised), so what every server does at
 * start stays off it: SHA-256 (workflow versions) comes from GnuTLS, which
 * libmicrohttpd maps anyway, random bytes from getrandom(2), wiping from
 * explicit_bzero. libcrypto loads on the first HMAC, seal, base64 or curl
 * handshake, i.e. only when a workflow verifies, signs, waits or calls out.
 * Signature schemes built on these live in verify.c; the Lua `crypto` global
 * in lua_lib.c. OpenSSL or GnuTLS failures here mean a broken installation or
 * no memory: they abort, as hf_xmalloc does. */
#include "hf_crypto.h"
#include "hf_limits.h"

#include "hf_util.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIGEST_LEN 32

static EVP_MAC *hmac_impl;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
	hmac_impl = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static const char *const hmac_digests[] = {
    [HF_HMAC_SHA256] = "SHA256",
    [HF_HMAC_SHA1] = "SHA1",
    [HF_HMAC_SHA512] = "SHA512",
};
static const size_t hmac_lens[] = {
    [HF_HMAC_SHA256] = 32,
    [HF_HMAC_SHA1] = 20,
    [HF_HMAC_SHA512] = 64,
};

size_t hf_hmac_len(enum hf_hmac_alg alg)
{
	return (size_t)alg < sizeof hmac_lens / sizeof hmac_lens[0]
		   ? hmac_lens[alg]
		   : 0;
}

/* HMAC over the concatenation of parts, without copying the body. OpenSSL
 * failures here mean a broken installation: abort like on OOM. */
size_t hf_hmac_parts(enum hf_hmac_alg alg, const void *key, size_t klen,
		     const struct hf_part *parts, size_t nparts,
		     unsigned char out[HF_HMAC_MAX])
{
	static const unsigned char empty[1];
	size_t want = hf_hmac_len(alg), outlen = 0;
	char digest[8];
	if (!want)
		goto fail;
	snprintf(digest, sizeof digest, "%s", hmac_digests[alg]);
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
	    OSSL_PARAM_construct_end(),
	};

	pthread_once(&hmac_once, hmac_fetch);
	EVP_MAC_CTX *ctx = hmac_impl ? EVP_MAC_CTX_new(hmac_impl) : NULL;
	if (!ctx || !EVP_MAC_init(ctx, klen ? key : empty, klen, params))
		goto fail;
	for (size_t i = 0; i < nparts; i++)
		if (parts[i].n && !EVP_MAC_update(ctx, parts[i].p, parts[i].n))
			goto fail;
	if (!EVP_MAC_final(ctx, out, &outlen, HF_HMAC_MAX) || outlen != want)
		goto fail;
	EVP_MAC_CTX_free(ctx);
	return want;
fail:
	fprintf(stderr, "hookflow: OpenSSL HMAC failed\n");
	abort();
}

void hf_hmac_sha256_parts(const void *key, size_t klen,
			  const struct hf_part *parts, size_t nparts,
			  unsigned char out[32])
{
	unsigned char mac[HF_HMAC_MAX];
	hf_hmac_parts(HF_HMAC_SHA256, key, klen, parts, nparts, mac);
	memcpy(out, mac, DIGEST_LEN);
}

void hf_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
		    unsigned char out[32])
{
	struct hf_part p = {msg, mlen};
	hf_hmac_sha256_parts(key, klen, &p, 1, out);
}

static void gnutls_failed(int rc)
{
	fprintf(stderr, "hookflow: GnuTLS SHA-256 failed: %s\n",
		gnutls_strerror(rc));
	abort();
}

void hf_sha256(const void *msg, size_t len, unsigned char out[32])
{
	int rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, msg, len, out);
	if (rc < 0)
		gnutls_failed(rc);
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
	gnutls_hash_hd_t h;
};

struct hf_sha256 *hf_sha256_begin(void)
{
	struct hf_sha256 *h = hf_xmalloc(sizeof *h);
	int rc = gnutls_hash_init(&h->h, GNUTLS_DIG_SHA256);
	if (rc < 0)
		gnutls_failed(rc);
	return h;
}

void hf_sha256_update(struct hf_sha256 *h, const void *p, size_t len)
{
	int rc = gnutls_hash(h->h, p, len);
	if (rc < 0)
		gnutls_failed(rc);
}

void hf_sha256_end(struct hf_sha256 *h, char hex[65])
{
	unsigned char md[DIGEST_LEN];
	gnutls_hash_deinit(h->h, md);
	hf_hex_encode(md, DIGEST_LEN, hex);
	free(h);
}

int hf_random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

/* --- AES-256-GCM for secrets at rest --- */

#define SEAL_PREFIX "v1:"
#define SEAL_NONCE 12
#define SEAL_TAG 16

bool hf_is_sealed(const char *text)
{
	return text && strncmp(text, SEAL_PREFIX, sizeof SEAL_PREFIX - 1) == 0;
}

/* One AES-256-GCM pass: encrypt (tag out) or decrypt (tag in, checked).
 * Returns 0, or -1 when the tag does not match (or OpenSSL fails). */
static int gcm(bool enc, const unsigned char key[32],
	       const unsigned char nonce[SEAL_NONCE], const void *aad,
	       size_t aadlen, const unsigned char *in, size_t len,
	       unsigned char *out, unsigned char tag[SEAL_TAG])
{
	int n = 0, ok = len <= INT_MAX && aadlen <= INT_MAX;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	ok = ok && c &&
	     EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce, enc);
	if (ok && aadlen)
		ok = EVP_CipherUpdate(c, NULL, &n, aad, (int)aadlen);
	if (ok && len)
		ok = EVP_CipherUpdate(c, out, &n, in, (int)len);
	if (ok && !enc)
		ok =
		    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SEAL_TAG, tag);
	ok = ok && EVP_CipherFinal_ex(c, out + (len ? n : 0), &n);
	if (ok && enc)
		ok =
		    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SEAL_TAG, tag);
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

char *hf_seal(const unsigned char key[32], const void *aad, size_t aadlen,
	      const void *plain, size_t len)
{
	size_t total = SEAL_NONCE + len + SEAL_TAG;
	unsigned char *buf = hf_xmalloc(total);
	if (hf_random_bytes(buf, SEAL_NONCE) < 0 ||
	    gcm(true, key, buf, aad, aadlen, plain, len, buf + SEAL_NONCE,
		buf + SEAL_NONCE + len) < 0) {
		fprintf(stderr, "hookflow: OpenSSL AES-256-GCM failed\n");
		abort();
	}
	char *b64 = hf_base64_encode(buf, total);
	char *out = hf_xasprintf(SEAL_PREFIX "%s", b64);
	explicit_bzero(buf, total);
	free(buf);
	free(b64);
	return out;
}

char *hf_unseal(const unsigned char key[32], const void *aad, size_t aadlen,
		const char *text)
{
	if (!hf_is_sealed(text))
		return NULL;
	text += sizeof SEAL_PREFIX - 1;
	size_t n = 0;
	unsigned char *buf = hf_base64_decode(text, strlen(text), &n);
	if (!buf || n < SEAL_NONCE + SEAL_TAG) {
		free(buf);
		return NULL;
	}
	size_t len = n - SEAL_NONCE - SEAL_TAG;
	char *out = hf_xmalloc(len + 1);
	if (gcm(false, key, buf, aad, aadlen, buf + SEAL_NONCE, len,
		(unsigned char *)out, buf + SEAL_NONCE + len) < 0) {
		explicit_bzero(out, len);
		free(out);
		out = NULL;
	} else {
		out[len] = '\0';
	}
	free(buf);
	return out;
}

void hf_secret_wipe(void *p, size_t n)
{
	explicit_bzero(p, n);
}

void hf_secret_free(void *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* --- the key for secrets at rest --- */

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int hf_secret_key_parse(const char *text, size_t len, unsigned char key[32])
{
	while (len && is_space((unsigned char)text[len - 1]))
		len--;
	while (len && is_space((unsigned char)*text)) {
		text++;
		len--;
	}
	if (len == 64) {
		int ok = 1;
		for (size_t i = 0; i < 32 && ok; i++) {
			int hi = hexval((unsigned char)text[2 * i]);
			int lo = hexval((unsigned char)text[2 * i + 1]);
			ok = hi >= 0 && lo >= 0;
			key[i] = (unsigned char)(hi << 4 | lo);
		}
		if (ok)
			return 0;
	}
	size_t n = 0;
	unsigned char *raw = hf_base64_decode(text, len, &n);
	int rc = raw && n == 32 ? 0 : -1;
	if (rc == 0)
		memcpy(key, raw, 32);
	if (raw)
		explicit_bzero(raw, n);
	free(raw);
	return rc;
}

/* Reads a key file: 0, -1 with err set, or 1 when there is none. */
static int key_read(const char *path, unsigned char key[32],
		    struct hf_error *err)
{
	char text[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0) {
		hf_error_set(err, path, 0, 0, "cannot read the key: %s",
			     strerror(errno));
		return -1;
	}
	struct stat sb;
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 077))
		hf_log(HF_LOG_WARN,
		       "%s: the key file can be read by other users "
		       "(chmod 600 it)",
		       path);
	ssize_t n = read(fd, text, sizeof text);
	close(fd);
	int rc = n > 0 && (size_t)n < sizeof text
		     ? hf_secret_key_parse(text, (size_t)n, key)
		     : -1;
	explicit_bzero(text, sizeof text);
	if (rc < 0)
		hf_error_set(err, path, 0, 0,
			     "not a key (expected 64 hex digits or the "
			     "base64 of 32 bytes)");
	return rc;
}

/* Creates a key file (mode 0600) with a new random key: written to a
 * temporary file first and linked into place, so that a reader never sees a
 * half-written key and two servers starting at once agree on one. Returns 0,
 * -1 with err set, or 1 when another process created it first. */
static int key_create(const char *path, struct hf_error *err)
{
	unsigned char key[32];
	char hex[66];
	char *tmp = hf_xasprintf("%s.XXXXXX", path);
	int fd = mkstemp(tmp); /* mode 0600 */
	int rc = -1;
	if (fd < 0 || hf_random_bytes(key, sizeof key) < 0) {
		hf_error_set(err, path, 0, 0, "cannot create the key: %s",
			     strerror(errno));
		goto out;
	}
	hf_hex_encode(key, sizeof key, hex);
	hex[64] = '\n';
	if (write(fd, hex, 65) != 65 || fsync(fd) != 0) {
		hf_error_set(err, path, 0, 0, "cannot write the key: %s",
			     strerror(errno));
		goto out;
	}
	if (link(tmp, path) == 0)
		rc = 0;
	else if (errno == EEXIST)
		rc = 1;
	else
		hf_error_set(err, path, 0, 0, "cannot create the key: %s",
			     strerror(errno));
out:
	explicit_bzero(key, sizeof key);
	explicit_bzero(hex, sizeof hex);
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

int hf_secret_key_load(const char *state_path, unsigned char key[32],
		       struct hf_error *err)
{
	const char *env = getenv("HOOKFLOW_SECRET_KEY");
	if (env && *env) {
		if (hf_secret_key_parse(env, strlen(env), key) == 0)
			return 0;
		hf_error_set(err, NULL, 0, 0,
			     "HOOKFLOW_SECRET_KEY must be 64 hex digits or "
			     "the base64 of 32 bytes");
		return -1;
	}
	if (!state_path || strcmp(state_path, ":memory:") == 0) {
		if (hf_random_bytes(key, 32) == 0)
			return 0;
		hf_error_set(err, NULL, 0, 0, "no random bytes for a key");
		return -1;
	}
	char *path = hf_xasprintf("%s.key", state_path);
	int rc = key_read(path, key, err);
	if (rc == 1) {
		int made = key_create(path, err);
		rc = made < 0 ? -1 : key_read(path, key, err);
		if (rc == 0 && made == 0)
			hf_log(HF_LOG_INFO,
			       "created %s, the key for secrets at rest: keep "
			       "it with the state database",
			       path);
		else if (rc == 1)
			hf_error_set(err, path, 0, 0, "the key file vanished");
	}
	free(path);
	return rc == 0 ? 0 : -1;
}

char *hf_key_bounded(char *k)
{
	size_t n = k ? strlen(k) : 0;
	if (n <= HF_KEY_STORED_MAX)
		return k;
	unsigned char d[32];
	char hex[65];
	hf_sha256(k, n, d);
	hf_hex_encode(d, sizeof d, hex);
	free(k);
	return hf_xasprintf("sha256:%s", hex);
}
