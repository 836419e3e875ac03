/* bench_baseline: a bare libmicrohttpd server, the yardstick for hookflow's
 * ingest benchmark (tests/bench/bench.py). It reads every request body and
 * answers each POST with 202 and a small JSON body, using the same threading
 * model as hookflow's ingest (internal thread pool + epoll). Not a test.
 *
 *   bench_baseline [--listen HOST:PORT] [--threads N]
 *
 * GET (any path) answers 200 {"posts":N}, N = POSTs answered so far, so that
 * bench.py can also use it as the sink of outbound deliveries.
 *
 * Prints "bench_baseline: listening on http://127.0.0.1:PORT" to stderr once
 * it accepts requests; exits on SIGINT/SIGTERM. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char ACCEPTED[] = "{\"event\":\"0000000000000000\",\"runs\":[]}";
static struct MHD_Response *accepted;
static struct MHD_Response *not_allowed;

/* Per-request marker: the body has been seen (reading is the point). */
static int body_marker;
static atomic_ulong posts;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	(void)cls;
	(void)url;
	(void)version;
	if (strcmp(method, "GET") == 0) {
		char buf[64];
		int n = snprintf(buf, sizeof buf, "{\"posts\":%lu}",
				 atomic_load(&posts));
		struct MHD_Response *r = MHD_create_response_from_buffer(
		    (size_t)n, buf, MHD_RESPMEM_MUST_COPY);
		if (r == NULL)
			return MHD_NO;
		enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (strcmp(method, "POST") != 0)
		return MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED,
					  not_allowed);
	if (*req_cls == NULL) { /* headers only: ask for the body */
		*req_cls = &body_marker;
		return MHD_YES;
	}
	if (*upload_size != 0) { /* consume the body chunk */
		volatile unsigned char sink = 0;
		for (size_t i = 0; i < *upload_size; i += 64)
			sink ^= (unsigned char)upload[i];
		(void)sink;
		*upload_size = 0;
		return MHD_YES;
	}
	atomic_fetch_add_explicit(&posts, 1, memory_order_relaxed);
	return MHD_queue_response(c, MHD_HTTP_ACCEPTED, accepted);
}

static int parse_listen(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (colon == NULL || (size_t)(colon - s) >= sizeof host)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 0 || port > 65535)
		return -1;
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *listen = "127.0.0.1:0";
	unsigned threads = 2;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
			listen = argv[++i];
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			threads = (unsigned)atoi(argv[++i]);
		else {
			fprintf(stderr,
				"usage: %s [--listen HOST:PORT] "
				"[--threads N]\n",
				argv[0]);
			return 2;
		}
	}
	struct sockaddr_in sa;
	if (parse_listen(listen, &sa) != 0 || threads == 0) {
		fprintf(stderr, "bench_baseline: bad arguments\n");
		return 2;
	}

	accepted = MHD_create_response_from_buffer(
	    sizeof ACCEPTED - 1, (void *)ACCEPTED, MHD_RESPMEM_PERSISTENT);
	not_allowed = MHD_create_response_from_buffer(0, (void *)"",
						      MHD_RESPMEM_PERSISTENT);
	if (accepted == NULL || not_allowed == NULL)
		return 1;
	MHD_add_response_header(accepted, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	MHD_add_response_header(not_allowed, MHD_HTTP_HEADER_ALLOW,
				"GET, POST");

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* MHD threads inherit */

	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
	    0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa,
	    MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT,
	    30u, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "bench_baseline: cannot start on %s\n", listen);
		return 1;
	}
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	fprintf(stderr, "bench_baseline: listening on http://127.0.0.1:%u\n",
		info != NULL ? (unsigned)info->port : 0u);
	fflush(stderr);

	int sig;
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	MHD_destroy_response(accepted);
	MHD_destroy_response(not_allowed);
	return 0;
}
