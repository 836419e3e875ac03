/* wf_set.c - the workflow set: every workflow file of a directory, sorted by
 * file name, with unique names; on reload a file that became invalid keeps its
 * previous version. Reference counts of the set.
 *
 * Owns: which files of the directory are workflows, the duplicate-name error,
 * the errors of the files that failed and the webhook path each declares
 * (read from the YAML as far as it parses), so that a request to it is
 * refused with a 503 rather than a 404.
 * Does not own: parsing one file (wf_load.c), routing (router.c).
 *
 * Threading: loading is reentrant. A loaded set never changes and may be
 * shared between threads; ref/unref are atomic. */
#include "hf_limits.h"
#include "wf_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);
	return n > k && strcmp(s + n - k, suf) == 0;
}

static struct hf_workflow *by_file(const struct hf_workflow_set *set,
				   const char *file)
{
	for (size_t i = 0; set && i < set->n; i++)
		if (strcmp(set->items[i]->file, file) == 0)
			return set->items[i];
	return NULL;
}

/* Lists the workflow files of dir, sorted. Returns the count, -1 on error. */
static long list_dir(const char *dir, char ***out, struct hf_diags *diags)
{
	char ebuf[128];
	DIR *d = opendir(dir);
	if (!d) {
		hf_diags_add(diags, dir, 0, 0, "cannot read directory: %s",
			     errstr(errno, ebuf, sizeof ebuf));
		return -1;
	}
	size_t n = 0, cap = 16;
	char **names = hf_xmalloc(cap * sizeof *names);
	struct dirent *e;
	size_t dl = strlen(dir);
	bool warned = false;
	while ((e = readdir(d))) {
		struct stat st;
		if (e->d_name[0] == '.' || !(has_suffix(e->d_name, ".yml") ||
					     has_suffix(e->d_name, ".yaml")))
			continue;
		char *path = hf_xasprintf("%s%s%s", dir,
					  dl && dir[dl - 1] == '/' ? "" : "/",
					  e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		if (n == HF_MAX_WORKFLOWS) {
			if (!warned)
				hf_diags_add(diags, dir, 0, 0,
					     "too many workflow files (at most "
					     "%d); the rest are ignored",
					     HF_MAX_WORKFLOWS);
			warned = true;
			free(path);
			continue;
		}
		if (n == cap) {
			cap *= 2;
			names = hf_xrealloc(names, cap * sizeof *names);
		}
		names[n++] = path;
	}
	closedir(d);
	qsort(names, n, sizeof *names, str_cmp);
	*out = names;
	return (long)n;
}

/* --- what a failed file declares, best effort --- */

/* One open collection while scanning a file's YAML events. */
struct scan_frame {
	bool mapping;
	bool want_key; /* a mapping's next node is a key */
	bool chain;    /* reached through the keys "on", "webhook" so far */
	bool hit;      /* the current key continues the chain */
};

struct path_scan {
	struct scan_frame st[HF_LOAD_PATH_SCAN_DEPTH];
	int depth;
	char *found;
};

/* Follows one event; returns true when the scan is over. */
static bool scan_event(struct path_scan *ps, const yaml_event_t *ev)
{
	static const char *const chain[] = {"on", "webhook", "path"};
	struct scan_frame *top = ps->depth ? &ps->st[ps->depth - 1] : NULL;
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
	case YAML_ALIAS_EVENT: {
		if (!top || !top->mapping)
			return false;
		const char *v = ev->type == YAML_SCALAR_EVENT
				    ? (const char *)ev->data.scalar.value
				    : "";
		if (top->want_key)
			top->hit =
			    top->chain && strcmp(v, chain[ps->depth - 1]) == 0;
		else if (top->hit && ps->depth == 3 && v[0] == '/')
			ps->found = hf_xstrdup(v);
		else
			top->hit = false;
		top->want_key = !top->want_key;
		return ps->found != NULL;
	}
	case YAML_MAPPING_START_EVENT:
	case YAML_SEQUENCE_START_EVENT: {
		if (ps->depth == HF_LOAD_PATH_SCAN_DEPTH)
			return true;
		bool mapping = ev->type == YAML_MAPPING_START_EVENT;
		bool chain_ok =
		    top ? top->mapping && !top->want_key && top->hit : true;
		/* keys are compared with chain[] down to the third level */
		struct scan_frame f = {.mapping = mapping,
				       .want_key = true,
				       .chain = chain_ok && mapping &&
						ps->depth < 3};
		ps->st[ps->depth++] = f;
		return false;
	}
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		if (--ps->depth <= 0)
			return true;
		top = &ps->st[ps->depth - 1];
		top->want_key = !top->want_key;
		top->hit = false;
		return false;
	case YAML_DOCUMENT_END_EVENT:
	case YAML_STREAM_END_EVENT:
		return true;
	default:
		return false;
	}
}

/* The on.webhook.path of a file that does not load, read from its YAML as far
 * as it parses, or NULL. */
static char *scan_path(const char *file)
{
	struct stat st;
	size_t len;
	if (stat(file, &st) != 0 || st.st_size > HF_MAX_WORKFLOW_FILE)
		return NULL;
	char *text = hf_read_file(file, &len);
	if (!text)
		return NULL;
	struct path_scan ps = {0};
	yaml_parser_t p;
	if (yaml_parser_initialize(&p)) {
		yaml_parser_set_input_string(&p, (const unsigned char *)text,
					     len);
		bool over = false;
		while (!over) {
			yaml_event_t ev;
			if (!yaml_parser_parse(&p, &ev))
				break;
			over = scan_event(&ps, &ev);
			yaml_event_delete(&ev);
		}
		yaml_parser_delete(&p);
	}
	free(text);
	return ps.found;
}

