/* hf_limits.h - every cap hookflow enforces, in one place, each with why it
 * exists.
 *
 * Where a flag or a workflow key can change a value, the constant here is its
 * default. Nothing else in the tree hard-codes a limit. Each value can be
 * overridden at build time (-DHF_NAME=VALUE, as SQLite's sqliteLimit.h allows):
 * the tests assume the defaults. */
#ifndef HF_LIMITS_H
#define HF_LIMITS_H

/* --max-body: webhook payloads are small (GitHub caps at 25 MiB, most senders
 * at 1 MiB or less); refusing larger bodies while reading keeps one client from
 * filling memory. */
#ifndef HF_DEFAULT_MAX_BODY
#define HF_DEFAULT_MAX_BODY (1024 * 1024)
#endif

/* A body past --max-body is read and dropped so that the client gets its 413;
 * past this many dropped bytes the connection is simply closed. */
#ifndef HF_DISCARD_MAX
#define HF_DISCARD_MAX (16 * 1024 * 1024)
#endif

/* Request headers: libmicrohttpd 0.9.75 keeps a request's head (its request
 * line and header fields, a 64-byte record for each header field, query
 * parameter and cookie, and a copy of the Cookie field) in a per-connection
 * memory pool, then builds the answer's header in what is left. It zeroes
 * the pool for every request, half of it twice: 32 KiB (its default) cost a
 * 48 KiB memset per request, a tenth of the HTTP threads' time. 16 KiB is
 * the limit of Node.js (n8n's and Node-RED's) and holds any real sender's
 * headers. A head that leaves less than HF_HEAD_SPARE for the answer is
 * answered 431 (http_frame.c): with less, libmicrohttpd could not build the
 * answer and would close the connection silently, after the event was
 * stored. */
#ifndef HF_CONNECTION_MEMORY
#define HF_CONNECTION_MEMORY (16 * 1024)
#endif
#define HF_HEAD_RECORD 64
#ifndef HF_HEAD_SPARE
#define HF_HEAD_SPARE 1024
#endif
#define HF_HEAD_MAX (HF_CONNECTION_MEMORY - HF_HEAD_SPARE)

/* A webhook's body buffer (ingest.c): allocated once from its Content-Length
 * up to HF_BODY_RESERVE, so that a length announced and never sent holds
 * little; a buffer up to HF_BODY_KEEP stays with its request for the next one
 * on its HTTP thread (its bytes copied into the event: one allocation, freed
 * elsewhere), a larger one goes to the event as it is (never twice the memory
 * for a large body). At most REQ_CACHE (16) requests are kept per HTTP
 * thread (ingest.c). */
#ifndef HF_BODY_RESERVE
#define HF_BODY_RESERVE (64 * 1024)
#endif
#ifndef HF_BODY_KEEP
#define HF_BODY_KEEP (16 * 1024)
#endif

/* The SQLite state stores a body of this many bytes or more as an LZ4 block
 * when that is at least an eighth smaller (store_sqlite_pack.c). */
#ifndef HF_PACK_MIN
#define HF_PACK_MIN 256
#endif

/* Connections: each costs a pool and a socket; past this the listener refuses.
 */
#ifndef HF_MAX_CONNECTIONS
#define HF_MAX_CONNECTIONS 4096
#endif

/* A connection idle this long (slowloris, half-open peers) is closed. */
#ifndef HF_CONNECTION_TIMEOUT_S
#define HF_CONNECTION_TIMEOUT_S 30
#endif

/* JSON nesting: jansson parses recursively; this depth is far beyond any real
 * payload and far below what would exhaust a thread's stack. */
#ifndef HF_JSON_MAX_DEPTH
#define HF_JSON_MAX_DEPTH 512
#endif

/* Lua memory per step (the `memory:` default, docs/reference.md). */
#ifndef HF_LUA_MEMORY
#define HF_LUA_MEMORY (64 * 1024 * 1024)
#endif

/* The count hook fires every this many VM instructions to check the deadline: a
 * small number makes timeouts exact, a large one makes steps cheap. 10k
 * instructions take ~50 µs. */
#ifndef HF_LUA_HOOK_INSTRUCTIONS
#define HF_LUA_HOOK_INSTRUCTIONS 10000
#endif

/* Workflow-level expressions (`if:`, `dedupe:`, `concurrency.key`) run at
 * ingest, before the answer: they must be pure and quick. */
#ifndef HF_EXPR_MAX_INSTRUCTIONS
#define HF_EXPR_MAX_INSTRUCTIONS 1000000
#endif
#ifndef HF_EXPR_MEMORY
#define HF_EXPR_MEMORY (8 * 1024 * 1024)
#endif

