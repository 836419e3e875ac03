/* store_pickup.c - what both backends do alike when they rebuild runs from
 * stored rows (store_sqlite_recover.c, store_pg_recover.c; see store_int.h):
 * a stored workflow version parsed again; the workflow version a run
 * resumes with, through a small cache of the
 * versions rebuilt during one pickup; the run itself, failed when its
 * workflow is gone; and the pickup's end, which hands the runs on in order.
 * The backends read the rows and the stored versions; nothing here touches
 * a database. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hf_workflow *hf_pickup_version(const char *file, const char *yaml,
				      size_t len, const json_t *scripts,
				      const char *version)
{
	size_t n = 0;
	struct hf_script_src *src =
	    hf_xcalloc(json_object_size(scripts) + 1, sizeof *src);
	const char *name;
	json_t *code;
	json_object_foreach((json_t *)scripts, name, code)
	{
		if (json_is_string(code))
			src[n++] = (struct hf_script_src){
			    name, json_string_value(code),
			    json_string_length(code)};
	}
	struct hf_diags diags = {0};
	struct hf_workflow *wf =
	    hf_workflow_parse_stored(file, yaml, len, NULL, src, n, &diags);
	free(src);
	hf_diags_release(&diags);
	if (wf && (!wf->version || strcmp(wf->version, version) != 0)) {
		hf_workflow_unref(wf);
		wf = NULL;
	}
	return wf;
}

/* The cached version, or one parsed and cached (wf NULL cached too: it
 * cannot be rebuilt). Not cached (the cache is full): NULL, so that no run
 * holds a version nobody lets go of. */
static struct hf_workflow *find_version(struct hf_version_cache *vc,
					const char *version,
					hf_version_parse parse, void *ctx)
{
	for (size_t i = 0; i < vc->n; i++)
		if (strcmp(vc->items[i].version, version) == 0)
			return vc->items[i].wf;
	struct hf_workflow *wf = parse(ctx, version);
	if (vc->n < sizeof vc->items / sizeof vc->items[0] &&
	    strlen(version) < sizeof vc->items[0].version) {
		snprintf(vc->items[vc->n].version,
			 sizeof vc->items[vc->n].version, "%s", version);
		vc->items[vc->n++].wf = wf;
	} else {
		hf_workflow_unref(wf);
		wf = NULL;
	}
	return wf;
}

struct hf_workflow *hf_pickup_workflow(const struct hf_workflow_set *set,
				       const char *run_id, const char *wf_name,
				       const char *version,
				       struct hf_version_cache *vc,
				       hf_version_parse parse, void *ctx)
{
	struct hf_workflow *wf = hf_workflow_set_find(set, wf_name);
	if (version && (!wf || !wf->version || strcmp(wf->version, version))) {
		struct hf_workflow *old = find_version(vc, version, parse, ctx);
		if (old)
			wf = old;
		else if (wf)
			hf_log(HF_LOG_WARN,
			       "run %s: workflow '%s' version %.12s is not "
			       "stored: it resumes with the current version",
			       run_id, wf_name, version);
	}
	return wf;
}

struct hf_run *hf_pickup_run(struct hf_event *ev, struct hf_workflow *wf,
			     const char *wf_name, const char *run_id)
{
	struct hf_run *run = NULL;
	if (wf) {
		run = hf_run_new(ev, wf);
	} else {
		/* The workflow is gone: the run is failed by the caller. */
		run = hf_xcalloc(1, sizeof *run);
		run->event = hf_event_ref(ev);
		run->outputs = json_object();
		run->error =
		    hf_xasprintf("workflow '%s' no longer exists", wf_name);
	}
	hf_event_unref(ev);
	snprintf(run->id, sizeof run->id, "%s", run_id);
	return run;
}

int hf_pickup_end(struct hf_version_cache *vc, struct hf_run *list, int n,
		  int rc, void (*fn)(struct hf_run *run, void *arg), void *arg)
{
	for (size_t i = 0; i < vc->n; i++)
		hf_workflow_unref(vc->items[i].wf);
	for (struct hf_run *r = list, *next; r; r = next) {
		next = r->next;
		r->next = NULL;
		if (rc < 0)
			hf_run_free(r);
		else
			fn(r, arg);
	}
	return rc < 0 ? -1 : n;
}
