/* luart_int.h - internals shared by the files of the Lua runtime module:
 * luart.c (the state, its limits, running steps and expressions),
 * lua_sandbox.c (what a step may call) and lua_pattern.c (the deadline-checking
 * pattern matcher). Private: included only from engine/, never from include/.
 * The public API is hf_luart.h. */
#ifndef HF_LUART_INT_H
#define HF_LUART_INT_H

#include "hf_lua_db.h"
#include "hf_lua_http.h"
#include "hf_lua_lib.h"
#include "hf_lua_webhook.h"
#include "hf_luart.h"

#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kill { KILL_NONE, KILL_TIMEOUT, KILL_BUDGET };

struct hf_luart {
	lua_State *L;
	char *scripts_dir; /* NULL: no require */
	bool expr_only;
	size_t memory_limit; /* per step or expression */
	size_t used;	     /* bytes held by the state */
	size_t limit;	     /* refuse growth past this; 0 = no limit */
	size_t step_limit;   /* limit of the running step (msgh's reserve) */
	bool mem_hit;	     /* an allocation was refused */
	int64_t deadline;    /* hf_mono_ms(); 0 = none */
	int64_t timeout_ms;  /* for the message */
	long long budget;    /* instructions left; < 0 = unlimited */
	bool in_expr;	     /* evaluating an expression, not a step */
	enum kill killed;
	size_t nchunks;
	unsigned runs;
	struct hf_lua_db *db;
	struct hf_lua_http *http;	/* NULL for expression runtimes */
	struct hf_lua_webhook *webhook; /* NULL for expression runtimes */
	struct hf_lua_log log;
	struct hf_lua_retry retry;     /* what the running step asked for */
	const struct hf_step_ctx *ctx; /* while a step runs */
	const struct hf_expr *expr;    /* while an expression runs */
	const char *expr_key;
	json_t *expr_event;
	const struct hf_event *expr_ev;	   /* instead of expr_event when set */
	const struct hf_workflow *expr_wf; /* of expr_ev (params) */
	/* The `signal` global of a wait_for's `if:` (hf_park.h), or NULL. */
	const struct hf_event *expr_signal;
	const struct hf_event *pending_signal; /* hf_luart_eval_signal's */
	/* Bytes held after the last full collection (see finish()). */
	size_t gc_base;
	/* The event whose decoded body the state keeps (lua_event.c); "" for
	 * none. */
	char body_ev[HF_ID_SIZE];
	/* The signal whose `signal` table the state keeps (luart.c,
	 * push_signal); "" for none. */
	char signal_ev[HF_ID_SIZE];
	/* The one thread that uses the runtime (checked by assert() only). */
	pthread_t owner;
	bool owned; /* owner is set */
};

/* Registry keys (their addresses are the keys), defined in luart.c. */
extern const char hf_luart_envmt_key;  /* metatable of step environments */
extern const char hf_luart_env_key;    /* the running step's environment */
extern const char hf_luart_loaded_key; /* require() results of the step */

/* The runtime of L (the allocator's user data). */
static inline struct hf_luart *hf_luart_of(lua_State *L)
{
	void *ud;
	lua_getallocf(L, &ud);
	return ud;
}

/* luart.c: charges n instructions against the expression budget and checks
 * the deadline; raises the kill error when out of either. */
void hf_luart_charge(lua_State *L, struct hf_luart *rt, long long n);
/* luart.c: "memory limit exceeded (N MiB)" for rt's limit. */
void hf_luart_memory_message(const struct hf_luart *rt, char *out, size_t size);

/* luart.c: the runtime of L, or NULL when L was not made by hf_luart_create
 * (a bare state of a test). */
struct hf_luart *hf_luart_find(lua_State *L);
/* luart_limits.c, for luart.c: the state's allocator (ud: the runtime), the
 * count hook, the message of a kill, a byte count as text. */
void *hf_luart_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
void hf_luart_hook(lua_State *L, lua_Debug *ar);
void hf_luart_kill_message(struct hf_luart *rt, char *out, size_t size);
void hf_luart_format_size(size_t n, char *out, size_t size);

/* luart.c: for C code that works outside the count hook (lua_json.c's
 * conversions): charges work units (as instructions) and checks the deadline
 * and that held bytes, kept outside Lua, fit in what is left of the memory
 * limit. Returns 0, or -1 with the limit's message in err: past the deadline
 * or budget the runtime is marked killed and its hook armed, so that the next
 * Lua instruction raises the kill. Never raises; 0 outside a run. */
int hf_luart_check(lua_State *L, long long work, size_t held, char *err,
		   size_t errsize);
/* luart.c: raises the kill error when the run of L has been killed (after
 * hf_luart_check failed); returns otherwise. */
void hf_luart_reraise(lua_State *L);

/* lua_sandbox.c: builds the sandbox globals of rt on L and makes them the
 * state's globals; sets the metatable of step environments
 * (hf_luart_envmt_key). Raises on errors: call under lua_pcall. */
void hf_lua_sandbox_open(lua_State *L, struct hf_luart *rt);

/* lua_event.c: pushes the `event` table of ev for a step of wf (params from
 * wf's path), event.body decoded from ev's raw bytes (from ev->decoded when
 * use_tree and there is one), or copied from the state's copy of the same
 * event's body; more_steps: keep that copy for later steps of the run.
 * Raises on memory and past the deadline. */
void hf_lua_push_event(lua_State *L, struct hf_luart *rt,
		       const struct hf_event *ev, const struct hf_workflow *wf,
		       bool more_steps, bool use_tree);

/* lua_event.c: pushes a deep copy of the JSON-shaped value at idx (tables
 * keep their array tag). Raises on memory. */
void hf_lua_copy_value(lua_State *L, int idx);

/* lua_pattern.c: string.find, match, gmatch and gsub with Lua's semantics,
 * checking the deadline as they backtrack. */
int hf_lua_str_find(lua_State *L);
int hf_lua_str_match(lua_State *L);
int hf_lua_str_gmatch(lua_State *L);
int hf_lua_str_gsub(lua_State *L);

#endif
