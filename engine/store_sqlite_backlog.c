/* store_sqlite_backlog.c - the SQLite backend's disk backlog (hf_backlog.h):
 * pages of unclaimed runs read into memory and claimed there, not in their
 * rows, and the count of those still waiting.
 *
 * One process owns the file, so a run taken into memory need not be marked
 * claimed by a write of its own: the loader reads forward from a cursor (a
 * rid), and the runs taken are remembered by id ("taken") until their own
 * first write (started, a step, parked, finished: ST_RUN_STARTED and
 * ST_UPDATE_RUN set claimed = 1) has committed. A page's claim
 * (hf_store_claim_runs) writes one row, meta's backlog_mark (the highest rid
 * taken), committed before the page is pushed. After a stop that was not
 * clean, an unclaimed run at or below the mark may have had its step in
 * flight: it is loaded at step_attempt + 1, as hf_store_load_pending loads
 * the claimed ones (a run that never started may be so marked too, never
 * the other way round). A clean stop drops the mark.
 *
 * Runs that become unclaimed behind the cursor: an ingest whose id (hence
 * its rid's band, hf_sqlite_band) was made before rows the loader read but
 * committed after them; a parked run woken, a failed run retried, the CLI's
 * runs. After each commit the writer publishes the least such rid (0 when it
 * does not know: from the start); the loader then rereads the unclaimed rows
 * from there to the cursor and takes those it does not hold ("reread"). A
 * reread from 0 that saw every row also forgets taken runs no longer
 * unclaimed (one cancelled before its first write).
 *
 * An id whose run's write committed stays taken, marked with the commit's
 * generation, until the loader starts a read after that commit: a read
 * begun before it may still see the run unclaimed.
 *
 * Threading: the loader thread (hf_sqlite_load_backlog); the thread applying
 * writes (the claim, the count, the hooks: hf_sqlite_bl_*). bl->lock guards
 * the taken set, the cursor and the generation; the rest is the loader's or
 * the applier's own, as marked. */
#include "hf_limits.h"
#include "store_sqlite.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define NONE INT64_MAX

struct taken {
	char id[HF_ID_SIZE]; /* "" : free */
	uint64_t gen;	     /* 0: not written yet; else the commit's */
};

struct page_row {
	int64_t rid;
	char id[HF_ID_SIZE];
};

struct hf_sqlite_backlog {
	pthread_mutex_t lock;
	struct taken *set; /* open addressing, linear probing */
	size_t cap, n;
	atomic_size_t count; /* n, for the writer's cheap check */
	size_t prune_at;     /* a full reread once n passes it */
	int64_t cursor;	     /* rows above it are not read yet */
	uint64_t gen;	     /* commits that wrote a taken run */

	/* Published by the writer after a commit: the least rid made
	 * unclaimed since (NONE: none). */
	atomic_llong low;
	/* After an unclean stop, the mark read at open (-1: none). */
	int64_t unclean_mark;

	/* The loader's: where the next reread starts (NONE: none). The page
	 * read, until its claim (then the writer's, the loader waiting). */
	int64_t reread;
	struct page_row *page;
	size_t npage, cap_page;
	void (*fn)(struct hf_run *run, void *arg);
	void *fn_arg;

	/* The applier's: the batch being applied. */
	int64_t batch_low;
	char (*written)[HF_ID_SIZE];
	size_t nwritten, cap_written;
	bool claimed;	       /* a claim in this batch: undone by a rollback */
	int64_t cursor_before; /* the cursor before it */
};

/* --- the taken set (under lock) --- */

static size_t id_hash(const char *id)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return (size_t)h;
}

static struct taken *find(struct hf_sqlite_backlog *bl, const char *id)
{
	if (!bl->cap)
		return NULL;
	for (size_t i = id_hash(id) & (bl->cap - 1);;
	     i = (i + 1) & (bl->cap - 1)) {
		if (!bl->set[i].id[0])
			return NULL;
		if (strcmp(bl->set[i].id, id) == 0)
			return &bl->set[i];
	}
}

