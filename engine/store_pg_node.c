/* store_pg_node.c - the PostgreSQL backend's nodes and leases: the servers
 * sharing one state database (CONTRACT §7).
 *
 * Each server registers a row in `nodes` (id, name, epoch, heartbeat_at,
 * started_at, lease_ms) and a thread of its own ("hf-node", on a connection
 * of its own) renews heartbeat_at every second (a quarter of the lease when
 * that is shorter). Times in `nodes` are the database server's clock, so that
 * the nodes' clocks need not agree. While this node's last successful
 * heartbeat is older than three quarters of its lease, hf_pg_lease_fresh is
 * false: the store reports itself unwritable, so webhooks get 503 and
 * workers and the outbox start nothing, before any other node may reap it.
 *
 * Reaping: every round, any node takes over the nodes whose heartbeat is
 * older than their lease: it bumps their epoch, marks them stopped, gives
 * their queue rows back (node_id NULL: claimable by all) and marks their
 * runs not waiting for a retry as possible repeats (step_attempt + 1, what
 * Lua sees as run.attempt), as a restart after a crash does with SQLite. A
 * starting node reaps at once the earlier node of its own name (names are
 * unique among live nodes: that one is gone) and inherits its runs, which it
 * resumes first (hf_pg_load_pending), as a restarted single server does. A
 * node that finds itself reaped
 * (its heartbeat matches no row of its epoch) adopts a new epoch, gives back
 * what it claimed under the old one, and drops the runs it held
 * (hf_store_holds): every write of a claimed run is fenced on (node id, epoch)
 * in store_pg_apply.c, so a late commit writes nothing.
 *
 * Wake-ups: with --pg-notify on the thread LISTENs on "hookflow" and
 * hf_pg_wait returns 1 when a notification came; a writer's batch that left
 * claimable work sends one NOTIFY (hf_pg_notify_flush). The one-second poll
 * (hf_pg_changed) stays the correctness path.
 *
 * Retention is run by one node at a time (a transaction advisory lock in
 * hf_pg_prune); schedules fire once by their dedupe key.
 *
 * Threading: the hf-node thread owns its connection; hf_pg_wait and
 * hf_pg_lease_fresh from any thread. Neighbours: store_pg.c (open, close,
 * writable), store_pg_recover.c (claims), store_pg_apply.c (fencing). */
#include "hf_limits.h"
#include "store_pg.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* The database server's clock in ms, in SQL. */
#define DB_NOW "(extract(epoch from clock_timestamp()) * 1000)::int8"

/* Nodes stopped this long ago, holding nothing, are forgotten. */
#define NODE_FORGET_MS (24 * 3600 * 1000LL)

struct hf_pg_node {
	struct hf_pg_store *q;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;  /* under lock */
	bool woken; /* a NOTIFY came, not yet taken by hf_pg_wait (lock) */
	PGconn *conn;
	int64_t every_ms;
	atomic_llong ok_mono; /* when the last good heartbeat was sent */
	unsigned rounds;
	/* Rounds left, after a rejoin, that give back rows claimed under the
	 * old epoch by a write that read it just before the rejoin. */
	int sweeps;
};

bool hf_pg_lease_fresh(struct hf_pg_store *q)
{
	struct hf_pg_node *n = q->node;
	if (!n)
		return true;
	return hf_mono_ms() - atomic_load(&n->ok_mono) <= q->lease_ms * 3 / 4;
}

/* Takes over the nodes whose lease ran out, their runs back to the cluster,
 * or with name the earlier node of that name, whatever its heartbeat, its
 * runs to this node (a restart resumes its own runs first, in their order,
 * as with SQLite): one statement. Returns how many runs changed hands, or
 * -1. */
