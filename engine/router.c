/* router.c - a request's path and method to the workflows that declare them.
 *
 * Literal paths: a sorted array of (path without trailing '/', workflow)
 * searched by binary search; entries of one path keep the set's order. Paths
 * with {name} parameters: an array in set order, each matched segment by
 * segment (there are few; a literal path is looked up first and wins). Pure:
 * no I/O, no locks, no references taken (the set outlives the router).
 * Immutable once built, so any number of threads may match concurrently. */
#include "hf_limits.h"
#include "hf_router.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct route {
	const char *path; /* points into wf->path */
	size_t len;	  /* without trailing '/' */
	size_t order;	  /* index in the set */
	struct hf_workflow *wf;
};

struct hf_router {
	struct route *routes; /* literal paths, sorted */
	size_t n;
	struct route *patterns; /* paths with parameters, in set order */
	size_t npat;
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
	r->patterns = hf_xcalloc(n ? n : 1, sizeof *r->patterns);
	for (size_t i = 0; i < n; i++) {
		struct hf_workflow *wf = set->items[i];
		if (!wf->path)
			continue;
		struct route rt = {
		    .path = wf->path,
		    .len = trimmed_len(wf->path),
		    .order = i,
		    .wf = wf,
		};
		if (hf_path_is_pattern(wf->path))
			r->patterns[r->npat++] = rt;
		else
			r->routes[r->n++] = rt;
	}
	qsort(r->routes, r->n, sizeof *r->routes, route_cmp);
	return r;
}

void hf_router_destroy(struct hf_router *r)
{
	if (!r)
		return;
	free(r->routes);
	free(r->patterns);
	free(r);
}

/* ---- path parameters ---------------------------------------------------- */

bool hf_path_is_pattern(const char *path)
{
	return path && strchr(path, '{') != NULL;
}

/* The next segment of s[0..n) from *pos: skips one '/', then up to the next
 * '/'. False at the end. */
static bool next_seg(const char *s, size_t n, size_t *pos, const char **seg,
		     size_t *len)
{
	size_t b = *pos;
	if (b >= n)
		return false;
	if (s[b] == '/')
		b++;
	size_t e = b;
	while (e < n && s[e] != '/')
		e++;
	*seg = s + b;
	*len = e - b;
	*pos = e;
	return true;
}

static bool seg_is_param(const char *seg, size_t len)
{
	return len >= 2 && seg[0] == '{' && seg[len - 1] == '}';
}

static json_t *value_json(const char *s, size_t len)
{
	json_t *v = json_stringn(s, len);
	return v ? v : json_stringn_nocheck(s, len);
}

/* Whether pattern p (plen bytes, no trailing '/') matches path (n bytes, no
 * trailing '/'); with params, sets each parameter's value in it. */
static bool walk(const char *p, size_t plen, const char *path, size_t n,
		 json_t *params)
{
	size_t pi = 0, qi = 0, pl = 0, ql = 0;
	const char *ps = p, *qs = path;
	for (;;) {
		bool hp = next_seg(p, plen, &pi, &ps, &pl);
		bool hq = next_seg(path, n, &qi, &qs, &ql);
		if (!hp || !hq)
			return hp == hq;
		if (!seg_is_param(ps, pl)) {
			if (pl != ql || memcmp(ps, qs, pl) != 0)
				return false;
			continue;
		}
		if (ql == 0)
			return false;
		if (params && pl - 2 <= HF_PATH_PARAM_NAME_MAX) {
			char name[HF_PATH_PARAM_NAME_MAX + 1];
			memcpy(name, ps + 1, pl - 2);
			name[pl - 2] = '\0';
			json_object_set_new(params, name, value_json(qs, ql));
		}
	}
}

/* <0 when pattern a is more specific than b (at the first segment from the
 * left where one is literal and the other a parameter, a's is literal), >0
 * when less, 0 when both have the same shape. */
static int shape_cmp(const struct route *a, const struct route *b)
{
	size_t ai = 0, bi = 0, al = 0, bl = 0;
	const char *as = a->path, *bs = b->path;
	while (next_seg(a->path, a->len, &ai, &as, &al) &&
	       next_seg(b->path, b->len, &bi, &bs, &bl)) {
		bool ap = seg_is_param(as, al), bp = seg_is_param(bs, bl);
		if (ap != bp)
			return ap ? 1 : -1;
	}
	return 0;
}

/* The most specific pattern route matching path, NULL when none does. */
static const struct route *best_pattern(const struct hf_router *r,
					const char *path, size_t len)
{
	const struct route *best = NULL;
	for (size_t i = 0; r && i < r->npat; i++) {
		const struct route *m = &r->patterns[i];
		if (walk(m->path, m->len, path, len, NULL) &&
		    (!best || shape_cmp(m, best) < 0))
			best = m;
	}
	return best;
}

static bool pattern_wins(const struct route *m, const struct route *best,
			 const char *path, size_t len)
{
	return shape_cmp(m, best) == 0 &&
	       walk(m->path, m->len, path, len, NULL);
}

__attribute__((format(printf, 5, 6))) static int
bad(size_t *at, size_t pos, char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	*at = pos;
	return -1;
}

