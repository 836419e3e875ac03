/* lua_http.c - the `http` global: outbound HTTP calls from a step (libcurl easy
 * interface).
 *
 * Defaults are the safe ones: TLS verified, redirects not followed unless
 * asked, only http and https, a timeout of HF_HTTP_TIMEOUT_MS capped by what
 * is left of the step, a response body capped at HF_HTTP_MAX_RESPONSE. A
 * network failure raises "http.request: MESSAGE (URL)" with curl's message;
 * any HTTP status is a normal return. Every connection's address (after DNS,
 * on every redirect) is checked against the egress policy (egress.c) in
 * libcurl's open-socket callback, before the socket exists; a refusal raises
 * "http.request: destination ADDRESS refused (RULE) for URL".
 *
 * Lua errors longjmp, so everything a call allocates (header list, body
 * buffers, decoded JSON) lives in a struct owned by a userdata box (see
 * hf_lua_box) created before the first allocation: an error anywhere frees it
 * through the box's __gc. libcurl callbacks never call Lua.
 *
 * Owns one CURL easy handle per runtime (connection reuse across steps).
 * Threading: the runtime's thread only. Neighbours: luart.c (creates it, calls
 * begin_step), lua_json.c (conversions, the box). */
#include "hf_body.h"
#include "hf_egress.h"
#include "hf_limits.h"
#include "hf_lua_http.h"
#include "hf_lua_json.h"
#include "hf_util.h"

#include <ctype.h>
#include <curl/curl.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

struct hf_lua_http {
	CURL *curl;
	int64_t deadline;		/* hf_mono_ms(); 0 = none */
	const struct hf_egress *egress; /* NULL: the default policy */
};

/* What one call holds while it runs; owned by a box on the Lua stack. */
struct req {
	struct curl_slist *headers;
	char *json_body;
	json_t *decoded;
	struct hf_buf body;
	struct hf_buf head;
	bool too_big;
	char errbuf[CURL_ERROR_SIZE];
	const struct hf_egress *egress;
	char refused[160]; /* why the policy refused a connection; "" = not */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct hf_lua_http *hf_lua_http_create(const struct hf_egress *egress)
{
	struct hf_lua_http *h = hf_xcalloc(1, sizeof *h);
	h->egress = egress;
	return h;
}

/* The handle is made on the first request: curl's global set-up loads
 * OpenSSL's providers (about 2 MiB), which a server whose steps never call
 * out does not need. curl_global_init is thread-safe in this curl (7.84+,
 * CURL_VERSION_THREADSAFE); the once keeps it to one call anyway. */
static CURL *easy(struct hf_lua_http *h)
{
	if (!h->curl) {
		pthread_once(&curl_once, curl_init_once);
		h->curl = curl_easy_init();
		if (!h->curl) {
			hf_log(HF_LOG_ERROR, "cannot create a curl handle");
			abort();
		}
	}
	return h->curl;
}

void hf_lua_http_destroy(struct hf_lua_http *h)
{
	if (!h)
		return;
	curl_easy_cleanup(h->curl);
	free(h);
}

void hf_lua_http_begin_step(struct hf_lua_http *h, int64_t deadline_ms)
{
	if (h)
		h->deadline = deadline_ms;
}

static void req_release(void *p)
{
	struct req *r = p;
	curl_slist_free_all(r->headers);
	free(r->json_body);
	json_decref(r->decoded);
	hf_buf_release(&r->body);
	hf_buf_release(&r->head);
	free(r);
}

/* ---- small helpers ---- */

static void format_size(int64_t n, char *out, size_t size)
{
	if (n > 0 && n % (1024 * 1024) == 0)
		snprintf(out, size, "%lld MiB", (long long)(n / (1024 * 1024)));
	else if (n > 0 && n % 1024 == 0)
		snprintf(out, size, "%lld KiB", (long long)(n / 1024));
	else
		snprintf(out, size, "%lld bytes", (long long)n);
}

/* The URL for messages: scheme://host[:port]/path, without user:password@
 * and without the query, which often carry credentials. */
static void safe_url(const char *url, char *out, size_t size)
{
	const char *p = strstr(url, "://");
	size_t scheme = p ? (size_t)(p - url) + 3 : 0;
	const char *auth = url + scheme;
	size_t alen = strcspn(auth, "/?#");
	const char *at = memchr(auth, '@', alen);
	const char *host = at ? at + 1 : auth;
	size_t hlen = alen - (size_t)(host - auth);
	const char *path = auth + alen;
	size_t plen = strcspn(path, "?#");
	snprintf(out, size, "%.*s%.*s%.*s%s", (int)scheme, url, (int)hlen, host,
		 (int)plen, path, path[plen] == '?' ? "?..." : "");
}

static bool has_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return true;
	return false;
}

