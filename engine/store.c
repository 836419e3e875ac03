/* store.c - the state store's generic interface: hf_store_open picks the
 * backend from the --state value, and every other public hf_store_* function
 * calls the backend's operation of the same name (store_int.h).
 *
 * It owns no data and no SQL: the SQLite backend is store_sqlite.c
 * (connections, its transaction, checkpoints), store_sqlite_schema.c,
 * store_sqlite_apply.c (applying writes), store_sqlite_query.c (reads) and
 * store_sqlite_recover.c (recovery, retries, prune); PostgreSQL is
 * store_pg*.c; both run their writes on the writer thread of
 * store_writer.c (queue, group commit) and rebuild runs with
 * store_pickup.c.
 *
 * Threading: none of its own; each function has the threading of the
 * operation it calls (hf_store.h). */
#include "hf_store.h"
#include "store_int.h"

#include <string.h>

/* Length of the "SCHEME://" prefix of state, 0 when it has none: a scheme is
 * a letter then letters, digits, '+', '-' or '.' (RFC 3986). */
static size_t scheme_len(const char *state)
{
	size_t n = 0;
	if (!((state[0] >= 'a' && state[0] <= 'z') ||
	      (state[0] >= 'A' && state[0] <= 'Z')))
		return 0;
	while (state[n] && strchr("abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.",
				  state[n]))
		n++;
	return strncmp(state + n, "://", 3) == 0 ? n + 3 : 0;
}

static struct hf_store *open_store(const char *state, bool sync_full,
				   bool start_writer,
				   const struct hf_store_node *node,
				   struct hf_error *err)
{
	/* The URL is not echoed in errors: it may hold a password. */
	if (strncmp(state, "postgres://", 11) == 0 ||
	    strncmp(state, "postgresql://", 13) == 0)
		return hf_store_pg_open(state, sync_full, start_writer, node,
					err);
	/* "sqlite:" takes the rest verbatim, "//" included. */
	const char *path = state;
	size_t n = 0;
	if (strncmp(state, "sqlite:", 7) == 0)
		path = state + 7;
	else if ((n = scheme_len(state)) > 0) {
		hf_error_set(err, NULL, 0, 0,
			     "unknown state backend '%.*s' (use a file path, "
			     "sqlite:PATH or postgres://…)",
			     (int)(n - 3), state);
		return NULL;
	}
	if (!*path) {
		hf_error_set(err, NULL, 0, 0,
			     "the state database needs a path (--state FILE)");
		return NULL;
	}
	return hf_store_sqlite_open(path, sync_full, start_writer, err);
}

struct hf_store *hf_store_open(const char *state, bool sync_full,
			       bool start_writer, struct hf_error *err)
{
	return open_store(state, sync_full, start_writer, NULL, err);
}

struct hf_store *hf_store_open_node(const char *state, bool sync_full,
				    const struct hf_store_node *node,
				    struct hf_error *err)
{
	return open_store(state, sync_full, true, node, err);
}

void hf_store_set_clean_stop(struct hf_store *s)
{
	s->ops->set_clean_stop(s);
}

void hf_store_close(struct hf_store *s)
{
	if (s)
		s->ops->close(s);
}

void hf_store_submit(struct hf_store *s, struct hf_write *w)
{
	s->ops->submit(s, w);
}

void hf_store_stats(struct hf_store *s, struct hf_store_stats *out)
{
	s->ops->stats(s, out);
}

bool hf_store_writable(struct hf_store *s, char *why, size_t size)
{
	return s->ops->writable(s, why, size);
}

json_t *hf_store_run_json(struct hf_store *s, const char *run_id)
{
	return s->ops->run_json(s, run_id);
}

json_t *hf_store_runs_json(struct hf_store *s, const char *workflow,
			   const char *status, int limit, bool steps)
{
	return s->ops->runs_json(s, workflow, status, limit, steps);
}

json_t *hf_store_event_json(struct hf_store *s, const char *event_id)
{
	return s->ops->event_json(s, event_id);
}

