/* hf_api.h - the reserved paths: /healthz, /metrics, the admin API under /api
 * (bearer token, compared in constant time) and the /ui dashboard. Runs on the
 * HTTP threads: reads go to the store's read connections; the one write
 * (replay, retry) waits for its commit. */
#ifndef HF_API_H
#define HF_API_H

#include "hf_answer.h"
#include "hf_engine.h"

/* Returns the value of a query argument, or NULL. */
typedef const char *(*hf_arg_fn)(void *ctx, const char *name);

void hf_api_handle(struct hf_engine *eng, const char *method, const char *url,
		   const char *authorization, hf_arg_fn arg, void *ctx,
		   struct hf_answer *out);

#endif