static int reap(struct hf_pg_store *q, PGconn *c, const char *name)
{
	PGresult *r = hf_pg_exec(
	    q, c,
	    "WITH dead AS (SELECT id, stopped_at IS NOT NULL AS clean,"
	    " COALESCE(name = $2, false) AS heir, lease_ms FROM nodes WHERE"
	    " id <> $1 AND"
	    " ((stopped_at IS NULL AND heartbeat_at < " DB_NOW " - lease_ms)"
	    " OR (name = $2 AND (stopped_at IS NULL OR EXISTS (SELECT 1 FROM"
	    " queue WHERE node_id = nodes.id)))) FOR UPDATE SKIP LOCKED),"
	    " bump AS (UPDATE nodes n SET epoch = n.epoch + 1, stopped_at ="
	    " COALESCE(n.stopped_at, " DB_NOW ") FROM dead WHERE n.id ="
	    " dead.id RETURNING n.id),"
	    " rel AS (UPDATE queue SET node_id = CASE WHEN dead.heir THEN $1"
	    " END, epoch = CASE WHEN dead.heir THEN $3 ELSE 0 END, claimed_at"
	    " = CASE WHEN dead.heir THEN " DB_NOW " END FROM dead WHERE"
	    " queue.node_id = dead.id RETURNING queue.run_id, dead.clean,"
	    " dead.heir),"
	    /* Its leased deliveries: due once the attempt it may have begun
	     * is over (the lease was the attempt's timeout plus its own). */
	    " dl AS (UPDATE deliveries SET next_at = deliveries.next_at -"
	    " dead.lease_ms, node_id = NULL, epoch = 0 FROM dead WHERE"
	    " deliveries.node_id = dead.id AND deliveries.status ="
	    " 'pending' RETURNING 1),"
	    " rep AS (UPDATE runs SET step_attempt = runs.step_attempt + 1"
	    " FROM rel WHERE runs.id = rel.run_id AND NOT rel.clean AND"
	    " runs.status IN ('queued','running') AND runs.due_at = 0"
	    " RETURNING 1)"
	    " SELECT (SELECT count(*) FROM bump), (SELECT count(*) FROM rel),"
	    " (SELECT count(*) FROM rep), (SELECT count(*) FROM rel WHERE NOT"
	    " heir) + (SELECT count(*) FROM dl)",
	    "ItI", q->node_id, name, (int64_t)atomic_load(&q->epoch));
	int moved = -1;
	if (hf_pg_ok(r) && PQntuples(r) == 1) {
		moved = (int)pg_int(r, 0, 1);
		if (pg_int(r, 0, 0) > 0 && !name)
			hf_log(HF_LOG_WARN,
			       "took over %lld node%s gone from the state "
			       "database: %d unfinished run%s back to the "
			       "cluster (%lld marked as possible repeats)",
			       (long long)pg_int(r, 0, 0),
			       pg_int(r, 0, 0) == 1 ? "" : "s", moved,
			       moved == 1 ? "" : "s",
			       (long long)pg_int(r, 0, 2));
		if (pg_int(r, 0, 3) > 0 && q->notify)
			hf_pg_run(q, c, "NOTIFY hookflow", "");
	}
	PQclear(r);
	return moved;
}

/* This node was reaped: takes a new epoch and gives back what it claimed
 * under an older one (after the reap, before it noticed). False when its
 * row is gone (forgotten a day after it stopped): it stays unwritable. */
static bool rejoin(struct hf_pg_node *n)
{
	struct hf_pg_store *q = n->q;
	PGresult *r = hf_pg_exec(q, n->conn,
				 "UPDATE nodes SET epoch = epoch + 1,"
				 " heartbeat_at = " DB_NOW ", stopped_at = NULL"
				 " WHERE id = $1 RETURNING epoch",
				 "I", q->node_id);
	int64_t epoch = hf_pg_ok(r) && PQntuples(r) == 1 ? pg_int(r, 0, 0) : 0;
	PQclear(r);
	if (!epoch) {
		hf_log(HF_LOG_ERROR,
		       "node '%s' is no longer registered in the state "
		       "database: restart it",
		       q->node_name);
		return false;
	}
	atomic_store(&q->epoch, epoch);
	n->sweeps = 5;
	int back = hf_pg_run(q, n->conn,
			     "UPDATE queue SET node_id = NULL, epoch = 0,"
			     " claimed_at = NULL WHERE node_id = $1 AND epoch"
			     " <> $2",
			     "II", q->node_id, epoch);
	if (back > 0 && q->notify)
		hf_pg_run(q, n->conn, "NOTIFY hookflow", "");
	hf_log(HF_LOG_WARN,
	       "node '%s' lost its lease (another node took over its runs): "
	       "rejoining as epoch %lld; the runs it held are dropped here",
	       q->node_name, (long long)epoch);
	return true;
}