/* --- loading --- */

/* Keeps the problems fd of a file that failed (loaded: what it declared when
 * only the set refused it) in set->errors. */
static void keep_errors(struct hf_workflow_set *set, const char *file,
			const struct hf_diags *fd,
			const struct hf_workflow *loaded)
{
	char *path = loaded ? (loaded->path ? hf_xstrdup(loaded->path) : NULL)
			    : scan_path(file);
	size_t n =
	    fd->n < HF_LOAD_ERRORS_PER_FILE ? fd->n : HF_LOAD_ERRORS_PER_FILE;
	set->errors = hf_xrealloc(set->errors, (set->nerrors + (n ? n : 1)) *
						   sizeof *set->errors);
	for (size_t i = 0; i < (n ? n : 1); i++) {
		const struct hf_error *it = n ? &fd->items[i] : NULL;
		set->errors[set->nerrors++] = (struct hf_load_error){
		    .file = hf_xstrdup(it && it->file[0] ? it->file : file),
		    .line = it ? it->line : 0,
		    .col = it ? it->col : 0,
		    .message = hf_xstrdup(it ? it->msg : "does not load"),
		    .path = path ? hf_xstrdup(path) : NULL,
		};
	}
	free(path);
	set->nfailed++;
}

/* Loads one file into the set (a failed one: its errors, and its previous
 * version from prev when there is one), and copies its problems to diags. */
static void load_one(struct hf_workflow_set *set, const char *file,
		     const char *scripts_dir,
		     const struct hf_workflow_set *prev, struct hf_diags *diags)
{
	struct hf_diags fd = {0};
	struct hf_workflow *wf = hf_workflow_load(file, scripts_dir, &fd);
	struct hf_workflow *other =
	    wf ? hf_workflow_set_find(set, wf->name) : NULL;
	if (other) {
		struct wf_priv *p = (struct wf_priv *)wf;
		hf_diags_add(&fd, wf->file, p->name_line, p->name_col,
			     "duplicate workflow name '%s' (already "
			     "defined in %s)",
			     wf->name, other->file);
	}
	if (!wf || other) {
		keep_errors(set, file, &fd, wf);
		hf_workflow_unref(wf);
		/* invalid now: the previous version stays active */
		struct hf_workflow *old = by_file(prev, file);
		wf = old && !hf_workflow_set_find(set, old->name)
			 ? hf_workflow_ref(old)
			 : NULL;
	}
	if (wf)
		set->items[set->n++] = wf;
	for (size_t i = 0; i < fd.n; i++)
		hf_diags_add(diags, fd.items[i].file, fd.items[i].line,
			     fd.items[i].col, "%s", fd.items[i].msg);
	hf_diags_release(&fd);
}

struct hf_workflow_set *hf_workflow_set_load(const char *dir,
					     const char *scripts_dir,
					     const struct hf_workflow_set *prev,
					     struct hf_diags *diags)
{
	char **files;
	long n = list_dir(dir, &files, diags);
	if (n < 0)
		return NULL;
	struct hf_workflow_set *set = hf_xcalloc(1, sizeof *set);
	set->refs = 1;
	set->items = hf_xcalloc(n ? (size_t)n : 1, sizeof *set->items);
	for (long i = 0; i < n; i++) {
		load_one(set, files[i], scripts_dir, prev, diags);
		free(files[i]);
	}
	free(files);
	return set;
}

struct hf_workflow_set *hf_workflow_set_ref(struct hf_workflow_set *set)
{
	if (set)
		atomic_fetch_add_explicit(refs_of(&set->refs), 1,
					  memory_order_relaxed);
	return set;
}

void hf_workflow_set_unref(struct hf_workflow_set *set)
{
	if (!set || atomic_fetch_sub_explicit(refs_of(&set->refs), 1,
					      memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < set->n; i++)
		hf_workflow_unref(set->items[i]);
	for (size_t i = 0; i < set->nerrors; i++) {
		free(set->errors[i].file);
		free(set->errors[i].message);
		free(set->errors[i].path);
	}
	free(set->errors);
	free(set->items);
	free(set);
}

struct hf_workflow *hf_workflow_set_find(const struct hf_workflow_set *set,
					 const char *name)
{
	for (size_t i = 0; set && name && i < set->n; i++)
		if (strcmp(set->items[i]->name, name) == 0)
			return set->items[i];
	return NULL;
}

/* Whether url is pattern, segment by segment: a trailing '/' is ignored on
 * both sides and a `{name}` segment of pattern matches one non-empty one. */
static bool path_matches(const char *pat, const char *url)
{
	for (;;) {
		size_t pl = strcspn(pat, "/"), ul = strcspn(url, "/");
		bool param = pl >= 2 && pat[0] == '{' && pat[pl - 1] == '}';
		if (param ? ul == 0 : pl != ul || memcmp(pat, url, pl) != 0)
			return false;
		pat += pl;
		url += ul;
		bool pend = !pat[0] || (pat[0] == '/' && !pat[1]);
		bool uend = !url[0] || (url[0] == '/' && !url[1]);
		if (pend || uend)
			return pend && uend;
		pat++;
		url++;
	}
}

const struct hf_load_error *
hf_workflow_set_failed_path(const struct hf_workflow_set *set, const char *url)
{
	for (size_t i = 0; set && url && i < set->nerrors; i++)
		if (set->errors[i].path &&
		    path_matches(set->errors[i].path, url))
			return &set->errors[i];
	return NULL;
}
