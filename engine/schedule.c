/* schedule.c - fires `on.schedule` (see hf_schedule.h).
 *
 * One thread holds a table of (workflow, entry) -> next fire time, rebuilt
 * when the workflows are reloaded (an entry whose cron and zone did not
 * change keeps its time), and sleeps on a condition variable until the
 * soonest time or a second, whichever comes first (to see reloads). A fire
 * is an event (hf_schedule_event) and at most one run, made by
 * hf_dispatch_schedule (the workflow's `if:` and concurrency key) with the
 * dedupe key "schedule:N:AT" (N: the entry's index, AT: the fire time in
 * ISO 8601 UTC), submitted as an HF_W_INGEST write: the store's dedupe table
 * drops a second run for the same fire time, and its newest key per entry is
 * the last fire, from which the start computes the missed ones.
 *
 * Not here: cron syntax and time zones (wf_cron.c, wf_tz.c), the YAML
 * (workflow.c), running the run (scheduler.c, worker.c).
 *
 * Threading: the table belongs to the thread; the lock guards only `stop`
 * and the condition variable. fire_done runs on the writer thread. */
#include "hf_dispatch.h"
#include "hf_flow.h"
#include "hf_limits.h"
#include "hf_metrics.h"
#include "hf_schedule.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Missed fires are counted up to this many per entry at start (a per-second
 * test schedule over a long stop); the latest catch_up of them run. */
#define COUNT_MAX 2000000

struct entry {
	char *workflow;
	size_t idx;
	char *cron;
	char *timezone;
	int64_t next; /* UTC seconds; -1: never */
	bool seen;
};

struct hf_schedule_thread {
	struct hf_engine *eng;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	struct entry *e;
	size_t n;
};

/* One fire on its way to the store. */
struct fire {
	struct hf_write w;
	struct hf_engine *eng;
	struct hf_run *runs[1];
	bool dropped[1];
	char workflow[HF_NAME_MAX + 1];
};

struct hf_event *hf_schedule_event(const struct hf_workflow *wf, size_t idx,
				   int64_t at_s)
{
	char at[24];
	hf_cron_iso(at_s, at);
	struct hf_event *ev = hf_event_new();
	hf_id_new(ev->id, "ev");
	ev->method = hf_xstrdup("SCHEDULE");
	ev->path = hf_xstrdup(wf->name);
	ev->headers = json_object();
	ev->query = json_pack("{s:s,s:s}", "cron",
			      idx < wf->nschedules && wf->schedules[idx].cron
				  ? wf->schedules[idx].cron
				  : "",
			      "at", at);
	ev->body = hf_xstrdup("");
	ev->body_len = 0;
	ev->received_at = hf_now_ms();
	ev->skipped = json_array();
	return ev;
}

static void fire_done(struct hf_write *w)
{
	struct fire *f = w->ctx;
	const char *outcome = "run";
	if (w->rc < 0) {
		outcome = "failed";
		hf_log(
		    HF_LOG_WARN,
		    "schedule: workflow '%s': cannot store the fire of %s",
		    f->workflow,
		    json_string_value(json_object_get(w->event->query, "at")));
	} else if (w->nruns == 0) {
		outcome = "skipped";
	} else if (w->dropped[0] || w->dup_of[0]) {
		outcome = "duplicate";
	}
	hf_metrics_schedule_fire(f->workflow, outcome);
	if (strcmp(outcome, "run") == 0) {
		hf_flow_run_committed(f->runs[0]); /* cancel_in_progress */
		hf_sched_push(f->eng->sched, f->runs[0]);
	} else if (w->nruns)
		hf_run_free(f->runs[0]);
	hf_event_unref(w->event);
	free(f);
}

