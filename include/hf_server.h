/* hf_server.h - `hookflow serve`, layer 5: wires the engine (hf_engine.h),
 * ingest and the outbox together and runs them until a stop signal
 * (server.c). */
#ifndef HF_SERVER_H
#define HF_SERVER_H

#include "hf_engine.h"

/* Runs a server with options opt (copied) until SIGTERM or SIGINT, then
 * drains. Returns the exit status: 0 after a clean stop, 1 when it cannot
 * start (after printing why). Called by `hookflow serve` (cmd_serve.c). */
int hf_server_run(const struct hf_options *opt);

#endif
