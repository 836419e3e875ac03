/* router.c - a request's path and method to the workflows that declare them.
 *
 * A sorted array of (path without trailing '/', workflow) searched by binary
 * search; entries of one path keep the set's order. Pure: no I/O, no locks, no
 * references taken (the set outlives the router). Immutable once built, so any
 * number of threads may match concurrently. */
#include "hf_router.h"

#include <stdlib.h>
#include <string.h>

struct route {
	const char *path; /* points into wf->path */
	size_t len;	  /* without trailing '/' */
	size_t order;	  /* index in the set */
	struct hf_workflow *wf;
};

struct hf_router {
	struct route *routes;
	size_t n;
};

static size_t trimmed_len(const char *path)
{
	size_t n = strlen(path);
	while (n > 0 && path[n - 1] == '/')
		n--;
	return n;
}

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int r = memcmp(a, b, alen < blen ? alen : blen);
	if (r)
		return r;
	return alen < blen ? -1 : alen > blen;
}

static int route_cmp(const void *pa, const void *pb)
{
	const struct route *a = pa, *b = pb;
	int r = key_cmp(a->path, a->len, b->path, b->len);
	if (r)
		return r;
	return a->order < b->order ? -1 : a->order > b->order;
}

struct hf_router *hf_router_create(const struct hf_workflow_set *set)
{
	struct hf_router *r = hf_xcalloc(1, sizeof *r);
	size_t n = set ? set->n : 0;
	r->routes = hf_xcalloc(n ? n : 1, sizeof *r->routes);
	for (size_t i = 0; i < n; i++) {
		struct hf_workflow *wf = set->items[i];
		if (!wf->path)
			continue;
		r->routes[r->n++] = (struct route){
		    .path = wf->path,
		    .len = trimmed_len(wf->path),
		    .order = i,
		    .wf = wf,
		};
	}
	qsort(r->routes, r->n, sizeof *r->routes, route_cmp);
	return r;
}

void hf_router_destroy(struct hf_router *r)
{
	if (!r)
		return;
	free(r->routes);
	free(r);
}

size_t hf_router_match(const struct hf_router *r, const char *path,
		       unsigned method, struct hf_workflow **out, size_t max,
		       int *path_known, unsigned *allowed)
{
	size_t len;
	if (!path)
		path = "";
	len = trimmed_len(path);
	size_t lo = 0, hi = r ? r->n : 0, found = 0;
	unsigned mask = 0;
	/* lower bound: the first route whose path is not less than path */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct route *m = &r->routes[mid];
		if (key_cmp(m->path, m->len, path, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; r && i < r->n; i++) {
		const struct route *m = &r->routes[i];
		if (key_cmp(m->path, m->len, path, len) != 0)
			break;
		mask |= m->wf->methods;
		if (!(m->wf->methods & method))
			continue;
		if (found < max && out)
			out[found] = m->wf;
		found++;
	}
	if (path_known)
		*path_known = mask != 0;
	if (allowed)
		*allowed = mask;
	return found;
}
