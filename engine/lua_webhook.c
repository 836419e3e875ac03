/* lua_webhook.c - the `webhook` global: webhook.emit(url, payload[, opts]).
 *
 * emit validates everything up front (url, payload size, options) so that a
 * mistake fails the step at the call, not a day later in the outbox; it
 * returns the delivery id, which is also the `webhook-id` header of every
 * attempt. Options: secret (Standard Webhooks signing; "whsec_" + base64 or
 * raw bytes), headers, id (an idempotency key: an id already stored is not
 * sent again), attempts (1..HF_DELIVERY_MAX_ATTEMPTS, default
 * HF_DELIVERY_ATTEMPTS on the default schedule), backoff (exponential with
 * full jitter from this base instead of the default schedule), timeout (per
 * attempt, default HF_DELIVERY_TIMEOUT_MS).
 *
 * The emit being built lives in a userdata box until it is queued, so an
 * error raised half-way frees it. Owns the queue of emits of the running
 * step. Threading: the runtime's thread only. Neighbours: luart.c (creates
 * it, takes or discards the queue), outbox.c (sends what the store kept). */
#include "hf_limits.h"
#include "hf_lua_json.h"
#include "hf_lua_webhook.h"
#include "hf_verify.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct hf_lua_webhook {
	struct hf_emit *items;
	size_t n, cap;
};

struct hf_lua_webhook *hf_lua_webhook_create(void)
{
	return hf_xcalloc(1, sizeof(struct hf_lua_webhook));
}

void hf_lua_webhook_discard(struct hf_lua_webhook *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++)
		hf_emit_release(&w->items[i]);
	w->n = 0;
}

void hf_lua_webhook_destroy(struct hf_lua_webhook *w)
{
	if (!w)
		return;
	hf_lua_webhook_discard(w);
	free(w->items);
	free(w);
}

void hf_lua_webhook_take(struct hf_lua_webhook *w, struct hf_emit **out,
			 size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!w || w->n == 0)
		return;
	*out = w->items;
	*n = w->n;
	w->items = NULL;
	w->n = w->cap = 0;
}

static void emit_free(void *p)
{
	hf_emit_release(p);
	free(p);
}

static bool valid_url(const char *s, size_t n)
{
	if (n > HF_EMIT_URL_MAX || !(strncasecmp(s, "http://", 7) == 0 ||
				     strncasecmp(s, "https://", 8) == 0))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return false;
	const char *host = s + (s[4] == ':' ? 7 : 8);
	return *host && *host != '/';
}

