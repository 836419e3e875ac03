/* hf_limits.h - every cap hookflow enforces, in one place, each with why it
 * exists.
 *
 * Where a flag or a workflow key can change a value, the constant here is its
 * default. Nothing else in the tree hard-codes a limit. */
#ifndef HF_LIMITS_H
#define HF_LIMITS_H

/* --max-body: webhook payloads are small (GitHub caps at 25 MiB, most senders
 * at 1 MiB or less); refusing larger bodies while reading keeps one client from
 * filling memory. */
#define HF_DEFAULT_MAX_BODY (1024 * 1024)

/* A body past --max-body is read and dropped so that the client gets its 413;
 * past this many dropped bytes the connection is simply closed. */
#define HF_DISCARD_MAX (16 * 1024 * 1024)

/* Request headers: libmicrohttpd keeps headers in a per-connection memory pool
 * that it clears for every request. 32 KiB (its default) holds any real
 * sender's headers and bounds what a hostile one can make us keep; a larger
 * pool costs a visible memset per request. */
#define HF_CONNECTION_MEMORY (32 * 1024)

/* Connections: each costs a pool and a socket; past this the listener refuses.
 */
#define HF_MAX_CONNECTIONS 4096

/* A connection idle this long (slowloris, half-open peers) is closed. */
#define HF_CONNECTION_TIMEOUT_S 30

/* JSON nesting: jansson parses recursively; this depth is far beyond any real
 * payload and far below what would exhaust a thread's stack. */
#define HF_JSON_MAX_DEPTH 512

/* Lua memory per step (contract: default 64 MiB). */
#define HF_LUA_MEMORY (64 * 1024 * 1024)

/* The count hook fires every this many VM instructions to check the deadline: a
 * small number makes timeouts exact, a large one makes steps cheap. 10k
 * instructions take ~50 µs. */
#define HF_LUA_HOOK_INSTRUCTIONS 10000

/* Workflow-level expressions (`if:`, `dedupe:`, `concurrency.key`) run at
 * ingest, before the answer: they must be pure and quick. */
#define HF_EXPR_MAX_INSTRUCTIONS 1000000
#define HF_EXPR_MEMORY (8 * 1024 * 1024)

/* Wall-clock backstop for workflow-level expressions, whose real bound is
 * HF_EXPR_MAX_INSTRUCTIONS: catches time spent in C (pattern matching). */
#define HF_EXPR_TIMEOUT_MS 1000

/* Longest table that table.insert/remove/move will shift: far beyond what fits
 * in a step's memory, short enough (~0.3 s) not to outlive a deadline. */
#define HF_LUA_TABLE_MAX (1 << 24)

/* Compiled chunks kept per Lua runtime before the cache is dropped and rebuilt
 * (reloads leave old versions' chunks behind). */
#define HF_LUA_CHUNK_CACHE 1024

/* Step and run timeouts (contract defaults). */
#define HF_STEP_TIMEOUT_MS (30 * 1000)
#define HF_RUN_TIMEOUT_MS (15 * 60 * 1000)
#define HF_SYNC_RESPOND_TIMEOUT_MS (10 * 1000)

/* Step retries: backoff doubles from `backoff` up to `max_backoff`. */
#define HF_RETRY_BACKOFF_MS 1000
#define HF_RETRY_MAX_BACKOFF_MS (60 * 1000)
#define HF_RETRY_MAX_ATTEMPTS 100

/* Logs kept per step: a runaway loop of log.info must not fill the database. */
#define HF_STEP_MAX_LOGS 1000
#define HF_LOG_LINE_MAX 4096

/* A step's output is stored as JSON in the run record; larger outputs belong in
 * the data database. */
#define HF_STEP_OUTPUT_MAX (1024 * 1024)

/* Group commit: the writer takes at most this many waiting writes into one
 * transaction, so a commit's latency stays bounded under load. */
#define HF_WRITER_BATCH 512

/* Writes (run starts, step results) a worker may have waiting for their commit
 * before it stops to wait: waiting for every commit would cap a worker at one
 * step per fsync; this bounds how many steps a crash repeats (at most this many
 * per worker), at no cost to throughput. */
#define HF_WORKER_INFLIGHT 32

/* Runs accepted and not finished before ingest answers 503 (--max-queue). Each
 * holds its event in memory (about 6 KiB for a 1 KiB JSON body, decoded), so
 * the default keeps a full queue near 30 MiB and the process under 64 MiB. */
#define HF_MAX_QUEUE 5000

/* Graceful shutdown waits this long for running steps (--drain-timeout). */
#define HF_DRAIN_TIMEOUT_MS (30 * 1000)

/* Busy timeout on the data database, which several workers write. */
#define HF_DATA_BUSY_TIMEOUT_MS 5000

/* Workflows sharing one path that one event can start (more are ignored). */
#define HF_MAX_MATCH 64

/* Workflows: a directory scan loads at most this many files; a file this big.
 */
#define HF_MAX_WORKFLOWS 4096
#define HF_MAX_WORKFLOW_FILE (1024 * 1024)
#define HF_MAX_STEPS 256

/* Timestamped signature schemes accept this much clock skew by default. */
#define HF_VERIFY_TOLERANCE_MS (5 * 60 * 1000)

/* Retention of dedupe keys: a sender's retries come within a day or three. */
#define HF_DEDUPE_RETAIN_MS (7LL * 24 * 3600 * 1000)

/* Outbound http.* from Lua: a call waits at most this long by default, and
 * never past the step's deadline. */
#define HF_HTTP_TIMEOUT_MS (10 * 1000)
/* Response bodies are read into memory and then into the step's Lua state:
 * past this the call fails (max_response raises it, up to the step's memory).
 */
#define HF_HTTP_MAX_RESPONSE (10 * 1024 * 1024)
/* Response headers kept per call: far beyond real APIs, bounded for hostile
 * ones. Redirects followed (when asked) at most this many times. */
#define HF_HTTP_MAX_HEADERS (256 * 1024)
#define HF_HTTP_MAX_REDIRECTS 10

/* webhook.emit: deliveries queued by one step, and the size of one payload.
 * Both are written to the state database with the step's result. */
#define HF_EMIT_MAX_PER_STEP 10000
#define HF_EMIT_MAX_PAYLOAD (1024 * 1024)
/* Attempts of one delivery: the default schedule (8 attempts over about a
 * day, after Standard Webhooks / Svix) and the bounds of `attempts`. */
#define HF_DELIVERY_ATTEMPTS 8
#define HF_DELIVERY_MAX_ATTEMPTS 100
/* `backoff` doubles per attempt (full jitter) up to this. */
#define HF_DELIVERY_MAX_BACKOFF_MS (24LL * 3600 * 1000)
/* One delivery attempt, unless the emit's `timeout` says otherwise. */
#define HF_DELIVERY_TIMEOUT_MS (30 * 1000)
/* The outbox: attempts in flight at once, and per host (host:port), so one
 * slow receiver cannot hold every slot. */
#define HF_OUTBOX_MAX_INFLIGHT 64
#define HF_OUTBOX_MAX_PER_HOST 8
/* The outbox looks for due deliveries at least this often, so that rows
 * written by another process (`hookflow deliveries retry`) are seen. */
#define HF_OUTBOX_POLL_MS 1000
/* On shutdown, attempts in flight get this long to finish; the others are
 * sent again at the next start. */
#define HF_OUTBOX_DRAIN_MS 5000

#endif