static void put(struct hf_sqlite_backlog *bl, const char *id, uint64_t gen);

static void grow(struct hf_sqlite_backlog *bl)
{
	struct taken *old = bl->set;
	size_t cap = bl->cap;
	bl->cap = cap ? 2 * cap : 1024;
	bl->set = hf_xcalloc(bl->cap, sizeof *bl->set);
	bl->n = 0;
	for (size_t i = 0; i < cap; i++)
		if (old[i].id[0])
			put(bl, old[i].id, old[i].gen);
	free(old);
}

static void put(struct hf_sqlite_backlog *bl, const char *id, uint64_t gen)
{
	if (2 * (bl->n + 1) > bl->cap)
		grow(bl);
	size_t i = id_hash(id) & (bl->cap - 1);
	while (bl->set[i].id[0] && strcmp(bl->set[i].id, id) != 0)
		i = (i + 1) & (bl->cap - 1);
	if (!bl->set[i].id[0])
		bl->n++;
	snprintf(bl->set[i].id, sizeof bl->set[i].id, "%s", id);
	bl->set[i].gen = gen;
	atomic_store(&bl->count, bl->n);
}

/* Removes slot i, moving the entries after it back (no tombstones). */
static void drop(struct hf_sqlite_backlog *bl, size_t i)
{
	size_t mask = bl->cap - 1;
	bl->set[i].id[0] = '\0';
	bl->n--;
	for (size_t j = (i + 1) & mask; bl->set[j].id[0]; j = (j + 1) & mask) {
		size_t home = id_hash(bl->set[j].id) & mask;
		/* j's entry may move to i when its home is not in (i, j]. */
		if (i <= j ? (home <= i || home > j)
			   : (home <= i && home > j)) {
			bl->set[i] = bl->set[j];
			bl->set[j].id[0] = '\0';
			i = j;
		}
	}
	atomic_store(&bl->count, bl->n);
}

/* Forgets the runs whose write committed before now (gen at most upto). */
static void forget_written(struct hf_sqlite_backlog *bl, uint64_t upto)
{
	for (size_t i = 0; i < bl->cap;)
		if (bl->set[i].id[0] && bl->set[i].gen &&
		    bl->set[i].gen <= upto)
			drop(bl, i); /* slot i holds another entry now */
		else
			i++;
}

/* --- set-up (store_sqlite.c) --- */

void hf_sqlite_bl_init(struct hf_sqlite_store *q)
{
	struct hf_sqlite_backlog *bl = hf_xcalloc(1, sizeof *bl);
	pthread_mutex_init(&bl->lock, NULL);
	atomic_store(&bl->low, NONE);
	bl->unclean_mark = -1;
	bl->reread = NONE;
	bl->batch_low = NONE;
	bl->prune_at = 4096;
	q->bl = bl;
}

void hf_sqlite_bl_free(struct hf_sqlite_store *q)
{
	struct hf_sqlite_backlog *bl = q->bl;
	if (!bl)
		return;
	pthread_mutex_destroy(&bl->lock);
	free(bl->set);
	free(bl->page);
	free(bl->written);
	free(bl);
	q->bl = NULL;
}

void hf_sqlite_bl_unclean(struct hf_sqlite_store *q, int64_t mark)
{
	q->bl->unclean_mark = mark;
}

/* --- the writer's hooks --- */

void hf_sqlite_bl_written(struct hf_sqlite_store *q, const char *run_id)
{
	struct hf_sqlite_backlog *bl = q->bl;
	if (atomic_load(&bl->count) == 0)
		return;
	if (bl->nwritten == bl->cap_written) {
		bl->cap_written = bl->cap_written ? 2 * bl->cap_written : 256;
		bl->written = hf_xrealloc(bl->written, bl->cap_written *
							   sizeof *bl->written);
	}
	snprintf(bl->written[bl->nwritten++], HF_ID_SIZE, "%s", run_id);
}

void hf_sqlite_bl_unclaimed(struct hf_sqlite_store *q, int64_t rid)
{
	if (rid < q->bl->batch_low)
		q->bl->batch_low = rid;
}