static bool is_http_url(const char *url)
{
	return strncasecmp(url, "http://", 7) == 0 ||
	       strncasecmp(url, "https://", 8) == 0;
}

/* Reads a duration option: a number of seconds or a string like "500ms". */
static int64_t opt_duration(lua_State *L, int t, const char *name, int64_t def)
{
	int64_t ms = def;
	int type = lua_getfield(L, t, name);
	if (type == LUA_TNUMBER) {
		lua_Number v = lua_tonumber(L, -1);
		if (!(v > 0 && v < 86400.0 * 365))
			luaL_error(L, "http.request: %s must be positive",
				   name);
		ms = (int64_t)(v * 1000);
		if (ms < 1)
			ms = 1;
	} else if (type == LUA_TSTRING) {
		if (hf_parse_duration(lua_tostring(L, -1), &ms) < 0 || ms <= 0)
			luaL_error(L,
				   "http.request: invalid %s '%s' (expected "
				   "e.g. 500ms, 10s)",
				   name, lua_tostring(L, -1));
	} else if (type != LUA_TNIL) {
		luaL_error(L, "http.request: %s must be a number or a string",
			   name);
	}
	lua_pop(L, 1);
	return ms;
}

static int64_t opt_size(lua_State *L, int t, const char *name, int64_t def)
{
	int64_t n = def;
	int type = lua_getfield(L, t, name);
	if (type == LUA_TNUMBER && lua_isinteger(L, -1)) {
		n = lua_tointeger(L, -1);
	} else if (type == LUA_TSTRING) {
		if (hf_parse_size(lua_tostring(L, -1), &n) < 0)
			luaL_error(L,
				   "http.request: invalid %s '%s' (expected "
				   "e.g. 64KiB, 10MiB)",
				   name, lua_tostring(L, -1));
	} else if (type != LUA_TNIL) {
		luaL_error(L, "http.request: %s must be an integer or a size",
			   name);
	}
	if (n < 1 || n > HF_LUA_MEMORY)
		luaL_error(L, "http.request: %s must be 1 byte to %d MiB", name,
			   (int)(HF_LUA_MEMORY / (1024 * 1024)));
	lua_pop(L, 1);
	return n;
}

/* ---- libcurl callbacks (no Lua in here) ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct req *r = ud;
	if (hf_buf_append(&r->body, p, size * n) < 0) {
		r->too_big = true;
		return 0;
	}
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct req *r = ud;
	size_t len = size * n;
	/* A new status line starts a new response (a redirect followed). */
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		r->head.len = 0;
		if (r->head.data)
			r->head.data[0] = '\0';
		return len;
	}
	/* Past the cap, further headers are dropped, not fatal. */
	hf_buf_append(&r->head, p, len);
	return len;
}

/* Opens a connection's socket only when the policy allows its address;
 * refusing here means nothing was sent. */
static curl_socket_t on_open(void *ud, curlsocktype purpose,
			     struct curl_sockaddr *a)
{
	struct req *r = ud;
	(void)purpose;
	if (!r || !hf_egress_check(r->egress, &a->addr, a->addrlen, r->refused,
				   sizeof r->refused))
		return CURL_SOCKET_BAD;
	return socket(a->family, a->socktype, a->protocol);
}

/* ---- building the response ---- */

/* Pushes the response headers as a table: lower-case names, values trimmed,
 * repeated headers joined with ", ". Returns the content type (in r->head)
 * through *ctype, or NULL. */