static void heartbeat(struct hf_pg_node *n)
{
	struct hf_pg_store *q = n->q;
	int64_t sent = hf_mono_ms();
	int rc = hf_pg_run(q, n->conn,
			   "UPDATE nodes SET heartbeat_at = " DB_NOW
			   " WHERE id = $1 AND epoch = $2 AND stopped_at IS"
			   " NULL",
			   "II", q->node_id, (int64_t)atomic_load(&q->epoch));
	if (rc > 0 || (rc == 0 && rejoin(n)))
		atomic_store(&n->ok_mono, sent);
	if (rc < 0 || !hf_pg_lease_fresh(q))
		return;
	if (n->sweeps > 0 &&
	    hf_pg_run(q, n->conn,
		      "UPDATE queue SET node_id = NULL, epoch = 0, claimed_at ="
		      " NULL WHERE node_id = $1 AND epoch <> $2",
		      "II", q->node_id, (int64_t)atomic_load(&q->epoch)) >= 0)
		n->sweeps--;
	reap(q, n->conn, NULL);
	if (++n->rounds % 600 == 0)
		hf_pg_run(q, n->conn,
			  "DELETE FROM nodes WHERE stopped_at < " DB_NOW
			  " - $1 AND NOT EXISTS (SELECT 1 FROM queue WHERE"
			  " node_id = nodes.id)",
			  "I", NODE_FORGET_MS);
}

/* The thread's connection, made again when it was lost (LISTEN included):
 * 1 as it was, 2 made again (a notification may have been missed), 0 none. */
static int node_conn(struct hf_pg_node *n)
{
	if (n->conn && PQstatus(n->conn) == CONNECTION_OK)
		return 1;
	PQfinish(n->conn);
	n->conn = hf_pg_connect(n->q, NULL);
	/* A reap waits on rows a cut-off node may hold locked: never long
	 * enough to make this node's own heartbeat late. */
	char sql[64];
	snprintf(sql, sizeof sql, "SET lock_timeout = %lld",
		 (long long)(n->every_ms > 1000 ? 1000 : n->every_ms));
	if (n->conn && hf_pg_run(n->q, n->conn, sql, "") < 0) {
		PQfinish(n->conn);
		n->conn = NULL;
	}
	if (n->conn && n->q->notify &&
	    hf_pg_run(n->q, n->conn, "LISTEN hookflow", "") < 0) {
		PQfinish(n->conn);
		n->conn = NULL;
	}
	return n->conn ? 2 : 0;
}

/* Waits up to ms for a notification (or the stop). */
static void listen_for(struct hf_pg_node *n, int64_t ms)
{
	if (ms <= 0)
		return;
	if (!n->conn || !n->q->notify) {
		struct timespec ts;
		hf_deadline_in(ms, &ts);
		pthread_mutex_lock(&n->lock);
		if (!n->stop)
			pthread_cond_timedwait(&n->cond, &n->lock, &ts);
		pthread_mutex_unlock(&n->lock);
		return;
	}
	bool got = false;
	PGnotify *note;
	/* Those that came with the last statement's answer first: they are
	 * read already, the socket will not show them. */
	while ((note = PQnotifies(n->conn))) {
		got = true;
		PQfreemem(note);
	}
	struct pollfd p = {.fd = PQsocket(n->conn), .events = POLLIN};
	if (!got && (poll(&p, 1, (int)ms) <= 0 || !PQconsumeInput(n->conn)))
		return;
	while ((note = PQnotifies(n->conn))) {
		got = true;
		PQfreemem(note);
	}
	if (got) {
		pthread_mutex_lock(&n->lock);
		n->woken = true;
		pthread_cond_broadcast(&n->cond);
		pthread_mutex_unlock(&n->lock);
	}
}