/* Wall-clock backstop for workflow-level expressions, whose real bound is
 * HF_EXPR_MAX_INSTRUCTIONS: catches time spent in C (pattern matching). */
#ifndef HF_EXPR_TIMEOUT_MS
#define HF_EXPR_TIMEOUT_MS 1000
#endif

/* Longest table that table.insert/remove/move will shift: far beyond what fits
 * in a step's memory, short enough (~0.3 s) not to outlive a deadline. */
#ifndef HF_LUA_TABLE_MAX
#define HF_LUA_TABLE_MAX (1 << 24)
#endif

/* Compiled chunks kept per Lua runtime before the cache is dropped and rebuilt
 * (reloads leave old versions' chunks behind). */
#ifndef HF_LUA_CHUNK_CACHE
#define HF_LUA_CHUNK_CACHE 1024
#endif

/* Step and run timeouts (the defaults of `timeout:`, docs/reference.md). */
#ifndef HF_STEP_TIMEOUT_MS
#define HF_STEP_TIMEOUT_MS (30 * 1000)
#endif
#ifndef HF_RUN_TIMEOUT_MS
#define HF_RUN_TIMEOUT_MS (15 * 60 * 1000)
#endif
#ifndef HF_SYNC_RESPOND_TIMEOUT_MS
#define HF_SYNC_RESPOND_TIMEOUT_MS (10 * 1000)
#endif

/* Step retries: backoff doubles from `backoff` up to `max_backoff`. */
#ifndef HF_RETRY_BACKOFF_MS
#define HF_RETRY_BACKOFF_MS 1000
#endif
#ifndef HF_RETRY_MAX_BACKOFF_MS
#define HF_RETRY_MAX_BACKOFF_MS (60 * 1000)
#endif
#ifndef HF_RETRY_MAX_ATTEMPTS
#define HF_RETRY_MAX_ATTEMPTS 100
#endif

/* Logs kept per step: a runaway loop of log.info must not fill the database. */
#ifndef HF_STEP_MAX_LOGS
#define HF_STEP_MAX_LOGS 1000
#endif
#ifndef HF_LOG_LINE_MAX
#define HF_LOG_LINE_MAX 4096
#endif

/* A step's output is stored as JSON in the run record; larger outputs belong in
 * the data database. */
#ifndef HF_STEP_OUTPUT_MAX
#define HF_STEP_OUTPUT_MAX (1024 * 1024)
#endif

/* Group commit: at most this many writes go into one transaction, those
 * waiting when the writer takes its batch and those queued while it applies
 * them (hf_writer_more), so a commit's latency stays bounded under
 * load (a run's "started" write that its step's write makes redundant is not
 * counted). */
#ifndef HF_WRITER_BATCH
#define HF_WRITER_BATCH 512
#endif

/* Writes (step results; a run's "started" write is not counted) a worker may
 * have waiting for their commit
 * before it stops to wait: waiting for every commit would cap a worker at one
 * step per fsync; this bounds how many steps a crash repeats (at most this many
 * per worker). Above what a worker runs during one group commit (one write a
 * run, HF_WRITER_BATCH writes a commit), so that commits set the pace: at 32
 * runs/s were capped at workers x 16 x commits/s. The bytes bound the memory
 * the waiting results hold (outputs, logs, emits). */
#ifndef HF_WORKER_INFLIGHT
#define HF_WORKER_INFLIGHT 1024
#endif
#ifndef HF_WORKER_INFLIGHT_BYTES
#define HF_WORKER_INFLIGHT_BYTES (8 * 1024 * 1024)
#endif

/* Runs held in memory, the in-memory window (--max-queue): past it, accepted
 * runs wait on disk (the backlog) and come into memory as room frees. Each
 * holds its event in memory (about 6 KiB for a 1 KiB JSON body, decoded), so
 * the default keeps a full window near 30 MiB and the process under 64 MiB. */
#ifndef HF_MAX_QUEUE
#define HF_MAX_QUEUE 5000
#endif

/* Runs waiting on disk past the window before ingest answers 503
 * (--max-backlog; 0: none wait, a full window answers 503). */
#ifndef HF_MAX_BACKLOG
#define HF_MAX_BACKLOG 1000000
#endif

/* Several nodes on one PostgreSQL state database (--lease): a node whose
 * heartbeat (every second) is older than this is taken over by the others,
 * its runs and deliveries with it. Long enough that a busy database or a
 * short network hiccup does not cost a node its runs; short enough that a
 * dead node's work is late by seconds, not minutes. A node stops starting
 * steps at three quarters of it. */
#ifndef HF_NODE_LEASE_MS
#define HF_NODE_LEASE_MS (15 * 1000)
#endif

