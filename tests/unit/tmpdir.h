/* tmpdir.h - one private temporary directory per unit test binary, for the
 * databases, scripts and workflow files a test writes. tmpdir_create() makes
 * it under $TMPDIR (else /tmp) or exits 2, tmpdir_file() names a file in it,
 * tmpdir_remove() deletes it with everything in it. Header-only, like tap.h.
 */
#ifndef TMPDIR_H
#define TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static char tmpdir_path[256];

/* Makes the directory hf_NAME_XXXXXX and returns its path. */
static inline const char *tmpdir_create(const char *name)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir_path, sizeof tmpdir_path, "%s/hf_%s_XXXXXX",
		 base && *base ? base : "/tmp", name);
	if (!mkdtemp(tmpdir_path)) {
		perror("mkdtemp");
		exit(2);
	}
	return tmpdir_path;
}

/* The path of `name` in the directory, in out. */
static inline char *tmpdir_file(char *out, size_t size, const char *name)
{
	if ((size_t)snprintf(out, size, "%s/%s", tmpdir_path, name) >= size) {
		fprintf(stderr, "tmpdir_file: %s: path too long\n", name);
		exit(2);
	}
	return out;
}

static inline int tmpdir_unlink(const char *path, const struct stat *st,
				int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* Deletes the directory and what is in it. Returns 0, or -1. */
static inline int tmpdir_remove(void)
{
	return nftw(tmpdir_path, tmpdir_unlink, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
