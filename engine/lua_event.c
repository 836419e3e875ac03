/* lua_event.c - the `event` global of a step, built on the worker straight
 * from the in-memory event (hf_run.h), with event.body decoded from the raw
 * bytes (lua_json_decode.c) once per run.
 *
 * The decoded body of the run a worker is on is kept in its Lua state (the
 * registry) as a pristine copy that no step sees; each step gets its own deep
 * copy of it, so that what a step does to event.body never reaches the next
 * step, as with a fresh decode. The copy is made only when more steps of the
 * run may follow; the last step (a one-step run) gets the decoded value
 * itself. A form body (or a GitHub form's payload) comes from the tree ingest
 * kept, else from hf_body_decode_event here; so does a JSON body for an
 * expression evaluated at ingest (use_tree), where the tree, if kept, is
 * already there.
 *
 * Does not own the event (the run does) nor the runtime (luart.c). Threading:
 * the runtime's. */
#include "hf_body.h"
#include "hf_lua_json.h"
#include "hf_router.h"
#include "luart_int.h"

#include <lauxlib.h>
#include <string.h>

/* Registry key: the decoded body of the event rt->body_ev (pristine). */
static const char body_key = 0;

/* Pushes a deep copy of the JSON-shaped value at idx (tables keep their
 * array tag; json.null is shared, as it is one value). */
void hf_lua_copy_value(lua_State *L, int idx)
{
	if (lua_type(L, idx) != LUA_TTABLE) {
		lua_pushvalue(L, idx);
		return;
	}
	idx = lua_absindex(L, idx);
	luaL_checkstack(L, 4, "event body nested too deeply");
	int narr = (int)lua_rawlen(L, idx), nrec = 0;
	if (narr == 0) {
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			lua_pop(L, 1);
			nrec++;
		}
	}
	lua_createtable(L, narr, nrec);
	if (lua_getmetatable(L, idx))
		lua_setmetatable(L, -2);
	if (narr > 0) {
		for (int i = 1; i <= narr; i++) {
			lua_rawgeti(L, idx, i);
			hf_lua_copy_value(L, -1);
			lua_rawseti(L, -3, i);
			lua_pop(L, 1);
		}
		return;
	}
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pushvalue(L, -2);
		hf_lua_copy_value(L, -2);
		lua_rawset(L, -5);
		lua_pop(L, 1);
	}
}

static void release_json(void *p)
{
	json_decref(p);
}

/* Pushes the decoded body of ev; false (nothing pushed) when it has none:
 * no body, a content type that is not decoded, JSON null, or a body that
 * does not decode (ingest answered 400 to those: only an event stored by an
 * older version could be one). */
static bool decode_body(lua_State *L, const struct hf_event *ev,
			enum hf_body_kind kind, bool use_tree)
{
	char err[256];
	if (kind == HF_BODY_OTHER || !ev->body || ev->body_len == 0)
		return false;
	if (kind == HF_BODY_JSON && !(use_tree && ev->decoded)) {
		if (hf_lua_json_decode(L, ev->body, ev->body_len, false, err,
				       sizeof err) != 0)
			return false;
	} else {
		void **box = hf_lua_box(L, release_json);
		json_t *j = ev->decoded ? json_incref(ev->decoded) : NULL;
		if (!j && hf_body_decode_event(
			      hf_event_headers((struct hf_event *)ev), ev->body,
			      ev->body_len, &j, err, sizeof err) != 0)
			j = NULL;
		*box = j;
		hf_lua_push_json(L, j);
		lua_remove(L, -2); /* the box: collected, j released */
	}
	if (lua_isnil(L, -1) || hf_lua_is_null(L, -1)) {
		lua_pop(L, 1);
		return false;
	}
	return true;
}