/* A run of a concurrency lane whose earlier runs are still unfinished on
 * other nodes (PostgreSQL) looks again this often: a lane's next run starts
 * within this of the previous one ending elsewhere. */
#ifndef HF_LANE_POLL_MS
#define HF_LANE_POLL_MS 100
#endif

/* Graceful shutdown waits this long for running steps (--drain-timeout). */
#ifndef HF_DRAIN_TIMEOUT_MS
#define HF_DRAIN_TIMEOUT_MS (30 * 1000)
#endif

/* Busy timeout on the data database, which several workers write. */
#ifndef HF_DATA_BUSY_TIMEOUT_MS
#define HF_DATA_BUSY_TIMEOUT_MS 5000
#endif

/* db.* on PostgreSQL (--data postgres://…): a connection attempt gives up
 * after HF_DATA_PG_CONNECT_MS (or at the step's deadline), and a failed one is
 * not tried again for HF_DATA_PG_RETRY_MS (the calls meanwhile fail at once
 * with its message). Rolling back after a step's deadline may take
 * HF_DATA_PG_GRACE_MS more before the connection is dropped instead. The
 * server checks every HF_DATA_PG_CHECK_MS that a connection dropped at a
 * deadline is gone, and stops its statement (client_connection_check_interval).
 */
#ifndef HF_DATA_PG_CONNECT_MS
#define HF_DATA_PG_CONNECT_MS 10000
#endif
#ifndef HF_DATA_PG_RETRY_MS
#define HF_DATA_PG_RETRY_MS 1000
#endif
#ifndef HF_DATA_PG_GRACE_MS
#define HF_DATA_PG_GRACE_MS 1000
#endif
#ifndef HF_DATA_PG_CHECK_MS
#define HF_DATA_PG_CHECK_MS 1000
#endif

/* Workflows sharing one path that one event can start (more are ignored). */
#ifndef HF_MAX_MATCH
#define HF_MAX_MATCH 64
#endif

/* Workflows: a directory scan loads at most this many files; a file this big.
 */
#ifndef HF_MAX_WORKFLOWS
#define HF_MAX_WORKFLOWS 4096
#endif
/* Any file hookflow reads whole (an event or signal file of `run`, a script,
 * a time zone): a path that names /dev/zero, or a pipe that never ends, is
 * refused past it instead of filling the memory. */
#ifndef HF_MAX_READ_FILE
#define HF_MAX_READ_FILE (64 * 1024 * 1024)
#endif

#ifndef HF_MAX_WORKFLOW_FILE
#define HF_MAX_WORKFLOW_FILE (1024 * 1024)
#endif
#ifndef HF_MAX_STEPS
#define HF_MAX_STEPS 256
#endif

/* Timestamped signature schemes accept this much clock skew by default. */
#ifndef HF_VERIFY_TOLERANCE_MS
#define HF_VERIFY_TOLERANCE_MS (5 * 60 * 1000)
#endif

/* Outbound http.* from Lua: a call waits at most this long by default, and
 * never past the step's deadline. */
#ifndef HF_HTTP_TIMEOUT_MS
#define HF_HTTP_TIMEOUT_MS (10 * 1000)
#endif
/* Response bodies are read into memory and then into the step's Lua state:
 * past this the call fails (max_response raises it, up to the step's memory).
 */
#ifndef HF_HTTP_MAX_RESPONSE
#define HF_HTTP_MAX_RESPONSE (10 * 1024 * 1024)
#endif
/* Response headers kept per call: far beyond real APIs, bounded for hostile
 * ones. Redirects followed (when asked) at most this many times. */
#ifndef HF_HTTP_MAX_HEADERS
#define HF_HTTP_MAX_HEADERS (256 * 1024)
#endif
#ifndef HF_HTTP_MAX_REDIRECTS
#define HF_HTTP_MAX_REDIRECTS 10
#endif

/* webhook.emit: deliveries queued by one step, and the size of one payload.
 * Both are written to the state database with the step's result. */
#ifndef HF_EMIT_MAX_PER_STEP
#define HF_EMIT_MAX_PER_STEP 10000
#endif
#ifndef HF_EMIT_MAX_PAYLOAD
#define HF_EMIT_MAX_PAYLOAD (1024 * 1024)
#endif
/* Attempts of one delivery: the default schedule (8 attempts over about a
 * day, after Standard Webhooks / Svix) and the bounds of `attempts`. */
