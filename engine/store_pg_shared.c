/* store_pg_shared.c - PostgreSQL state shared by several nodes for the flow
 * controls: the throttle's reservations (one row per start given, keyed by
 * the throttle's key) and the debounce's bursts (the open burst of a key
 * found and led under a row lock on the key). Everything here runs inside
 * the writer's transaction (HF_W_CALL): a row lock on flow_keys orders the
 * deciders of one key cluster-wide until their COMMIT (no advisory locks).
 * The throttle's starts really made are rows of the same table, keyed
 * "started\n" + key.
 *
 * Neighbours: throttle.c and debounce.c (the decisions), store_pg.c (the
 * schema, version 4). */
#include "hf_crypto.h"
#include "hf_limits.h"
#include "store_pg.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Schema version 4 (store_pg.c runs it after the others). */
const char hf_pg_shared_schema[] =
    "CREATE TABLE IF NOT EXISTS flow_keys(key TEXT COLLATE \"C\""
    " PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS throttle(key TEXT COLLATE \"C\" NOT NULL,"
    " at BIGINT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS throttle_key ON throttle(key, at);";

/* A key as stored in an indexed column: as it is up to HF_KEY_STORED_MAX
 * bytes, else "sha256:" and its digest (a B-tree row holds at most about 2.7
 * KB: a longer key was refused, the run neither throttled nor debounced). */
static char *stored_key(const char *prefix, const char *key)
{
	return hf_key_bounded(hf_xasprintf("%s%s", prefix, key));
}

/* Takes the row lock of "kind\nkey" for the writer's transaction. */
static int lock_key(struct hf_pg_store *q, const char *kind, const char *key)
{
	char *k = hf_xasprintf("%s\n%s", kind, key);
	char *sk = stored_key("", k);
	free(k);
	k = sk;
	int rc = hf_pg_run(q, q->wconn,
			   "INSERT INTO flow_keys(key) VALUES ($1)"
			   " ON CONFLICT (key) DO NOTHING",
			   "t", k);
	if (rc >= 0)
		rc = hf_pg_run(q, q->wconn,
			       "SELECT key FROM flow_keys WHERE key = $1"
			       " FOR UPDATE",
			       "t", k);
	free(k);
	return rc < 0 ? -1 : 0;
}

static int three_row(PGconn *c, PGresult *r, int i, void *arg)
{
	(void)c;
	int64_t *v = arg;
	for (int j = 0; j < 3; j++)
		if (!PQgetisnull(r, i, j))
			v[j] = pg_int(r, i, j);
	return 1;
}

int hf_pg_throttle_reserve(struct hf_store *s, const char *key, int limit,
			   int64_t period_ms, int64_t own, int64_t *now,
			   int64_t *at)
{
	struct hf_pg_store *q = pq(s);
	assert(pq_applying(q)); /* through HF_W_CALL */
	if (lock_key(q, "throttle", key) < 0)
		return -1;
	int64_t made_at = hf_now_ms(); /* after the lock: one order of starts */
	char *made_key = stored_key("started\n", key);
	char *long_key = stored_key("", key);
	key = long_key;
	/* A woken run's reservation moves to its start (or later). */
	if (own != INT64_MIN &&
	    hf_pg_run(q, q->wconn,
		      "DELETE FROM throttle WHERE ctid = (SELECT ctid FROM"
		      " throttle WHERE key = $1 AND at = $2 LIMIT 1)",
		      "tI", key, own) < 0)
		goto fail;
	/* The limit-th latest reservation, the latest, the limit-th latest
	 * start made. */
	int64_t v[3] = {INT64_MIN, INT64_MIN, INT64_MIN};
	if (hf_pg_each(q, q->wconn, three_row, v,
		       "SELECT (SELECT at FROM throttle WHERE key = $1"
		       " ORDER BY at DESC OFFSET $2 LIMIT 1),"
		       " (SELECT max(at) FROM throttle WHERE key = $1),"
		       " (SELECT at FROM throttle WHERE key = $3"
		       " ORDER BY at DESC OFFSET $2 LIMIT 1)",
		       "tit", key, limit - 1, made_key) < 0)
		goto fail;
	int64_t t = made_at;
	if (own == INT64_MIN) {
		if (v[0] != INT64_MIN && v[0] + period_ms > t)
			t = v[0] + period_ms;
		if (v[1] != INT64_MIN && v[1] > t) /* arrival order */
			t = v[1];
	}
	if (v[2] != INT64_MIN && v[2] + period_ms > t) /* starts made */
		t = v[2] + period_ms;
	/* Starts a period old decide nothing any more. */
	if (hf_pg_run(q, q->wconn,
		      "DELETE FROM throttle WHERE key IN ($1, $3) AND at <= $2",
		      "tIt", key, made_at - period_ms, made_key) < 0 ||
	    hf_pg_run(q, q->wconn,
		      "INSERT INTO throttle(key, at) VALUES ($1, $2)", "tI",
		      key, t) < 0 ||
	    (t <= made_at &&
	     hf_pg_run(q, q->wconn,
		       "INSERT INTO throttle(key, at) VALUES ($1, $2)", "tI",
		       made_key, made_at) < 0))
		goto fail;
	free(made_key);
	free(long_key);
	*now = made_at;
	*at = t;
	return 0;
fail:
	free(made_key);
	free(long_key);
	return -1;
}

static int leader_row(PGconn *c, PGresult *r, int i, void *arg)
{
	(void)c;
	char **out = arg;
	out[0] = hf_xstrdup(PQgetvalue(r, i, 0));
	out[1] = hf_xstrdup(PQgetvalue(r, i, 1));
	return 1;
}

int hf_pg_debounce_find(struct hf_store *s, const char *workflow,
			const char *key, char **leader, char **waiting)
{
	struct hf_pg_store *q = pq(s);
	assert(pq_applying(q)); /* through HF_W_CALL */
	char *k = hf_xasprintf("%s\n%s", workflow, key);
	int rc = lock_key(q, "debounce", k);
	free(k);
	if (rc < 0)
		return -1;
	char *out[2] = {NULL, NULL};
	int n = hf_pg_each(
	    q, q->wconn, leader_row, out,
	    "SELECT id, waiting FROM runs WHERE status = 'waiting' AND"
	    " workflow = $1 AND waiting LIKE '{\"for\":\"debounce\"%' AND"
	    " (waiting::jsonb)->>'key' = $2 ORDER BY seq LIMIT 1",
	    "tt", workflow, key);
	if (n < 0)
		return -1;
	*leader = out[0];
	*waiting = out[1];
	return n > 0 ? 1 : 0;
}

int hf_pg_debounce_lead(struct hf_store *s, const char *run_id, int64_t wake_at,
			const char *waiting)
{
	struct hf_pg_store *q = pq(s);
	assert(pq_applying(q)); /* through HF_W_CALL */
	return hf_pg_run(q, q->wconn,
			 "UPDATE runs SET status = 'waiting', wake_at = $2,"
			 " waiting = $3, wait_path = NULL WHERE id = $1 AND"
			 " status IN ('queued', 'running') AND ($4::int8 = 0 OR"
			 " EXISTS (SELECT 1 FROM queue WHERE run_id = $1 AND"
			 " node_id = $4))",
			 "tItI", run_id, wake_at, waiting, q->node_id) < 0
		   ? -1
		   : 0;
}
