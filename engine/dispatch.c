/* dispatch.c - turns an accepted event into runs: evaluates each matched
 * workflow's `if:`, dedupe key and concurrency key.
 *
 * These are workflow-level expressions, evaluated before the answer so that the
 * 202 can name the runs and a duplicate can be refused. They run in an
 * expression-only Lua runtime (no db, http, webhook, log; a small instruction
 * and memory budget; see HF_EXPR_*), one per thread that calls this: the HTTP
 * threads and the CLI. Step code never runs here. */
#include "hf_crypto.h"
#include "hf_dispatch.h"
#include "hf_limits.h"
#include "hf_verify.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_key_t rt_key;
static pthread_once_t rt_once = PTHREAD_ONCE_INIT;

static void rt_free(void *p)
{
	hf_luart_destroy(p);
}

static void rt_key_init(void)
{
	pthread_key_create(&rt_key, rt_free);
}

struct hf_luart *hf_dispatch_runtime(void)
{
	pthread_once(&rt_once, rt_key_init);
	struct hf_luart *rt = pthread_getspecific(rt_key);
	if (!rt) {
		struct hf_luart_config cfg = {.expr_only = true};
		rt = hf_luart_create(&cfg, NULL);
		pthread_setspecific(rt_key, rt);
	}
	return rt;
}

bool hf_dispatch_needs_lua(struct hf_workflow **wfs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (wfs[i]->if_expr || wfs[i]->dedupe ||
		    wfs[i]->concurrency_key)
			return true;
	return false;
}

/* Records why workflow made no run of ev; the list is made on the first
 * (most events have none: no allocation for them). */
static void skip(struct hf_event *ev, const char *workflow, const char *reason)
{
	if (!ev->skipped)
		ev->skipped = json_array();
	json_t *o = json_object();
	json_object_set_new(o, "workflow", json_string(workflow));
	json_object_set_new(o, "reason", json_string(reason));
	json_array_append_new(ev->skipped, o);
}

/* Evaluates e; returns 0 and a new reference in *v, or -1 after recording the
 * error as a skip reason. */
static int eval(struct hf_luart *rt, struct hf_event *ev, json_t **evjson,
		const struct hf_workflow *wf, const char *what,
		const struct hf_expr *e, json_t **v)
{
	char *err = NULL;
	char key[256];
	snprintf(key, sizeof key, "%s:%s", wf->version, what);
	/* The event is built only if e reads it (i13-lua): evjson unused. */
	(void)evjson;
	if (!rt || hf_luart_eval_event(rt, key, e, ev, wf, v, &err) < 0) {
		char *reason =
		    hf_xasprintf("%s: %s", what, err ? err : "no Lua runtime");
		skip(ev, wf->name, reason);
		free(reason);
		free(err);
		return -1;
	}
	return 0;
}

/* A dedupe key or lane value as a string: strings as they are, numbers and
 * booleans in their JSON form; nil/null gives NULL (no key). Bounded as
 * stored (hf_key_bounded: PostgreSQL's B-tree indexes refuse rows past
 * about 2.7 KB, and the event could never be stored). */
static char *key_string(const json_t *v)
{
	if (!v || json_is_null(v))
		return NULL;
	if (json_is_string(v))
		return hf_key_bounded(hf_xstrdup(json_string_value(v)));
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	return hf_key_bounded(s);
}

size_t hf_dispatch(struct hf_luart *rt, struct hf_event *ev,
		   struct hf_workflow **wfs, size_t n, struct hf_run **out)
{
	json_t *evjson = NULL;
	size_t nruns = 0;
	for (size_t i = 0; i < n; i++) {
		struct hf_workflow *wf = wfs[i];
		json_t *v = NULL;
		if (wf->if_expr) {
			if (eval(rt, ev, &evjson, wf, "if", wf->if_expr, &v) <
			    0)
				continue;
			bool pass = hf_json_truthy(v);
			json_decref(v);
			if (!pass) {
				skip(ev, wf->name, "if: condition is false");
				continue;
			}
		}
		char *dedupe = NULL, *lane = NULL;
		if (wf->dedupe) {
			if (eval(rt, ev, &evjson, wf, "dedupe", wf->dedupe,
				 &v) < 0)
				continue;
			dedupe = key_string(v);
			json_decref(v);
		} else if (wf->verify.scheme == HF_VERIFY_STRIPE) {
			dedupe = key_string(
			    json_object_get(hf_event_body(ev), "id"));
		} else {
			const char *h =
			    hf_verify_default_dedupe_header(wf->verify.scheme);
			const char *val = h ? json_string_value(json_object_get(
						  hf_event_headers(ev), h))
					    : NULL;
			dedupe = val ? hf_key_bounded(hf_xstrdup(val)) : NULL;
		}
		if (wf->concurrency_key) {
			if (eval(rt, ev, &evjson, wf, "concurrency.key",
				 wf->concurrency_key, &v) < 0) {
				free(dedupe);
				continue;
			}
			lane = key_string(v);
			json_decref(v);
		}
		struct hf_run *run = hf_run_new(ev, wf);
		run->dedupe_key = dedupe;
		run->lane = lane;
		out[nruns++] = run;
	}
	json_decref(evjson);
	return nruns;
}

struct hf_run *hf_dispatch_schedule(struct hf_luart *rt, struct hf_event *ev,
				    struct hf_workflow *wf, const char *key)
{
	json_t *evjson = NULL, *v = NULL;
	struct hf_run *run = NULL;
	char *lane = NULL;
	if (wf->if_expr) {
		if (eval(rt, ev, &evjson, wf, "if", wf->if_expr, &v) < 0)
			goto out;
		bool pass = hf_json_truthy(v);
		json_decref(v);
		if (!pass) {
			skip(ev, wf->name, "if: condition is false");
			goto out;
		}
	}
	if (wf->concurrency_key) {
		if (eval(rt, ev, &evjson, wf, "concurrency.key",
			 wf->concurrency_key, &v) < 0)
			goto out;
		lane = key_string(v);
		json_decref(v);
	}
	run = hf_run_new(ev, wf);
	run->dedupe_key = hf_xstrdup(key);
	run->lane = lane;
out:
	json_decref(evjson);
	return run;
}

size_t hf_dispatch_replay(const struct hf_router *router, struct hf_event *ev,
			  struct hf_run **out)
{
	struct hf_workflow *wfs[HF_MAX_MATCH];
	int known = 0;
	unsigned allowed = 0;
	size_t n =
	    hf_router_match(router, ev->path, hf_method_from_name(ev->method),
			    wfs, HF_MAX_MATCH, &known, &allowed);
	if (n > HF_MAX_MATCH)
		n = HF_MAX_MATCH;
	size_t nruns = hf_dispatch(
	    hf_dispatch_needs_lua(wfs, n) ? hf_dispatch_runtime() : NULL, ev,
	    wfs, n, out);
	/* Replays are deliberate: a dedupe key must not refuse them. */
	for (size_t i = 0; i < nruns; i++) {
		free(out[i]->dedupe_key);
		out[i]->dedupe_key = NULL;
	}
	return nruns;
}
