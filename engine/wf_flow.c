/* wf_flow.c - the flow-control keys of a workflow file (CONTRACT §6):
 * `on_failure:` (steps run once after the run failed) and `cancel_on:`
 * (requests that cancel the workflow's runs). The keys are listed in
 * workflow.c's tables; this file reads their values into the hf_workflow
 * model, with FILE:LINE:COL errors.
 *
 * on_failure steps are parsed as steps (workflow.c's wf_parse_step) and kept
 * after the run's own steps in wf->steps, ids prefixed "on_failure.", so that
 * their records, outputs and the RUN JSON tell them apart. They are never
 * retried: `retry:` is refused there.
 *
 * Threading: a parse owns its struct wf_ctx. Neighbours: workflow.c, ops.c
 * (hf_run_advance enters them), on_failure.c (the `failure` global). */
#include "hf_limits.h"
#include "wf_int.h"

#include <stdlib.h>
#include <string.h>

#define ON_FAILURE_PREFIX "on_failure."

void wf_parse_on_failure(struct wf_ctx *c, const yaml_node_t *n)
{
	struct hf_workflow *wf = &c->p->pub;
	if (n->type != YAML_SEQUENCE_NODE) {
		wf_nerr(c, n, "'on_failure' must be a list of steps");
		return;
	}
	size_t cnt =
	    (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt == 0) {
		wf_nerr(c, n, "'on_failure' must not be empty");
		return;
	}
	if (cnt > HF_MAX_STEPS) {
		wf_nerr(c, n, "too many on_failure steps (%zu, at most %d)",
			cnt, HF_MAX_STEPS);
		return;
	}
	if (!wf->steps)
		return; /* `steps:` failed: said already */
	size_t base = wf->nsteps;
	wf->steps = hf_xrealloc(wf->steps, (base + cnt) * sizeof *wf->steps);
	memset(wf->steps + base, 0, cnt * sizeof *wf->steps);
	wf->nfailure_steps = cnt;
	const yaml_node_t **ids = hf_xcalloc(cnt, sizeof *ids);
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *it = node_of(c, n->data.sequence.items.start[i]);
		if (!it)
			continue;
		struct hf_step *st = &wf->steps[base + i];
		wf_parse_step(c, it, i, st, &ids[i]);
		const yaml_node_t *x;
		if (it->type == YAML_MAPPING_NODE &&
		    (x = wf_get(c, it, "retry")))
			wf_nerr(c, x,
				"'retry' is not allowed in on_failure: its "
				"steps run once");
		st->retry_attempts = 1;
		for (size_t j = 0; j < i && ids[i]; j++)
			if (ids[j] &&
			    strcmp(st->id, wf->steps[base + j].id) == 0) {
				wf_nerr(c, ids[i],
					"duplicate step id '%s' (first used on "
					"line %d)",
					st->id,
					(int)ids[j]->start_mark.line + 1);
				break;
			}
	}
	for (size_t i = 0; i < cnt; i++) {
		struct hf_step *st = &wf->steps[base + i];
		if (!st->id)
			continue;
		char *id = hf_xasprintf(ON_FAILURE_PREFIX "%s", st->id);
		free(st->id);
		st->id = id;
	}
	free(ids);
}

/* A literal path: no {parameters}, query or spaces (as wait_for's). */
static bool literal_path(const char *s)
{
	if (s[0] != '/' || strlen(s) > HF_WEBHOOK_PATH_MAX)
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#' ||
		    *p == '{' || *p == '}' || *p == '%' || *p == '\\' ||
		    *p == 0x7f)
			return false;
	return true;
}

static void parse_cancel_on_entry(struct wf_ctx *c, const yaml_node_t *n,
				  const char *const *keys, size_t nkeys,
				  struct hf_cancel_on *e)
{
	const yaml_node_t *x;
	const char *s;
	e->line = (int)n->start_mark.line + 1;
	if (n->type != YAML_MAPPING_NODE) {
		wf_nerr(c, n,
			"a cancel_on entry must be a mapping (with 'path' and "
			"'if')");
		return;
	}
	wf_check_keys(c, n, keys, nkeys);
	if ((x = wf_need(c, n, "path")) && (s = wf_want_str(c, x, "path"))) {
		if (!literal_path(s))
			wf_nerr(c, x,
				"invalid cancel_on path '%s' (expected a "
				"literal path starting with /, without "
				"{parameters}, query or spaces)",
				s);
		else if (!wf_route_path(c, x, s, "cancel_on path"))
			;
		else if (hf_path_is_reserved(s) || hf_park_is_resume_path(s))
			wf_nerr(c, x,
				"cancel_on path '%s' is reserved (/api, /ui, "
				"/resume, /healthz and /metrics are the "
				"server's)",
				s);
		else
			e->path = hf_xstrdup(s);
	}
	if ((x = wf_get(c, n, "if")))
		e->if_expr = wf_parse_expr(c, x, "cancel_on.if");
}

