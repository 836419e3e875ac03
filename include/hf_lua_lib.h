/* hf_lua_lib.h - the small Lua globals (docs/reference.md, "Lua"): env(NAME),
 * log.* (and print, which is log.info), crypto.* and retry.*.
 *
 * The log functions append to a per-step array owned by the runtime; everything
 * else is stateless. Used only from the thread that owns the lua_State. */
#ifndef HF_LUA_LIB_H
#define HF_LUA_LIB_H

#include "hf_limits.h"

#include <jansson.h>
#include <lua.h>
#include <stdbool.h>
#include <stdint.h>

/* Where log.* writes. entries is a JSON array of {"level","message","at"} set
 * by the runtime at step start (NULL: lines are dropped). At most
 * HF_STEP_MAX_LOGS entries are kept; the last kept one says that later lines
 * were dropped. */
struct hf_lua_log {
	json_t *entries;
};

/* Pushes the `log` table {info, warn, error} writing to log (which must
 * outlive the state). May raise (memory). */
void hf_lua_open_log(lua_State *L, struct hf_lua_log *log);
/* Pushes a `print` that writes to log like log.info. */
void hf_lua_push_print(lua_State *L, struct hf_lua_log *log);
/* Pushes the `crypto` table {hmac_sha256, sha256, base64_encode,
 * base64_decode}. */
void hf_lua_open_crypto(lua_State *L);
/* Pushes the `env` function: env(NAME) -> the environment variable or nil.
 * Variables named HOOKFLOW_* (the engine's own configuration, such as the
 * admin token) are never visible. */
void hf_lua_push_env(lua_State *L);

/* What retry.after(delay[, message]) or retry.never([message]) asked of the
 * running step (the last call wins); the runtime resets it at step start and
 * reads it when the step ends. Both raise an error with the message, and the
 * attempt fails even when the script catches it. */
enum hf_lua_retry_kind {
	HF_LUA_RETRY_NONE = 0,
	HF_LUA_RETRY_AFTER,
	HF_LUA_RETRY_NEVER,
};
struct hf_lua_retry {
	enum hf_lua_retry_kind kind;
	int64_t delay_ms; /* retry.after's, uncapped */
	char message[HF_RETRY_MESSAGE_MAX];
};
/* Pushes the `retry` table {after, never} writing to r (which must outlive
 * the state). May raise (memory). */
void hf_lua_open_retry(lua_State *L, struct hf_lua_retry *r);

/* Appends one line to log (cut at HF_LOG_LINE_MAX bytes, invalid UTF-8
 * replaced by '?'). Never raises. */
void hf_lua_log_add(struct hf_lua_log *log, const char *level, const char *msg,
		    size_t len);

#endif