#ifndef HF_DELIVERY_ATTEMPTS
#define HF_DELIVERY_ATTEMPTS 8
#endif
#ifndef HF_DELIVERY_MAX_ATTEMPTS
#define HF_DELIVERY_MAX_ATTEMPTS 100
#endif
/* `backoff` doubles per attempt (full jitter) up to this. */
#ifndef HF_DELIVERY_MAX_BACKOFF_MS
#define HF_DELIVERY_MAX_BACKOFF_MS (24LL * 3600 * 1000)
#endif
/* One delivery attempt, unless the emit's `timeout` says otherwise. */
#ifndef HF_DELIVERY_TIMEOUT_MS
#define HF_DELIVERY_TIMEOUT_MS (30 * 1000)
#endif
/* The outbox: attempts in flight at once, and per host (host:port), so one
 * slow receiver cannot hold every slot. */
#ifndef HF_OUTBOX_MAX_INFLIGHT
#define HF_OUTBOX_MAX_INFLIGHT 64
#endif
#ifndef HF_OUTBOX_MAX_PER_HOST
#define HF_OUTBOX_MAX_PER_HOST 8
#endif
/* Due deliveries the outbox reads ahead in one scan, to start as slots free
 * (one query per page rather than per attempt), bounded also by their
 * payload bytes; a host may hold at most 4 x HF_OUTBOX_MAX_PER_HOST of
 * them, and a start looks at most HF_OUTBOX_READY_WALK deep for a host
 * under its cap. */
#ifndef HF_OUTBOX_READY
#define HF_OUTBOX_READY 256
#endif
#ifndef HF_OUTBOX_READY_BYTES
#define HF_OUTBOX_READY_BYTES (8 * 1024 * 1024)
#endif
#ifndef HF_OUTBOX_READY_WALK
#define HF_OUTBOX_READY_WALK 64
#endif
/* While ready jobs wait (for hosts at their cap), new rows are looked for at
 * most this often; an empty ready list is refilled at once. */
#ifndef HF_OUTBOX_RESCAN_MS
#define HF_OUTBOX_RESCAN_MS 10
#endif
/* The outbox looks for due deliveries at least this often, so that rows
 * written by another process (`hookflow deliveries retry`) are seen. */
#ifndef HF_OUTBOX_POLL_MS
#define HF_OUTBOX_POLL_MS 1000
#endif
/* On shutdown, attempts in flight get this long to finish; the others are
 * sent again at the next start. */
#ifndef HF_OUTBOX_DRAIN_MS
#define HF_OUTBOX_DRAIN_MS 5000
#endif

/* A signature header longer than this is malformed: real ones are under 200
 * bytes, and the bound keeps the work done for a hostile request small. */
#ifndef HF_SIGNATURE_HEADER_MAX
#define HF_SIGNATURE_HEADER_MAX 4096
#endif

/* Longest value written in a log line, so that one huge error cannot make a
 * huge line. */
#ifndef HF_LOG_VALUE_MAX
#define HF_LOG_VALUE_MAX 4096
#endif

/* Distinct /metrics series (family and labels) kept; more are dropped so that
 * workflow names cannot grow the table without end. A power of two: the table
 * is open-addressed. */
#ifndef HF_METRICS_MAX_SERIES
#define HF_METRICS_MAX_SERIES 1024
#endif

/* YAML -> JSON (`check --json`): deep enough for any workflow, shallow enough
 * for the C stack; nodes visited, aliases counted at each use, so that an
 * alias bomb stays small. */
#ifndef HF_YAML_JSON_MAX_DEPTH
#define HF_YAML_JSON_MAX_DEPTH 64
#endif
/* Nesting of a YAML file read as a workflow or by `check --json`: libyaml's
 * scanner takes time quadratic in the depth of open flow collections
 * ("[[[…" 32,000 deep took 4 s), so a first pass over the events stops
 * past this depth before the document is built (hf_yaml_depth_over). Above
 * HF_WITH_MAX_DEPTH and HF_YAML_JSON_MAX_DEPTH, so that their own errors
 * still name the key. */
#ifndef HF_YAML_MAX_DEPTH
#define HF_YAML_MAX_DEPTH 96
#endif
#ifndef HF_YAML_JSON_MAX_NODES
#define HF_YAML_JSON_MAX_NODES 200000
#endif

/* db.*: prepared statements cached per worker, and the longest SQL text kept
 * in that cache (longer statements are prepared each time). */
#ifndef HF_DB_STMT_CACHE
#define HF_DB_STMT_CACHE 16
#endif
#ifndef HF_DB_STMT_CACHE_SQL_MAX
#define HF_DB_STMT_CACHE_SQL_MAX 4096
#endif

/* webhook.emit: the longest destination URL accepted. */
#ifndef HF_EMIT_URL_MAX
#define HF_EMIT_URL_MAX 8192
#endif

/* Retention deletes at most this many rows per table in one transaction, so
 * that pruning a large backlog never holds the writer for long. */
#ifndef HF_PRUNE_BATCH
#define HF_PRUNE_BATCH 500
#endif