void wf_parse_cancel_on(struct wf_ctx *c, const yaml_node_t *n,
			const char *const *keys, size_t nkeys)
{
	struct hf_workflow *wf = &c->p->pub;
	if (n->type != YAML_SEQUENCE_NODE) {
		wf_nerr(c, n,
			"'cancel_on' must be a list of {path, if} entries");
		return;
	}
	size_t cnt =
	    (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt == 0 || cnt > HF_MAX_STEPS) {
		wf_nerr(c, n, "'cancel_on' must have 1 to %d entries",
			HF_MAX_STEPS);
		return;
	}
	wf->cancel_on = hf_xcalloc(cnt, sizeof *wf->cancel_on);
	wf->ncancel_on = cnt;
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *it = node_of(c, n->data.sequence.items.start[i]);
		if (it)
			parse_cancel_on_entry(c, it, keys, nkeys,
					      &wf->cancel_on[i]);
	}
}

struct hf_throttle *wf_parse_throttle(struct wf_ctx *c, const yaml_node_t *n,
				      const char *const *keys, size_t nkeys)
{
	if (!wf_want_map(c, n, "throttle"))
		return NULL;
	wf_check_keys(c, n, keys, nkeys);
	struct hf_throttle *t = hf_xcalloc(1, sizeof *t);
	const yaml_node_t *x;
	bool ok = true;
	if ((x = wf_need(c, n, "key")))
		ok = (t->key = wf_parse_expr(c, x, "throttle.key")) != NULL;
	else
		ok = false;
	if ((x = wf_need(c, n, "limit")))
		ok = wf_parse_int(c, x, "throttle.limit", 1, HF_THROTTLE_MAX,
				  &t->limit) &&
		     ok;
	else
		ok = false;
	if ((x = wf_need(c, n, "period"))) {
		wf_parse_duration(c, x, "throttle.period", true, &t->period_ms);
		ok = ok && t->period_ms > 0;
	} else {
		ok = false;
	}
	if (!ok) {
		wf_throttle_free(t);
		return NULL;
	}
	return t;
}

void wf_throttle_free(struct hf_throttle *t)
{
	if (!t)
		return;
	wf_expr_free(t->key);
	free(t);
}

struct hf_debounce *wf_parse_debounce(struct wf_ctx *c, const yaml_node_t *n,
				      const char *const *keys, size_t nkeys)
{
	if (!wf_want_map(c, n, "debounce"))
		return NULL;
	wf_check_keys(c, n, keys, nkeys);
	struct hf_debounce *d = hf_xcalloc(1, sizeof *d);
	const yaml_node_t *x;
	bool ok = true;
	if ((x = wf_need(c, n, "key")))
		ok = (d->key = wf_parse_expr(c, x, "debounce.key")) != NULL;
	else
		ok = false;
	if ((x = wf_need(c, n, "period")))
		wf_parse_duration(c, x, "debounce.period", true, &d->period_ms);
	ok = ok && d->period_ms > 0;
	if ((x = wf_get(c, n, "max_wait"))) {
		wf_parse_duration(c, x, "debounce.max_wait", true,
				  &d->max_wait_ms);
		if (d->max_wait_ms > 0 && d->max_wait_ms < d->period_ms)
			wf_nerr(c, x,
				"'max_wait' must not be less than 'period'");
	}
	if (!ok) {
		wf_expr_free(d->key);
		free(d);
		return NULL;
	}
	return d;
}

void wf_flow_free(struct hf_workflow *wf)
{
	wf_throttle_free(wf->throttle);
	if (wf->debounce) {
		wf_expr_free(wf->debounce->key);
		free(wf->debounce);
	}
	for (size_t i = 0; i < wf->ncancel_on; i++) {
		free(wf->cancel_on[i].path);
		wf_expr_free(wf->cancel_on[i].if_expr);
	}
	free(wf->cancel_on);
}

/* The path's length without trailing '/' (but "/" itself). */
static size_t trimmed(const char *path)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	return n;
}

bool hf_workflow_cancel_on_matches(const struct hf_cancel_on *e,
				   const char *path)
{
	size_t n = trimmed(path);
	return e->path && trimmed(e->path) == n &&
	       strncmp(e->path, path, n) == 0;
}

bool hf_workflow_set_cancel_on(const struct hf_workflow_set *set,
			       const char *path)
{
	for (size_t i = 0; set && i < set->n; i++)
		for (size_t j = 0; j < set->items[i]->ncancel_on; j++)
			if (hf_workflow_cancel_on_matches(
				&set->items[i]->cancel_on[j], path))
				return true;
	return false;
}