static void publish(struct hf_sqlite_backlog *bl, int64_t rid)
{
	long long cur = atomic_load(&bl->low);
	while (rid < cur && !atomic_compare_exchange_weak(&bl->low, &cur, rid))
		;
}

void hf_sqlite_bl_rewind(struct hf_sqlite_store *q)
{
	publish(q->bl, 0);
}

void hf_sqlite_bl_commit(struct hf_sqlite_store *q)
{
	struct hf_sqlite_backlog *bl = q->bl;
	bl->claimed = false;
	if (bl->batch_low != NONE) {
		publish(bl, bl->batch_low);
		bl->batch_low = NONE;
	}
	if (!bl->nwritten)
		return;
	pthread_mutex_lock(&bl->lock);
	bl->gen++;
	for (size_t i = 0; i < bl->nwritten; i++) {
		struct taken *t = find(bl, bl->written[i]);
		if (t && !t->gen)
			t->gen = bl->gen;
	}
	pthread_mutex_unlock(&bl->lock);
	bl->nwritten = 0;
}

void hf_sqlite_bl_rollback(struct hf_sqlite_store *q)
{
	struct hf_sqlite_backlog *bl = q->bl;
	bl->nwritten = 0;
	if (!bl->claimed)
		return;
	/* The page was not claimed: it is read again. */
	bl->claimed = false;
	pthread_mutex_lock(&bl->lock);
	for (size_t i = 0; i < bl->npage; i++) {
		struct taken *t = find(bl, bl->page[i].id);
		if (t)
			drop(bl, (size_t)(t - bl->set));
	}
	bl->cursor = bl->cursor_before;
	pthread_mutex_unlock(&bl->lock);
}

/* --- the claim and the count (writer connection) --- */

int hf_sqlite_claim_runs(struct hf_store *s, struct hf_run *const *runs,
			 size_t n)
{
	struct hf_sqlite_store *q = sq(s);
	struct hf_sqlite_backlog *bl = q->bl;
	assert(sq_applying(q)); /* through HF_W_CALL */
	(void)runs; /* the page read (bl->page): its runs, and any others */
	if (n == 0 || bl->npage == 0)
		return 0;
	int64_t top = -1;
	pthread_mutex_lock(&bl->lock);
	bl->cursor_before = bl->cursor;
	for (size_t i = 0; i < bl->npage; i++) {
		put(bl, bl->page[i].id, 0);
		if (bl->page[i].rid > top)
			top = bl->page[i].rid;
	}
	if (top > bl->cursor)
		bl->cursor = top;
	pthread_mutex_unlock(&bl->lock);
	bl->claimed = true;
	return hf_sqlite_exec(q->wdb,
			      "INSERT INTO meta(key, value) VALUES"
			      " ('backlog_mark', ?1) ON CONFLICT(key) DO"
			      " UPDATE SET value = max(CAST(value AS INTEGER),"
			      " excluded.value)",
			      "I", top) == SQLITE_DONE
		   ? 0
		   : -1;
}

struct count {
	struct hf_sqlite_backlog *bl;
	int64_t n;
};

static int count_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	(void)db;
	*(int64_t *)arg = sqlite3_column_int64(st, 0);
	return 0;
}

/* A run unclaimed at or below the cursor: waiting unless taken and not
 * written since. A taken run whose write committed (gen set: before this
 * read, which holds bl->lock) and is unclaimed again (a retry) waits too:
 * its id is forgotten only when the loader next reads (a read begun before
 * the commit may still see it unclaimed), and uncounted it would never
 * wake the loader. */
static int behind_row(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	(void)db;
	struct count *c = arg;
	const struct taken *t =
	    find(c->bl, (const char *)sqlite3_column_text(st, 0));
	if (!t || t->gen)
		c->n++;
	return 0;
}