static bool valid_name(const char *s, size_t n)
{
	if (n == 0 || n > HF_PATH_PARAM_NAME_MAX ||
	    !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') ||
	      (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

/* Whether "{name}" (name: n bytes) occurs in s[0..end). */
static bool seen_before(const char *s, size_t end, const char *name, size_t n)
{
	for (size_t j = 0; j + n + 2 <= end; j++)
		if (s[j] == '{' && memcmp(s + j + 1, name, n) == 0 &&
		    s[j + 1 + n] == '}')
			return true;
	return false;
}

#define WHOLE_SEGMENT                                                          \
	"a parameter must be a whole segment, as in '/tickets/{id}/notes'"

int hf_path_pattern_check(const char *s, size_t *at, char *msg, size_t msglen)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '}')
			return bad(at, i, msg, msglen, "'}' without '{'");
		if (s[i] != '{')
			continue;
		if (i == 0 || s[i - 1] != '/')
			return bad(at, i, msg, msglen, WHOLE_SEGMENT);
		size_t b = i + 1, e = b;
		while (e < n && s[e] != '}' && s[e] != '/' && s[e] != '{')
			e++;
		if (e >= n || s[e] != '}')
			return bad(at, i, msg, msglen,
				   "'{' not closed (write '{name}')");
		if (e == b)
			return bad(at, i, msg, msglen,
				   "empty parameter '{}' (write a name, as in "
				   "'{id}')");
		if (!valid_name(s + b, e - b))
			return bad(at, b, msg, msglen,
				   "invalid parameter name '%.*s' (expected "
				   "[A-Za-z_][A-Za-z0-9_]*, at most %d "
				   "characters)",
				   (int)(e - b), s + b, HF_PATH_PARAM_NAME_MAX);
		if (e + 1 < n && s[e + 1] != '/')
			return bad(at, e + 1, msg, msglen, WHOLE_SEGMENT);
		if (seen_before(s, i, s + b, e - b))
			return bad(
			    at, i, msg, msglen,
			    "parameter '{%.*s}' appears twice in the path",
			    (int)(e - b), s + b);
		i = e;
	}
	return 0;
}

json_t *hf_path_params(const char *pattern, const char *path)
{
	json_t *o = json_object();
	if (!pattern || !path || !hf_path_is_pattern(pattern))
		return o;
	if (!walk(pattern, trimmed_len(pattern), path, trimmed_len(path), o))
		json_object_clear(o);
	return o;
}

/* Adds route m's methods to *mask; when it allows method, counts it in
 * *found and writes it to out while there is room. */
static void take(const struct route *m, unsigned method,
		 struct hf_workflow **out, size_t max, size_t *found,
		 unsigned *mask)
{
	*mask |= m->wf->methods;
	if (!(m->wf->methods & method))
		return;
	if (*found < max && out)
		out[*found] = m->wf;
	(*found)++;
}

/* Literal routes equal to path[0..len): adds their methods to *mask and
 * those allowing method to out. Returns how many allow it. */
static size_t match_literal(const struct hf_router *r, const char *path,
			    size_t len, unsigned method,
			    struct hf_workflow **out, size_t max,
			    unsigned *mask)
{
	size_t lo = 0, hi = r ? r->n : 0, found = 0;
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
		take(m, method, out, max, &found, mask);
	}
	return found;
}

/* The same over the winning patterns, in set order. */
static size_t match_patterns(const struct hf_router *r, const char *path,
			     size_t len, unsigned method,
			     struct hf_workflow **out, size_t max,
			     unsigned *mask)
{
	const struct route *best = best_pattern(r, path, len);
	size_t found = 0;
	for (size_t i = 0; best && i < r->npat; i++) {
		const struct route *m = &r->patterns[i];
		if (pattern_wins(m, best, path, len))
			take(m, method, out, max, &found, mask);
	}
	return found;
}

json_t *hf_router_params(const struct hf_router *r, const char *path)
{
	json_t *o = json_object();
	if (!r || !path)
		return o;
	size_t len = trimmed_len(path);
	unsigned mask = 0;
	match_literal(r, path, len, 0, NULL, 0, &mask);
	if (mask) /* a literal path wins: no parameters */
		return o;
	const struct route *best = best_pattern(r, path, len);
	for (size_t i = 0; best && i < r->npat; i++) {
		const struct route *m = &r->patterns[i];
		if (pattern_wins(m, best, path, len))
			walk(m->path, m->len, path, len, o);
	}
	return o;
}

size_t hf_router_match(const struct hf_router *r, const char *path,
		       unsigned method, struct hf_workflow **out, size_t max,
		       int *path_known, unsigned *allowed)
{
	if (!path)
		path = "";
	size_t len = trimmed_len(path);
	unsigned mask = 0;
	size_t found = match_literal(r, path, len, method, out, max, &mask);
	if (!mask) /* a literal path wins over every pattern */
		found = match_patterns(r, path, len, method, out, max, &mask);
	if (path_known)
		*path_known = mask != 0;
	if (allowed)
		*allowed = mask;
	return found;
}
