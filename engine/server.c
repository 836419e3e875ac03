/* server.c - the server's lifecycle (hf_server_run, which `hookflow serve` in
 * cmd_serve.c calls with its parsed options): wires the store, scheduler,
 * workers, ingest and outbox together; recovers pending runs at start; reloads
 * workflows on SIGHUP or when the workflows directory changes; picks up runs
 * that the CLI created; prunes old history; drains on SIGTERM/SIGINT. The
 * command line itself is not parsed here.
 *
 * The main thread only waits for signals and does this housekeeping once a
 * second: everything else runs on the modules' own threads. */
#include "hf_backlog.h"
#include "hf_cancel.h"
#include "hf_flow.h"
#include "hf_ingest.h"
#include "hf_limits.h"
#include "hf_metrics.h"
#include "hf_outbox.h"
#include "hf_park.h"
#include "hf_schedule.h"
#include "hf_server.h"
#include "hf_throttle.h"
#include "hf_worker.h"

#include <dirent.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The engine and, above it, the listener. */
struct hf_server {
	struct hf_engine eng;
	struct hf_ingest *ingest;
	/* dir_stamp of the workflows and scripts as they were just before
	 * the first load: a change made after it, even before the server
	 * says it is listening, triggers a reload. */
	unsigned long long stamp;
	struct hf_schedule_thread *schedule; /* on.schedule's fires */
	/* Wake-ups from other nodes (hf_store_wait): the backlog looks for
	 * claimable runs, the outbox for due deliveries. */
	pthread_t waker;
	bool waker_started;
	atomic_bool waker_stop;
};

static volatile sig_atomic_t got_stop, got_hup;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_stop = 1;
}

static void print_diags(const struct hf_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		char line[2048];
		hf_error_format(&d->items[i], line, sizeof line);
		hf_log(HF_LOG_ERROR, "%s", line);
	}
}

/* A cheap fingerprint of the workflows and scripts directories: names, sizes
 * and modification times. A change triggers a reload. */
static unsigned long long dir_stamp(const char *dir)
{
	unsigned long long h = 1469598103934665603ULL;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		struct stat st;
		if (stat(path, &st) != 0)
			continue;
		unsigned long long v =
		    (unsigned long long)st.st_mtim.tv_sec * 1000000007ULL ^
		    (unsigned long long)st.st_mtim.tv_nsec ^
		    (unsigned long long)st.st_size << 20;
		for (const char *p = e->d_name; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ULL;
		h = (h ^ v) * 1099511628211ULL;
	}
	closedir(d);
	return h;
}

/* The versions of a set just loaded, stored as the ones in force (what
 * `hookflow replay` matches against), in the background. */
struct versions_job {
	struct hf_write w;
	struct hf_workflow_set *set;
};

static int versions_call(struct hf_store *s, void *arg)
{
	struct versions_job *job = arg;
	return hf_store_save_versions(s, job->set);
}

static void versions_done(struct hf_write *w)
{
	struct versions_job *job = w->call_arg;
	if (w->rc != 0)
		hf_log(HF_LOG_WARN, "cannot store the workflow versions: "
				    "hookflow replay may use older ones");
	hf_workflow_set_unref(job->set);
	free(job);
}

static void save_versions(struct hf_store *store, struct hf_workflow_set *set)
{
	struct versions_job *job = hf_xcalloc(1, sizeof *job);
	job->set = hf_workflow_set_ref(set);
	job->w.kind = HF_W_CALL;
	job->w.call = versions_call;
	job->w.call_arg = job;
	job->w.done = versions_done;
	hf_store_submit(store, &job->w);
}

/* After the problems themselves: how many files failed, and what it means. */
static void log_failed(const struct hf_workflow_set *set)
{
	if (set->nfailed)
		hf_log(HF_LOG_ERROR,
		       "%zu workflow file%s failed to load (listed in "
		       "/api/workflows); a path without an active version "
		       "answers 503 until it loads",
		       set->nfailed, set->nfailed == 1 ? "" : "s");
}