static bool valid_id(const char *s, size_t n)
{
	if (n == 0 || n > HF_EMIT_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_-.:", s[i]))
			return false;
	return true;
}

/* Headers hookflow sets itself, or that would break the request. */
static bool reserved_header(const char *name)
{
	static const char *const names[] = {
	    "webhook-id",
	    "webhook-timestamp",
	    "webhook-signature",
	    "content-length",
	    "host",
	    "transfer-encoding",
	    "connection",
	    "expect",
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

static int64_t opt_duration(lua_State *L, int t, const char *name, int64_t def,
			    int64_t max)
{
	int64_t ms = def;
	int type = lua_getfield(L, t, name);
	if (type == LUA_TNUMBER) {
		lua_Number v = lua_tonumber(L, -1);
		if (!(v > 0 && v * 1000 <= (lua_Number)max))
			luaL_error(L, "webhook.emit: %s out of range", name);
		ms = (int64_t)(v * 1000);
	} else if (type == LUA_TSTRING) {
		if (hf_parse_duration(lua_tostring(L, -1), &ms) < 0)
			luaL_error(L,
				   "webhook.emit: invalid %s '%s' (expected "
				   "e.g. 500ms, 30s)",
				   name, lua_tostring(L, -1));
	} else if (type != LUA_TNIL) {
		luaL_error(L, "webhook.emit: %s must be a duration", name);
	}
	if (ms < 1 || ms > max)
		luaL_error(L, "webhook.emit: %s out of range", name);
	lua_pop(L, 1);
	return ms;
}

/* Reads opts.headers (table at the top) into e->headers. */
static void read_headers(lua_State *L, struct hf_emit *e)
{
	e->headers = json_object();
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		if (lua_type(L, -2) != LUA_TSTRING ||
		    !hf_http_token(lua_tostring(L, -2)))
			luaL_error(L, "webhook.emit: header names must be "
				      "tokens");
		const char *name = lua_tostring(L, -2);
		if (reserved_header(name))
			luaL_error(L,
				   "webhook.emit: header '%s' is set by "
				   "hookflow",
				   name);
		char num[64];
		const char *v;
		size_t vl;
		if (lua_type(L, -1) == LUA_TSTRING) {
			v = lua_tolstring(L, -1, &vl);
		} else if (lua_isinteger(L, -1)) {
			snprintf(num, sizeof num, "%lld",
				 (long long)lua_tointeger(L, -1));
			v = num;
			vl = strlen(num);
		} else {
			luaL_error(L,
				   "webhook.emit: header '%s' must be a "
				   "string",
				   name);
			return;
		}
		for (size_t i = 0; i < vl; i++)
			if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
				luaL_error(L,
					   "webhook.emit: header '%s' contains "
					   "a line break",
					   name);
		json_t *js = json_stringn_nocheck(v, vl);
		if (!js || json_object_set_new(e->headers, name, js) < 0)
			luaL_error(L,
				   "webhook.emit: header '%s' is not "
				   "valid UTF-8",
				   name);
		lua_pop(L, 1);
	}
}

static void read_opts(lua_State *L, int t, struct hf_emit *e)
{
	size_t n;
	const char *s;
	if (lua_getfield(L, t, "secret") == LUA_TSTRING) {
		s = lua_tolstring(L, -1, &n);
		if (n == 0)
			luaL_error(L, "webhook.emit: secret is empty");
		if (strncmp(s, "whsec_", 6) == 0) {
			size_t klen;
			unsigned char *key =
			    hf_base64_decode(s + 6, n - 6, &klen);
			bool ok = key && klen > 0;
			free(key);
			if (!ok)
				luaL_error(L,
					   "webhook.emit: a whsec_ secret "
					   "must be base64 after the prefix");
		}
		e->secret = hf_xstrndup(s, n);
	} else if (!lua_isnil(L, -1)) {
		luaL_error(L, "webhook.emit: secret must be a string");
	}
	lua_pop(L, 1);

	int type = lua_getfield(L, t, "headers");
	if (type == LUA_TTABLE)
		read_headers(L, e);
	else if (type != LUA_TNIL)
		luaL_error(L, "webhook.emit: headers must be a table");
	lua_pop(L, 1);

	if (lua_getfield(L, t, "id") == LUA_TSTRING) {
		s = lua_tolstring(L, -1, &n);
		if (!valid_id(s, n))
			luaL_error(L,
				   "webhook.emit: id must be 1 to %d letters, "
				   "digits or _-.:",
				   HF_EMIT_ID_MAX);
		memcpy(e->id, s, n);
		e->id[n] = '\0';
	} else if (!lua_isnil(L, -1)) {
		luaL_error(L, "webhook.emit: id must be a string");
	}
	lua_pop(L, 1);

	if (lua_getfield(L, t, "attempts") != LUA_TNIL) {
		int isint = 0;
		lua_Integer a = lua_tointegerx(L, -1, &isint);
		if (!isint || a < 1 || a > HF_DELIVERY_MAX_ATTEMPTS)
			luaL_error(L,
				   "webhook.emit: attempts must be an integer "
				   "from 1 to %d",
				   HF_DELIVERY_MAX_ATTEMPTS);
		e->attempts = (int)a;
	}
	lua_pop(L, 1);

	lua_getfield(L, t, "backoff");
	bool has_backoff = !lua_isnil(L, -1);
	lua_pop(L, 1);
	if (has_backoff)
		e->backoff_ms = opt_duration(L, t, "backoff", 0,
					     HF_DELIVERY_MAX_BACKOFF_MS);
	e->timeout_ms = opt_duration(L, t, "timeout", HF_DELIVERY_TIMEOUT_MS,
				     10 * 60 * 1000);
}

/* Converts the payload at index 2 to text in e->payload. */
static void read_payload(lua_State *L, struct hf_emit *e)
{
	size_t n;
	if (lua_type(L, 2) == LUA_TSTRING) {
		const char *s = lua_tolstring(L, 2, &n);
		if (memchr(s, '\0', n))
			luaL_error(L, "webhook.emit: payload contains a NUL "
				      "byte");
		e->payload = hf_xstrndup(s, n);
	} else {
		char err[256];
		if (lua_isnoneornil(L, 2))
			luaL_error(L, "webhook.emit: payload is missing");
		json_t *j = hf_lua_to_json(L, 2, "payload", err, sizeof err);
		if (!j)
			luaL_error(L, "webhook.emit: %s", err);
		e->payload = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(j);
		if (!e->payload)
			luaL_error(L, "webhook.emit: cannot encode payload");
		n = strlen(e->payload);
	}
	if (n > HF_EMIT_MAX_PAYLOAD)
		luaL_error(L, "webhook.emit: payload is %d bytes, limit %d",
			   (int)n, HF_EMIT_MAX_PAYLOAD);
}

/* webhook.emit(url, payload[, opts]) -> delivery id */
static int l_emit(lua_State *L)
{
	struct hf_lua_webhook *w = lua_touserdata(L, lua_upvalueindex(1));
	size_t ulen;
	const char *url = luaL_checklstring(L, 1, &ulen);
	lua_settop(L, 3);
	if (!valid_url(url, ulen))
		return luaL_error(L, "webhook.emit: url must be http:// or "
				     "https:// followed by a host");
	if (!lua_isnil(L, 3))
		luaL_checktype(L, 3, LUA_TTABLE);
	if (w->n >= HF_EMIT_MAX_PER_STEP)
		return luaL_error(L,
				  "webhook.emit: more than %d emits in one "
				  "step",
				  HF_EMIT_MAX_PER_STEP);

	void **box = hf_lua_box(L, emit_free);
	struct hf_emit *e = hf_xcalloc(1, sizeof *e);
	*box = e;
	e->attempts = HF_DELIVERY_ATTEMPTS;
	e->timeout_ms = HF_DELIVERY_TIMEOUT_MS;
	if (!lua_isnil(L, 3))
		read_opts(L, 3, e);
	read_payload(L, e);
	e->url = hf_xstrndup(url, ulen);
	if (!e->id[0])
		hf_id_new(e->id, "dl");

	/* Queue it: nothing below raises. */
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 8;
		w->items = hf_xrealloc(w->items, w->cap * sizeof *w->items);
	}
	w->items[w->n++] = *e;
	free(e);
	*box = NULL;
	lua_pushstring(L, w->items[w->n - 1].id);
	return 1;
}

void hf_lua_open_webhook(lua_State *L, struct hf_lua_webhook *w)
{
	lua_createtable(L, 0, 1);
	lua_pushlightuserdata(L, w);
	lua_pushcclosure(L, l_emit, 1);
	lua_setfield(L, -2, "emit");
}
