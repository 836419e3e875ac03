/* ops.c - the operations that the admin API, the command line and the workers
 * share (see hf_ops.h): replay an event, retry a run or a delivery, run one
 * step of a run and decide what the run does next.
 *
 * Owns no state and no threads: each call runs on its caller's thread (an HTTP
 * thread, the CLI's main thread, a worker) and waits for its own commits. It
 * does not answer HTTP or print: its callers turn the results into answers and
 * lines. Below ingest, api, server and cli; above store, scheduler, dispatch
 * and the Lua runtime. */
#include "hf_dispatch.h"
#include "hf_engine.h"
#include "hf_flow.h"
#include "hf_limits.h"
#include "hf_on_failure.h"
#include "hf_ops.h"
#include "hf_park.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* --- waiting for a commit --- */

struct wait_write {
	struct hf_write *w;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void wait_done(struct hf_write *w)
{
	struct wait_write *ww = w->ctx;
	pthread_mutex_lock(&ww->lock);
	ww->done = true;
	pthread_cond_signal(&ww->cond);
	pthread_mutex_unlock(&ww->lock);
}

int hf_ops_submit_wait(struct hf_store *s, struct hf_write *w)
{
	struct wait_write ww = {.w = w};
	pthread_mutex_init(&ww.lock, NULL);
	pthread_cond_init(&ww.cond, NULL);
	w->done = wait_done;
	w->ctx = &ww;
	hf_store_submit(s, w);
	pthread_mutex_lock(&ww.lock);
	while (!ww.done)
		pthread_cond_wait(&ww.cond, &ww.lock);
	pthread_mutex_unlock(&ww.lock);
	pthread_mutex_destroy(&ww.lock);
	pthread_cond_destroy(&ww.cond);
	return w->rc;
}

/* --- replay and retries --- */

int hf_ops_replay(struct hf_store *s, struct hf_sched *sched,
		  const struct hf_router *router, const char *event_id,
		  json_t **out)
{
	struct hf_event *ev = hf_store_load_event(s, event_id);
	if (!ev)
		return HF_STORE_NOT_FOUND;
	struct hf_run *runs[HF_MAX_MATCH];
	size_t nruns = hf_dispatch_replay(router, ev, runs);
	struct hf_write w = {0};
	w.kind = HF_W_RUNS;
	w.event = ev;
	w.runs = runs;
	w.nruns = nruns;
	w.unclaimed = !sched;
	int rc = hf_ops_submit_wait(s, &w);
	json_t *ids = json_array();
	for (size_t i = 0; i < nruns; i++) {
		if (rc == 0)
			json_array_append_new(ids, json_string(runs[i]->id));
		if (rc == 0 && sched) {
			hf_flow_run_committed(runs[i]); /* cancel_in_progress */
			hf_sched_push(sched, runs[i]);
		} else
			hf_run_free(runs[i]);
	}
	if (rc == 0)
		*out = json_pack("{s:s,s:o}", "event", ev->id, "runs", ids);
	else
		json_decref(ids);
	hf_event_unref(ev);
	return rc == 0 ? 0 : -1;
}

int hf_ops_retry_run(struct hf_store *conn, const char *run_id,
		     struct hf_error *err)
{
	json_t *run = hf_store_run_json(conn, run_id);
	if (!run) {
		hf_error_set(err, NULL, 0, 0, "no run '%s'", run_id);
		return HF_STORE_NOT_FOUND;
	}
	const char *st = json_string_value(json_object_get(run, "status"));
	char status[16];
	snprintf(status, sizeof status, "%s", st ? st : "");
	json_decref(run);
	if (strcmp(status, "failed") != 0) {
		hf_error_set(err, NULL, 0, 0,
			     "run '%s' is %s: only a failed run can be "
			     "retried",
			     run_id, status);
		return HF_STORE_CONFLICT;
	}
	return hf_store_retry_run(conn, run_id, err) < 0 ? -1 : 0;
}

struct retry_arg {
	const char *id;
	int result;
};

static int retry_call(struct hf_store *s, void *arg)
{
	struct retry_arg *a = arg;
	a->result = hf_store_retry_delivery(s, a->id);
	return 0; /* the outcome is in a->result, not a failed write */
}

int hf_ops_retry_delivery(struct hf_store *s, const char *delivery_id)
{
	struct retry_arg a = {delivery_id, -1};
	struct hf_write w = {0};
	w.kind = HF_W_CALL;
	w.call = retry_call;
	w.call_arg = &a;
	return hf_ops_submit_wait(s, &w) == 0 ? a.result : -1;
}

/* --- steps --- */

int64_t hf_step_budget(const struct hf_run *run, int64_t now)
{
	const struct hf_step *step = &run->wf->steps[run->next_step];
	/* on_failure steps: after the run's time, each its own timeout. */
	if (run->next_step >= run->wf->nsteps)
		return step->timeout_ms;
	int64_t start = run->started_at ? run->started_at : now;
	/* A run that waited (hf_park.h): its timeout counts from its wake. */
	if (run->wake_at > start && run->wake_at <= now)
		start = run->wake_at;
	int64_t left = start + run->wf->timeout_ms - now;
	if (left <= 0)
		return 0;
	return step->timeout_ms < left ? step->timeout_ms : left;
}

/* Exponential backoff with jitter: the n-th retry waits a random time between
 * half and all of min(max_backoff, backoff * 2^(n-1)), so that retries of many
 * runs spread out but never come back immediately. */
static int64_t backoff(const struct hf_step *step, int retry)
{
	double d = (double)step->retry_backoff_ms;
	for (int i = 1; i < retry && d < (double)step->retry_max_backoff_ms;
	     i++)
		d *= 2;
	if (d > (double)step->retry_max_backoff_ms)
		d = (double)step->retry_max_backoff_ms;
	unsigned r = 0;
	if (getrandom(&r, sizeof r, 0) != sizeof r)
		r = (unsigned)time(NULL);
	return (int64_t)(d / 2 + (d / 2) * ((double)r / 4294967295.0));
}

/* Keeps the first line of a step's error for the run's error. */
static char *first_line(const char *s)
{
	size_t n = strcspn(s ? s : "", "\n");
	return hf_xstrndup(s ? s : "", n);
}

/* When a failed step is tried again: -1 for never (retry.never, no attempt
 * left, or a retry.after delay that would pass the run's timeout), else the
 * wall ms of the next attempt, after retry.after's delay (capped by
 * retry.max_delay) or else the backoff. *past_timeout: the delay was why. */
static int64_t next_attempt(const struct hf_run *run,
			    const struct hf_step_result *res, int64_t now,
			    bool *past_timeout)
{
	const struct hf_step *step = &run->wf->steps[run->next_step];
	*past_timeout = false;
	if (res->retry_never || run->step_attempt >= step->retry_attempts)
		return -1;
	if (!res->retry_after)
		return now + backoff(step, run->step_attempt);
	int64_t d = res->retry_delay_ms < step->retry_max_delay_ms
			? res->retry_delay_ms
			: step->retry_max_delay_ms;
	int64_t start = run->started_at ? run->started_at : now;
	if (now + d >= start + run->wf->timeout_ms) {
		*past_timeout = true;
		return -1;
	}
	return now + d;
}

bool hf_run_advance(struct hf_run *run, const struct hf_step_result *res,
		    int64_t now)
{
	bool late = false;
	int64_t due;
	const struct hf_step *step = &run->wf->steps[run->next_step];
	if (run->next_step >= run->wf->nsteps)
		return hf_on_failure_advance(run, res);
	run->due_at = 0;
	switch (res->status) {
	case HF_STEP_SUCCEEDED:
		json_object_set(run->outputs, step->id, res->output);
		json_decref(run->last_output);
		run->last_output = json_incref(res->output);
		run->next_step++;
		run->step_attempt = 1;
		break;
	case HF_STEP_SKIPPED:
		run->next_step++;
		run->step_attempt = 1;
		break;
	case HF_STEP_FAILED:
		if ((due = next_attempt(run, res, now, &late)) >= 0) {
			run->step_attempt++;
			run->due_at = due;
			return false;
		}
		if (step->continue_on_error) {
			run->next_step++;
			run->step_attempt = 1;
			break;
		}
		free(run->error);
		char *line = first_line(res->error);
		run->error = hf_xasprintf(
		    "step '%s' failed: %s%s", step->id, line,
		    late ? " (retry.after: the next attempt would pass the "
			   "run's timeout)"
			 : "");
		free(line);
		run->status = HF_RUN_FAILED;
		/* on_failure: the run goes on there, and fails at its end. */
		return !hf_on_failure_enter(run, step->id, res->error,
					    run->step_attempt);
	}
	if (run->next_step >= run->wf->nsteps) {
		run->status = HF_RUN_SUCCEEDED;
		return true;
	}
	return false;
}

int hf_ops_step(struct hf_luart *rt, struct hf_run *run, int64_t now,
		struct hf_step_result *res, struct hf_ops_step *done)
{
	const struct hf_step *step = &run->wf->steps[run->next_step];
	int64_t gated = run->throttled_at; /* this step's only */
	run->throttled_at = 0;
	if (run->woken && run->woken_from == HF_WOKEN_WAIT && step->park) {
		/* Its wait is over (hf_park.h): nothing runs. */
		hf_park_woken_result(run, res, now);
		done->index = run->next_step;
		done->attempt = run->step_attempt;
		done->over = hf_run_advance(run, res, now);
		return 0;
	}
	run->woken = false;
	int64_t budget = hf_step_budget(run, now);
	if (budget <= 0)
		return -1;
	char *resume_url = run->wf->has_wait_for
			       ? hf_park_resume_url(run, run->next_step)
			       : NULL;
	struct hf_step_ctx ctx = {
	    .wf = run->wf,
	    .step = run->next_step,
	    .ev = run->event, /* event.body decoded by the runtime, once */
	    .steps = run->outputs,
	    .run_id = run->id,
	    .attempt = run->step_attempt,
	    .timeout_ms = budget,
	    .failure = run->failure,
	    .events = run->events,
	    .resume_url = resume_url,
	};
	hf_luart_run_step(rt, &ctx, res);
	free(resume_url);
	if (gated) /* the start the throttle counted */
		res->started_at = gated;
	done->index = ctx.step;
	done->attempt = ctx.attempt;
	/* A step that waits parks the run: it is not advanced (hf_park.h).
	 * Its wait counts from the start the throttle let through, if any. */
	if (step->park && res->status == HF_STEP_SUCCEEDED &&
	    hf_park_step(run, res, gated ? gated : hf_now_ms()) > 0) {
		done->over = false;
		return 0;
	}
	done->over = hf_run_advance(run, res, hf_now_ms());
	return 0;
}