static void push_headers(lua_State *L, struct req *r, const char **ctype)
{
	lua_newtable(L);
	*ctype = NULL;
	char *s = r->head.data;
	if (!s)
		return;
	while (*s) {
		char *eol = strchr(s, '\n');
		char *next = eol ? eol + 1 : s + strlen(s);
		if (eol) {
			*eol = '\0';
			if (eol > s && eol[-1] == '\r')
				eol[-1] = '\0';
		}
		char *colon = strchr(s, ':');
		if (colon && colon > s) {
			*colon = '\0';
			for (char *c = s; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			char *v = colon + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t vl = strlen(v);
			while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				v[--vl] = '\0';
			if (strcmp(s, "content-type") == 0)
				*ctype = v;
			if (lua_getfield(L, -1, s) == LUA_TSTRING) {
				lua_pushliteral(L, ", ");
				lua_pushlstring(L, v, vl);
				lua_concat(L, 3);
			} else {
				lua_pop(L, 1);
				lua_pushlstring(L, v, vl);
			}
			lua_setfield(L, -2, s);
		}
		s = next;
	}
}

/* ---- the call ---- */

/* The options of one call. url and body point into strings the call keeps on
 * the Lua stack; shown is the url for messages (see safe_url). */
struct opts {
	const char *url;
	char shown[512];
	const char *body; /* NULL: none */
	size_t blen;
	char method[16];
	int64_t timeout;
	int64_t max;
	bool follow;
	bool capped; /* the timeout is what is left of the step */
};

/* Reads url; leaves it on the stack. */
static void read_url(lua_State *L, int t, struct opts *o)
{
	if (lua_getfield(L, t, "url") != LUA_TSTRING)
		luaL_error(L, "http.request: url must be a string");
	o->url = lua_tostring(L, -1);
	safe_url(o->url, o->shown, sizeof o->shown);
	if (!is_http_url(o->url))
		luaL_error(L,
			   "http.request: url must start with http:// "
			   "or https:// (%s)",
			   o->shown);
}

/* Body: a string as is, or `json` (any JSON-shaped value) encoded into
 * r->json_body. Leaves both fields on the stack. */
static void read_body(lua_State *L, int t, struct req *r, struct opts *o)
{
	o->body = NULL;
	o->blen = 0;
	int btype = lua_getfield(L, t, "body");
	int jtype = lua_getfield(L, t, "json");
	if (btype != LUA_TNIL && jtype != LUA_TNIL)
		luaL_error(L, "http.request: give body or json, not both");
	if (btype != LUA_TNIL) {
		if (btype != LUA_TSTRING)
			luaL_error(L, "http.request: body must be a string "
				      "(use json= for tables)");
		o->body = lua_tolstring(L, -2, &o->blen);
	} else if (jtype != LUA_TNIL) {
		char err[256];
		json_t *j = hf_lua_to_json(L, -1, "json", err, sizeof err);
		if (!j)
			luaL_error(L, "http.request: %s", err);
		r->json_body = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(j);
		if (!r->json_body)
			luaL_error(L, "http.request: cannot encode json");
		o->body = r->json_body;
		o->blen = strlen(o->body);
	}
}

/* method, upper-cased; POST with a body, GET without by default. */
static void read_method(lua_State *L, int t, struct opts *o)
{
	if (lua_getfield(L, t, "method") == LUA_TSTRING) {
		size_t ml;
		const char *m = lua_tolstring(L, -1, &ml);
		if (ml == 0 || ml >= sizeof o->method)
			luaL_error(L, "http.request: invalid method");
		for (size_t i = 0; i <= ml && i < sizeof o->method; i++)
			o->method[i] = (char)toupper((unsigned char)m[i]);
		if (!hf_http_token(o->method))
			luaL_error(L, "http.request: invalid method '%s'", m);
	} else if (!lua_isnil(L, -1)) {
		luaL_error(L, "http.request: method must be a string");
	} else {
		snprintf(o->method, sizeof o->method, "%s",
			 o->body ? "POST" : "GET");
	}
	lua_pop(L, 1);
}

/* Appends one header of the table at the top (key at -2, value at -1) to
 * r->headers. Returns whether it is a Content-Type. */
static bool add_header(lua_State *L, struct req *r)
{
	if (lua_type(L, -2) != LUA_TSTRING ||
	    !hf_http_token(lua_tostring(L, -2)))
		luaL_error(L, "http.request: header names must be tokens");
	const char *name = lua_tostring(L, -2);
	if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
		luaL_error(L, "http.request: header '%s' must be a string",
			   name);
	size_t vl;
	const char *v = lua_tolstring(L, -1, &vl);
	if (has_ctl(v, vl))
		luaL_error(L, "http.request: header '%s' contains a line break",
			   name);
	/* "Name;" is curl's way to send an empty value. */
	const char *line = vl ? lua_pushfstring(L, "%s: %s", name, v)
			      : lua_pushfstring(L, "%s;", name);
	struct curl_slist *l = curl_slist_append(r->headers, line);
	if (!l)
		luaL_error(L, "http.request: out of memory");
	r->headers = l;
	lua_pop(L, 1);
	return strcasecmp(name, "content-type") == 0;
}

/* Builds r->headers: the `headers` table, then the fixed ones and a
 * Content-Type when the caller gave none. */
static void read_headers(lua_State *L, int t, struct req *r)
{
	bool has_ctype = false;
	int htype = lua_getfield(L, t, "headers");
	if (htype == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			if (add_header(L, r))
				has_ctype = true;
			lua_pop(L, 1);
		}
	} else if (htype != LUA_TNIL) {
		luaL_error(L, "http.request: headers must be a table");
	}
	lua_pop(L, 1);
	static const char *const fixed[] = {
	    "Expect:", /* no 100-continue round trip */
	};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		r->headers = curl_slist_append(r->headers, fixed[i]);
	if (!has_ctype)
		r->headers = curl_slist_append(r->headers,
					       r->json_body ? "Content-Type: "
							      "application/json"
							    : "Content-Type:");
	if (!r->headers)
		luaL_error(L, "http.request: out of memory");
}

