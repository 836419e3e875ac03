/* throttle.c - the throttle's reservations (see hf_throttle.h): a hash of
 * keys, each with the start times it gave and the starts really made (the
 * clock read when the run was let through), oldest first (never more than the
 * greatest limit seen for the key: older ones no longer decide anything).
 *
 * The key is the value of throttle.key, evaluated in the worker thread's
 * expression runtime (dispatch.c's, with the expression limits) against the
 * run's event. Neighbours: worker.c (asks before a step), park (stores and
 * wakes the parked runs), server.c (restores at start-up).
 *
 * With PostgreSQL the reservations are rows of the state database instead,
 * admitted inside the writer's transaction (hf_store_throttle_reserve): the
 * limit holds across every node and across restarts. */
#include "hf_dispatch.h"
#include "hf_limits.h"
#include "hf_ops.h"
#include "hf_throttle.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 1024

struct times {
	int64_t *at; /* ascending */
	size_t n, cap;
};

struct key {
	char *name;
	struct times res;    /* the start times given (reservations) */
	struct times starts; /* the starts made, at the time they were made */
	size_t keep;	     /* the greatest limit asked for the key */
	struct key *next;
};

/* No reservation of the run's own to move (hf_store_throttle_reserve). */
#define NO_OWN INT64_MIN

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct key *keys[BUCKETS];

