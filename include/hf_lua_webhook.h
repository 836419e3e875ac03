/* hf_lua_webhook.h - the `webhook` global: webhook.emit(url, payload[, opts])
 * queues an outbound delivery for the outbox.
 *
 * Emits are collected per runtime while a step runs; the runtime hands them to
 * the step's result when the step succeeds (the writer stores them with the
 * result, in one transaction: a transactional outbox) and discards them when
 * it fails. Used only from the thread that owns the runtime. */
#ifndef HF_LUA_WEBHOOK_H
#define HF_LUA_WEBHOOK_H

#include "hf_run.h"
#include <lua.h>
#include <stddef.h>

struct hf_lua_webhook;

struct hf_lua_webhook *hf_lua_webhook_create(void);
void hf_lua_webhook_destroy(struct hf_lua_webhook *w); /* accepts NULL */

/* Pushes the `webhook` table {emit} bound to w (which must outlive the
 * state). Needs hf_lua_json_open() to have run on L. May raise (memory). */
void hf_lua_open_webhook(lua_State *L, struct hf_lua_webhook *w);

/* Moves the emits queued since the last take or discard into *out (a malloc'd
 * array the caller owns: hf_emit_release() each, then free()) and *n; *out is
 * NULL when there were none. */
void hf_lua_webhook_take(struct hf_lua_webhook *w, struct hf_emit **out,
			 size_t *n);
/* Drops the queued emits (the step failed). Accepts NULL. */
void hf_lua_webhook_discard(struct hf_lua_webhook *w);

#endif
