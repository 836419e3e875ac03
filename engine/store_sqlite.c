/* store_sqlite.c - the SQLite state backend's core: the connections (the
 * writer's and a pool of readers), the one-off statements (hf_sqlite_stmt,
 * _exec, _each: prepared, bound, stepped row by row and finalized in one
 * place), the writer's transaction and which of its failures are the
 * database's (a disk full or an I/O error: every write fails alike), the
 * probe's write, the checkpoints, and the table of operations that store.c
 * dispatches through.
 *
 * The writer thread itself - the queue, batches and group commit, a failed
 * batch applied again write by write, whether the database can write - is
 * store_writer.c, shared with the PostgreSQL backend.
 *
 * Not here: the schema and its migration (store_sqlite_schema.c), the
 * prepared statements and applying each kind of write
 * (store_sqlite_apply.c), the reads behind the admin API and the outbox
 * (store_sqlite_query.c), recovery at start-up, the clean-stop marker,
 * retries and prune (store_sqlite_recover.c).
 *
 * Threading: one writer thread owns the write connection and every prepared
 * statement on it; hf_store_submit() only appends to a queue. Readers borrow a
 * connection from a small pool (WAL lets them read during a write). Without a
 * writer thread (the CLI), writes are applied synchronously under a mutex, on
 * the caller's thread. store_writer.c marks the thread applying a batch,
 * which assert()s check (sq_applying).
 *
 * Neighbours: store.c (the generic interface), store_sqlite.h (shared
 * internals). With its sibling store_sqlite_*.c files, the only code that
 * includes <sqlite3.h> for the state database. */
#include "store_sqlite.h"
#include "hf_crypto.h"
#include "hf_limits.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

/* --- connections --- */

