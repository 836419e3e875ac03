/* outbox_poll.c - the outbox's multi handle and its wait: libcurl's socket
 * interface (curl_multi_socket_action) over an epoll set of its own, with
 * an eventfd for wake-ups from other threads, instead of curl_multi_perform
 * and curl_multi_poll, which look at every transfer (a poll() each) on every
 * call. curl says which sockets to watch (on_socket) and when to call it
 * back on a timer (on_timer); the wait hands it what epoll reports.
 *
 * A connection kept for reuse stays in the epoll set between attempts (curl
 * drops it from its watch list after each one): re-adding it per attempt
 * would cost two system calls a delivery. Only sockets opened and closed
 * through the outbox's callbacks (hf_outbox_socket_opened, on_close: every
 * connection) are kept so; if such a socket becomes readable while curl
 * does not watch it (the receiver closed it), it leaves the set then. Other
 * sockets curl watches (a resolver's) are added and removed as curl says.
 *
 * Before the first attempt there is no multi handle (hf_outbox_multi makes
 * it, with curl's global set-up): the thread waits on idle_cond then.
 * Threading: the outbox thread; hf_outbox_wake from any thread. */
#include "hf_limits.h"
#include "outbox_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define WANT_IN 1
#define WANT_OUT 2

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The state of socket fd, made when missing. */
static struct hf_outbox_fd *fd_state(struct hf_outbox *ob, curl_socket_t fd)
{
	if (fd < 0)
		return NULL;
	if ((size_t)fd >= ob->nfds) {
		size_t n = ob->nfds ? ob->nfds : 64;
		while (n <= (size_t)fd)
			n *= 2;
		ob->fds = hf_xrealloc(ob->fds, n * sizeof *ob->fds);
		memset(ob->fds + ob->nfds, 0, (n - ob->nfds) * sizeof *ob->fds);
		ob->nfds = n;
	}
	return &ob->fds[fd];
}

/* Registers what fd's state wants in the epoll set (or removes it). */
static void fd_sync(struct hf_outbox *ob, curl_socket_t fd,
		    struct hf_outbox_fd *f)
{
	if (!f->want) {
		if (f->reg)
			epoll_ctl(ob->epfd, EPOLL_CTL_DEL, fd, NULL);
		f->reg = 0;
		return;
	}
	struct epoll_event ev = {0};
	ev.events = (f->want & WANT_IN ? EPOLLIN : 0u) |
		    (f->want & WANT_OUT ? EPOLLOUT : 0u);
	ev.data.fd = fd;
	int op = f->reg ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(ob->epfd, op, fd, &ev) < 0) {
		if (errno == ENOENT)
			epoll_ctl(ob->epfd, EPOLL_CTL_ADD, fd, &ev);
		else if (errno == EEXIST)
			epoll_ctl(ob->epfd, EPOLL_CTL_MOD, fd, &ev);
	}
	f->reg = f->want;
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *ud, void *sp)
{
	(void)e;
	(void)sp;
	struct hf_outbox *ob = ud;
	struct hf_outbox_fd *f = fd_state(ob, fd);
	if (!f)
		return 0;
	f->want = what == CURL_POLL_REMOVE
		      ? 0
		      : (what & CURL_POLL_IN ? WANT_IN : 0) |
			    (what & CURL_POLL_OUT ? WANT_OUT : 0);
	if (f->ours && !f->want)
		return 0; /* kept registered: the connection may be reused */
	if (f->ours && f->want == f->reg)
		return 0;
	fd_sync(ob, fd, f);
	return 0;
}

static int on_timer(CURLM *m, long ms, void *ud)
{
	(void)m;
	struct hf_outbox *ob = ud;
	ob->curl_due = ms < 0 ? -1 : hf_mono_ms() + ms;
	return 0;
}

void hf_outbox_socket_opened(struct hf_outbox *ob, curl_socket_t fd)
{
	struct hf_outbox_fd *f = fd_state(ob, fd);
	if (f)
		*f = (struct hf_outbox_fd){.ours = true};
}

int hf_outbox_close_socket(void *ud, curl_socket_t fd)
{
	struct hf_outbox *ob = ud;
	if (fd >= 0 && (size_t)fd < ob->nfds)
		ob->fds[fd] = (struct hf_outbox_fd){0};
	return close(fd); /* leaves the epoll set with it */
}

