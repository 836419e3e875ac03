/* store_sqlite_vfs.c - the writer connection's VFS, "hf-wal": SQLite's
 * default VFS, except that the WAL file's writes of one commit are gathered in
 * memory and written when the commit's last frame arrives.
 * SQLite writes each frame as two writes (its 24-byte header, then the page):
 * measured under load, a group commit wrote ~28 frames, 56 pwrite calls, ~14%
 * of the writer thread's CPU; gathered, it takes one call a page.
 *
 * Nothing else changes: the commit's bytes reach the file before SQLite syncs
 * it (--sync full) and before the commit is visible to any reader (SQLite
 * writes the wal-index header after the frames; its shared-memory barrier,
 * on the database file, writes what is gathered too, should the commit frame
 * not have been recognised), so before the commit returns; whatever reads,
 * syncs, truncates, sizes or closes the WAL, and a write that does not
 * follow the gathered bytes, writes them first. A failed write is reported by
 * the write that triggered it (the commit's last), so the commit fails as it
 * would have. Every other file (the database itself: only its shared-memory
 * barrier is wrapped) is the default VFS's as it is.
 *
 * Threading: a file is used by its connection's thread only (the writer's);
 * hf_sqlite_vfs_name registers the VFS once. Neighbours: store_sqlite.c
 * opens the writer connection with it. */
#include "hf_limits.h"
#include "store_sqlite.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct shim {
	sqlite3_file base;
	sqlite3_file *real; /* the default VFS's file, after this struct */
	struct shim *peer;  /* the database <-> its WAL, while both are open */
	bool wal;
	bool commit_hdr; /* the last write was a commit frame's header */
	unsigned char *buf;
	size_t len, cap;
	sqlite3_int64 off; /* the file offset of buf[0] */
};

static sqlite3_vfs *base_vfs;

#define WRITE_MAX 4096

#define REAL(f) (((struct shim *)(f))->real)
#define RM(f) (REAL(f)->pMethods)

/* Writes what is gathered, one page-aligned 4 KiB piece a write(2): still
 * half the calls of SQLite's two a frame, and no more bytes dirtied. One
 * write of the whole commit was measured cheaper still but dirtied 12-20%
 * more bytes (/proc/PID/io write_bytes): the kernel (6.18, ext4) gives a big
 * write big folios, and the partial folio a commit ends in is counted whole
 * again when the next commit writes into it. (SQLite's unix VFS would also
 * write at most 128 KiB a call.) */
static int gather_flush(struct shim *s)
{
	int rc = SQLITE_OK;
	for (size_t at = 0; rc == SQLITE_OK && at < s->len;) {
		size_t n = WRITE_MAX -
			   (size_t)((s->off + (sqlite3_int64)at) % WRITE_MAX);
		if (n > s->len - at)
			n = s->len - at;
		rc = s->real->pMethods->xWrite(s->real, s->buf + at, (int)n,
					       s->off + (sqlite3_int64)at);
		at += n;
	}
	s->len = 0;
	return rc;
}

static int wal_write(sqlite3_file *f, const void *p, int amt, sqlite3_int64 off)
{
	struct shim *s = (struct shim *)f;
	/* A frame header: page number, then the database's size in pages
	 * after a commit, 0 for other frames (big-endian). */
	const unsigned char *h = p;
	bool commit = s->commit_hdr;
	s->commit_hdr = amt == 24 && (h[4] | h[5] | h[6] | h[7]) != 0;
	int rc;
	if (s->len && off != s->off + (sqlite3_int64)s->len &&
	    (rc = gather_flush(s)) != SQLITE_OK)
		return rc;
	if (s->len + (size_t)amt > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64 * 1024;
		while (cap < s->len + (size_t)amt)
			cap *= 2;
		unsigned char *b =
		    cap <= HF_WAL_GATHER_MAX ? realloc(s->buf, cap) : NULL;
		if (!b) { /* past the bound: written as it comes */
			if ((rc = gather_flush(s)) != SQLITE_OK)
				return rc;
			return RM(f)->xWrite(REAL(f), p, amt, off);
		}
		s->buf = b;
		s->cap = cap;
	}
	if (!s->len)
		s->off = off;
	memcpy(s->buf + s->len, p, (size_t)amt);
	s->len += (size_t)amt;
	return commit ? gather_flush(s) : SQLITE_OK;
}