static void *node_main(void *arg)
{
	struct hf_pg_node *n = arg;
	int64_t next = 0;
	for (;;) {
		pthread_mutex_lock(&n->lock);
		bool stop = n->stop;
		pthread_mutex_unlock(&n->lock);
		if (stop)
			break;
		int64_t now = hf_mono_ms();
		if (now >= next) {
			next = now + n->every_ms;
			int conn = node_conn(n);
			if (conn == 2) {
				pthread_mutex_lock(&n->lock);
				n->woken = true;
				pthread_cond_broadcast(&n->cond);
				pthread_mutex_unlock(&n->lock);
			}
			if (conn)
				heartbeat(n);
		}
		int64_t left = next - hf_mono_ms();
		listen_for(n, left < 250 ? left : 250);
	}
	return NULL;
}

int hf_pg_wait(struct hf_store *s, int64_t timeout_ms)
{
	struct hf_pg_node *n = pq(s)->node;
	if (!n)
		return 0;
	struct timespec ts;
	hf_deadline_in(timeout_ms, &ts);
	pthread_mutex_lock(&n->lock);
	while (!n->woken && !n->stop &&
	       pthread_cond_timedwait(&n->cond, &n->lock, &ts) == 0)
		;
	int rc = n->woken ? 1 : 0;
	n->woken = false;
	pthread_mutex_unlock(&n->lock);
	return rc;
}

int hf_pg_notify_flush(struct hf_pg_store *q)
{
	if (!q->notify_pending || !q->notify)
		return 0;
	q->notify_pending = false;
	return hf_pg_run(q, q->wconn, "NOTIFY hookflow", "") < 0 ? -1 : 0;
}

/* Registers this node (on the writer's connection, before its thread). */
static int register_node(struct hf_pg_store *q, struct hf_error *err)
{
	PGresult *r = hf_pg_exec(q, q->wconn,
				 "INSERT INTO nodes(name, started_at,"
				 " heartbeat_at, lease_ms) VALUES($1, " DB_NOW
				 ", " DB_NOW ", $2) RETURNING id, epoch",
				 "tI", q->node_name, q->lease_ms);
	if (hf_pg_ok(r) && PQntuples(r) == 1) {
		q->node_id = pg_int(r, 0, 0);
		atomic_store(&q->epoch, pg_int(r, 0, 1));
	}
	PQclear(r);
	if (q->node_id)
		return 0;
	hf_error_set(err, NULL, 0, 0, "cannot register this node: %s",
		     PQerrorMessage(q->wconn));
	return -1;
}

int hf_pg_node_start(struct hf_pg_store *q, const struct hf_store_node *node,
		     struct hf_error *err)
{
	char host[HF_NODE_NAME_MAX] = "";
	if (node && node->name && *node->name)
		snprintf(host, sizeof host, "%s", node->name);
	else if (gethostname(host, sizeof host - 1) != 0 || !host[0])
		snprintf(host, sizeof host, "hookflow");
	snprintf(q->node_name, sizeof q->node_name, "%s", host);
	q->lease_ms = node && node->lease_ms > 0 ? node->lease_ms : 15000;
	q->notify = node ? node->notify : true;
	if (register_node(q, err) < 0)
		return -1;
	/* The earlier node of this name is gone: its runs are this one's now,
	 * not the cluster's after its lease. */
	if (reap(q, q->wconn, q->node_name) < 0) {
		hf_error_set(err, NULL, 0, 0, "cannot take over from '%s': %s",
			     q->node_name, PQerrorMessage(q->wconn));
		return -1;
	}
	struct hf_pg_node *n = hf_xcalloc(1, sizeof *n);
	n->q = q;
	n->every_ms = q->lease_ms / 4 < 1000 ? q->lease_ms / 4 : 1000;
	if (n->every_ms < 50)
		n->every_ms = 50;
	atomic_store(&n->ok_mono, hf_mono_ms());
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	q->node = n;
	if (hf_thread_start(&n->thread, "hf-node", node_main, n) != 0) {
		hf_error_set(err, NULL, 0, 0, "cannot start the node thread");
		return -1;
	}
	n->started = true;
	return 0;
}