/* vfs: NULL for SQLite's default (hf_sqlite_vfs_name: the writer's). */
static sqlite3 *open_conn_vfs(const char *path, bool sync_full, bool readonly,
			      const char *vfs, struct hf_error *err)
{
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_NOMUTEX |
		    (readonly ? SQLITE_OPEN_READONLY
			      : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	if (strcmp(path, ":memory:") == 0)
		flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			SQLITE_OPEN_SHAREDCACHE | SQLITE_OPEN_URI;
	const char *name =
	    strcmp(path, ":memory:") == 0 ? "file:hfstate?mode=memory" : path;
	struct stat sb;
	bool created = name == path && stat(path, &sb) != 0 && errno == ENOENT;
	if (name != path)
		vfs = NULL;
	if (sqlite3_open_v2(name, &db, flags, vfs) != SQLITE_OK) {
		hf_error_set(err, path, 0, 0, "cannot open database: %s",
			     db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	/* A new file is made private before anything is written to it; SQLite
	 * gives its -wal and -shm files the database file's mode. (chmod, not
	 * open and close: closing any descriptor of the file would drop the
	 * POSIX locks this process's connections hold on it.) */
	if (created)
		chmod(path, 0600);
	sqlite3_busy_timeout(db, HF_STATE_BUSY_TIMEOUT_MS);
	hf_sqlite_pack_register(db);
	char sql[256];
	snprintf(sql, sizeof sql,
		 "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
		 " PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;",
		 sync_full ? "FULL" : "NORMAL");
	char *msg = NULL;
	if (!readonly && sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		hf_error_set(err, path, 0, 0, "cannot set up database: %s",
			     msg);
		sqlite3_free(msg);
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

static sqlite3 *open_conn(const char *path, bool sync_full, bool readonly,
			  struct hf_error *err)
{
	return open_conn_vfs(path, sync_full, readonly, NULL, err);
}

sqlite3 *hf_sqlite_reader_take(struct hf_sqlite_store *q)
{
	sqlite3 *db = NULL;
	pthread_mutex_lock(&q->pool_lock);
	if (q->nreaders > 0)
		db = q->readers[--q->nreaders];
	pthread_mutex_unlock(&q->pool_lock);
	if (!db)
		db = open_conn(q->path, q->sync_full,
			       strcmp(q->path, ":memory:") != 0, NULL);
	return db;
}

/* Closes a reader with the statements it keeps prepared (see
 * hf_sqlite_pending_deliveries): sqlite3_close leaves a connection open
 * while it has any. */
static void close_reader(sqlite3 *db)
{
	sqlite3_stmt *st;
	while (db && (st = sqlite3_next_stmt(db, NULL)))
		sqlite3_finalize(st);
	sqlite3_close(db);
}

void hf_sqlite_reader_give(struct hf_sqlite_store *q, sqlite3 *db)
{
	if (!db)
		return;
	pthread_mutex_lock(&q->pool_lock);
	if (q->nreaders < HF_STATE_READERS) {
		q->readers[q->nreaders++] = db;
		db = NULL;
	}
	pthread_mutex_unlock(&q->pool_lock);
	close_reader(db);
}

/* --- statements --- */

sqlite3_stmt *hf_sqlite_vstmt(sqlite3 *db, const char *sql, const char *types,
			      va_list ap)
{
	sqlite3_stmt *st = NULL;
	if (!db || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return NULL;
	}
	for (int i = 1; types[i - 1]; i++) {
		switch (types[i - 1]) {
		case 't':
			bind_text(st, i, va_arg(ap, const char *));
			break;
		case 'i':
			sqlite3_bind_int(st, i, va_arg(ap, int));
			break;
		case 'I':
			sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
			break;
		default:
			assert(!"hf_sqlite_stmt: a type is t, i or I");
		}
	}
	return st;
}

sqlite3_stmt *hf_sqlite_stmt(sqlite3 *db, const char *sql, const char *types,
			     ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *st = hf_sqlite_vstmt(db, sql, types, ap);
	va_end(ap);
	return st;
}

int hf_sqlite_exec(sqlite3 *db, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	sqlite3_stmt *st = hf_sqlite_vstmt(db, sql, types, ap);
	va_end(ap);
	int rc = st ? sqlite3_step(st) : -1;
	sqlite3_finalize(st);
	return rc;
}

int hf_sqlite_veach(struct hf_sqlite_store *q, sqlite3 *db,
		    int (*row)(sqlite3 *db, sqlite3_stmt *st, void *arg),
		    void *arg, const char *sql, const char *types, va_list ap)
{
	sqlite3 *conn = db ? db : hf_sqlite_reader_take(q);
	sqlite3_stmt *st = hf_sqlite_vstmt(conn, sql, types, ap);
	int n = st ? 0 : -1, rc = SQLITE_DONE;
	while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		if (row(conn, st, arg) != 0)
			break;
	}
	/* A row that cannot be read (a damaged file, a damaged packed body:
	 * hf_body) ends the read with the rows before it; it is logged. */
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		hf_log(HF_LOG_ERROR, "%s: reading the state failed: %s",
		       q->path, sqlite3_errmsg(conn));
	sqlite3_finalize(st);
	if (!db)
		hf_sqlite_reader_give(q, conn);
	return n;
}

int hf_sqlite_each(struct hf_sqlite_store *q, sqlite3 *db,
		   int (*row)(sqlite3 *db, sqlite3_stmt *st, void *arg),
		   void *arg, const char *sql, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	int n = hf_sqlite_veach(q, db, row, arg, sql, types, ap);
	va_end(ap);
	return n;
}

/* --- transactions --- */

static int exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* A failure of the database rather than of one write (its code, extended or
 * not): every write would fail the same way until it is fixed. */
static bool store_fault(int code)
{
	switch (code & 0xff) {
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_NOMEM:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_PERM:
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
		return true;
	default:
		return false;
	}
}

/* The writer's transaction (struct hf_writer_ops): the writes from w up to
 * end (NULL: the list's end) in one transaction, and those queued meanwhile
 * (hf_writer_more) before the COMMIT: under load a batch takes about as long
 * to apply as its fsync takes, and a write that arrived during it would
 * otherwise wait for the whole next commit. Returns 0, or -1 rolled back
 * with the error's message in msg; *fault when the database itself cannot
 * write (store_fault). */
static int transact(struct hf_store *s, struct hf_write *w,
		    const struct hf_write *end, bool *fault, char *msg,
		    size_t size)
{
	struct hf_sqlite_store *q = sq(s);
	*fault = false;
	int rc = exec(q->wdb, "BEGIN IMMEDIATE");
	struct hf_write *last = NULL;
	for (; rc == 0 && w != end; last = w, w = w->next)
		rc = hf_sqlite_apply(q, w);
	while (rc == 0 && !end && last && (w = hf_writer_more(&q->wr, last)))
		for (; rc == 0 && w; last = w, w = w->next)
			rc = hf_sqlite_apply(q, w);
	if (rc == 0)
		rc = exec(q->wdb, "COMMIT");
	if (rc == 0) {
		hf_sqlite_bl_commit(q);
		return 0;
	}
	/* A maintenance call (HF_W_CALL) can fail without an SQLite error. */
	int code = sqlite3_extended_errcode(q->wdb);
	snprintf(msg, size, "%s",
		 code != SQLITE_OK ? sqlite3_errmsg(q->wdb)
				   : "a write refused");
	*fault = store_fault(code);
	exec(q->wdb, "ROLLBACK");
	hf_sqlite_bl_rollback(q);
	q->nversions = 0; /* rows the rollback removed may be cached */
	memset(q->last_band, 0, sizeof q->last_band);
	return -1;
}

/* 1, or 0 for a write that will write nothing: a run's "started" write whose
 * step's own write is already on its way (apply_run_started skips it), so that
 * a commit's bound counts runs' real writes. */
static size_t batch_counts(const struct hf_write *w)
{
	return w->kind == HF_W_RUN_STARTED && atomic_load(&w->run->step_pending)
		   ? 0
		   : 1;
}

/* The probe's write: one tiny row. */
static int probe_call(struct hf_store *s, void *arg)
{
	(void)arg;
	return hf_sqlite_exec(sq(s)->wdb,
			      "INSERT OR REPLACE INTO meta(key, value)"
			      " VALUES ('probed_at', ?1)",
			      "I", hf_now_ms()) == SQLITE_DONE
		   ? 0
		   : -1;
}

/* --- checkpoints ---
 *
 * SQLite starts the WAL again from its beginning only when a writer begins a
 * transaction and every frame has been copied into the database (and no
 * reader still reads from the WAL). A checkpoint run beside a writer that
 * never pauses never gets there: by the time it has copied the frames it
 * saw, the writer has appended more, so the WAL grows without bound (what an
 * earlier attempt did). Here the checkpointer thread copies the bulk beside
 * the writer; when it is nearly caught up, the writer copies the few frames
 * left itself between two batches (nothing can be appended meanwhile), so
 * its next transaction restarts the WAL; past HF_CKPT_MAX_PAGES it copies
 * everything itself, waiting for readers (RESTART). */

/* The writer connection's WAL hook, after each commit on it (it replaces
 * SQLite's automatic checkpoint). */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	struct hf_sqlite_store *q = arg;
	atomic_store(&q->wal_frames, frames);
	return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
	struct hf_sqlite_store *q = arg;
	pthread_mutex_lock(&q->ckpt_lock);
	for (;;) {
		while (!q->ckpt_wake && !q->ckpt_stop)
			pthread_cond_wait(&q->ckpt_cond, &q->ckpt_lock);
		if (q->ckpt_stop)
			break;
		q->ckpt_wake = false;
		pthread_mutex_unlock(&q->ckpt_lock);
		int log = 0, done = 0;
		int rc = sqlite3_wal_checkpoint_v2(
		    q->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
		if (rc == SQLITE_OK && log - done < HF_CKPT_TAIL_PAGES)
			atomic_store(&q->ckpt_caught_up, true);
		pthread_mutex_lock(&q->ckpt_lock);
	}
	pthread_mutex_unlock(&q->ckpt_lock);
	return NULL;
}

/* After a batch, on the writer thread: wakes the checkpointer, or copies the
 * last frames itself (under wlock, as every use of wdb). */
static void after_batch(struct hf_store *s)
{
	struct hf_sqlite_store *q = sq(s);
	int frames = atomic_load(&q->wal_frames);
	if (!q->ckpt_running || frames < HF_CKPT_PAGES)
		return;
	int mode = -1;
	if (frames >= HF_CKPT_MAX_PAGES)
		mode = SQLITE_CHECKPOINT_RESTART;
	else if (atomic_exchange(&q->ckpt_caught_up, false))
		mode = SQLITE_CHECKPOINT_PASSIVE;
	if (mode < 0) {
		pthread_mutex_lock(&q->ckpt_lock);
		q->ckpt_wake = true;
		pthread_cond_signal(&q->ckpt_cond);
		pthread_mutex_unlock(&q->ckpt_lock);
		return;
	}
	pthread_mutex_lock(&q->wr.wlock);
	int rc = sqlite3_wal_checkpoint_v2(q->wdb, NULL, mode, NULL, NULL);
	if (rc == SQLITE_OK) {
		q->ckpt_writer++;
		if (mode == SQLITE_CHECKPOINT_RESTART)
			q->ckpt_blocking++;
	}
	pthread_mutex_unlock(&q->wr.wlock);
}

static void ckpt_start(struct hf_sqlite_store *q)
{
	if (strcmp(q->path, ":memory:") == 0)
		return;
	q->cdb = open_conn(q->path, q->sync_full, false, NULL);
	if (!q->cdb)
		return; /* SQLite's own checkpoint, on the writer */
	if (hf_thread_start(&q->ckpt_thread, "hf-ckpt", ckpt_main, q) != 0) {
		sqlite3_close(q->cdb);
		q->cdb = NULL;
		return;
	}
	q->ckpt_running = true;
	sqlite3_wal_hook(q->wdb, wal_hook, q);
}

static void ckpt_stop(struct hf_sqlite_store *q)
{
	if (!q->ckpt_running)
		return;
	pthread_mutex_lock(&q->ckpt_lock);
	q->ckpt_stop = true;
	pthread_cond_signal(&q->ckpt_cond);
	pthread_mutex_unlock(&q->ckpt_lock);
	pthread_join(q->ckpt_thread, NULL);
	q->ckpt_running = false;
	sqlite3_close(q->cdb);
	q->cdb = NULL;
}

static void set_clean_stop(struct hf_store *s)
{
	sq(s)->clean_stop = true;
}

static void store_close(struct hf_store *s)
{
	struct hf_sqlite_store *q = sq(s);
	if (hf_writer_stop(&q->wr)) {
		ckpt_stop(q);
		if (q->clean_stop)
			hf_sqlite_clean_stop_end(q);
	}
	ckpt_stop(q); /* a start that failed after it began */
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(q->stmts[i]);
	for (int i = 0; i < q->nreaders; i++)
		close_reader(q->readers[i]);
	sqlite3_close(q->wdb);
	hf_writer_destroy(&q->wr);
	pthread_mutex_destroy(&q->pool_lock);
	pthread_mutex_destroy(&q->key_lock);
	pthread_mutex_destroy(&q->ckpt_lock);
	pthread_cond_destroy(&q->ckpt_cond);
	hf_secret_wipe(q->key, sizeof q->key);
	hf_sqlite_bl_free(q);
	hf_sqlite_pack_free(q);
	free(q->path);
	free(q);
}

static void submit(struct hf_store *s, struct hf_write *w)
{
	hf_writer_submit(&sq(s)->wr, w);
}

static void stats(struct hf_store *s, struct hf_store_stats *out)
{
	hf_writer_stats(&sq(s)->wr, out);
}

static bool writable(struct hf_store *s, char *why, size_t size)
{
	return hf_writer_writable(&sq(s)->wr, why, size);
}

/* --- sharing work between servers: one server owns an SQLite file --- */

static int claim(struct hf_store *s, const struct hf_workflow_set *set,
		 int limit, void (*fn)(struct hf_run *run, void *arg),
		 void *arg)
{
	return 0; /* hf_store_load_pending claimed every run at start */
}

static int wait_work(struct hf_store *s, int64_t timeout_ms)
{
	return 0; /* the server polls hf_store_changed instead */
}

static int heartbeat(struct hf_store *s)
{
	return 0; /* no lease to renew */
}

static void release(struct hf_store *s, const char *run_id)
{
	/* nothing: the clean-stop marker says it all */
}

static void on_batch_end(struct hf_store *s, void (*fn)(void *arg), void *arg)
{
	hf_writer_on_batch_end(&sq(s)->wr, fn, arg);
}

static const struct hf_writer_ops writer_ops = {
    .transact = transact,
    .counts = batch_counts,
    .probe = probe_call,
    .after_batch = after_batch,
};

static const struct hf_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = store_close,
    .set_clean_stop = set_clean_stop,
    .submit = submit,
    .stats = stats,
    .writable = writable,
    .run_json = hf_sqlite_run_json,
    .runs_json = hf_sqlite_runs_json,
    .event_json = hf_sqlite_event_json,
    .deliveries_json = hf_sqlite_deliveries_json,
    .delivery_json = hf_sqlite_delivery_json,
    .pending_deliveries = hf_sqlite_pending_deliveries,
    .load_event = hf_sqlite_load_event,
    .retry_delivery = hf_sqlite_retry_delivery,
    .prune = hf_sqlite_prune,
    .load_pending = hf_sqlite_load_pending,
    .changed = hf_sqlite_changed,
    .dedupe_last = hf_sqlite_dedupe_last,
    .stored_workflows = hf_sqlite_stored_workflows,
    .save_versions = hf_sqlite_save_versions,
    .retry_run = hf_sqlite_retry_run,
    .cancel_run = hf_sqlite_cancel_run,
    .cancel_notes = hf_sqlite_cancel_notes,
    .cancel_note_done = hf_sqlite_cancel_note_done,
    .active_runs = hf_sqlite_active_runs,
    .debounce_extend = hf_sqlite_debounce_extend,
    .run_waiting = hf_sqlite_run_waiting,
    .claim = claim,
    .wait = wait_work,
    .heartbeat = heartbeat,
    .release = release,
    .load_backlog = hf_sqlite_load_backlog,
    .claim_runs = hf_sqlite_claim_runs,
    .count_backlog = hf_sqlite_count_backlog,
    .on_batch_end = on_batch_end,
    .next_wake = hf_sqlite_next_wake,
    .count_waiting = hf_sqlite_count_waiting,
    .wake_due = hf_sqlite_wake_due,
    .resume_run = hf_sqlite_resume_run,
    .load_waiting = hf_sqlite_load_waiting,
    .secret_key = hf_sqlite_secret_key,
};

struct hf_store *hf_store_sqlite_open(const char *path, bool sync_full,
				      bool start_writer, struct hf_error *err)
{
	struct hf_sqlite_store *q = hf_xcalloc(1, sizeof *q);
	q->base.ops = &sqlite_ops;
	q->path = hf_xstrdup(path);
	q->sync_full = sync_full;
	hf_writer_init(&q->wr, &q->base, &writer_ops);
	pthread_mutex_init(&q->pool_lock, NULL);
	pthread_mutex_init(&q->key_lock, NULL);
	pthread_mutex_init(&q->ckpt_lock, NULL);
	hf_sqlite_bl_init(q);
	pthread_cond_init(&q->ckpt_cond, NULL);
	q->wdb =
	    open_conn_vfs(path, sync_full, false, hf_sqlite_vfs_name(), err);
	if (!q->wdb || hf_sqlite_migrate(q, err) < 0)
		goto fail;
	if (hf_sqlite_prepare(q, err) < 0)
		goto fail;
	if (start_writer) {
		/* The server owns the database now. */
		if (hf_sqlite_secrets_start(q, err) < 0)
			goto fail;
		hf_sqlite_clean_stop_begin(q);
		ckpt_start(q);
		if (hf_writer_start(&q->wr) < 0) {
			hf_error_set(err, path, 0, 0,
				     "cannot start the writer thread");
			goto fail;
		}
	}
	return &q->base;
fail:
	store_close(&q->base);
	return NULL;
}
