/* dl_pq.c - libpq, loaded on first use: the binary does not link libpq;
 * this module defines the PQ* functions hookflow calls (store_pg*.c and
 * lua_db_pg*.c include <libpq-fe.h>, found by pkg-config, and call them as
 * usual), and the first call dlopen()s the soname libpq.so.5 and resolves
 * them. Only a postgres:// --state or --data makes one.
 *
 * Why: libpq and what it pulls in (libssl, Kerberos, LDAP, SASL, GnuTLS
 * through LDAP...) cost RSS in every process by their mere mapping; with
 * libcurl (dl_curl.c), which shares most of them, about 2 MiB at rest.
 *
 * A libpq that cannot be loaded is a broken installation: the first call
 * logs why and aborts, as crypto.c does for OpenSSL. Thread-safe
 * (pthread_once). */
#include "dl_int.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdlib.h>

#define SONAME "libpq.so.5"

/* X(return type, name, (parameters), (arguments)) of the functions used. */
#define PQ_FUNCTIONS(X)                                                        \
	X(char *, PQcmdStatus, (PGresult * r), (r))                            \
	X(char *, PQcmdTuples, (PGresult * r), (r))                            \
	X(PostgresPollingStatusType, PQconnectPoll, (PGconn * c), (c))         \
	X(PGconn *, PQconnectStartParams,                                      \
	  (const char *const *k, const char *const *v, int expand),            \
	  (k, v, expand))                                                      \
	X(PGconn *, PQconnectdbParams,                                         \
	  (const char *const *k, const char *const *v, int expand),            \
	  (k, v, expand))                                                      \
	X(PQconninfoOption *, PQconninfoParse,                                 \
	  (const char *conninfo, char **errmsg), (conninfo, errmsg))           \
	X(int, PQconsumeInput, (PGconn * c), (c))                              \
	X(char *, PQerrorMessage, (const PGconn *c), (c))                      \
	X(PGresult *, PQexec, (PGconn * c, const char *q), (c, q))             \
	X(PGresult *, PQexecParams,                                            \
	  (PGconn * c, const char *q, int n, const Oid *types,                 \
	   const char *const *values, const int *lengths, const int *formats,  \
	   int rformat),                                                       \
	  (c, q, n, types, values, lengths, formats, rformat))                 \
	X(PGresult *, PQexecPrepared,                                          \
	  (PGconn * c, const char *name, int n, const char *const *values,     \
	   const int *lengths, const int *formats, int rformat),               \
	  (c, name, n, values, lengths, formats, rformat))                     \
	X(int, PQflush, (PGconn * c), (c))                                     \
	X(char *, PQfname, (const PGresult *r, int f), (r, f))                 \
	X(Oid, PQftype, (const PGresult *r, int f), (r, f))                    \
	X(PGresult *, PQgetResult, (PGconn * c), (c))                          \
	X(int, PQgetisnull, (const PGresult *r, int t, int f), (r, t, f))      \
	X(int, PQgetlength, (const PGresult *r, int t, int f), (r, t, f))      \
	X(char *, PQgetvalue, (const PGresult *r, int t, int f), (r, t, f))    \
	X(int, PQisBusy, (PGconn * c), (c))                                    \
	X(int, PQnfields, (const PGresult *r), (r))                            \
	X(PGnotify *, PQnotifies, (PGconn * c), (c))                           \
	X(int, PQntuples, (const PGresult *r), (r))                            \
	X(PGresult *, PQprepare,                                               \
	  (PGconn * c, const char *name, const char *q, int n,                 \
	   const Oid *types),                                                  \
	  (c, name, q, n, types))                                              \
	X(char *, PQresultErrorField, (const PGresult *r, int code),           \
	  (r, code))                                                           \
	X(char *, PQresultErrorMessage, (const PGresult *r), (r))              \
	X(ExecStatusType, PQresultStatus, (const PGresult *r), (r))            \
	X(int, PQsendQuery, (PGconn * c, const char *q), (c, q))               \
	X(int, PQsendQueryParams,                                              \
	  (PGconn * c, const char *q, int n, const Oid *types,                 \
	   const char *const *values, const int *lengths, const int *formats,  \
	   int rformat),                                                       \
	  (c, q, n, types, values, lengths, formats, rformat))                 \
	X(PQnoticeProcessor, PQsetNoticeProcessor,                             \
	  (PGconn * c, PQnoticeProcessor proc, void *arg), (c, proc, arg))     \
	X(int, PQsetSingleRowMode, (PGconn * c), (c))                          \
	X(int, PQsetnonblocking, (PGconn * c, int arg), (c, arg))              \
	X(int, PQsocket, (const PGconn *c), (c))                               \
	X(ConnStatusType, PQstatus, (const PGconn *c), (c))                    \
	X(PGTransactionStatusType, PQtransactionStatus, (const PGconn *c),     \
	  (c))                                                                 \
	X(unsigned char *, PQunescapeBytea,                                    \
	  (const unsigned char *s, size_t *len), (s, len))
#define PQ_VOID_FUNCTIONS(X)                                                   \
	X(PQclear, (PGresult * r), (r))                                        \
	X(PQconninfoFree, (PQconninfoOption * o), (o))                         \
	X(PQfinish, (PGconn * c), (c))                                         \
	X(PQfreemem, (void *p), (p))

PQ_FUNCTIONS(HF_DL_POINTER)
PQ_VOID_FUNCTIONS(HF_DL_VOID_POINTER)

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	static const char *const names[] = {SONAME, NULL};
	void *lib = hf_dl_open(names);
	PQ_FUNCTIONS(HF_DL_RESOLVE)
	PQ_VOID_FUNCTIONS(HF_DL_VOID_RESOLVE)
}

PQ_FUNCTIONS(HF_DL_WRAP)
PQ_VOID_FUNCTIONS(HF_DL_VOID_WRAP)