json_t *hf_store_deliveries_json(struct hf_store *s, const char *status,
				 int limit)
{
	return s->ops->deliveries_json(s, status, limit);
}

json_t *hf_store_delivery_json(struct hf_store *s, const char *id)
{
	return s->ops->delivery_json(s, id);
}

int hf_store_pending_deliveries(
    struct hf_store *s, int64_t from, int64_t from_seq, int limit,
    int (*fn)(const struct hf_delivery *d, void *arg), void *arg)
{
	return s->ops->pending_deliveries(s, from, from_seq, limit, fn, arg);
}

int hf_store_retry_delivery(struct hf_store *s, const char *id)
{
	return s->ops->retry_delivery(s, id);
}

struct hf_event *hf_store_load_event(struct hf_store *s, const char *event_id)
{
	return s->ops->load_event(s, event_id);
}

int hf_store_load_pending(struct hf_store *s, const struct hf_workflow_set *set,
			  bool only_unclaimed,
			  void (*fn)(struct hf_run *run, void *arg), void *arg)
{
	return s->ops->load_pending(s, set, only_unclaimed, fn, arg);
}

int hf_store_load_backlog(struct hf_store *s, const struct hf_workflow_set *set,
			  int limit, void (*fn)(struct hf_run *run, void *arg),
			  void *arg)
{
	return s->ops->load_backlog
		   ? s->ops->load_backlog(s, set, limit, fn, arg)
		   : 0;
}

int hf_store_claim_runs(struct hf_store *s, struct hf_run *const *runs,
			size_t n)
{
	return s->ops->claim_runs ? s->ops->claim_runs(s, runs, n) : 0;
}

int64_t hf_store_count_backlog(struct hf_store *s)
{
	return s->ops->count_backlog ? s->ops->count_backlog(s) : 0;
}

void hf_store_on_batch_end(struct hf_store *s, void (*fn)(void *arg), void *arg)
{
	if (s->ops->on_batch_end)
		s->ops->on_batch_end(s, fn, arg);
}

int hf_store_save_versions(struct hf_store *s,
			   const struct hf_workflow_set *set)
{
	return s->ops->save_versions ? s->ops->save_versions(s, set) : 0;
}

struct hf_workflow_set *hf_store_stored_workflows(struct hf_store *s)
{
	return s->ops->stored_workflows ? s->ops->stored_workflows(s) : NULL;
}

int hf_store_dedupe_last(struct hf_store *s, const char *workflow,
			 const char *prefix, char *out, size_t size)
{
	return s->ops->dedupe_last
		   ? s->ops->dedupe_last(s, workflow, prefix, out, size)
		   : 0;
}

bool hf_store_changed(struct hf_store *s)
{
	return s->ops->changed(s);
}

int hf_store_retry_run(struct hf_store *s, const char *run_id,
		       struct hf_error *err)
{
	return s->ops->retry_run(s, run_id, err);
}

int hf_store_cancel_run(struct hf_store *s, const char *run_id,
			const char *reason, bool note,
			char workflow[HF_NAME_MAX + 1])
{
	return s->ops->cancel_run(s, run_id, reason, note, workflow);
}

int hf_store_cancel_notes(struct hf_store *s,
			  void (*fn)(const char *run_id, bool was_waiting,
				     void *arg),
			  void *arg)
{
	return s->ops->cancel_notes(s, fn, arg);
}

int hf_store_cancel_note_done(struct hf_store *s, const char *run_id)
{
	return s->ops->cancel_note_done(s, run_id);
}

int hf_store_debounce_extend(struct hf_store *s, const char *run_id,
			     int64_t wake_at, const char *waiting)
{
	return s->ops->debounce_extend(s, run_id, wake_at, waiting);
}

char *hf_store_run_waiting(struct hf_store *s, const char *run_id)
{
	return s->ops->run_waiting(s, run_id);
}