static void reload(struct hf_server *srv)
{
	struct hf_snapshot *old = hf_engine_snapshot(&srv->eng);
	struct hf_diags diags = {0};
	struct hf_workflow_set *set =
	    hf_workflow_set_load(srv->eng.opt.workflows_dir,
				 srv->eng.opt.scripts_dir, old->set, &diags);
	print_diags(&diags);
	hf_diags_release(&diags);
	if (!set) {
		hf_log(HF_LOG_ERROR,
		       "cannot read workflows directory '%s': keeping the "
		       "current workflows",
		       srv->eng.opt.workflows_dir);
		hf_snapshot_unref(old);
		return;
	}
	save_versions(srv->eng.store, set);
	hf_engine_publish(&srv->eng, set);
	hf_snapshot_unref(old);
	hf_log(HF_LOG_INFO, "loaded %zu workflow%s from %s", set->n,
	       set->n == 1 ? "" : "s", srv->eng.opt.workflows_dir);
	log_failed(set);
}

/* The writer's batch is over: its runs go to the scheduler and its requests
 * are answered, once per commit (writer thread). */
static void batch_end(void *arg)
{
	struct hf_server *srv = arg;
	hf_backlog_batch_end(srv->eng.backlog);
	hf_ingest_batch_end();
}

static void requeue(struct hf_run *run, void *arg)
{
	struct hf_server *srv = arg;
	hf_sched_push(srv->eng.sched, run);
}

/* Retention: small batches (HF_PRUNE_BATCH), one transaction each, so that a
 * large backlog never holds the writer for long; a full batch queues the next
 * one behind the writes waiting meanwhile, until the backlog is gone or a drain
 * begins. */
struct prune_job {
	struct hf_write w;
	struct hf_server *srv;
	int64_t before;
	int deleted;
};

static int prune_call(struct hf_store *s, void *arg)
{
	struct prune_job *job = arg;
	job->deleted = hf_store_prune(s, job->before, HF_PRUNE_BATCH);
	return job->deleted < 0 ? -1 : 0;
}

static void prune_done(struct hf_write *w)
{
	struct prune_job *job = w->call_arg;
	if (w->rc == 0 && job->deleted >= HF_PRUNE_BATCH &&
	    !atomic_load(&job->srv->eng.draining)) {
		hf_store_submit(job->srv->eng.store, &job->w);
		return;
	}
	free(job);
}

static void prune(struct hf_server *srv)
{
	struct prune_job *job = hf_xcalloc(1, sizeof *job);
	job->srv = srv;
	job->before = hf_now_ms() - srv->eng.opt.retain_ms;
	job->w.kind = HF_W_CALL;
	job->w.call = prune_call;
	job->w.call_arg = job;
	job->w.done = prune_done;
	hf_store_submit(srv->eng.store, &job->w);
}