/* Fires wf's entry idx for the fire time at_s. */
static void fire(struct hf_engine *eng, struct hf_workflow *wf, size_t idx,
		 int64_t at_s)
{
	struct hf_event *ev = hf_schedule_event(wf, idx, at_s);
	char key[64];
	snprintf(key, sizeof key, "schedule:%zu:%s", idx,
		 json_string_value(json_object_get(ev->query, "at")));
	struct hf_luart *rt =
	    hf_dispatch_needs_lua(&wf, 1) ? hf_dispatch_runtime() : NULL;
	struct fire *f = hf_xcalloc(1, sizeof *f);
	f->eng = eng;
	snprintf(f->workflow, sizeof f->workflow, "%s", wf->name);
	f->runs[0] = hf_dispatch_schedule(rt, ev, wf, key);
	f->w.kind = HF_W_INGEST;
	f->w.event = ev;
	f->w.runs = f->runs;
	f->w.nruns = f->runs[0] ? 1 : 0;
	f->w.dropped = f->dropped;
	f->w.done = fire_done;
	f->w.ctx = f;
	hf_store_submit(eng->store, &f->w);
}

/* At start: the fires of entry idx missed since its last one, the latest
 * catch_up of them. Nothing when it never fired (a new schedule starts from
 * now) or its last fire was pruned (--retain). */
static void catch_up(struct hf_engine *eng, struct hf_workflow *wf, size_t idx,
		     int64_t now_s)
{
	const struct hf_schedule *sc = &wf->schedules[idx];
	char prefix[32], last[128];
	int64_t last_s;
	snprintf(prefix, sizeof prefix, "schedule:%zu:", idx);
	if (hf_store_dedupe_last(eng->store, wf->name, prefix, last,
				 sizeof last) != 1 ||
	    hf_cron_parse_time(last + strlen(prefix), &last_s) < 0)
		return;
	/* Counted even with catch_up: 0, for the log line. */
	int64_t ring[HF_SCHEDULE_CATCH_UP_MAX];
	size_t k = sc->catch_up > 0 ? (size_t)sc->catch_up : 1, count = 0;
	for (int64_t t = last_s; count < COUNT_MAX;) {
		t = hf_cron_next(&sc->expr, sc->tz, t);
		if (t < 0 || t > now_s)
			break;
		ring[count++ % k] = t;
	}
	if (!count)
		return;
	size_t run = count < k ? count : k;
	if (sc->catch_up <= 0)
		run = 0;
	hf_log(HF_LOG_INFO,
	       "schedule: workflow '%s' missed %zu%s fire%s of '%s' while "
	       "stopped: running %s%zu (catch_up: %d)",
	       wf->name, count, count >= COUNT_MAX ? "+" : "",
	       count == 1 ? "" : "s", sc->cron,
	       run && run < count ? "the latest " : "", run, sc->catch_up);
	for (size_t i = count - run; i < count; i++)
		fire(eng, wf, idx, ring[i % k]);
}

static struct entry *find(struct hf_schedule_thread *t, const char *name,
			  size_t idx, const struct hf_schedule *sc)
{
	for (size_t i = 0; i < t->n; i++) {
		struct entry *e = &t->e[i];
		if (e->idx == idx && strcmp(e->workflow, name) == 0 &&
		    strcmp(e->cron, sc->cron) == 0 &&
		    strcmp(e->timezone, sc->timezone) == 0)
			return e;
	}
	return NULL;
}

