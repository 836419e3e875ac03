/* hf_router.h - maps a request's path and method to the workflows that declare
 * them, and reads path parameters ("/tickets/{id}"). Built once per workflow
 * set, immutable, pure: no I/O, no locks. */
#ifndef HF_ROUTER_H
#define HF_ROUTER_H

#include "hf_workflow.h"
#include <jansson.h>
#include <stddef.h>

struct hf_router;

/* Builds a router over set (which must outlive it; the router holds no
 * reference). Returns NULL only on allocation failure. */
struct hf_router *hf_router_create(const struct hf_workflow_set *set);
void hf_router_destroy(struct hf_router *r); /* accepts NULL */

/* Finds the workflows whose path equals `path` (a trailing '/' is ignored on
 * both sides, the query string must already be cut off). A workflow path may
 * hold parameters, whole segments written {name}, each matching one non-empty
 * segment. Workflows with a literal path equal to `path` win; else, among the
 * patterns that match, the most specific (the first segment from the left
 * where they differ is literal rather than a parameter) and every pattern of
 * the same shape.
 * Writes up to max matching workflows whose methods include `method` (a single
 * enum hf_method bit) to out, in set order, and returns how many matched in
 * all. *path_known tells whether any workflow has the path, *allowed receives
 * the union of their methods (for 405's Allow header). */
size_t hf_router_match(const struct hf_router *r, const char *path,
		       unsigned method, struct hf_workflow **out, size_t max,
		       int *path_known, unsigned *allowed);

/* True when a (valid) workflow path holds a {name} parameter. */
bool hf_path_is_pattern(const char *path);

/* Checks the {name} parameters of a workflow path: each a whole segment, a
 * name of [A-Za-z_][A-Za-z0-9_]* (at most HF_PATH_PARAM_NAME_MAX bytes), each
 * name once, every '{' closed, no stray '}'. Returns 0, or -1 with a message
 * in msg and the byte offset of the problem in path in *at. */
int hf_path_pattern_check(const char *path, size_t *at, char *msg,
			  size_t msglen);

/* The parameters of `pattern` read from `path`: a new object {name: value},
 * empty when pattern has none or does not match path. Values are the bytes of
 * the segment (not necessarily UTF-8: meant for Lua, see hf_run.h). */
json_t *hf_path_params(const char *pattern, const char *path);

/* The parameters of every workflow that wins `path` (any method), merged:
 * a new object, empty when a literal path wins or nothing matches. */
json_t *hf_router_params(const struct hf_router *r, const char *path);

#endif