/* timeout (capped by what is left of the step), max_response,
 * follow_redirects. */
static void read_limits(lua_State *L, struct hf_lua_http *h, int t,
			struct opts *o)
{
	o->timeout = opt_duration(L, t, "timeout", HF_HTTP_TIMEOUT_MS);
	o->max = opt_size(L, t, "max_response", HF_HTTP_MAX_RESPONSE);
	lua_getfield(L, t, "follow_redirects");
	o->follow = lua_toboolean(L, -1);
	lua_pop(L, 1);
	o->capped = false;
	if (h->deadline) {
		int64_t left = h->deadline - hf_mono_ms();
		if (left < 1)
			left = 1;
		if (left < o->timeout) {
			o->timeout = left;
			o->capped = true;
		}
	}
}

/* The method and body options of the handle. */
static void set_method(CURL *c, const struct opts *o)
{
	const char *m = o->method;
	if (o->body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)o->blen);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body);
		if (strcmp(m, "POST") != 0)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
	} else if (strcmp(m, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(m, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
		   strcmp(m, "PATCH") == 0) {
		/* An empty body, with Content-Length: 0. */
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		if (strcmp(m, "POST") != 0)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
	}
}

/* Resets the handle and sets it up for the call (no Lua in here). */
static void set_request(CURL *c, struct req *r, const struct opts *o)
{
	r->body.max = (size_t)o->max;
	r->head.max = HF_HTTP_MAX_HEADERS;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, o->url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, o->follow ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)HF_HTTP_MAX_REDIRECTS);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)o->timeout);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "hookflow");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_open);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, r);
	set_method(c, o);
}

/* Performs the call; raises on a network failure or a body over the cap. */
static void perform(lua_State *L, CURL *c, struct req *r, const struct opts *o)
{
	CURLcode rc = curl_easy_perform(c);
	/* Nothing of r may be referenced by the handle once we return. */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, NULL);
	if (rc != CURLE_OK && r->refused[0])
		luaL_error(L, "http.request: %s for %s", r->refused, o->shown);
	if (r->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		char sz[32];
		format_size(o->max, sz, sizeof sz);
		luaL_error(L, "http.request: response larger than %s (%s)", sz,
			   o->shown);
	}
	if (rc != CURLE_OK) {
		const char *what = curl_easy_strerror(rc);
		const char *hint = rc == CURLE_OPERATION_TIMEDOUT && o->capped
				       ? "; the step's time is up"
				       : "";
		if (r->errbuf[0] && strcmp(r->errbuf, what) != 0)
			luaL_error(L, "http.request: %s (%s): %s%s", what,
				   o->shown, r->errbuf, hint);
		luaL_error(L, "http.request: %s (%s)%s", what, o->shown, hint);
	}
}