/* The table for the workflows of snap; first: the start (catch up). */
static void rebuild(struct hf_schedule_thread *t, struct hf_snapshot *snap,
		    bool first)
{
	int64_t now_s = hf_now_ms() / 1000;
	for (size_t i = 0; i < t->n; i++)
		t->e[i].seen = false;
	size_t old = t->n;
	for (size_t w = 0; w < snap->set->n; w++) {
		struct hf_workflow *wf = snap->set->items[w];
		for (size_t i = 0; i < wf->nschedules; i++) {
			const struct hf_schedule *sc = &wf->schedules[i];
			struct entry *e = find(t, wf->name, i, sc);
			if (e && e < t->e + old) {
				e->seen = true;
				continue;
			}
			if (first)
				catch_up(t->eng, wf, i, now_s);
			t->e = hf_xrealloc(t->e, (t->n + 1) * sizeof *t->e);
			t->e[t->n++] = (struct entry){
			    .workflow = hf_xstrdup(wf->name),
			    .idx = i,
			    .cron = hf_xstrdup(sc->cron),
			    .timezone = hf_xstrdup(sc->timezone),
			    .next = hf_cron_next(&sc->expr, sc->tz, now_s),
			    .seen = true,
			};
		}
	}
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (t->e[i].seen) {
			t->e[n++] = t->e[i];
			continue;
		}
		free(t->e[i].workflow);
		free(t->e[i].cron);
		free(t->e[i].timezone);
	}
	t->n = n;
}

/* Fires every entry due by now_ms. */
static void fire_due(struct hf_schedule_thread *t, struct hf_snapshot *snap,
		     int64_t now_ms)
{
	for (size_t i = 0; i < t->n; i++) {
		struct entry *e = &t->e[i];
		struct hf_workflow *wf =
		    hf_workflow_set_find(snap->set, e->workflow);
		if (!wf || e->idx >= wf->nschedules)
			continue;
		const struct hf_schedule *sc = &wf->schedules[e->idx];
		/* Behind by more than a few fires (the machine slept): the
		 * latest only. */
		int burst = 0;
		while (e->next >= 0 && e->next * 1000 <= now_ms) {
			int64_t after =
			    hf_cron_next(&sc->expr, sc->tz, e->next);
			if (++burst > 3 && after >= 0 &&
			    after * 1000 <= now_ms) {
				e->next = after;
				continue;
			}
			fire(t->eng, wf, e->idx, e->next);
			e->next = after;
		}
	}
}

static void *thread_main(void *arg)
{
	struct hf_schedule_thread *t = arg;
	struct hf_engine *eng = t->eng;
	struct hf_snapshot *snap = hf_engine_snapshot(eng);
	rebuild(t, snap, true);
	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		pthread_mutex_unlock(&t->lock);
		struct hf_snapshot *now_snap = hf_engine_snapshot(eng);
		if (now_snap != snap) {
			hf_snapshot_unref(snap);
			snap = now_snap;
			rebuild(t, snap, false);
		} else {
			hf_snapshot_unref(now_snap);
		}
		int64_t now = hf_now_ms();
		fire_due(t, snap, now);
		int64_t wait = 1000;
		for (size_t i = 0; i < t->n; i++)
			if (t->e[i].next >= 0 &&
			    t->e[i].next * 1000 - now < wait)
				wait = t->e[i].next * 1000 - now;
		struct timespec ts;
		hf_deadline_in(wait > 0 ? wait : 0, &ts);
		pthread_mutex_lock(&t->lock);
		if (!t->stop && wait > 0)
			pthread_cond_timedwait(&t->cond, &t->lock, &ts);
	}
	pthread_mutex_unlock(&t->lock);
	hf_snapshot_unref(snap);
	hf_engine_snapshot_forget();
	return NULL;
}

struct hf_schedule_thread *hf_schedule_start(struct hf_engine *eng)
{
	struct hf_schedule_thread *t = hf_xcalloc(1, sizeof *t);
	t->eng = eng;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	if (hf_thread_start(&t->thread, "hf-schedule", thread_main, t) != 0) {
		hf_log(HF_LOG_ERROR, "schedule: cannot start its thread");
		pthread_mutex_destroy(&t->lock);
		pthread_cond_destroy(&t->cond);
		free(t);
		return NULL;
	}
	return t;
}

void hf_schedule_stop(struct hf_schedule_thread *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].workflow);
		free(t->e[i].cron);
		free(t->e[i].timezone);
	}
	free(t->e);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
}
