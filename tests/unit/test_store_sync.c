/* test_store_sync.c - the SQLite store's deferred sync (--sync full,
 * store_writer.c's syncer): the writer commits and hands each batch on; the
 * syncer fdatasyncs the WAL and only then calls the batch's done(). Checked
 * here: done() runs on the syncer ("hf-sync"), never on the writer; batches
 * finish in the order they were submitted across several commits, a failed
 * write in its place; everything committed is read back after a reopen; and
 * --sync normal keeps done() on the writer thread. That the answer follows
 * the fsync is tests/e2e/test_commit_sync.py's, which watches the system
 * calls. */
#include "hf_limits.h"
#include "hf_store.h"
#include "tap.h"
#include "tmpdir.h"
#include "wf_fixture.h"
#include "writer_gate.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N 1200 /* more than two batches' bound (HF_WRITER_BATCH) */

static char dbpath[300];
static struct hf_workflow *wf;

struct item {
	struct hf_write w;
	struct hf_run *run;
	bool dropped;
	int index; /* submission order; the gate is 0 */
};

static struct item items[N + 1];
static int order[N + 2];
static atomic_int ndone, off_thread;
static const char *done_thread; /* the name done() must run on */

static void on_done(struct hf_write *w)
{
	char name[16] = "";
	pthread_getname_np(pthread_self(), name, sizeof name);
	if (strcmp(name, done_thread) != 0)
		atomic_fetch_add(&off_thread, 1);
	struct item *it = w->ctx;
	order[atomic_fetch_add(&ndone, 1)] = it->index;
}

static bool wait_done(int n)
{
	for (int i = 0; i < 4000 && atomic_load(&ndone) < n; i++) {
		struct timespec ts = {0, 5 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return atomic_load(&ndone) == n;
}

static int refuse(struct hf_store *s, void *arg)
{
	(void)s;
	(void)arg;
	return -1;
}

static void remove_db(void)
{
	static const char *suffix[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		char p[320];
		snprintf(p, sizeof p, "%s%s", dbpath, suffix[i]);
		unlink(p);
	}
}

/* Holds the writer in a first batch while N writes queue (one of them a
 * refused call), then lets it go: they commit in three batches or more. */
static void submit_all(struct hf_store *s)
{
	items[0].index = 0;
	gate_submit(s, &items[0].w, on_done, &items[0]);
	for (int i = 1; i <= N; i++) {
		struct item *it = &items[i];
		it->index = i;
		if (i == N / 2) { /* a write refused: it fails alone */
			it->w = (struct hf_write){.kind = HF_W_CALL,
						  .call = refuse,
						  .done = on_done,
						  .ctx = it};
			hf_store_submit(s, &it->w);
			continue;
		}
		struct hf_event *ev = hf_event_new();
		hf_id_new(ev->id, "ev");
		ev->method = hf_xstrdup("POST");
		ev->path = hf_xstrdup("/a");
		ev->query = json_object();
		ev->headers = json_object();
		ev->body = hf_xstrdup("{\"i\":1}");
		ev->body_len = strlen(ev->body);
		ev->received_at = hf_now_ms();
		ev->skipped = json_array();
		it->run = hf_run_new(ev, wf);
		hf_event_unref(ev); /* the run holds it */
		it->w = (struct hf_write){.kind = HF_W_INGEST,
					  .done = on_done,
					  .ctx = it,
					  .event = it->run->event,
					  .runs = &it->run,
					  .nruns = 1,
					  .dropped = &it->dropped};
		hf_store_submit(s, &it->w);
	}
	gate_release();
}

static void test_done_after_sync(bool sync_full)
{
	remove_db();
	atomic_store(&ndone, 0);
	atomic_store(&off_thread, 0);
	done_thread = sync_full ? "hf-sync" : "hf-writer";
	struct hf_error err = {0};
	struct hf_store *s = hf_store_open(dbpath, sync_full, true, &err);
	CHECK(s != NULL);
	if (!s)
		return;
	submit_all(s);
	CHECK(wait_done(N + 1));
	CHECK(atomic_load(&off_thread) == 0);
	bool in_order = true;
	for (int i = 0; i <= N; i++)
		in_order = in_order && order[i] == i;
	CHECK(in_order);
	int failed = 0;
	for (int i = 0; i <= N; i++)
		failed += items[i].w.rc != 0;
	CHECK(failed == 1 && items[N / 2].w.rc != 0);
	struct hf_store_stats st;
	hf_store_stats(s, &st);
	CHECK(st.commits >= 3);
	hf_store_close(s);

	/* What was answered as committed is there. */
	s = hf_store_open(dbpath, sync_full, false, &err);
	CHECK(s != NULL);
	if (s) {
		json_t *j = hf_store_runs_json(s, NULL, NULL, 2000);
		CHECK(json_array_size(json_object_get(j, "runs")) == N - 1);
		json_decref(j);
		hf_store_close(s);
	}
	for (int i = 1; i <= N; i++) {
		hf_run_free(items[i].run);
		items[i].run = NULL;
	}
}

int main(void)
{
	tmpdir_create("store_sync");
	tmpdir_file(dbpath, sizeof dbpath, "state.db");
	wf = parse_workflow("name: alpha\n"
			    "on: {webhook: {path: /a}}\n"
			    "steps: [{id: a, run: return 1}]\n");
	test_done_after_sync(true);
	test_done_after_sync(false);
	hf_workflow_unref(wf);
	remove_db();
	CHECK(tmpdir_remove() == 0);
	return tap_done();
}
