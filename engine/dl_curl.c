/* dl_curl.c - libcurl, loaded on first use: the binary does not link
 * libcurl; this module defines the few curl_* functions hookflow calls
 * (lua_http.c, outbox*.c include <curl/curl.h>, found by
 * pkg-config, and call them as usual), and the first call dlopen()s the
 * soname libcurl.so.4 and resolves them.
 *
 * Why: Debian's libcurl pulls in GnuTLS, Kerberos, LDAP, SASL, libssh2,
 * nghttp2, librtmp... whose mapping and relocation cost about 0.8 MiB of RSS
 * in every process (2 MiB with libpq's, which share most of them: see
 * dl_pq.c), while most servers never call out. A process that runs no
 * http.* step and delivers no webhook never loads them.
 *
 * A libcurl that cannot be loaded is a broken installation: the first call
 * logs why and aborts, as crypto.c does for OpenSSL. Thread-safe
 * (pthread_once). The variadic setopt/getinfo functions pass their one
 * argument on by the option's type range, as curl's own CURLOPTTYPE_*
 * numbering defines it. */
#define CURL_DISABLE_TYPECHECK
#include "dl_int.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>

#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt

/* Debian's libcurl4 (OpenSSL, what .ci/deps installs), else the GnuTLS
 * flavour (libcurl3-gnutls) that a system with libcurl4-gnutls-dev has: the
 * same ABI and headers. */
#define SONAME "libcurl.so.4"
#define SONAME_ALT "libcurl-gnutls.so.4"

/* X(return type, name, (parameters), (arguments)) of the functions used. */
#define CURL_FUNCTIONS(X)                                                      \
	X(CURLcode, curl_global_init, (long flags), (flags))                   \
	X(CURL *, curl_easy_init, (void), ())                                  \
	X(CURLcode, curl_easy_perform, (CURL * c), (c))                        \
	X(const char *, curl_easy_strerror, (CURLcode e), (e))                 \
	X(time_t, curl_getdate, (const char *p, const time_t *unused),         \
	  (p, unused))                                                         \
	X(CURLM *, curl_multi_init, (void), ())                                \
	X(CURLMcode, curl_multi_cleanup, (CURLM * m), (m))                     \
	X(CURLMcode, curl_multi_add_handle, (CURLM * m, CURL * c), (m, c))     \
	X(CURLMcode, curl_multi_remove_handle, (CURLM * m, CURL * c), (m, c))  \
	X(CURLMsg *, curl_multi_info_read, (CURLM * m, int *left), (m, left))  \
	X(CURLMcode, curl_multi_socket_action,                                 \
	  (CURLM * m, curl_socket_t fd, int ev_bitmask, int *running),         \
	  (m, fd, ev_bitmask, running))                                        \
	X(CURLMcode, curl_multi_timeout, (CURLM * m, long *ms), (m, ms))       \
	X(struct curl_slist *, curl_slist_append,                              \
	  (struct curl_slist * l, const char *s), (l, s))
#define CURL_VOID_FUNCTIONS(X)                                                 \
	X(curl_easy_cleanup, (CURL * c), (c))                                  \
	X(curl_easy_reset, (CURL * c), (c))                                    \
	X(curl_slist_free_all, (struct curl_slist * l), (l))
#define CURL_VARIADIC(X)                                                       \
	X(CURLcode, curl_easy_setopt, CURL, CURLoption)                        \
	X(CURLcode, curl_easy_getinfo, CURL, CURLINFO)                         \
	X(CURLMcode, curl_multi_setopt, CURLM, CURLMoption)

#define VA_POINTER(ret, name, handle, opt)                                     \
	static ret (*p_##name)(handle *, opt, ...);
CURL_FUNCTIONS(HF_DL_POINTER)
CURL_VOID_FUNCTIONS(HF_DL_VOID_POINTER)
CURL_VARIADIC(VA_POINTER)

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	static const char *const names[] = {SONAME, SONAME_ALT, NULL};
	/* Never closed: curl keeps global state (curl_global_init). */
	void *lib = hf_dl_open(names);
	CURL_FUNCTIONS(HF_DL_RESOLVE)
	CURL_VOID_FUNCTIONS(HF_DL_VOID_RESOLVE)
	CURL_VARIADIC(HF_DL_RESOLVE)
}

CURL_FUNCTIONS(HF_DL_WRAP)
CURL_VOID_FUNCTIONS(HF_DL_VOID_WRAP)

/* One option's argument, of the type its number's range says (CURLOPTTYPE_*
 * for options, CURLINFO_* masks for getinfo: always a pointer). */
union arg {
	long l;
	void *p;
	void (*f)(void);
	curl_off_t o;
};

static union arg option_arg(int opt, va_list ap)
{
	union arg a;
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		a.l = va_arg(ap, long);
	else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
		a.p = va_arg(ap, void *);
	else if (opt < CURLOPTTYPE_OFF_T)
		a.f = va_arg(ap, void (*)(void));
	else if (opt < CURLOPTTYPE_BLOB)
		a.o = va_arg(ap, curl_off_t);
	else
		a.p = va_arg(ap, void *);
	return a;
}

#define SETOPT(ret, name, handle, opttype)                                     \
	ret name(handle *h, opttype opt, ...)                                  \
	{                                                                      \
		pthread_once(&once, load);                                     \
		va_list ap;                                                    \
		va_start(ap, opt);                                             \
		union arg a = option_arg((int)opt, ap);                        \
		va_end(ap);                                                    \
		if ((int)opt < CURLOPTTYPE_OBJECTPOINT)                        \
			return p_##name(h, opt, a.l);                          \
		if ((int)opt < CURLOPTTYPE_FUNCTIONPOINT ||                    \
		    (int)opt >= CURLOPTTYPE_BLOB)                              \
			return p_##name(h, opt, a.p);                          \
		if ((int)opt < CURLOPTTYPE_OFF_T)                              \
			return p_##name(h, opt, a.f);                          \
		return p_##name(h, opt, a.o);                                  \
	}
SETOPT(CURLcode, curl_easy_setopt, CURL, CURLoption)
SETOPT(CURLMcode, curl_multi_setopt, CURLM, CURLMoption)

CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
	pthread_once(&once, load);
	va_list ap;
	va_start(ap, info);
	void *p = va_arg(ap, void *);
	va_end(ap);
	return p_curl_easy_getinfo(h, info, p);
}