static unsigned long hash(const char *s)
{
	unsigned long h = 5381;
	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

/* Lock held. */
static struct key *key_get(const char *name)
{
	struct key **slot = &keys[hash(name) % BUCKETS];
	for (struct key *k = *slot; k; k = k->next)
		if (strcmp(k->name, name) == 0)
			return k;
	struct key *k = hf_xcalloc(1, sizeof *k);
	k->name = hf_xstrdup(name);
	k->next = *slot;
	*slot = k;
	return k;
}

/* Lock held: inserts t in order, keeping at most keep times. */
static void times_add(struct times *ts, int64_t t, size_t keep)
{
	if (ts->n == ts->cap) {
		ts->cap = ts->cap ? ts->cap * 2 : 8;
		ts->at = hf_xrealloc(ts->at, ts->cap * sizeof *ts->at);
	}
	size_t i = ts->n++;
	while (i > 0 && ts->at[i - 1] > t) {
		ts->at[i] = ts->at[i - 1];
		i--;
	}
	ts->at[i] = t;
	if (ts->n > keep) {
		memmove(ts->at, ts->at + (ts->n - keep), keep * sizeof *ts->at);
		ts->n = keep;
	}
}

/* Lock held: removes one t (a woken run's reservation), if kept. */
static void times_drop(struct times *ts, int64_t t)
{
	for (size_t i = ts->n; i-- > 0;)
		if (ts->at[i] == t) {
			memmove(ts->at + i, ts->at + i + 1,
				(ts->n - i - 1) * sizeof *ts->at);
			ts->n--;
			return;
		}
}

/* The k-th latest of ts (k >= 1), INT64_MIN when it has fewer. */
static int64_t kth(const struct times *ts, size_t k)
{
	return ts->n >= k ? ts->at[ts->n - k] : INT64_MIN;
}

/* One more start of key name under t (own: the run's reservation when it
 * woke from one, else NO_OWN), decided at *now (the clock read under the
 * lock): returns its time; when that is *now it starts, recorded. */
static int64_t reserve(const char *name, const struct hf_throttle *t,
		       int64_t own, int64_t *now)
{
	pthread_mutex_lock(&lock);
	struct key *k = key_get(name);
	size_t limit = (size_t)t->limit;
	if (limit > k->keep)
		k->keep = limit;
	int64_t s = hf_now_ms(), at = s;
	if (own != NO_OWN) {
		times_drop(&k->res, own); /* moved to its start */
	} else {
		int64_t nth = kth(&k->res, limit);
		if (nth != INT64_MIN && nth + t->period_ms > at)
			at = nth + t->period_ms;
		/* Arrival order: never before a start given earlier. */
		if (k->res.n && k->res.at[k->res.n - 1] > at)
			at = k->res.at[k->res.n - 1];
	}
	/* The starts really made decide: a woken run lags its time. */
	int64_t made = kth(&k->starts, limit);
	if (made != INT64_MIN && made + t->period_ms > at)
		at = made + t->period_ms;
	times_add(&k->res, at, k->keep);
	if (at <= s)
		times_add(&k->starts, s, k->keep);
	pthread_mutex_unlock(&lock);
	*now = s;
	return at;
}

struct shared {
	const char *key;
	const struct hf_throttle *t;
	int64_t own, now, at;
	int rc;
};

static int shared_call(struct hf_store *s, void *arg)
{
	struct shared *sh = arg;
	sh->rc = hf_store_throttle_reserve(s, sh->key, (int)sh->t->limit,
					   sh->t->period_ms, sh->own, &sh->now,
					   &sh->at);
	return sh->rc == -1 ? -1 : 0;
}

/* The start time from the state database where it keeps them (shared by
 * every node), else from this process's memory (see reserve). */
static int64_t reserve_any(struct hf_store *s, const char *name,
			   const struct hf_throttle *t, int64_t own,
			   int64_t *now)
{
	struct shared sh = {name, t, own, 0, 0, -2};
	if (s) {
		struct hf_write w = {0};
		w.kind = HF_W_CALL;
		w.call = shared_call;
		w.call_arg = &sh;
		if (hf_ops_submit_wait(s, &w) == 0 && sh.rc == 0) {
			*now = sh.now;
			return sh.at;
		}
		if (sh.rc != -2)
			hf_log(HF_LOG_WARN,
			       "throttle %s: the state database did not "
			       "answer (this node's reservations decide)",
			       name);
	}
	return reserve(name, t, own, now);
}

/* The key's value as text: a string as it is, else its JSON. NULL when the
 * expression fails (then the run is not throttled: logged). */
static char *key_of(const struct hf_run *run, const struct hf_throttle *t,
		    const char *where)
{
	char ck[256];
	snprintf(ck, sizeof ck, "%s:throttle:%s", run->wf->version, where);
	json_t *v = NULL;
	char *err = NULL, *out = NULL;
	struct hf_luart *rt = hf_dispatch_runtime();
	if (rt && hf_luart_eval_event(rt, ck, t->key, run->event, run->wf, &v,
				      &err) == 0)
		out = json_is_string(v)
			  ? hf_xstrdup(json_string_value(v))
			  : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	else
		hf_log(HF_LOG_WARN, "run %s: throttle.key: %s (not throttled)",
		       run->id, err ? err : "no runtime");
	json_decref(v);
	free(err);
	return out;
}

/* One gate: t under key's expression (step: the step's id, NULL for the
 * workflow's), own the run's reservation when it woke from this gate, else
 * NO_OWN. 1 when the run parked, 0 when it may go on. */
static int gate(struct hf_store *s, struct hf_run *run,
		const struct hf_throttle *t, const char *step, int64_t own,
		int64_t now)
{
	char *key = key_of(run, t, step ? step : "");
	if (!key)
		return 0;
	int64_t at = reserve_any(s, key, t, own, &now);
	int parked = 0;
	if (at <= now)
		run->throttled_at = now; /* the step's recorded start */
	if (at > now) {
		char iso[32];
		hf_time_iso(at, iso);
		json_t *o = json_pack("{s:s,s:s,s:s?,s:s}", "for", "throttle",
				      "until", iso, "step", step, "key", key);
		char *text = hf_run_waiting_text(run, o);
		free(run->waiting);
		run->waiting = text;
		free(run->wait_path);
		run->wait_path = NULL;
		run->wake_at = at;
		run->status = HF_RUN_WAITING;
		parked = 1;
	}
	free(key);
	return parked;
}

/* Whether a run woken before its first step woke from that step's own
 * throttle (its stored "waiting" names the step), not the workflow's: read
 * only where the first step and the workflow both throttle. */
static bool woke_at_step(struct hf_store *s, const struct hf_run *run)
{
	char *text = s ? hf_store_run_waiting(s, run->id) : NULL;
	const char *w = text ? text : run->waiting;
	json_t *o = w ? json_loads(w, 0, NULL) : NULL;
	bool at_step = json_is_string(json_object_get(o, "step"));
	json_decref(o);
	free(text);
	return at_step;
}

int hf_throttle_gate(struct hf_store *s, struct hf_run *run, int64_t now)
{
	const struct hf_workflow *wf = run->wf;
	size_t i = run->next_step;
	if (!wf || i >= wf->nsteps || run->step_attempt != 1)
		return 0;
	/* A waiting step has no throttle of its own (check refuses one), but
	 * a first one is the run's start: the workflow's gate holds before
	 * it, not once more when its own wait is over. */
	bool park = wf->steps[i].park;
	if (park && (i > 0 || (run->woken && run->woken_from == HF_WOKEN_WAIT)))
		return 0;
	const struct hf_throttle *st = park ? NULL : wf->steps[i].throttle;
	/* Woken from a throttle: its reservation (wake_at) moves to its real
	 * start, or later when the starts made since fill its window. */
	int64_t own = run->woken && run->woken_from == HF_WOKEN_THROTTLE
			  ? run->wake_at
			  : NO_OWN;
	/* Before the first step the workflow's gate comes first, then the
	 * step's own: a run woken from the step's gate passed the
	 * workflow's already. */
	if (i == 0 && wf->throttle) {
		if (!st || own == NO_OWN || !woke_at_step(s, run)) {
			if (gate(s, run, wf->throttle, NULL, own, now))
				return 1;
			own = NO_OWN; /* its reservation was the workflow's */
		}
	}
	return st ? gate(s, run, st, wf->steps[i].id, own, now) : 0;
}

struct restore {
	size_t n;
};

static void restore_one(const struct hf_active_run *r, void *arg)
{
	struct restore *rs = arg;
	if (strcmp(r->status, "waiting") != 0 || !r->waiting)
		return;
	json_t *o = json_loads(r->waiting, 0, NULL);
	const char *f = json_string_value(json_object_get(o, "for"));
	const char *k = json_string_value(json_object_get(o, "key"));
	if (f && k && strcmp(f, "throttle") == 0) {
		pthread_mutex_lock(&lock);
		struct key *key = key_get(k);
		times_add(&key->res, r->wake_at, HF_THROTTLE_MAX);
		pthread_mutex_unlock(&lock);
		rs->n++;
	}
	json_decref(o);
}

static bool throttled(const struct hf_workflow *wf)
{
	if (wf->throttle)
		return true;
	for (size_t i = 0; i < wf->nsteps; i++)
		if (wf->steps[i].throttle)
			return true;
	return false;
}

void hf_throttle_restore(struct hf_store *s, const struct hf_workflow_set *set)
{
	struct restore rs = {0};
	for (size_t i = 0; set && i < set->n; i++)
		if (throttled(set->items[i]))
			hf_store_active_runs(s, set->items[i]->name, NULL,
					     HF_THROTTLE_MAX, restore_one, &rs);
	if (rs.n)
		hf_log(HF_LOG_INFO, "%zu run%s parked for a throttle", rs.n,
		       rs.n == 1 ? "" : "s");
}

void hf_throttle_reset(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < BUCKETS; i++) {
		for (struct key *k = keys[i], *next; k; k = next) {
			next = k->next;
			free(k->name);
			free(k->res.at);
			free(k->starts.at);
			free(k);
		}
		keys[i] = NULL;
	}
	pthread_mutex_unlock(&lock);
}