static bool push_body(lua_State *L, struct hf_luart *rt,
		      const struct hf_event *ev, enum hf_body_kind kind,
		      bool more_steps, bool use_tree)
{
	if (rt->body_ev[0] && strcmp(rt->body_ev, ev->id) == 0) {
		lua_rawgetp(L, LUA_REGISTRYINDEX, &body_key);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			return false; /* the event has no body */
		}
		hf_lua_copy_value(L, -1);
		lua_remove(L, -2);
		return true;
	}
	/* Another run: drop the previous one's body. */
	rt->body_ev[0] = '\0';
	lua_pushnil(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &body_key);
	bool has = decode_body(L, ev, kind, use_tree);
	if (!more_steps)
		return has;
	if (has) {
		lua_pushvalue(L, -1);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &body_key);
		hf_lua_copy_value(L, -1);
		lua_remove(L, -2);
	}
	snprintf(rt->body_ev, sizeof rt->body_ev, "%s", ev->id);
	return has;
}

/* Pushes an object of the event (headers, query): its tree, else its JSON
 * text decoded straight into Lua (an event loaded from the disk backlog:
 * no jansson tree made for it), else an empty table. */
static void push_object(lua_State *L, const json_t *tree, const char *text)
{
	char err[128];
	if (tree) {
		hf_lua_push_json(L, tree);
		return;
	}
	if (text && hf_lua_json_decode(L, text, strlen(text), false, err,
				       sizeof err) == 0) {
		if (lua_type(L, -1) == LUA_TTABLE)
			return;
		lua_pop(L, 1); /* not an object: {} as hf_event_query */
	}
	lua_newtable(L);
}

/* The body's kind by the content-type of the headers table on top. */
static enum hf_body_kind body_kind(lua_State *L)
{
	lua_getfield(L, -1, "content-type");
	enum hf_body_kind kind = hf_body_kind_of(
	    lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL);
	lua_pop(L, 1);
	return kind;
}

static void set_string(lua_State *L, const char *k, const char *v)
{
	lua_pushstring(L, v ? v : "");
	lua_setfield(L, -2, k);
}

void hf_lua_push_event(lua_State *L, struct hf_luart *rt,
		       const struct hf_event *ev, const struct hf_workflow *wf,
		       bool more_steps, bool use_tree)
{
	char at[32];
	luaL_checkstack(L, 6, "event");
	lua_createtable(L, 0, 9);
	set_string(L, "id", ev->id);
	set_string(L, "method", ev->method);
	set_string(L, "path", ev->path);
	/* Path parameters: only a pattern with a {name} has any. */
	if (wf && wf->path && strchr(wf->path, '{')) {
		void **box = hf_lua_box(L, release_json);
		*box = hf_path_params(wf->path, ev->path);
		hf_lua_push_json(L, *box);
		lua_remove(L, -2);
	} else {
		lua_newtable(L);
	}
	lua_setfield(L, -2, "params");
	/* Another thread may parse the trees meanwhile (hf_event_headers). */
	push_object(L, __atomic_load_n(&ev->query, __ATOMIC_ACQUIRE),
		    ev->query_text);
	lua_setfield(L, -2, "query");
	push_object(L, __atomic_load_n(&ev->headers, __ATOMIC_ACQUIRE),
		    ev->headers_text);
	enum hf_body_kind kind = body_kind(L);
	lua_setfield(L, -2, "headers");
	if (push_body(L, rt, ev, kind, more_steps, use_tree))
		lua_setfield(L, -2, "body");
	lua_pushlstring(L, ev->body ? ev->body : "",
			ev->body ? ev->body_len : 0);
	lua_setfield(L, -2, "raw");
	hf_time_iso(ev->received_at, at);
	lua_pushstring(L, at);
	lua_setfield(L, -2, "received_at");
	/* A schedule's fire (schedule.c) keeps {cron, at} as its query: the
	 * stored event has no column of its own for them (as run.c). */
	if (ev->method && strcmp(ev->method, "SCHEDULE") == 0 &&
	    (ev->query || ev->query_text)) {
		push_object(L, __atomic_load_n(&ev->query, __ATOMIC_ACQUIRE),
			    ev->query_text);
		lua_setfield(L, -2, "schedule");
	}
}
