/* hf_router.h - maps a request's path and method to the workflows that declare
 * them. Built once per workflow set, immutable, pure: no I/O, no locks. */
#ifndef HF_ROUTER_H
#define HF_ROUTER_H

#include "hf_workflow.h"
#include <stddef.h>

struct hf_router;

/* Builds a router over set (which must outlive it; the router holds no
 * reference). Returns NULL only on allocation failure. */
struct hf_router *hf_router_create(const struct hf_workflow_set *set);
void hf_router_destroy(struct hf_router *r); /* accepts NULL */

/* Finds the workflows whose path equals `path` (exact match; a trailing '/' is
 * ignored on both sides, the query string must already be cut off).
 * Writes up to max matching workflows whose methods include `method` (a single
 * enum hf_method bit) to out, in set order, and returns how many matched in
 * all. *path_known tells whether any workflow has the path, *allowed receives
 * the union of their methods (for 405's Allow header). */
size_t hf_router_match(const struct hf_router *r, const char *path,
		       unsigned method, struct hf_workflow **out, size_t max,
		       int *path_known, unsigned *allowed);

#endif
