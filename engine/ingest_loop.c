/* ingest_loop.c - the HTTP threads (see hf_ingest.h): the libmicrohttpd
 * daemons, their threads, their start and stop, and the wake-up that tells a
 * thread its held requests committed or its suspended ones were resumed.
 *
 * With epoll (the default), each HTTP thread is one of hookflow's threads
 * (hf-http) running a daemon of its own in libmicrohttpd's "external" mode
 * (MHD_run_wait), all of them accepting on one listening socket. The reason
 * is the resume: a daemon with an internal thread writes its eventfd for
 * every MHD_resume_connection, so the writer made one system call per
 * request answered. Here a daemon has no eventfd of its own (libmicrohttpd
 * drops it in external mode); hookflow's eventfd sits in the daemon's epoll
 * set instead (edge-triggered, with a NULL pointer, which libmicrohttpd's
 * loop skips), and the writer resumes a whole batch's connections, then
 * writes each thread's eventfd once (hf_ingest_batch_end). The thread wakes
 * from epoll_wait, and its next MHD_run_wait resumes them all.
 *
 * A request that waits only for its commit is not even suspended but held
 * (ingest_sync.c): libmicrohttpd calls its handler on every turn of the loop
 * until the answer is there, so while a thread holds any, libmicrohttpd's
 * own wait would not block; the thread waits instead on an epoll set of its
 * own over the daemon's (run_held), woken by the same eventfd.
 *
 * With --http-io poll, libmicrohttpd's own thread pool (MHD_USE_POLL), one
 * daemon, which wakes its threads itself: hf_http_wake does nothing.
 *
 * Not here: what the daemons call (ingest.c: on_target, on_request,
 * on_completed), the held or suspended request (ingest_sync.c).
 *
 * Neighbours: ingest.c, ingest_sync.c, ingest_int.h. */
#include "hf_limits.h"
#include "ingest_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void hf_http_wake(struct hf_http_loop *l)
{
	if (l->wake_fd < 0)
		return;
	/* Never read: an edge-triggered eventfd reports every write (the
	 * counter cannot reach its limit of 2^64 - 2 writes). */
	eventfd_t one = 1;
	ssize_t n;
	do
		n = write(l->wake_fd, &one, sizeof one);
	while (n < 0 && errno == EINTR);
}

/* One turn of the loop while requests are held (ingest_sync.c): they keep
 * libmicrohttpd's own wait at zero (it asks for their answers on every
 * turn), so the wait is on an epoll set over the daemon's: its connections,
 * its listening socket, the wake-up's eventfd. Its connections' timeouts are
 * seen within HELD_WAIT_MS. */
#define HELD_WAIT_MS 500
static enum MHD_Result run_held(struct hf_http_loop *l)
{
	struct epoll_event ev;
	if (epoll_wait(l->outer_fd, &ev, 1, HELD_WAIT_MS) < 0 && errno != EINTR)
		return MHD_NO;
	return MHD_run(l->d);
}

