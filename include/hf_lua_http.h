/* hf_lua_http.h - the `http` global: outbound HTTP calls from Lua (libcurl).
 *
 * http.request{method=, url=, headers=, body=, json=, timeout=,
 * follow_redirects=, max_response=} -> {status=, headers=, body=, json=};
 * http.get(url[, opts]); http.post(url, body_or_table[, opts]).
 *
 * One reusable curl easy handle per runtime, so connections stay alive across
 * the steps a worker runs. Every connection is checked against the egress
 * policy (hf_egress.h) on the address connected to. A call waits at most
 * HF_HTTP_TIMEOUT_MS (or its `timeout`) and never past the step's deadline.
 * Network failures raise a Lua error with curl's message; any HTTP status
 * returns normally.
 *
 * <curl/curl.h> is included by lua_http.c and outbox.c only. Used only from the
 * thread that owns the runtime. */
#ifndef HF_LUA_HTTP_H
#define HF_LUA_HTTP_H

#include <lua.h>
#include <stdint.h>

struct hf_lua_http;

struct hf_egress;

/* Returns a client (never NULL: allocation failures abort) whose connections
 * egress allows (NULL: the default policy; it must outlive the client). */
struct hf_lua_http *hf_lua_http_create(const struct hf_egress *egress);
void hf_lua_http_destroy(struct hf_lua_http *h); /* accepts NULL */

/* Pushes the `http` table {request, get, post} bound to h (which must outlive
 * the state). Needs hf_lua_json_open() to have run on L. May raise (memory). */
void hf_lua_open_http(lua_State *L, struct hf_lua_http *h);

/* Called before each step: no call waits past deadline_ms (hf_mono_ms(); 0 =
 * no deadline). Accepts NULL. */
void hf_lua_http_begin_step(struct hf_lua_http *h, int64_t deadline_ms);

#endif