int64_t hf_sqlite_count_backlog(struct hf_store *s)
{
	struct hf_sqlite_store *q = sq(s);
	struct hf_sqlite_backlog *bl = q->bl;
	sqlite3 *db = sq_applying(q) ? q->wdb : NULL;
	/* Runs unclaimed since (the CLI's) may lie behind the cursor. */
	hf_sqlite_bl_rewind(q);
	pthread_mutex_lock(&bl->lock);
	struct count c = {.bl = bl};
	int64_t ahead = -1;
	if (hf_sqlite_each(q, db, count_row, &ahead,
			   "SELECT count(*) FROM runs WHERE claimed = 0 AND"
			   " status IN ('queued','running') AND rid > ?1",
			   "I", bl->cursor) < 0 ||
	    (bl->cursor >= 0 &&
	     hf_sqlite_each(q, db, behind_row, &c,
			    "SELECT id FROM runs WHERE claimed = 0 AND"
			    " status IN ('queued','running') AND rid <= ?1",
			    "I", bl->cursor) < 0))
		ahead = -1;
	pthread_mutex_unlock(&bl->lock);
	return ahead < 0 ? -1 : ahead + c.n;
}

/* --- reading a page (the loader) --- */

static void page_add(struct hf_sqlite_backlog *bl, struct hf_run *run,
		     int64_t rid)
{
	if (bl->npage == bl->cap_page) {
		bl->cap_page = bl->cap_page ? 2 * bl->cap_page : 512;
		bl->page =
		    hf_xrealloc(bl->page, bl->cap_page * sizeof *bl->page);
	}
	bl->page[bl->npage].rid = rid;
	snprintf(bl->page[bl->npage].id, HF_ID_SIZE, "%s", run->id);
	bl->npage++;
}

static void page_run(struct hf_run *run, int64_t rid, void *arg)
{
	struct hf_sqlite_backlog *bl = arg;
	page_add(bl, run, rid);
	bl->fn(run, bl->fn_arg);
}

static bool in_page(const struct hf_sqlite_backlog *bl, int64_t rid)
{
	for (size_t i = 0; i < bl->npage; i++)
		if (bl->page[i].rid == rid)
			return true;
	return false;
}

/* The rows unclaimed behind the cursor, as a reread sees them. */
struct behind {
	struct page_row *rows;
	size_t n, cap;
};

static int behind_collect(sqlite3 *db, sqlite3_stmt *st, void *arg)
{
	(void)db;
	struct behind *b = arg;
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 256;
		b->rows = hf_xrealloc(b->rows, b->cap * sizeof *b->rows);
	}
	b->rows[b->n].rid = sqlite3_column_int64(st, 0);
	snprintf(b->rows[b->n].id, HF_ID_SIZE, "%s",
		 (const char *)sqlite3_column_text(st, 1));
	b->n++;
	return 0;
}

/* Keeps of the taken runs those the full reread saw unclaimed (the others
 * wrote, or ended without a write of their own). Under lock. */
static void prune(struct hf_sqlite_backlog *bl, const struct behind *b)
{
	struct taken *old = bl->set;
	size_t cap = bl->cap;
	if (!cap)
		return;
	bl->set = NULL;
	bl->cap = bl->n = 0;
	for (size_t i = 0; i < b->n; i++) {
		size_t j = id_hash(b->rows[i].id) & (cap - 1);
		for (; old[j].id[0]; j = (j + 1) & (cap - 1))
			if (strcmp(old[j].id, b->rows[i].id) == 0) {
				put(bl, old[j].id, old[j].gen);
				break;
			}
	}
	free(old);
	atomic_store(&bl->count, bl->n);
	bl->prune_at = 2 * bl->n > 4096 ? 2 * bl->n : 4096;
}

/* Rereads the unclaimed runs from bl->reread to the cursor that the loader
 * does not hold: at most limit of them. Returns how many, or -1. */