static void *http_thread(void *arg)
{
	struct hf_http_loop *l = arg;
	while (!atomic_load(&l->stop)) {
		enum MHD_Result ok =
		    l->held > 0 ? run_held(l) : MHD_run_wait(l->d, -1);
		if (l->abandoned)
			hf_ingest_reap(l);
		if (ok == MHD_YES)
			continue;
		/* epoll_wait failed (not EINTR): say so once, do not spin. */
		if (!l->failed)
			hf_log(HF_LOG_ERROR, "HTTP thread: event loop failed");
		l->failed = true;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static int parse_listen(const char *listen, struct sockaddr_in *sa)
{
	const char *colon = strrchr(listen, ':');
	if (!colon)
		return -1;
	char host[256];
	size_t hl = (size_t)(colon - listen);
	if (hl >= sizeof host)
		return -1;
	memcpy(host, listen, hl);
	host[hl] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535 || colon[1] == '\0')
		return -1;
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (hl == 0 || strcmp(host, "localhost") == 0)
		snprintf(host, sizeof host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return -1;
	return 0;
}

/* The wake-up's eventfd, in the daemon's own epoll set, and the epoll set
 * over that one (run_held). */
static int add_wake_fd(struct hf_http_loop *l)
{
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD);
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->outer_fd = epoll_create1(EPOLL_CLOEXEC);
	if (!info || l->wake_fd < 0 || l->outer_fd < 0)
		return -1;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
	if (epoll_ctl(info->epoll_fd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0)
		return -1;
	struct epoll_event inner = {.events = EPOLLIN};
	return epoll_ctl(l->outer_fd, EPOLL_CTL_ADD, info->epoll_fd, &inner);
}

/* Stops and frees the loops from the last one to the first: the first
 * daemon made the listening socket, the others only share it (quiesced
 * first, so that they do not close it). */
static void stop_loops(struct hf_ingest *in)
{
	for (int i = in->nloops - 1; i >= 0; i--) {
		struct hf_http_loop *l = &in->loops[i];
		if (l->running) {
			atomic_store(&l->stop, true);
			hf_http_wake(l);
			pthread_join(l->th, NULL);
		}
		if (l->d && i > 0)
			(void)MHD_quiesce_daemon(l->d);
		if (l->d)
			MHD_stop_daemon(l->d);
		/* Their commits are over (hf_ingest_stop waited for them). */
		hf_ingest_reap(l);
		if (l->wake_fd >= 0)
			close(l->wake_fd);
		if (l->outer_fd >= 0)
			close(l->outer_fd);
	}
	free(in->loops);
	in->loops = NULL;
	in->nloops = 0;
}

static int start_loops(struct hf_ingest *in, const struct sockaddr_in *sa)
{
	const struct hf_engine *eng = in->eng;
	int threads = eng->opt.http_threads > 0 ? eng->opt.http_threads : 2;
	unsigned flags = MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (eng->opt.http_poll) {
		/* See hf_ingest_start: libmicrohttpd's own threads. */
		in->nloops = 1;
		in->loops = hf_xcalloc(1, sizeof *in->loops);
		in->loops[0].in = in;
		in->loops[0].wake_fd = -1;
		in->loops[0].outer_fd = -1;
		in->loops[0].d = hf_ingest_daemon(
		    &in->loops[0],
		    flags | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, sa,
		    -1, (unsigned)threads, HF_MAX_CONNECTIONS);
		return in->loops[0].d ? 0 : -1;
	}
	in->nloops = threads;
	in->loops = hf_xcalloc((size_t)threads, sizeof *in->loops);
	for (int i = 0; i < threads; i++) {
		in->loops[i].in = in;
		in->loops[i].wake_fd = -1;
		in->loops[i].outer_fd = -1;
	}
	int listen_fd = -1;
	for (int i = 0; i < threads; i++) {
		struct hf_http_loop *l = &in->loops[i];
		/* The connection limit split as libmicrohttpd's own pool
		 * splits it. */
		unsigned limit =
		    HF_MAX_CONNECTIONS / (unsigned)threads +
		    ((unsigned)i < HF_MAX_CONNECTIONS % (unsigned)threads);
		l->d = hf_ingest_daemon(l, flags | MHD_USE_EPOLL, sa, listen_fd,
					0, limit);
		if (!l->d || add_wake_fd(l) < 0)
			return -1;
		if (i == 0) {
			const union MHD_DaemonInfo *info = MHD_get_daemon_info(
			    l->d, MHD_DAEMON_INFO_LISTEN_FD);
			if (!info)
				return -1;
			listen_fd = info->listen_fd;
		}
	}
	for (int i = 0; i < threads; i++) {
		struct hf_http_loop *l = &in->loops[i];
		if (hf_thread_start(&l->th, "hf-http", http_thread, l) != 0)
			return -1;
		l->running = true;
	}
	return 0;
}

struct hf_ingest *hf_ingest_start(struct hf_engine *eng, int *port,
				  struct hf_error *err)
{
	struct sockaddr_in sa;
	if (parse_listen(eng->opt.listen, &sa) < 0) {
		hf_error_set(err, NULL, 0, 0,
			     "invalid --listen '%s' (expected HOST:PORT, e.g. "
			     "127.0.0.1:8080)",
			     eng->opt.listen);
		return NULL;
	}
	struct hf_ingest *in = hf_xcalloc(1, sizeof *in);
	in->eng = eng;
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->cond, NULL);
	/* epoll by default. A request waiting for its commit is held
	 * (ingest_sync.c): about 2.5 system calls per request on an HTTP
	 * thread under load (perf trace -s: its recv, its answer's sendmsg,
	 * an epoll_wait every two or three requests). With --http-io poll
	 * (libmicrohttpd's own threads) it is suspended, left out of the next
	 * poll: about as many, but poll's threads are woken once per request,
	 * and its cost grows with the open connections, idle
	 * keep-alive ones included (with 1,000 open, 50% more CPU per event
	 * than epoll); at 64 connections it costs about 8% more CPU per event
	 * than epoll now. And libmicrohttpd 0.9.75 in poll mode reads a
	 * resumed connection before it asks for its answer: a client that
	 * shut its sending side down after its request (half-close) gets the
	 * connection closed instead of its answer, though the event was
	 * stored. */
	if (start_loops(in, &sa) < 0) {
		hf_error_set(err, NULL, 0, 0, "cannot listen on %s",
			     eng->opt.listen);
		stop_loops(in);
		pthread_mutex_destroy(&in->lock);
		pthread_cond_destroy(&in->cond);
		free(in);
		return NULL;
	}
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(in->loops[0].d, MHD_DAEMON_INFO_BIND_PORT);
	*port = info ? info->port : ntohs(sa.sin_port);
	return in;
}

void hf_ingest_stop(struct hf_ingest *in, int64_t timeout_ms)
{
	if (!in)
		return;
	atomic_store(&in->eng->draining, true);
	int64_t deadline = hf_mono_ms() + timeout_ms;
again:
	/* Sync waiters are answered now (202: their runs go on). */
	hf_ingest_answer_waiters(in);
	if (atomic_load(&in->waiting) > 0 && hf_mono_ms() < deadline) {
		/* A commit is on its way, or a sync request registered its
		 * waiter after the loop above. */
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
		goto again;
	}
	if (atomic_load(&in->waiting) > 0) {
		/* MHD_stop_daemon aborts with a suspended connection: leave
		 * the daemons to the exit. */
		hf_log(HF_LOG_WARN, "%d requests still waiting at shutdown",
		       atomic_load(&in->waiting));
		return;
	}
	/* Let resumed requests send their answers before the daemons go. */
	struct timespec ts = {0, 100 * 1000 * 1000};
	nanosleep(&ts, NULL);
	stop_loops(in);
	pthread_mutex_destroy(&in->lock);
	pthread_cond_destroy(&in->cond);
	free(in);
}