/* Cancelling (cancel.c): a run cancelled while a worker or the writer held it
 * is remembered by id until that owner hands it back; at most
 * HF_CANCEL_PENDING ids, each for at most HF_CANCEL_KEEP_MS (long enough for
 * any hand-off: a commit, a backlog page being claimed). */
#ifndef HF_CANCEL_PENDING
#define HF_CANCEL_PENDING 4096
#endif
#ifndef HF_CANCEL_KEEP_MS
#define HF_CANCEL_KEEP_MS (10 * 60 * 1000)
#endif

/* cancel_on, cancel_in_progress and debounce read a workflow's unfinished
 * runs from the store (flow.c, debounce.c): at most this many per look, so
 * that one signal cannot make the flow thread read without end. */
#ifndef HF_FLOW_SCAN_MAX
#define HF_FLOW_SCAN_MAX 10000
#endif

/* throttle.limit: starts per period per key. Each key keeps its last
 * `limit` start times in memory (throttle.c): 8 bytes each. */
#ifndef HF_THROTTLE_MAX
#define HF_THROTTLE_MAX 100000
#endif

/* Workflow names and step ids: short identifiers that appear in paths, logs
 * and metric labels. */
#ifndef HF_NAME_MAX
#define HF_NAME_MAX 64
#endif

/* A webhook path (`on.webhook.path`). */
#ifndef HF_WEBHOOK_PATH_MAX
#define HF_WEBHOOK_PATH_MAX 2048
#endif
/* `concurrency.max`: runs of one key at once. */
#ifndef HF_CONCURRENCY_MAX
#define HF_CONCURRENCY_MAX 1000000
#endif
/* `on.schedule`: entries per workflow, and `catch_up`, the fires missed
 * while the server was stopped that still run at its start. A schedule that
 * fires every minute and a server stopped for a day must not start 1,440
 * runs at once: the latest catch_up fires run, the rest are dropped. */
#ifndef HF_SCHEDULES_MAX
#define HF_SCHEDULES_MAX 32
#endif
#ifndef HF_SCHEDULE_CATCH_UP_MAX
#define HF_SCHEDULE_CATCH_UP_MAX 100
#endif
/* The NAME of `${NAME}` in a secret. */
#ifndef HF_SECRET_NAME_MAX
#define HF_SECRET_NAME_MAX 127
#endif
/* `with:` may use YAML aliases, which share nodes: a small file can describe a
 * huge table. Its nesting, its values and the generated chunk are capped so
 * that such a file fails fast. */
#ifndef HF_WITH_MAX_DEPTH
#define HF_WITH_MAX_DEPTH 64
#endif
#ifndef HF_WITH_MAX_SIZE
#define HF_WITH_MAX_SIZE (1024 * 1024)
#endif
#ifndef HF_WITH_MAX_VALUES
#define HF_WITH_MAX_VALUES 20000
#endif

/* The deadline-checking pattern matcher (string.find/match/gmatch/gsub): the
 * captures of one pattern and its recursion depth, as lstrlib's LUA_MAXCAPTURES
 * and MAXCCALLS; it checks the step's deadline every HF_LUA_PATTERN_TICKS
 * steps, so that a pathological pattern fails on time. */
#ifndef HF_LUA_PATTERN_CAPTURES
#define HF_LUA_PATTERN_CAPTURES 32
#endif
#ifndef HF_LUA_PATTERN_DEPTH
#define HF_LUA_PATTERN_DEPTH 200
#endif
#ifndef HF_LUA_PATTERN_TICKS
#define HF_LUA_PATTERN_TICKS 4096
#endif
/* require(NAME): the longest module name. */
#ifndef HF_REQUIRE_NAME_MAX
#define HF_REQUIRE_NAME_MAX 199
#endif
/* A runtime's Lua state runs its collector in generational mode (a step's
 * garbage is young: minor collections take it without walking the sandbox
 * and the chunk cache), with no full collection per step: a full one only
 * after a failed step, or when it holds this much
 * more than after its last full collection, so that garbage of big steps does
 * not linger and the memory limit stays a step's own (a step gets the limit
 * above what the state holds when it starts). */
#ifndef HF_LUA_GC_SLACK
#define HF_LUA_GC_SLACK (1024 * 1024)
#endif
/* The step environment is reused, emptied after each step; one that held
 * more globals than this is dropped instead (no big table kept). */
#ifndef HF_LUA_ENV_KEEP
#define HF_LUA_ENV_KEEP 64
#endif

/* The state database: read connections kept for the API, the CLI and the
 * outbox (more readers at once open and close their own); workflow versions
 * the writer remembers as already stored; how long a connection waits for
 * another process's lock (the CLI writing while a server runs). */
