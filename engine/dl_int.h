/* dl_int.h - the shape shared by dl_curl.c, dl_pq.c and dl_crypto.c: each
 * lists the library functions it stands in for as X-macros, X(ret, name,
 * (params), (args)) and, for void ones, X(name, (params), (args)); these
 * macros make a pointer per function, resolve it from the library
 * (hf_dl_sym, in a load() run once) and define the function under its own
 * name, loading the library on the first call of any of them. */
#ifndef HF_DL_INT_H
#define HF_DL_INT_H

#include "hf_util.h"

#include <pthread.h>

#define HF_DL_POINTER(ret, name, params, args) static ret(*p_##name) params;
#define HF_DL_VOID_POINTER(name, params, args) static void(*p_##name) params;
#define HF_DL_RESOLVE(ret, name, ...)                                          \
	*(void **)&p_##name = hf_dl_sym(lib, #name);
#define HF_DL_VOID_RESOLVE(name, ...)                                          \
	*(void **)&p_##name = hf_dl_sym(lib, #name);
/* once and load are the including file's. */
#define HF_DL_WRAP(ret, name, params, args)                                    \
	ret name params                                                        \
	{                                                                      \
		pthread_once(&once, load);                                     \
		return p_##name args;                                          \
	}
#define HF_DL_VOID_WRAP(name, params, args)                                    \
	void name params                                                       \
	{                                                                      \
		pthread_once(&once, load);                                     \
		p_##name args;                                                 \
	}

#endif
