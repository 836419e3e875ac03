/* store_sqlite_pack.c - event bodies stored as LZ4 blocks in the SQLite
 * state database (schema version 4).
 *
 * A body is written twice (the WAL, then the database file at checkpoint),
 * and on this machine the writer's bytes and its WAL frames are a large part
 * of an event's cost (issue 13). So the writer stores a body of
 * HF_PACK_MIN bytes or more as an LZ4 block when that is at least an eighth
 * smaller, and records its size in events.body_size; NULL there means the
 * body is stored as it came (smaller bodies, ones that do not shrink, and
 * every row written before version 4). LZ4, not zstd or zlib: ~1 us to pack
 * and ~0.2 us to unpack a 1 KiB JSON body here, where zstd's fastest level
 * that packs as well takes ~4 us and ~2 us (measured with both libraries on
 * a 889-byte Zendesk-shaped ticket: LZ4 733 bytes, zstd -1 745, zstd 1 560).
 *
 * Readers never see a block: every connection has the SQL function
 * hf_body(body, body_size), which gives the body as it came, and the SELECTs
 * that read a body use it. A block that does not unpack to its size (a
 * damaged file) gives SQL NULL, logged, not an error: an error would end
 * the whole read, and one damaged row would keep every unfinished run after
 * it from resuming. body is NOT NULL in the table, so NULL here means
 * damaged: the run of such an event fails with that reason
 * (store_sqlite_recover.c), replay finds no event, the API shows a null
 * body. PostgreSQL compresses large values itself (TOAST) and stores bodies
 * as they came.
 *
 * Threading: hf_sqlite_pack uses the store's buffer and is called by the
 * thread applying writes (under wlock); hf_body is a pure function.
 * Neighbours: store_sqlite_apply.c (the event's insert), store_sqlite.c
 * (registers hf_body on each connection it opens, frees the buffer). */
#include "hf_limits.h"
#include "hf_util.h"
#include "store_sqlite.h"

#include <limits.h>
#include <lz4.h>
#include <stdlib.h>

const void *hf_sqlite_pack(struct hf_sqlite_store *q, const void *body,
			   size_t len, size_t *stored)
{
	if (len < HF_PACK_MIN || len > (size_t)LZ4_MAX_INPUT_SIZE)
		return NULL;
	/* Room for at most 7/8 of len: LZ4 gives up (0) when the block
	 * would not fit, which is also when packing is not worth it. */
	size_t room = len - len / 8;
	if (room > q->pack_cap) {
		char *b = realloc(q->pack_buf, room);
		if (!b)
			return NULL;
		q->pack_buf = b;
		q->pack_cap = room;
	}
	/* One stream, made once: LZ4_resetStream_fast starts each body as a
	 * block of its own (no dictionary) without clearing the 16 KiB hash
	 * table, as LZ4_compress_fast_extState does for every call. */
	if (!q->pack_state && !(q->pack_state = LZ4_createStream()))
		return NULL;
	LZ4_resetStream_fast(q->pack_state);
	int n = LZ4_compress_fast_continue(q->pack_state, body, q->pack_buf,
					   (int)len, (int)room, 1);
	if (n <= 0)
		return NULL;
	*stored = (size_t)n;
	return q->pack_buf;
}

void hf_sqlite_pack_trim(struct hf_sqlite_store *q)
{
	if (q->pack_cap <= HF_BODY_KEEP)
		return;
	free(q->pack_buf);
	q->pack_buf = NULL;
	q->pack_cap = 0;
}

void hf_sqlite_pack_free(struct hf_sqlite_store *q)
{
	free(q->pack_buf);
	LZ4_freeStream(q->pack_state);
	q->pack_buf = q->pack_state = NULL;
	q->pack_cap = 0;
}

/* hf_body(body, body_size): the body as it came; NULL when damaged. */
static void body_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	if (sqlite3_value_type(argv[1]) == SQLITE_NULL) {
		sqlite3_result_value(ctx, argv[0]);
		return;
	}
	sqlite3_int64 size = sqlite3_value_int64(argv[1]);
	const char *src = sqlite3_value_blob(argv[0]);
	int srclen = sqlite3_value_bytes(argv[0]);
	if (size < 0 || size > INT_MAX) {
		hf_log(HF_LOG_ERROR,
		       "state database: a stored body is damaged (body_size "
		       "%lld)",
		       (long long)size);
		sqlite3_result_null(ctx);
		return;
	}
	char *out = sqlite3_malloc64((sqlite3_uint64)size + 1);
	if (!out) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	int n = src ? LZ4_decompress_safe(src, out, srclen, (int)size) : -1;
	if (n != size) {
		sqlite3_free(out);
		hf_log(HF_LOG_ERROR,
		       "state database: a stored body is damaged (%d bytes "
		       "that do not unpack to %lld)",
		       srclen, (long long)size);
		sqlite3_result_null(ctx);
		return;
	}
	sqlite3_result_blob64(ctx, out, (sqlite3_uint64)size, sqlite3_free);
}

int hf_sqlite_pack_register(sqlite3 *db)
{
	return sqlite3_create_function(db, "hf_body", 2,
				       SQLITE_UTF8 | SQLITE_DETERMINISTIC |
					   SQLITE_INNOCUOUS,
				       NULL, body_fn, NULL, NULL);
}