#ifndef HF_STATE_READERS
#define HF_STATE_READERS 8
#endif
/* The writer's WAL writes of one commit are gathered in memory and written at
 * once (store_sqlite_vfs.c): up to this many bytes; a bigger commit writes
 * the rest as it comes. Bounds the writer's memory, not a commit's size. */
#ifndef HF_WAL_GATHER_MAX
#define HF_WAL_GATHER_MAX (4 * 1024 * 1024)
#endif
#ifndef HF_STATE_VERSION_CACHE
#define HF_STATE_VERSION_CACHE 32
#endif
#ifndef HF_STATE_BUSY_TIMEOUT_MS
#define HF_STATE_BUSY_TIMEOUT_MS 5000
#endif
/* Rows listed by /api/runs and /api/deliveries (and the CLI) without a
 * `limit`. */
#ifndef HF_LIST_DEFAULT_RUNS
#define HF_LIST_DEFAULT_RUNS 50
#endif
#ifndef HF_LIST_DEFAULT_DELIVERIES
#define HF_LIST_DEFAULT_DELIVERIES 100
#endif

/* `serve --workers`: threads running steps, each with its own Lua state and
 * data connection. */
#ifndef HF_MAX_WORKERS
#define HF_MAX_WORKERS 256
#endif
/* `limit` of /api/runs and /api/deliveries: one page of history. */
#ifndef HF_LIST_MAX
#define HF_LIST_MAX 1000
#endif
/* `runs --follow` polls this often, over this many of the newest runs. */
#ifndef HF_FOLLOW_POLL_MS
#define HF_FOLLOW_POLL_MS 500
#endif
#ifndef HF_FOLLOW_WINDOW
#define HF_FOLLOW_WINDOW 200
#endif
/* A drain whose steps are stuck still commits what is queued, waiting at most
 * this long, before the process exits. */
#ifndef HF_STUCK_FLUSH_MS
#define HF_STUCK_FLUSH_MS 5000
#endif

/* A generated admin token: random bytes, printed as hex (192 bits). */
#ifndef HF_ADMIN_TOKEN_BYTES
#define HF_ADMIN_TOKEN_BYTES 24
#endif

/* egress: ranges in one --egress-deny/--egress-allow policy (the defaults and
 * the words' ranges included). Each connection scans them all, and real
 * policies name a handful; a cap keeps a mistaken list from slowing every
 * connection. */
#ifndef HF_EGRESS_MAX_RULES
#define HF_EGRESS_MAX_RULES 256
#endif

/* HTTP framing (http_frame.c, ingest.c). libmicrohttpd keeps the request line
 * at the start of the connection's pool (HF_CONNECTION_MEMORY) and each query
 * parameter and header field in a record of 64 bytes from its end; when the
 * query's records do not fit, libmicrohttpd 0.9.75 never answers (the
 * connection hangs until its timeout). So a longer request target is answered
 * 414, and more query parameters or header fields 431, before they reach that
 * pool's end: an 8 KiB target and 100 records are 14.25 KiB of its 16. The
 * head as a whole is bounded by HF_HEAD_MAX. Real senders use a handful of
 * each. */
#ifndef HF_MAX_URI_BYTES
#define HF_MAX_URI_BYTES 8192
#endif
#ifndef HF_MAX_QUERY_PARAMS
#define HF_MAX_QUERY_PARAMS 100
#endif
#ifndef HF_MAX_HEADERS
#define HF_MAX_HEADERS 100
#endif

/* ---- db: the data connection of db.* (README.md, "Security") ---- */
/* --max-value: the largest string, blob or stored row (and SQL text) a step's
 * SQL may make (SQLITE_LIMIT_LENGTH), checked before SQLite allocates it, so
 * one statement cannot take memory far beyond the step's 64 MiB Lua cap. The
 * same as the step's memory: a larger value could not reach Lua anyway. */
#ifndef HF_DEFAULT_MAX_VALUE
#define HF_DEFAULT_MAX_VALUE (64 * 1024 * 1024)
#endif
/* The bounds of --max-value: SQL text must fit (1 KiB), and SQLite's own
 * compile-time maximum (SQLITE_MAX_LENGTH, 1e9) cannot be raised. */
#ifndef HF_DB_MAX_VALUE_MIN
#define HF_DB_MAX_VALUE_MIN 1024
#endif
#ifndef HF_DB_MAX_VALUE_MAX
#define HF_DB_MAX_VALUE_MAX 1000000000
#endif
/* SQLite's heap that one db.* call may take beyond 2 x --max-value (a value
 * and what a function makes of it): page cache (2 MB by default), prepared
 * statements, sorter buffers. A row of many large values goes past it. */