CURLM *hf_outbox_multi(struct hf_outbox *ob)
{
	CURLM *m = atomic_load(&ob->multi);
	if (m)
		return m;
	pthread_once(&curl_once, curl_init_once);
	if (ob->epfd < 0)
		ob->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ob->evfd < 0)
		ob->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};
	ev.data.fd = ob->evfd;
	if (ob->epfd < 0 || ob->evfd < 0 ||
	    epoll_ctl(ob->epfd, EPOLL_CTL_ADD, ob->evfd, &ev) < 0)
		return NULL;
	m = curl_multi_init();
	if (!m)
		return NULL;
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)HF_OUTBOX_MAX_PER_HOST);
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			  (long)HF_OUTBOX_MAX_INFLIGHT);
	curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(m, CURLMOPT_SOCKETDATA, ob);
	curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(m, CURLMOPT_TIMERDATA, ob);
	atomic_store(&ob->multi, m);
	return m;
}

/* Wakes the outbox thread: its epoll wait, or, before it has a multi
 * handle, its wait on idle_cond. Callers set kicked or stop first; the
 * thread checks both under idle_lock before waiting, and kicked again before
 * each wait, so no wake-up is lost while the handle is being made. Any
 * thread. */
void hf_outbox_wake(struct hf_outbox *ob)
{
	CURLM *m = atomic_load(&ob->multi);
	if (m) {
		uint64_t one = 1;
		ssize_t n = write(ob->evfd, &one, sizeof one);
		(void)n; /* EAGAIN: the counter is full, a wake-up is due */
		return;
	}
	pthread_mutex_lock(&ob->idle_lock);
	pthread_cond_broadcast(&ob->idle_cond);
	pthread_mutex_unlock(&ob->idle_lock);
}

/* Hands curl what it is due: the sockets epoll reported, then its timer. */
static void dispatch(struct hf_outbox *ob, CURLM *m,
		     const struct epoll_event *ev, int n)
{
	int running;
	for (int i = 0; i < n; i++) {
		int fd = ev[i].data.fd;
		if (fd == ob->evfd) {
			uint64_t v;
			ssize_t r = read(ob->evfd, &v, sizeof v);
			(void)r;
			continue;
		}
		struct hf_outbox_fd *f = fd_state(ob, fd);
		if (f && f->ours && !f->want) {
			fd_sync(ob, fd, f); /* idle, and closed by the peer */
			continue;
		}
		uint32_t e = ev[i].events;
		int mask = (e & EPOLLIN ? CURL_CSELECT_IN : 0) |
			   (e & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
			   (e & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
		curl_multi_socket_action(m, fd, mask, &running);
	}
	hf_outbox_run_timers(ob);
}

void hf_outbox_run_timers(struct hf_outbox *ob)
{
	CURLM *m = atomic_load(&ob->multi);
	int running;
	if (m && ob->curl_due >= 0 && hf_mono_ms() >= ob->curl_due) {
		ob->curl_due = -1;
		curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
		/* curl calls on_timer only when its next expiry changed: one it
		 * had reported already (fired a little early) is asked for. */
		long ms;
		if (ob->curl_due < 0 &&
		    curl_multi_timeout(m, &ms) == CURLM_OK && ms >= 0)
			ob->curl_due = hf_mono_ms() + ms;
	}
}

void hf_outbox_idle(struct hf_outbox *ob, int ms)
{
	CURLM *m = atomic_load(&ob->multi);
	if (m) {
		if (ob->curl_due >= 0) {
			int64_t left = ob->curl_due - hf_mono_ms();
			if (left < ms)
				ms = left > 0 ? (int)left : 0;
		}
		struct epoll_event ev[HF_OUTBOX_MAX_INFLIGHT + 1];
		int n = epoll_wait(ob->epfd, ev,
				   (int)(sizeof ev / sizeof ev[0]), ms);
		dispatch(ob, m, ev, n > 0 ? n : 0);
		return;
	}
	struct timespec ts;
	hf_deadline_in(ms, &ts);
	pthread_mutex_lock(&ob->idle_lock);
	while (!atomic_load(&ob->kicked) && !atomic_load(&ob->stop) &&
	       pthread_cond_timedwait(&ob->idle_cond, &ob->idle_lock, &ts) == 0)
		;
	pthread_mutex_unlock(&ob->idle_lock);
}