static int reread(struct hf_store *s, const struct hf_workflow_set *set,
		  int limit)
{
	struct hf_sqlite_store *q = sq(s);
	struct hf_sqlite_backlog *bl = q->bl;
	pthread_mutex_lock(&bl->lock);
	uint64_t gen = bl->gen; /* commits before the read below */
	int64_t to = bl->cursor;
	pthread_mutex_unlock(&bl->lock);
	for (size_t i = 0; i < bl->npage; i++)
		if (bl->page[i].rid > to)
			to =
			    bl->page[i].rid; /* read forward, not claimed yet */
	int64_t from = bl->reread;
	struct behind b = {0};
	if (hf_sqlite_each(q, NULL, behind_collect, &b,
			   "SELECT rid, id FROM runs WHERE claimed = 0 AND"
			   " status IN ('queued','running') AND rid BETWEEN"
			   " ?1 AND ?2 ORDER BY rid",
			   "II", from, to) < 0) {
		free(b.rows);
		return -1;
	}
	/* Keep only the runs not held: not taken (or written after the read
	 * began: the read may predate it) and not in this page. */
	size_t keep = 0;
	pthread_mutex_lock(&bl->lock);
	if (from == 0)
		prune(bl, &b); /* before b keeps only the runs to take */
	for (size_t i = 0; i < b.n; i++) {
		const struct taken *t = find(bl, b.rows[i].id);
		if (!t && !in_page(bl, b.rows[i].rid))
			b.rows[keep++] = b.rows[i];
		else if (t && t->gen && t->gen <= gen)
			b.rows[keep++] = b.rows[i]; /* unclaimed again */
	}
	pthread_mutex_unlock(&bl->lock);
	int n = 0;
	size_t i = 0;
	for (; i < keep && n < limit; i++) {
		int got = hf_sqlite_load_where(
		    s, set, bl->unclean_mark, page_run, bl,
		    "WHERE r.rid = ?1 AND r.claimed = 0 AND r.status IN"
		    " ('queued','running')",
		    "I", b.rows[i].rid);
		if (got < 0) {
			free(b.rows);
			return n ? n : -1;
		}
		n += got;
	}
	bl->reread = i < keep ? b.rows[i].rid : NONE;
	free(b.rows);
	return n;
}

/* The least rid the writer made unclaimed since the last look: a reread
 * when it lies behind the cursor. */
static void look_back(struct hf_sqlite_backlog *bl)
{
	int64_t low = atomic_exchange(&bl->low, NONE);
	pthread_mutex_lock(&bl->lock);
	int64_t cursor = bl->cursor;
	for (size_t i = 0; i < bl->npage; i++)
		if (bl->page[i].rid > cursor)
			cursor = bl->page[i].rid;
	bool full = bl->n >= bl->prune_at;
	pthread_mutex_unlock(&bl->lock);
	if (full)
		low = 0;
	if (low <= cursor && low < bl->reread)
		bl->reread = low;
}

int hf_sqlite_load_backlog(struct hf_store *s,
			   const struct hf_workflow_set *set, int limit,
			   void (*fn)(struct hf_run *run, void *arg), void *arg)
{
	struct hf_sqlite_store *q = sq(s);
	struct hf_sqlite_backlog *bl = q->bl;
	bl->fn = fn;
	bl->fn_arg = arg;
	bl->npage = 0;
	pthread_mutex_lock(&bl->lock);
	forget_written(bl, bl->gen); /* committed before any read below */
	int64_t cursor = bl->cursor;
	pthread_mutex_unlock(&bl->lock);
	look_back(bl);
	int n = 0;
	if (bl->reread != NONE && (n = reread(s, set, limit)) < 0)
		return -1;
	/* runs_unclaimed holds (claimed, rowid): arrival order, no sort. */
	if (n < limit) {
		int got = hf_sqlite_load_where(
		    s, set, bl->unclean_mark, page_run, bl,
		    "WHERE r.claimed = 0 AND r.status IN ('queued','running')"
		    " AND r.rid > ?2 ORDER BY r.rid LIMIT ?1",
		    "iI", limit - n, cursor);
		if (got < 0)
			return n ? n : -1;
		n += got;
	}
	/* What committed meanwhile behind the rows just read. */
	look_back(bl);
	if (bl->reread != NONE && n < limit) {
		int got = reread(s, set, limit - n);
		if (got > 0)
			n += got;
	}
	return n;
}