#ifndef HF_DB_CALL_SLACK
#define HF_DB_CALL_SLACK (16 * 1024 * 1024)
#endif

/* Lua: limits that hold everywhere Lua runs (area lua). */
/* The message handler's room above a step's memory limit for the traceback
 * of its error (reset at each call, so it never adds up), and the longest
 * error message it keeps (longer ones are cut, so the copy fits the room). */
#ifndef HF_LUA_ERROR_RESERVE
#define HF_LUA_ERROR_RESERVE (256 * 1024)
#endif
#ifndef HF_LUA_ERROR_MAX
#define HF_LUA_ERROR_MAX (16 * 1024)
#endif
/* Lua -> JSON (json.encode, a step's output, emits): the values one
 * conversion may visit, a table reused n times counting n times (in a step the
 * memory limit, charged for the JSON being built, usually stops it first);
 * the deadline is checked every HF_LUA_JSON_CHECK_EVERY values. */
#ifndef HF_LUA_JSON_MAX_NODES
#define HF_LUA_JSON_MAX_NODES (4 * 1024 * 1024)
#endif
#ifndef HF_LUA_JSON_CHECK_EVERY
#define HF_LUA_JSON_CHECK_EVERY 256
#endif
/* table.sort: comparisons between checks of the deadline (each comparison
 * is charged as one instruction against an expression's budget). */
#ifndef HF_LUA_SORT_CHECK_EVERY
#define HF_LUA_SORT_CHECK_EVERY 256
#endif

/* --- disk: the state database cannot write --- */
/* While the state database cannot write (disk full, I/O error), the writer
 * tries a tiny write this often, so that everything resumes by itself once
 * one commits. */
#ifndef HF_STORE_PROBE_MS
#define HF_STORE_PROBE_MS 1000
#endif
/* A worker paused by it looks again this often (a paused worker holds no
 * run: it waits before taking one). */
#ifndef HF_WORKER_PAUSE_POLL_MS
#define HF_WORKER_PAUSE_POLL_MS 100
#endif
/* Retry-After of the 503 a webhook gets meanwhile: a full disk is rarely
 * freed within a second, and senders retry anyway. */
#ifndef HF_STORE_RETRY_AFTER_S
#define HF_STORE_RETRY_AFTER_S 5
#endif
/* At most one log line about the fault per this many ms (plus one when it
 * ends): a full disk must not also fill the log. */
#ifndef HF_STORE_FAULT_LOG_MS
#define HF_STORE_FAULT_LOG_MS 10000
#endif
/* An attempt's record the writer refused for a reason of its own (the
 * database could write) is tried this many times before the delivery is
 * given back to the schedule (and may be sent again). */
#ifndef HF_OUTBOX_RECORD_TRIES
#define HF_OUTBOX_RECORD_TRIES 5
#endif
/* /healthz calls a worker stuck once its step runs this long past its
 * deadline: the time limit is checked between instructions, so a step may
 * overrun it a little (a long C call, a garbage collection). */
#ifndef HF_HEALTH_STUCK_MARGIN_MS
#define HF_HEALTH_STUCK_MARGIN_MS 5000
#endif

/* --- secrets at rest and on screen --- */
/* Plain-text signing secrets of older versions are sealed at the server's
 * start this many rows at a time (the rows are held in memory meanwhile). */
#ifndef HF_SECRETS_BATCH
#define HF_SECRETS_BATCH 256
#endif

/* --- a step's own retry (retry.after) --- */
/* The default `retry.max_delay`: how long retry.after may hold a step back
 * unless the step says otherwise. An hour covers the Retry-After of the rate
 * limits the senders and APIs we connect use (seconds to minutes) and a
 * maintenance window, yet a mistaken date far ahead does not park a run for
 * days. */
#ifndef HF_RETRY_MAX_DELAY_MS
#define HF_RETRY_MAX_DELAY_MS (60 * 60 * 1000)
#endif
/* A Retry-After value (or a delay string given to retry.after) longer than
 * this is refused: the longest valid form, an RFC 850 date, is 36 bytes. */
#ifndef HF_RETRY_AFTER_MAX
#define HF_RETRY_AFTER_MAX 64
#endif
/* retry.after/retry.never keep this much of their message, to fail the
 * attempt with it even when the script caught their error. */
#ifndef HF_RETRY_MESSAGE_MAX
#define HF_RETRY_MESSAGE_MAX 512
#endif

/* --- path parameters --- */
/* A {name} in a webhook path is at most this long: a name is an identifier
 * for event.params, and the matcher copies it into a buffer of this size. */
#ifndef HF_PATH_PARAM_NAME_MAX
#define HF_PATH_PARAM_NAME_MAX 64
#endif

