/* wf_set.c - the workflow set: every workflow file of a directory, sorted by
 * file name, with unique names; on reload a file that became invalid keeps its
 * previous version. Reference counts of the set.
 *
 * Owns: which files of the directory are workflows, the duplicate-name error.
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
		struct hf_workflow *wf =
		    hf_workflow_load(files[i], scripts_dir, diags);
		struct hf_workflow *other =
		    wf ? hf_workflow_set_find(set, wf->name) : NULL;
		if (other) {
			struct wf_priv *p = (struct wf_priv *)wf;
			hf_diags_add(diags, wf->file, p->name_line, p->name_col,
				     "duplicate workflow name '%s' (already "
				     "defined in %s)",
				     wf->name, other->file);
			hf_workflow_unref(wf);
			wf = NULL;
		}
		if (!wf) {
			/* invalid now: the previous version stays active */
			struct hf_workflow *old = by_file(prev, files[i]);
			if (old && !hf_workflow_set_find(set, old->name))
				wf = hf_workflow_ref(old);
		}
		if (wf)
			set->items[set->n++] = wf;
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