void hf_pg_node_stop(struct hf_pg_store *q)
{
	struct hf_pg_node *n = q->node;
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
	if (n->started)
		pthread_join(n->thread, NULL);
	PQfinish(n->conn);
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->cond);
	q->node = NULL;
	free(n);
}

/* --- claims --- */

int hf_pg_lease_deliveries(struct hf_store *s, const char *const *ids, size_t n,
			   bool *leased)
{
	struct hf_pg_store *q = pq(s);
	for (size_t i = 0; i < n; i++)
		leased[i] = false;
	if (n == 0)
		return 0;
	if (!hf_pg_lease_fresh(q))
		return -1;
	struct hf_pg_arr a;
	hf_pg_arr_init(&a, HF_PG_TEXT_OID);
	for (size_t i = 0; i < n; i++)
		hf_pg_arr_text(&a, ids[i]);
	/* Due again, for another node, only once an attempt (its timeout)
	 * and a lease have passed: never two senders at once. */
	PGconn *c = hf_pg_reader_take(q);
	PGresult *r = hf_pg_exec(
	    q, c,
	    "WITH c AS (SELECT id FROM deliveries WHERE id = ANY($1::text[])"
	    " AND status = 'pending' AND next_at <= $2 FOR UPDATE SKIP LOCKED)"
	    " UPDATE deliveries d SET next_at = $2 + d.timeout_ms + $3,"
	    " node_id = $4, epoch = $5 FROM c WHERE d.id = c.id RETURNING d.id",
	    "aIIII", &a, hf_now_ms(), q->lease_ms, q->node_id,
	    (int64_t)atomic_load(&q->epoch));
	int rc = hf_pg_ok(r) ? 0 : -1;
	for (int k = 0; rc == 0 && k < PQntuples(r); k++)
		for (size_t i = 0; i < n; i++)
			if (strcmp(ids[i], PQgetvalue(r, k, 0)) == 0)
				leased[i] = true;
	PQclear(r);
	hf_pg_reader_give(q, c);
	hf_pg_arr_free(&a);
	return rc;
}

/* --- lanes --- */

int hf_pg_lane_ready(struct hf_store *s, const struct hf_run *run, int max,
		     int64_t *seq)
{
	struct hf_pg_store *q = pq(s);
	char *lane = hf_xasprintf("%s\n%s", run->wf->name, run->lane);
	/* The runs of the lane that came before this one and have not ended
	 * (their queue rows), wherever they run: fewer than max, it may
	 * start. In arrival order across nodes, and never more than max at
	 * once (only the max oldest unfinished runs of a lane pass). Its own
	 * seq too: the scheduler lets an earlier run of the lane take its
	 * local slot while it waits (hf_sched_lane_wait). */
	PGconn *c = hf_pg_reader_take(q);
	PGresult *r = hf_pg_exec(
	    q, c,
	    "WITH me AS (SELECT seq FROM queue WHERE run_id = $2)"
	    " SELECT (SELECT count(*) FROM (SELECT 1 FROM queue WHERE lane = $1"
	    " AND seq < (SELECT seq FROM me) LIMIT $3) x),"
	    " COALESCE((SELECT seq FROM me), 0)",
	    "tti", lane, run->id, max);
	int rc = hf_pg_ok(r) && PQntuples(r) == 1
		     ? (pg_int(r, 0, 0) < max ? 1 : 0)
		     : -1;
	if (rc >= 0)
		*seq = pg_int(r, 0, 1);
	PQclear(r);
	hf_pg_reader_give(q, c);
	free(lane);
	return rc;
}