/* --- delivery ids --- */
/* webhook.emit's `id` (an idempotency key, also the `webhook-id` header) may
 * be this long: a sender's own id fits (a Stripe checkout session id is 66
 * bytes), and a webhook-id header line stays far below curl's and receivers'
 * limits. The id is kept in fixed buffers of HF_DELIVERY_ID_SIZE. */
#ifndef HF_EMIT_ID_MAX
#define HF_EMIT_ID_MAX 255
#endif
#define HF_DELIVERY_ID_SIZE (HF_EMIT_ID_MAX + 1)

/* --- workflow files that do not load --- */
/* The problems of one failed file kept for /api/workflows and the dashboard
 * (stderr gets all of them): enough to fix it, bounded when a file is
 * garbage. */
#ifndef HF_LOAD_ERRORS_PER_FILE
#define HF_LOAD_ERRORS_PER_FILE 16
#endif
/* Retry-After of the 503 that a failed workflow's path answers: long enough
 * not to hammer the server, short enough that a fix is picked up soon. */
#ifndef HF_LOAD_ERROR_RETRY_AFTER_S
#define HF_LOAD_ERROR_RETRY_AFTER_S 30
#endif
/* How deep the scan for a failed file's on.webhook.path follows the YAML. */
#ifndef HF_LOAD_PATH_SCAN_DEPTH
#define HF_LOAD_PATH_SCAN_DEPTH 8

#endif
/* --- the general `hmac` signature scheme --- */
/* A `signed:` template: a few placeholders and separators in practice; the
 * bound keeps the per-request list of pieces small. */
#ifndef HF_SIGNED_TEMPLATE_MAX
#define HF_SIGNED_TEMPLATE_MAX 1024
#endif
/* A header name in `{header:NAME}`, `timestamp_header:` or `header:`: real
 * names are short, and this one is copied to the stack lower-cased. */
#ifndef HF_VERIFY_HEADER_NAME_MAX
#define HF_VERIFY_HEADER_NAME_MAX 128
#endif

/* --- parked runs (hf_park.h) --- */
/* Parked runs woken per write: one transaction stays short however many come
 * due at once (the next batch follows at once). */
#ifndef HF_PARK_WAKE_BATCH
#define HF_PARK_WAKE_BATCH 1000
#endif
/* The wake-up thread looks at the store at least this often, whatever its
 * timer says (the wall clock may jump; another process may have parked). */
#ifndef HF_PARK_RECHECK_MS
#define HF_PARK_RECHECK_MS 60000
#endif
/* The same where several nodes share the state database (PostgreSQL): a run
 * parked by another node (one since gone) is woken this late at most. */
#ifndef HF_PARK_SHARED_RECHECK_MS
#define HF_PARK_SHARED_RECHECK_MS 1000
#endif
/* Runs waiting on one wait_for path that one signal is matched against, in
 * id (creation) order: each costs an expression evaluation on the signal
 * thread. They are read a page at a time, so that only a page of runs (with
 * their events) is in memory at once. */
#ifndef HF_PARK_SIGNAL_MAX
#define HF_PARK_SIGNAL_MAX 100000
#endif
#ifndef HF_PARK_SIGNAL_PAGE
#define HF_PARK_SIGNAL_PAGE 256
#endif
/* Past HF_PARK_SIGNAL_MAX runs waiting on its path, or past this much time
 * matching (loading the runs and evaluating their `if:`, each evaluation
 * bounded by the expression limits above), a signal resumes nothing and is
 * answered 503: one request never costs hf-signals more than about this. */
#ifndef HF_PARK_SIGNAL_BUDGET_MS
#define HF_PARK_SIGNAL_BUDGET_MS 10000
#endif
/* Signals accepted and not yet matched (queued for hf-signals, or being
 * matched): past this many, a signal is answered 503 with Retry-After before
 * anything is stored. So a flood of signals holds hf-signals (one thread) at
 * most HF_PARK_SIGNAL_QUEUE budgets ahead. */
#ifndef HF_PARK_SIGNAL_QUEUE
#define HF_PARK_SIGNAL_QUEUE 64
#endif
/* The Retry-After of a signal refused for the queue above or past its
 * budget (seconds). */
#ifndef HF_PARK_SIGNAL_RETRY_AFTER_S
#define HF_PARK_SIGNAL_RETRY_AFTER_S 5
#endif

/* The longest dedupe, concurrency, throttle or debounce key stored as it
 * is; a longer one is stored as "sha256:" and its digest (PostgreSQL's
 * B-tree indexes hold rows of about 2.7 KB at most). */
#ifndef HF_KEY_STORED_MAX
#define HF_KEY_STORED_MAX 512
#endif

#endif
