---@meta hookflow
-- hookflow.lua - type stubs for lua-language-server: the globals that hookflow
-- gives step code (inline `run:` and scripts/*.lua), per the README's "Lua"
-- section. Definitions only: hookflow never loads this file.
--
-- Use: in .luarc.json beside your workflows, {"workspace.library": ["docs/hookflow.lua"],
-- "runtime.version": "Lua 5.4"}; or in VS Code settings,
-- "Lua.workspace.library": ["./docs/hookflow.lua"].
--
-- Not available in the sandbox: io, os (but os.time, os.date, os.clock),
-- debug, package, dofile, loadfile, binary chunks, string.dump.

---@alias hookflow.json nil|boolean|number|string|table

---The request that started the run.
---@class hookflow.Event
---@field id string Event id, e.g. "ev_0193a1b2c3d4_9f8e7d6c5b".
---@field method string HTTP method, e.g. "POST".
---@field path string Request path, e.g. "/helpdesk/tickets".
---@field params table<string, string> Path parameters: `path: /tickets/{id}` and a request to /tickets/42 give { id = "42" }; {} without parameters.
---@field query table<string, string> Query string arguments.
---@field headers table<string, string> Request headers, lower-case names.
---@field body table|nil Decoded JSON or form body; nil for any other body. An object member whose value is JSON null is nil (absent); in arrays a null is json.null. A GitHub form delivery (payload=...) is its decoded payload.
---@field raw string The body as received.
---@field received_at string When it arrived, ISO 8601 UTC ("2026-11-26T23:21:42.123Z").
---@field schedule hookflow.Schedule|nil Set when an `on.schedule` entry fired the run (method "SCHEDULE"); nil for a request.

---A fire of `on.schedule`.
---@class hookflow.Schedule
---@field cron string The entry's cron expression as written, e.g. "0 2 * * MON-FRI".
---@field at string The fire time, ISO 8601 UTC to the second ("2026-12-07T01:00:00Z"): the time the cron named, not when the run started (a catch-up fire runs later).

---The request that started the run.
---@type hookflow.Event
event = {}

---Outputs of earlier steps by step id (nil when skipped, failed with
---continue_on_error, or not run yet).
---@type table<string, hookflow.json>
steps = {}

---The step's `with:` values (`${{ EXPR }}` already evaluated); {} without `with:`.
---@type table<string, any>
args = {}

---@class hookflow.Run
---@field id string Run id, e.g. "run_0193a1b2c3d4_9f8e7d6c5b".
---@field workflow string The workflow's name.
---@field attempt integer 1 on the first try of this step, 2 on its first retry or its re-execution after a crash.
---@field resume_url string|nil A one-shot URL (under /resume/, on --public-url when set) whose POST resumes this run's next `wait_for:` step with the POSTed body as its output, as a matching signal would; a second POST is refused (410). nil when no `wait_for:` step is ahead. For buttons in chat and e-mail.

---The run this step belongs to.
---@type hookflow.Run
run = {}

---@class hookflow.Failure
---@field step string The id of the step that failed (the step running when the run timed out).
---@field error string The first line of its error ("run timed out after 900000ms" for a timeout).
---@field attempt integer Its attempt that failed last (after its retries).

---In `on_failure:` steps only: why the run failed. Not defined in other steps.
---@type hookflow.Failure
failure = {}

---In a workflow with `debounce:` only: every event of the burst, in arrival
---order (`event` is the last of them). Not defined elsewhere.
---@type hookflow.Event[]
events = {}
---In a `wait_for:` step's `if:` only: the request to its path that may resume
---the run (the same fields as `event`, which there is the waiting run's own).
---@type hookflow.Event
signal = {}

---Reads an environment variable of the server.
---@param name string
---@return string|nil value nil when unset
function env(name) end

---Logs its arguments (tostring'ed, joined by spaces) with the step, as info.
---@param ... any
function print(...) end

---Loads NAME.lua from the scripts directory (once per step run) and returns
---what it returns. Nothing else can be loaded.
---@param name string module name, without ".lua"
---@return any
function require(name) end

-- http -------------------------------------------------------------------------

---@class hookflow.HttpRequest
---@field url string http:// or https:// URL.
---@field method? string Default "GET" ("POST" when body or json is given).
---@field headers? table<string, string> Request headers.
---@field body? string Raw request body.
---@field json? any Sent as a JSON body (with Content-Type: application/json).
---@field timeout? string|number Duration ("10s") or seconds; capped by what is left of the step.
---@field follow_redirects? boolean Default false.
---@field max_response? string|integer Largest response body accepted ("1MiB").

---@class hookflow.HttpOptions
---@field headers? table<string, string>
---@field timeout? string|number
---@field follow_redirects? boolean
---@field max_response? string|integer

---@class hookflow.HttpResponse
---@field status integer HTTP status (any status returns; only network failures raise).
---@field headers table<string, string> Response headers, lower-case names.
---@field body string The response body.
---@field json any|nil The body decoded when it is JSON, else nil.

---Outbound HTTP. A network failure or timeout raises an error; any HTTP status returns.
---@class hookflow.http
http = {}

---@param req hookflow.HttpRequest
---@return hookflow.HttpResponse
function http.request(req) end

---@param url string
---@param opts? hookflow.HttpOptions
---@return hookflow.HttpResponse
function http.get(url, opts) end

---A string body is sent as is; a table is sent as JSON.
---@param url string
---@param body string|table
---@param opts? hookflow.HttpOptions
---@return hookflow.HttpResponse
function http.post(url, body, opts) end

-- db ---------------------------------------------------------------------------

---The data database (`--data`: SQLite, or PostgreSQL with `--data postgres://…`).
---Parameters are bound to `?`, never spliced.
---@class hookflow.db
db = {}

---Runs a statement. Returns the number of rows changed.
---@param sql string
---@param ... string|number|boolean|nil parameters for ?
---@return integer changed
function db.exec(sql, ...) end

---Runs a query. Returns every row as a table of column -> value.
---@param sql string
---@param ... string|number|boolean|nil
---@return table<string, any>[] rows
function db.query(sql, ...) end

---Runs a query. Returns its first row, or nil.
---@param sql string
---@param ... string|number|boolean|nil
---@return table<string, any>|nil row
function db.one(sql, ...) end

---Runs fn in a transaction: committed when fn returns, rolled back when it raises.
---@generic T
---@param fn fun(): T
---@return T
function db.tx(fn) end

-- webhook ----------------------------------------------------------------------

---@class hookflow.EmitOptions
---@field secret? string Signs per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature: v1,BASE64); a "whsec_" secret is base64.
---@field headers? table<string, string> Extra request headers.
---@field id? string Idempotency key, 1 to 255 of A-Z a-z 0-9 _ - . : (also the webhook-id): an id already stored is not sent again.
---@field attempts? integer Tries in all before the delivery is marked failed.
---@field backoff? string|number Base of the exponential backoff with jitter.
---@field timeout? string|number Per attempt.

---Outbound webhooks through a durable outbox.
---@class hookflow.webhook
webhook = {}

---Queues a POST of payload (a table is sent as JSON) to url. Delivered only if the
---step succeeds; retried on network errors, timeouts and non-2xx, then failed.
---@param url string
---@param payload string|table
---@param opts? hookflow.EmitOptions
---@return string delivery_id also the webhook-id header
function webhook.emit(url, payload, opts) end

-- json -------------------------------------------------------------------------

---@class hookflow.json_lib
---@field null userdata JSON null: what a null in a decoded array is (object members that are null are nil), and what encodes as null. Indexing it raises "attempt to index json.null (a JSON null)"; tostring gives "json.null".
json = {}

---@param value any
---@return string
function json.encode(value) end

---@class hookflow.DecodeOptions
---@field nulls? boolean Keep object members that are null as json.null (default: nil, absent).

---Decodes JSON text: object members that are null are nil (absent), nulls in
---arrays are json.null (keeping positions), a top-level null is nil.
---@param text string
---@param opts? hookflow.DecodeOptions
---@return any
function json.decode(text, opts) end

---Marks t as a JSON array, so that an empty table encodes as [] rather than {}.
---@generic T: table
---@param t T
---@return T
function json.array(t) end

-- log --------------------------------------------------------------------------

---Lines kept with the step (at most 1000 of 4 KiB), shown by `hookflow show` and the dashboard.
---@class hookflow.log
log = {}

---@param ... any joined with spaces
function log.info(...) end

---@param ... any joined with spaces
function log.warn(...) end

---@param ... any joined with spaces
function log.error(...) end

-- crypto -----------------------------------------------------------------------

---@class hookflow.crypto
crypto = {}

---@param key string
---@param msg string
---@return string hex lower-case hex digest
function crypto.hmac_sha256(key, msg) end

---@param s string
---@return string hex lower-case hex digest
function crypto.sha256(s) end

---@param s string
---@return string
function crypto.base64_encode(s) end

---@param s string
---@return string
function crypto.base64_decode(s) end

-- retry ------------------------------------------------------------------------

---A step sets its own retry. Both functions raise an error that fails this
---attempt (even when caught by pcall: the last call in the step decides).
---@class hookflow.retry
retry = {}

---Fails this attempt; the next one starts no sooner than delay, capped by the
---step's `retry.max_delay` (default 1h). It uses one of the step's `attempts`:
---with none left the step fails with message. A delay that would pass the
---run's `timeout` fails the step at once.
---@param delay number|string seconds, a duration ("30s", "2m") or an HTTP date: a Retry-After header as it is
---@param message? string the step's error (default "retry.after: retry in Ns")
function retry.after(delay, message) end

---Fails the step at once, whatever attempts are left.
---@param message? string the step's error (default "retry.never: no retry")
function retry.never(message) end