static int wal_read(sqlite3_file *f, void *p, int amt, sqlite3_int64 off)
{
	int rc = gather_flush((struct shim *)f);
	return rc != SQLITE_OK ? rc : RM(f)->xRead(REAL(f), p, amt, off);
}

static int wal_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = gather_flush((struct shim *)f);
	return rc != SQLITE_OK ? rc : RM(f)->xTruncate(REAL(f), size);
}

static int wal_sync(sqlite3_file *f, int flags)
{
	int rc = gather_flush((struct shim *)f);
	return rc != SQLITE_OK ? rc : RM(f)->xSync(REAL(f), flags);
}

static int wal_size(sqlite3_file *f, sqlite3_int64 *size)
{
	int rc = gather_flush((struct shim *)f);
	return rc != SQLITE_OK ? rc : RM(f)->xFileSize(REAL(f), size);
}

static int fwd_close(sqlite3_file *f)
{
	struct shim *s = (struct shim *)f;
	int rc = gather_flush(s);
	if (s->peer)
		s->peer->peer = NULL;
	free(s->buf);
	int rc2 = RM(f)->xClose(REAL(f));
	return rc != SQLITE_OK ? rc : rc2;
}

static int fwd_read(sqlite3_file *f, void *p, int amt, sqlite3_int64 off)
{
	return RM(f)->xRead(REAL(f), p, amt, off);
}

static int fwd_write(sqlite3_file *f, const void *p, int amt, sqlite3_int64 off)
{
	return RM(f)->xWrite(REAL(f), p, amt, off);
}

static int fwd_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return RM(f)->xTruncate(REAL(f), size);
}

static int fwd_sync(sqlite3_file *f, int flags)
{
	return RM(f)->xSync(REAL(f), flags);
}

static int fwd_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return RM(f)->xFileSize(REAL(f), size);
}

static int fwd_lock(sqlite3_file *f, int l)
{
	return RM(f)->xLock(REAL(f), l);
}

static int fwd_unlock(sqlite3_file *f, int l)
{
	return RM(f)->xUnlock(REAL(f), l);
}

static int fwd_check(sqlite3_file *f, int *out)
{
	return RM(f)->xCheckReservedLock(REAL(f), out);
}

static int fwd_fcntl(sqlite3_file *f, int op, void *arg)
{
	int rc = ((struct shim *)f)->wal ? gather_flush((struct shim *)f)
					 : SQLITE_OK;
	return rc != SQLITE_OK ? rc : RM(f)->xFileControl(REAL(f), op, arg);
}

static int fwd_sector(sqlite3_file *f)
{
	return RM(f)->xSectorSize(REAL(f));
}

static int fwd_devchar(sqlite3_file *f)
{
	return RM(f)->xDeviceCharacteristics(REAL(f));
}

static int fwd_shm_map(sqlite3_file *f, int pg, int size, int extend,
		       void volatile **p)
{
	return RM(f)->xShmMap(REAL(f), pg, size, extend, p);
}

static int fwd_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return RM(f)->xShmLock(REAL(f), off, n, flags);
}

/* Before the wal-index header that makes a commit visible. */
static void fwd_shm_barrier(sqlite3_file *f)
{
	struct shim *s = (struct shim *)f;
	if (s->peer)
		gather_flush(s->peer);
	RM(f)->xShmBarrier(REAL(f));
}

static int fwd_shm_unmap(sqlite3_file *f, int del)
{
	return RM(f)->xShmUnmap(REAL(f), del);
}

static int fwd_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	return RM(f)->xFetch(REAL(f), off, amt, pp);
}

static int fwd_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return RM(f)->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods db_methods = {
    3,
    fwd_close,
    fwd_read,
    fwd_write,
    fwd_truncate,
    fwd_sync,
    fwd_size,
    fwd_lock,
    fwd_unlock,
    fwd_check,
    fwd_fcntl,
    fwd_sector,
    fwd_devchar,
    fwd_shm_map,
    fwd_shm_lock,
    fwd_shm_barrier,
    fwd_shm_unmap,
    fwd_fetch,
    fwd_unfetch,
};