int hf_store_throttle_reserve(struct hf_store *s, const char *key, int limit,
			      int64_t period_ms, int64_t own, int64_t *now,
			      int64_t *at)
{
	if (!s->ops->throttle_reserve)
		return -2;
	return s->ops->throttle_reserve(s, key, limit, period_ms, own, now, at);
}

int hf_store_debounce_find(struct hf_store *s, const char *workflow,
			   const char *key, char **leader, char **waiting)
{
	*leader = *waiting = NULL;
	if (!s->ops->debounce_find)
		return -2;
	return s->ops->debounce_find(s, workflow, key, leader, waiting);
}

int hf_store_debounce_lead(struct hf_store *s, const char *run_id,
			   int64_t wake_at, const char *waiting)
{
	if (!s->ops->debounce_lead)
		return -2;
	return s->ops->debounce_lead(s, run_id, wake_at, waiting);
}

int hf_store_active_runs(struct hf_store *s, const char *workflow,
			 const char *lane, int limit,
			 void (*fn)(const struct hf_active_run *r, void *arg),
			 void *arg)
{
	return s->ops->active_runs(s, workflow, lane, limit, fn, arg);
}

int hf_store_prune(struct hf_store *s, int64_t before, int limit)
{
	return s->ops->prune(s, before, limit);
}

int hf_store_claim(struct hf_store *s, const struct hf_workflow_set *set,
		   int limit, void (*fn)(struct hf_run *run, void *arg),
		   void *arg)
{
	return s->ops->claim(s, set, limit, fn, arg);
}

int hf_store_wait(struct hf_store *s, int64_t timeout_ms)
{
	return s->ops->wait(s, timeout_ms);
}

int hf_store_heartbeat(struct hf_store *s)
{
	return s->ops->heartbeat(s);
}

void hf_store_release(struct hf_store *s, const char *run_id)
{
	s->ops->release(s, run_id);
}

/* --- parked runs --- */

int64_t hf_store_next_wake(struct hf_store *s)
{
	return s->ops->next_wake ? s->ops->next_wake(s) : INT64_MAX;
}

int64_t hf_store_count_waiting(struct hf_store *s)
{
	return s->ops->count_waiting ? s->ops->count_waiting(s) : 0;
}

int hf_store_wake_due(struct hf_store *s, int64_t now, int limit)
{
	return s->ops->wake_due ? s->ops->wake_due(s, now, limit) : 0;
}

int hf_store_resume_run(struct hf_store *s, const char *run_id, int step,
			const char *output, int64_t now)
{
	return s->ops->resume_run
		   ? s->ops->resume_run(s, run_id, step, output, now)
		   : 0;
}

int hf_store_load_waiting(struct hf_store *s, const struct hf_workflow_set *set,
			  const char *path, const char *after, int limit,
			  void (*fn)(struct hf_run *run, void *arg), void *arg)
{
	return s->ops->load_waiting
		   ? s->ops->load_waiting(s, set, path, after ? after : "",
					  limit, fn, arg)
		   : 0;
}

int hf_store_secret_key(struct hf_store *s, unsigned char key[32])
{
	return s->ops->secret_key ? s->ops->secret_key(s, key) : -1;
}

bool hf_store_holds(struct hf_store *s, const struct hf_run *run)
{
	return s->ops->holds ? s->ops->holds(s, run) : true;
}

json_t *hf_store_nodes_json(struct hf_store *s)
{
	return s->ops->nodes_json ? s->ops->nodes_json(s) : NULL;
}

int hf_store_lease_deliveries(struct hf_store *s, const char *const *ids,
			      size_t n, bool *leased)
{
	if (s->ops->lease_deliveries)
		return s->ops->lease_deliveries(s, ids, n, leased);
	for (size_t i = 0; i < n; i++)
		leased[i] = true;
	return 0;
}

int hf_store_lane_ready(struct hf_store *s, const struct hf_run *run, int max,
			int64_t *seq)
{
	*seq = 0;
	return s->ops->lane_ready ? s->ops->lane_ready(s, run, max, seq) : 1;
}
