/* lua_lib.c - the env, log (and print), crypto and retry globals.
 *
 * Owns the formatting and capping of step log lines and the Lua face of the
 * hashing and base64 primitives (which live in verify.c). It does not own the
 * sandbox (luart.c). C resources held across calls that may raise live in boxes
 * (hf_lua_box). Threading: one lua_State per thread; the log array belongs to
 * the runtime of that thread. */
#include "hf_limits.h"
#include "hf_lua_json.h"
#include "hf_lua_lib.h"
#include "hf_util.h"
#include "hf_verify.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- log ---- */

void hf_lua_log_add(struct hf_lua_log *log, const char *level, const char *msg,
		    size_t len)
{
	char line[HF_LOG_LINE_MAX + 1];
	if (!log || !log->entries)
		return;
	size_t count = json_array_size(log->entries);
	if (count >= HF_STEP_MAX_LOGS)
		return;
	if (count == HF_STEP_MAX_LOGS - 1) {
		level = "warn";
		msg = "log limit reached: later lines of this step are dropped";
		len = strlen(msg);
	}
	size_t n = 0;
	const unsigned char *s = (const unsigned char *)msg;
	size_t i = 0;
	while (i < len && n < HF_LOG_LINE_MAX) {
		size_t k = hf_utf8_len(s + i, len - i, NULL);
		if (k == 0) {
			line[n++] = '?';
			i++;
		} else if (n + k > HF_LOG_LINE_MAX) {
			break; /* cut at a character boundary */
		} else {
			memcpy(line + n, s + i, k);
			n += k;
			i += k;
		}
	}
	json_t *e = json_object();
	json_object_set_new(e, "level", json_string(level));
	json_object_set_new(e, "message", json_stringn(line, n));
	json_object_set_new(e, "at", json_integer(hf_now_ms()));
	json_array_append_new(log->entries, e);
}

/* Joins the arguments, tostring'ed, with spaces, into a bounded line. */
static int log_at(lua_State *L, const char *level)
{
	struct hf_lua_log *log = lua_touserdata(L, lua_upvalueindex(1));
	char line[HF_LOG_LINE_MAX + 1];
	size_t n = 0;
	int nargs = lua_gettop(L);
	for (int i = 1; i <= nargs; i++) {
		size_t len;
		const char *s = luaL_tolstring(L, i, &len);
		if (i > 1 && n < HF_LOG_LINE_MAX)
			line[n++] = ' ';
		size_t room = HF_LOG_LINE_MAX - n;
		size_t take = len < room ? len : room;
		memcpy(line + n, s, take);
		n += take;
		lua_pop(L, 1);
	}
	hf_lua_log_add(log, level, line, n);
	return 0;
}

static int l_info(lua_State *L)
{
	return log_at(L, "info");
}

static int l_warn(lua_State *L)
{
	return log_at(L, "warn");
}

static int l_error(lua_State *L)
{
	return log_at(L, "error");
}

static const luaL_Reg log_funcs[] = {
    {"info", l_info},
    {"warn", l_warn},
    {"error", l_error},
    {NULL, NULL},
};

void hf_lua_open_log(lua_State *L, struct hf_lua_log *log)
{
	luaL_newlibtable(L, log_funcs);
	lua_pushlightuserdata(L, log);
	luaL_setfuncs(L, log_funcs, 1);
}

void hf_lua_push_print(lua_State *L, struct hf_lua_log *log)
{
	lua_pushlightuserdata(L, log);
	lua_pushcclosure(L, l_info, 1);
}

/* ---- env ---- */

static int l_env(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const char *v = NULL;
	if (strncmp(name, "HOOKFLOW_", 9) != 0)
		v = getenv(name);
	if (v)
		lua_pushstring(L, v);
	else
		lua_pushnil(L);
	return 1;
}

void hf_lua_push_env(lua_State *L)
{
	lua_pushcfunction(L, l_env);
}

/* ---- crypto ---- */

/* Pushes a SHA-256 digest (or HMAC) as lower-case hex. */
static int push_hex32(lua_State *L, const unsigned char md[32])
{
	char hex[65];
	hf_hex_encode(md, 32, hex);
	lua_pushstring(L, hex);
	return 1;
}

static int l_hmac_sha256(lua_State *L)
{
	size_t klen, mlen;
	const char *key = luaL_checklstring(L, 1, &klen);
	const char *msg = luaL_checklstring(L, 2, &mlen);
	unsigned char mac[32];
	hf_hmac_sha256(key, klen, msg, mlen, mac);
	return push_hex32(L, mac);
}