struct flush {
	struct hf_write w;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static int flush_call(struct hf_store *s, void *arg)
{
	return 0;
}

static void flush_done(struct hf_write *w)
{
	struct flush *f = (struct flush *)w;
	pthread_mutex_lock(&f->lock);
	f->done = true;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/* Waits, at most timeout_ms, until every write submitted so far has been
 * committed (the writer's queue is FIFO). On a timeout f is left to the
 * writer: the process is about to exit. */
static void store_flush(struct hf_store *store, int64_t timeout_ms)
{
	struct flush *f = hf_xcalloc(1, sizeof *f);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->w.kind = HF_W_CALL;
	f->w.call = flush_call;
	f->w.done = flush_done;
	hf_store_submit(store, &f->w);
	struct timespec ts;
	hf_deadline_in(timeout_ms, &ts);
	pthread_mutex_lock(&f->lock);
	while (!f->done && pthread_cond_timedwait(&f->cond, &f->lock, &ts) == 0)
		;
	bool done = f->done;
	pthread_mutex_unlock(&f->lock);
	if (done) {
		pthread_mutex_destroy(&f->lock);
		pthread_cond_destroy(&f->cond);
		free(f);
	}
}

static void *waker_main(void *arg)
{
	struct hf_server *srv = arg;
	while (!atomic_load(&srv->waker_stop)) {
		int64_t t0 = hf_mono_ms();
		int rc = hf_store_wait(srv->eng.store, 250);
		if (rc == 1) {
			hf_backlog_rescan(srv->eng.backlog);
			hf_outbox_kick(srv->eng.outbox);
		} else if (hf_mono_ms() - t0 < 50) {
			/* A backend without wake-ups (SQLite): the
			 * housekeeping's poll is the path. */
			struct timespec ts = {0, 250 * 1000 * 1000L};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* Prints a failure to start, as "hookflow: MSG". */
static void start_error(const struct hf_error *err)
{
	char line[2048];
	hf_error_format(err, line, sizeof line);
	fprintf(stderr, "hookflow: %s\n", line);
}

/* The workflows, the store, the scheduler, the workers (with the runs left
 * unfinished), the outbox. Returns 0, or 1 after printing why not. */
static int start_core(struct hf_server *srv)
{
	struct hf_options *o = &srv->eng.opt;
	struct hf_error err = {0};
	struct hf_diags diags = {0};
	srv->stamp = dir_stamp(o->workflows_dir) ^ dir_stamp(o->scripts_dir);
	struct hf_workflow_set *set = hf_workflow_set_load(
	    o->workflows_dir, o->scripts_dir, NULL, &diags);
	print_diags(&diags);
	hf_diags_release(&diags);
	if (!set) {
		fprintf(stderr,
			"hookflow: cannot read workflows directory '%s'\n",
			o->workflows_dir);
		return 1;
	}
	if (o->strict && set->nfailed) {
		fprintf(stderr,
			"hookflow: %zu workflow file%s failed to load "
			"(--strict)\n",
			set->nfailed, set->nfailed == 1 ? "" : "s");
		hf_workflow_set_unref(set);
		return 1;
	}
	srv->eng.snap = hf_snapshot_new(set);
	hf_metrics_load_errors(set->nfailed);
	hf_log(HF_LOG_INFO, "loaded %zu workflow%s from %s", set->n,
	       set->n == 1 ? "" : "s", o->workflows_dir);
	log_failed(set);

	struct hf_store_node node = {o->node_name, o->lease_ms, o->pg_notify};
	srv->eng.store =
	    hf_store_open_node(o->state_path, o->sync_full, &node, &err);
	if (!srv->eng.store) {
		start_error(&err);
		return 1;
	}
	save_versions(srv->eng.store, set);
	/* Before a worker asks for a start (hf_throttle.h). */
	hf_throttle_restore(srv->eng.store, set);
	srv->eng.sched = hf_sched_create();
	struct hf_luart_config cfg = {
	    .scripts_dir = o->scripts_dir,
	    .data_path = o->data_path,
	    .data_sync_full = o->data_sync_full,
	    .egress = o->egress,
	    .max_value = o->max_value,
	};
	srv->eng.workers = hf_workers_start(&srv->eng, o->workers, &cfg, &err);
	if (!srv->eng.workers) {
		start_error(&err);
		return 1;
	}
	int recovered = hf_store_load_pending(
	    srv->eng.store, srv->eng.snap->set, false, requeue, srv);
	if (recovered > 0)
		hf_log(HF_LOG_INFO, "resuming %d unfinished run%s", recovered,
		       recovered == 1 ? "" : "s");
	hf_store_changed(srv->eng.store);
	/* Before the loader starts: its first claim's commit must wake it. */
	hf_store_on_batch_end(srv->eng.store, batch_end, srv);
	/* The rest waits on disk, unclaimed: it comes in pages. */
	srv->eng.backlog = hf_backlog_start(&srv->eng);
	if (!srv->eng.backlog) {
		fprintf(stderr, "hookflow: cannot start the backlog thread\n");
		return 1;
	}
	int64_t waiting = hf_backlog_found(srv->eng.backlog);
	if (waiting > 0)
		hf_log(HF_LOG_INFO, "%lld run%s waiting on disk",
		       (long long)waiting, waiting == 1 ? "" : "s");
	/* Parked runs (hf_park.h): their wake-ups and signals. */
	srv->eng.park = hf_park_start(&srv->eng);
	if (!srv->eng.park) {
		fprintf(stderr, "hookflow: cannot start the parked runs' "
				"threads\n");
		return 1;
	}
	srv->eng.outbox = hf_outbox_start(srv->eng.store, o->egress, &err);
	if (!srv->eng.outbox) {
		start_error(&err);
		return 1;
	}
	if (hf_flow_start(&srv->eng) < 0) {
		fprintf(stderr, "hookflow: cannot start the flow thread\n");
		return 1;
	}
	/* After the recovered runs: the missed fires queue behind them. */
	srv->schedule = hf_schedule_start(&srv->eng);
	srv->waker_started =
	    hf_thread_start(&srv->waker, "hf-waker", waker_main, srv) == 0;
	return 0;
}

/* run.resume_url (hf_park.h): --public-url, else the address listened on;
 * tokens from the state database's secret key. Before a run can start. */
static void resume_urls(struct hf_server *srv, const char *host, int port)
{
	unsigned char key[32];
	if (hf_store_secret_key(srv->eng.store, key) < 0) {
		hf_log(HF_LOG_WARN, "no secret key: run.resume_url is unset");
		return;
	}
	char *base = srv->eng.opt.public_url
			 ? hf_xstrdup(srv->eng.opt.public_url)
			 : hf_xasprintf("http://%s:%d", host, port);
	hf_park_set_resume(key, base);
	explicit_bzero(key, sizeof key);
	free(base);
}

/* The signal handlers and the listener. Returns 0, or 1 after printing why
 * not. */
static int start_listening(struct hf_server *srv)
{
	/* Signals are handled before the listening line, so that a supervisor
	 * that signals as soon as it reads the line is heard. */
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	int port = 0;
	struct hf_error err = {0};
	srv->ingest = hf_ingest_start(&srv->eng, &port, &err);
	if (!srv->ingest) {
		start_error(&err);
		return 1;
	}
	char host[256];
	snprintf(host, sizeof host, "%s", srv->eng.opt.listen);
	char *colon = strrchr(host, ':');
	if (colon)
		*colon = '\0';
	/* Before the line that says requests may come. */
	resume_urls(srv, host[0] ? host : "127.0.0.1", port);
	hf_log(HF_LOG_INFO, "listening on http://%s:%d",
	       host[0] ? host : "127.0.0.1", port);
	return 0;
}

/* Once a second until SIGTERM or SIGINT: reload on SIGHUP or a change of the
 * workflows or scripts, pick up runs that the CLI created, prune. */
static void housekeeping(struct hf_server *srv)
{
	const struct hf_options *o = &srv->eng.opt;
	unsigned long long stamp = srv->stamp;
	int64_t next_prune = 0;
	while (!got_stop) {
		sleep(1); /* interrupted by signals */
		unsigned long long now_stamp =
		    dir_stamp(o->workflows_dir) ^ dir_stamp(o->scripts_dir);
		if (got_hup || now_stamp != stamp) {
			got_hup = 0;
			stamp = now_stamp;
			reload(srv);
		}
		/* Runs the CLI stored unclaimed join the disk backlog. */
		if (hf_store_changed(srv->eng.store))
			hf_backlog_rescan(srv->eng.backlog);
		/* Runs `hookflow cancel` ended stop here too. */
		hf_cancel_poll(&srv->eng);
		if (o->retain_ms > 0 && hf_mono_ms() >= next_prune) {
			/* Every retain/2, between a second and a minute. */
			int64_t every = o->retain_ms / 2;
			every = every < 1000	? 1000
				: every > 60000 ? 60000
						: every;
			prune(srv);
			next_prune = hf_mono_ms() + every;
		}
	}
}

static void stop_waker(struct hf_server *srv)
{
	if (!srv->waker_started)
		return;
	atomic_store(&srv->waker_stop, true);
	pthread_join(srv->waker, NULL);
	srv->waker_started = false;
}

/* Stops taking work and lets the running steps finish, within
 * --drain-timeout. Does not return when a step is stuck past it. */
static void drain(struct hf_server *srv)
{
	const struct hf_options *o = &srv->eng.opt;
	hf_log(HF_LOG_INFO, "shutting down: draining (up to %lldms)",
	       (long long)o->drain_timeout_ms);
	int64_t deadline = hf_mono_ms() + o->drain_timeout_ms;
	/* From now on webhooks get 503 + Retry-After. The listener stays open
	 * while the running steps finish, so that callers get that answer
	 * rather than a refused connection. Queued runs stay queued (they are
	 * committed) and resume at the next start. */
	atomic_store(&srv->eng.draining, true);
	stop_waker(srv);
	hf_schedule_stop(srv->schedule);
	srv->schedule = NULL;
	hf_flow_stop();
	hf_backlog_stop(srv->eng.backlog);
	hf_sched_stop(srv->eng.sched);
	int64_t left = deadline - hf_mono_ms();
	bool stuck = hf_workers_stop(srv->eng.workers, left > 0 ? left : 0) < 0;
	/* Requests that passed the check before the drain finish their commit
	 * (quick: the writer keeps going). */
	left = deadline - hf_mono_ms();
	hf_ingest_stop(srv->ingest, left > 1000 ? left : 1000);
	srv->ingest = NULL;
	/* After ingest: signals it handed over are answered first. */
	hf_park_stop(srv->eng.park);
	srv->eng.park = NULL;
	if (stuck) {
		/* A step is still running: it is not waited for (it runs again
		 * at the next start). Commit what is queued and leave without
		 * freeing what its thread still uses. */
		hf_log(HF_LOG_WARN, "drain timeout: unfinished steps resume at "
				    "the next start");
		hf_outbox_stop(srv->eng.outbox);
		store_flush(srv->eng.store, HF_STUCK_FLUSH_MS);
		_exit(0);
	}
	srv->eng.workers = NULL;
	/* Every step finished: the next start need not suspect repeats. */
	hf_store_set_clean_stop(srv->eng.store);
}

/* Stops whatever is still running and frees srv. */
static void teardown(struct hf_server *srv)
{
	struct hf_options *o = &srv->eng.opt;
	if (srv->ingest)
		hf_ingest_stop(srv->ingest, 0);
	stop_waker(srv);
	hf_schedule_stop(srv->schedule);
	hf_backlog_stop(srv->eng.backlog);
	if (srv->eng.sched)
		hf_sched_stop(srv->eng.sched);
	hf_workers_stop(srv->eng.workers, o->drain_timeout_ms);
	/* After the workers (no more kicks), before the store (its records). */
	hf_outbox_stop(srv->eng.outbox);
	srv->eng.outbox = NULL;
	hf_park_stop(srv->eng.park); /* before the store: it writes */
	srv->eng.park = NULL;
	hf_store_close(srv->eng.store);
	hf_backlog_free(srv->eng.backlog); /* after the writer's last batch */
	hf_sched_destroy(srv->eng.sched);
	hf_engine_snapshot_forget();
	hf_snapshot_unref(srv->eng.snap);
	free(o->listen);
	free(o->workflows_dir);
	free(o->scripts_dir);
	free(o->state_path);
	free(o->data_path);
	free(o->admin_token);
	free(o->node_name);
	pthread_mutex_destroy(&srv->eng.snap_lock);
	free(srv);
}

int hf_server_run(const struct hf_options *opt)
{
#ifdef M_MXFAST
	/* glibc's fastbins off, before any thread allocates. With them, each
	 * allocation of 1 KiB or more (an event with its body, a response)
	 * first empties them all (malloc_consolidate), and the writer frees
	 * what the HTTP threads allocated; without them, small chunks still go
	 * through the per-thread caches. Under the bench's load about 10%
	 * less CPU per event and a 10% lower p99 (tests/bench/pairs.py). */
	mallopt(M_MXFAST, 0);
#endif
	struct hf_server *srv = hf_xcalloc(1, sizeof *srv);
	struct hf_options *o = &srv->eng.opt;
	*o = *opt;
	o->listen = hf_xstrdup(opt->listen);
	o->workflows_dir = hf_xstrdup(opt->workflows_dir);
	o->scripts_dir = hf_xstrdup(opt->scripts_dir);
	o->state_path = hf_xstrdup(opt->state_path);
	o->data_path = hf_xstrdup(opt->data_path);
	o->admin_token = hf_xstrdup(opt->admin_token);
	char host[128] = "hookflow";
	if (!opt->node_name || !*opt->node_name) {
		if (gethostname(host, sizeof host - 1) != 0 || !host[0])
			snprintf(host, sizeof host, "hookflow");
	}
	o->node_name = hf_xstrdup(
	    opt->node_name && *opt->node_name ? opt->node_name : host);
	pthread_mutex_init(&srv->eng.snap_lock, NULL);
	srv->eng.sync_finish = hf_ingest_sync_finish;
	srv->eng.started_at = hf_now_ms();
	if (!hf_lua_db_global_init())
		hf_log(HF_LOG_WARN,
		       "db: SQLite memory is not counted per call");
	int rc = start_core(srv);
	if (rc == 0)
		rc = start_listening(srv);
	if (rc == 0) {
		housekeeping(srv);
		drain(srv);
	}
	teardown(srv);
	return rc;
}