/* Pushes the response table: status, headers, body and, for a JSON content
 * type with a valid body, json. */
static void push_response(lua_State *L, CURL *c, struct req *r)
{
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	lua_createtable(L, 0, 4);
	int res = lua_gettop(L);
	lua_pushinteger(L, status);
	lua_setfield(L, res, "status");
	const char *ctype;
	push_headers(L, r, &ctype);
	lua_setfield(L, res, "headers");
	lua_pushlstring(L, r->body.data ? r->body.data : "", r->body.len);
	lua_setfield(L, res, "body");
	if (r->body.len && hf_body_kind_of(ctype) == HF_BODY_JSON) {
		char err[256];
		/* An invalid JSON body leaves json nil: body has the text. */
		if (hf_json_parse(r->body.data, r->body.len, &r->decoded, err,
				  sizeof err) == 0) {
			hf_lua_push_json(L, r->decoded);
			lua_setfield(L, res, "json");
		}
	}
}

/* Performs the request described by the options table at index t. Pushes the
 * response table. Everything allocated lives in r, owned by the box. */
static int do_request(lua_State *L, struct hf_lua_http *h, int t)
{
	t = lua_absindex(L, t);
	void **box = hf_lua_box(L, req_release);
	struct req *r = hf_xcalloc(1, sizeof *r);
	*box = r;
	r->egress = h->egress;
	struct opts o;
	read_url(L, t, &o);
	read_body(L, t, r, &o);
	read_method(L, t, &o);
	read_headers(L, t, r);
	read_limits(L, h, t, &o);
	set_request(easy(h), r, &o);
	perform(L, h->curl, r, &o);
	push_response(L, h->curl, r);
	*box = NULL;
	req_release(r);
	return 1;
}

static struct hf_lua_http *get_http(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

/* http.request{...} */
static int l_request(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	return do_request(L, get_http(L), 1);
}

/* Copies the options table at idx (may be nil) into a new table on top. */
static void copy_opts(lua_State *L, int idx, const char *fn)
{
	lua_newtable(L);
	if (lua_isnoneornil(L, idx))
		return;
	if (!lua_istable(L, idx))
		luaL_error(L, "%s: options must be a table", fn);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_settable(L, -4);
	}
}

/* http.get(url[, opts]) */
static int l_get(lua_State *L)
{
	luaL_checkstring(L, 1);
	lua_settop(L, 2);
	copy_opts(L, 2, "http.get");
	lua_pushvalue(L, 1);
	lua_setfield(L, -2, "url");
	lua_getfield(L, -1, "method");
	if (lua_isnil(L, -1)) {
		lua_pushliteral(L, "GET");
		lua_setfield(L, -3, "method");
	}
	lua_pop(L, 1);
	return do_request(L, get_http(L), -1);
}

/* http.post(url, body_or_table[, opts]): a string is sent as is, anything
 * else as JSON. */
static int l_post(lua_State *L)
{
	luaL_checkstring(L, 1);
	lua_settop(L, 3);
	copy_opts(L, 3, "http.post");
	lua_pushvalue(L, 1);
	lua_setfield(L, -2, "url");
	if (lua_type(L, 2) == LUA_TSTRING) {
		lua_pushvalue(L, 2);
		lua_setfield(L, -2, "body");
	} else if (!lua_isnil(L, 2)) {
		lua_pushvalue(L, 2);
		lua_setfield(L, -2, "json");
	}
	lua_getfield(L, -1, "method");
	if (lua_isnil(L, -1)) {
		lua_pushliteral(L, "POST");
		lua_setfield(L, -3, "method");
	}
	lua_pop(L, 1);
	return do_request(L, get_http(L), -1);
}

void hf_lua_open_http(lua_State *L, struct hf_lua_http *h)
{
	static const luaL_Reg fns[] = {
	    {"request", l_request},
	    {"get", l_get},
	    {"post", l_post},
	    {NULL, NULL},
	};
	lua_createtable(L, 0, 3);
	lua_pushlightuserdata(L, h);
	luaL_setfuncs(L, fns, 1);
}