static int l_sha256(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	unsigned char md[32];
	hf_sha256(s, len, md);
	return push_hex32(L, md);
}

static int l_base64_encode(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	void **box = hf_lua_box(L, free);
	char *out = hf_base64_encode(s, len);
	*box = out;
	lua_pushstring(L, out);
	free(out);
	*box = NULL;
	return 1;
}

static int l_base64_decode(lua_State *L)
{
	size_t len, outlen = 0;
	const char *s = luaL_checklstring(L, 1, &len);
	void **box = hf_lua_box(L, free);
	unsigned char *out = hf_base64_decode(s, len, &outlen);
	if (!out)
		return luaL_error(L, "crypto.base64_decode: input is not "
				     "base64");
	*box = out;
	lua_pushlstring(L, (const char *)out, outlen);
	free(out);
	*box = NULL;
	return 1;
}

static const luaL_Reg crypto_funcs[] = {
    {"hmac_sha256", l_hmac_sha256},
    {"sha256", l_sha256},
    {"base64_encode", l_base64_encode},
    {"base64_decode", l_base64_decode},
    {NULL, NULL},
};

void hf_lua_open_crypto(lua_State *L)
{
	luaL_newlib(L, crypto_funcs);
}

/* ---- retry ---- */

static void format_delay(int64_t ms, char *out, size_t size)
{
	if (ms % 1000 == 0)
		snprintf(out, size, "%llds", (long long)(ms / 1000));
	else
		snprintf(out, size, "%lldms", (long long)ms);
}

/* retry.after's delay (argument 1) in ms: a number of seconds, or a string
 * as hf_parse_retry_after takes it. Raises on anything else. */
static int64_t delay_arg(lua_State *L)
{
	char shown[HF_RETRY_AFTER_MAX + 1];
	int64_t ms;
	if (lua_type(L, 1) == LUA_TNUMBER) {
		lua_Number v = lua_tonumber(L, 1);
		if (v != v)
			luaL_error(L, "retry.after: the delay is not a number "
				      "(nan)");
		if (v < 0)
			luaL_error(L, "retry.after: negative delay (%f s)",
				   (double)v);
		return v > 1e12 ? (int64_t)1e15 : (int64_t)(v * 1000);
	}
	if (lua_type(L, 1) != LUA_TSTRING)
		luaL_error(L,
			   "retry.after: the delay must be a number of seconds "
			   "or a string (got %s)",
			   lua_isnone(L, 1) ? "nil" : luaL_typename(L, 1));
	const char *s = lua_tostring(L, 1);
	snprintf(shown, sizeof shown, "%s", s);
	if (hf_parse_retry_after(s, hf_now_ms(), &ms) == 0)
		return ms;
	if (s[strspn(s, " \t")] == '-')
		luaL_error(L, "retry.after: negative delay '%s'", shown);
	return luaL_error(L,
			  "retry.after: invalid delay '%s' (expected seconds, "
			  "a duration such as 30s or 2m, or an HTTP date)",
			  shown);
}

/* Records the request and raises its message at the caller's line. */
static int retry_raise(lua_State *L, enum hf_lua_retry_kind kind,
		       int64_t delay_ms, const char *msg)
{
	struct hf_lua_retry *r = lua_touserdata(L, lua_upvalueindex(1));
	r->kind = kind;
	r->delay_ms = delay_ms;
	snprintf(r->message, sizeof r->message, "%s", msg);
	luaL_where(L, 1);
	lua_pushstring(L, msg);
	lua_concat(L, 2);
	return lua_error(L);
}

static int l_retry_after(lua_State *L)
{
	int64_t ms = delay_arg(L);
	const char *msg = luaL_optstring(L, 2, NULL);
	char d[32], dflt[64];
	if (!msg) {
		format_delay(ms, d, sizeof d);
		snprintf(dflt, sizeof dflt, "retry.after: retry in %s", d);
		msg = dflt;
	}
	return retry_raise(L, HF_LUA_RETRY_AFTER, ms, msg);
}

static int l_retry_never(lua_State *L)
{
	const char *msg = luaL_optstring(L, 1, "retry.never: no retry");
	return retry_raise(L, HF_LUA_RETRY_NEVER, 0, msg);
}

static const luaL_Reg retry_funcs[] = {
    {"after", l_retry_after},
    {"never", l_retry_never},
    {NULL, NULL},
};

void hf_lua_open_retry(lua_State *L, struct hf_lua_retry *r)
{
	luaL_newlibtable(L, retry_funcs);
	lua_pushlightuserdata(L, r);
	luaL_setfuncs(L, retry_funcs, 1);
}
