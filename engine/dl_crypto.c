/* dl_crypto.c - OpenSSL's libcrypto, loaded on first use: the binary does
 * not link it; this module defines the few functions crypto.c calls (HMAC,
 * AES-256-GCM, base64: crypto.c includes the OpenSSL headers, found by
 * pkg-config, and calls them as usual), and the first call dlopen()s the
 * soname libcrypto.so.3 and resolves them.
 *
 * Why: libcrypto's mapping and relocations alone cost about 1.5 MiB of RSS
 * in every process (its providers 2 MiB more once used), while a server
 * whose workflows neither verify, sign, seal nor wait never needs it.
 * SHA-256, which every server needs at start (workflow versions), comes from
 * GnuTLS instead (crypto.c), which libmicrohttpd maps anyway.
 *
 * A libcrypto that cannot be loaded is a broken installation: the first call
 * logs why and aborts, as crypto.c does when OpenSSL fails. Thread-safe
 * (pthread_once). Neighbours: crypto.c (the only caller), dl_curl.c and
 * dl_pq.c (the same for libcurl and libpq, whose libssl uses the same
 * libcrypto once loaded). */
#include "dl_int.h"

#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdlib.h>

#define SONAME "libcrypto.so.3"

/* X(return type, name, (parameters), (arguments)) of the functions used. */
#define CRYPTO_FUNCTIONS(X)                                                    \
	X(EVP_MAC *, EVP_MAC_fetch,                                            \
	  (OSSL_LIB_CTX * libctx, const char *algorithm,                       \
	   const char *properties),                                            \
	  (libctx, algorithm, properties))                                     \
	X(EVP_MAC_CTX *, EVP_MAC_CTX_new, (EVP_MAC * mac), (mac))              \
	X(int, EVP_MAC_init,                                                   \
	  (EVP_MAC_CTX * ctx, const unsigned char *key, size_t keylen,         \
	   const OSSL_PARAM params[]),                                         \
	  (ctx, key, keylen, params))                                          \
	X(int, EVP_MAC_update,                                                 \
	  (EVP_MAC_CTX * ctx, const unsigned char *data, size_t len),          \
	  (ctx, data, len))                                                    \
	X(int, EVP_MAC_final,                                                  \
	  (EVP_MAC_CTX * ctx, unsigned char *out, size_t *outl, size_t size),  \
	  (ctx, out, outl, size))                                              \
	X(OSSL_PARAM, OSSL_PARAM_construct_utf8_string,                        \
	  (const char *key, char *buf, size_t bsize), (key, buf, bsize))       \
	X(OSSL_PARAM, OSSL_PARAM_construct_end, (void), ())                    \
	X(int, EVP_EncodeBlock,                                                \
	  (unsigned char *t, const unsigned char *f, int n), (t, f, n))        \
	X(int, EVP_DecodeBlock,                                                \
	  (unsigned char *t, const unsigned char *f, int n), (t, f, n))        \
	X(EVP_CIPHER_CTX *, EVP_CIPHER_CTX_new, (void), ())                    \
	X(const EVP_CIPHER *, EVP_aes_256_gcm, (void), ())                     \
	X(int, EVP_CipherInit_ex,                                              \
	  (EVP_CIPHER_CTX * ctx, const EVP_CIPHER *cipher, ENGINE *impl,       \
	   const unsigned char *key, const unsigned char *iv, int enc),        \
	  (ctx, cipher, impl, key, iv, enc))                                   \
	X(int, EVP_CipherUpdate,                                               \
	  (EVP_CIPHER_CTX * ctx, unsigned char *out, int *outl,                \
	   const unsigned char *in, int inl),                                  \
	  (ctx, out, outl, in, inl))                                           \
	X(int, EVP_CipherFinal_ex,                                             \
	  (EVP_CIPHER_CTX * ctx, unsigned char *out, int *outl),               \
	  (ctx, out, outl))                                                    \
	X(int, EVP_CIPHER_CTX_ctrl,                                            \
	  (EVP_CIPHER_CTX * ctx, int type, int arg, void *ptr),                \
	  (ctx, type, arg, ptr))
#define CRYPTO_VOID_FUNCTIONS(X)                                               \
	X(EVP_MAC_CTX_free, (EVP_MAC_CTX * ctx), (ctx))                        \
	X(EVP_CIPHER_CTX_free, (EVP_CIPHER_CTX * ctx), (ctx))

CRYPTO_FUNCTIONS(HF_DL_POINTER)
CRYPTO_VOID_FUNCTIONS(HF_DL_VOID_POINTER)

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	static const char *const names[] = {SONAME, NULL};
	void *lib = hf_dl_open(names);
	CRYPTO_FUNCTIONS(HF_DL_RESOLVE)
	CRYPTO_VOID_FUNCTIONS(HF_DL_VOID_RESOLVE)
}

CRYPTO_FUNCTIONS(HF_DL_WRAP)
CRYPTO_VOID_FUNCTIONS(HF_DL_VOID_WRAP)