static const sqlite3_io_methods wal_methods = {
    3,
    fwd_close,
    wal_read,
    wal_write,
    wal_truncate,
    wal_sync,
    wal_size,
    fwd_lock,
    fwd_unlock,
    fwd_check,
    fwd_fcntl,
    fwd_sector,
    fwd_devchar,
    fwd_shm_map,
    fwd_shm_lock,
    fwd_shm_barrier,
    fwd_shm_unmap,
    fwd_fetch,
    fwd_unfetch,
};

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
		     int flags, int *out_flags)
{
	(void)vfs;
	struct shim *s = (struct shim *)f;
	memset(s, 0, sizeof *s);
	s->real = (sqlite3_file *)(s + 1);
	bool wal = (flags & SQLITE_OPEN_WAL) != 0;
	bool db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
	if (!wal && !db) /* the default VFS's file as it is, in place */
		return base_vfs->xOpen(base_vfs, name, f, flags, out_flags);
	int rc = base_vfs->xOpen(base_vfs, name, s->real, flags, out_flags);
	if (rc != SQLITE_OK || !s->real->pMethods ||
	    s->real->pMethods->iVersion < 3) {
		/* Not ours to wrap (or failed): closed, and reported. */
		if (s->real->pMethods)
			s->real->pMethods->xClose(s->real);
		s->base.pMethods = NULL;
		return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
	}
	s->wal = wal;
	s->base.pMethods = wal ? &wal_methods : &db_methods;
	if (wal) {
		sqlite3_file *dbf = sqlite3_database_file_object(name);
		if (dbf && dbf->pMethods == &db_methods) {
			s->peer = (struct shim *)dbf;
			s->peer->peer = s;
		}
	}
	return SQLITE_OK;
}

static int shim_delete(sqlite3_vfs *v, const char *name, int sync)
{
	return base_vfs->xDelete(base_vfs, name, sync);
}

static int shim_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
	return base_vfs->xAccess(base_vfs, name, flags, out);
}

static int shim_full(sqlite3_vfs *v, const char *name, int n, char *out)
{
	return base_vfs->xFullPathname(base_vfs, name, n, out);
}

static int shim_random(sqlite3_vfs *v, int n, char *out)
{
	return base_vfs->xRandomness(base_vfs, n, out);
}

static int shim_sleep(sqlite3_vfs *v, int us)
{
	return base_vfs->xSleep(base_vfs, us);
}

static int shim_time(sqlite3_vfs *v, sqlite3_int64 *out)
{
	return base_vfs->xCurrentTimeInt64(base_vfs, out);
}

static void *shim_dlopen(sqlite3_vfs *v, const char *name)
{
	return base_vfs->xDlOpen(base_vfs, name);
}

static void shim_dlerror(sqlite3_vfs *v, int n, char *out)
{
	base_vfs->xDlError(base_vfs, n, out);
}

static void (*shim_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
	return base_vfs->xDlSym(base_vfs, h, sym);
}

static void shim_dlclose(sqlite3_vfs *v, void *h)
{
	base_vfs->xDlClose(base_vfs, h);
}

static int shim_time_real(sqlite3_vfs *v, double *out)
{
	return base_vfs->xCurrentTime(base_vfs, out);
}

static int shim_error(sqlite3_vfs *v, int n, char *out)
{
	return base_vfs->xGetLastError(base_vfs, n, out);
}

static sqlite3_vfs shim_vfs = {
    .iVersion = 2,
    .mxPathname = 512,
    .zName = "hf-wal",
    .xOpen = shim_open,
    .xDelete = shim_delete,
    .xAccess = shim_access,
    .xFullPathname = shim_full,
    .xDlOpen = shim_dlopen,
    .xDlError = shim_dlerror,
    .xDlSym = shim_dlsym,
    .xDlClose = shim_dlclose,
    .xRandomness = shim_random,
    .xCurrentTime = shim_time_real,
    .xSleep = shim_sleep,
    .xGetLastError = shim_error,
    .xCurrentTimeInt64 = shim_time,
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool registered;

static void vfs_register(void)
{
	base_vfs = sqlite3_vfs_find(NULL);
	if (!base_vfs || base_vfs->iVersion < 2 || !base_vfs->xCurrentTimeInt64)
		return;
	shim_vfs.szOsFile = (int)sizeof(struct shim) + base_vfs->szOsFile;
	shim_vfs.mxPathname = base_vfs->mxPathname;
	registered = sqlite3_vfs_register(&shim_vfs, 0) == SQLITE_OK;
}

const char *hf_sqlite_vfs_name(void)
{
	pthread_once(&once, vfs_register);
	return registered ? shim_vfs.zName : NULL;
}
