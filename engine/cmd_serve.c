/* cmd_serve.c - `hookflow serve`: its options (table, checks, defaults, the
 * HOOKFLOW_* environment), the admin token (made up and logged when none is
 * given), then hf_server_run (server.c) until SIGTERM or SIGINT.
 *
 * Does not start or wire anything itself: server.c owns the server's
 * lifecycle. Main thread. Neighbours: cli.c (table), flags.c (options). */
#include "cli_int.h"
#include "hf_crypto.h"
#include "hf_egress.h"
#include "hf_limits.h"
#include "hf_server.h"
#include "hf_verify.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
	O_LISTEN,
	O_WORKFLOWS,
	O_SCRIPTS,
	O_STATE,
	O_DATA,
	O_WORKERS,
	O_MAX_BODY,
	O_ADMIN_TOKEN,
	O_SYNC,
	O_MAX_QUEUE,
	O_DRAIN_TIMEOUT,
	O_RETAIN,
	O_HTTP_THREADS,
	O_DATA_SYNC,
	O_LOG_FORMAT,
	O_EGRESS_DENY,
	O_EGRESS_ALLOW,
	O_MAX_VALUE,
	O_STRICT,
	O_PUBLIC_URL,
	O_MAX_BACKLOG,
	O_NODE,
	O_LEASE,
	O_PG_NOTIFY,
	O_HTTP_IO,
};

#define ENV .flags = HF_OPT_ENV

static const struct hf_opt serve_opts[] = {
    {"listen", O_LISTEN, HF_OPT_STRING, "127.0.0.1:8080",
     .help = "address to listen on (port 0: any free port)",
     .meta = "HOST:PORT", ENV},
    {"workflows", O_WORKFLOWS, HF_OPT_STRING, "./workflows",
     .help = "workflows directory, reloaded when it changes", .meta = "DIR",
     ENV},
    {"scripts", O_SCRIPTS, HF_OPT_STRING, "./scripts",
     .help = "scripts directory (script:, require)", .meta = "DIR", ENV},
    {"state", O_STATE, HF_OPT_STRING, "./hookflow.db",
     .help = "the state database: a file or postgres://…", .meta = "FILE", ENV},
    {"data", O_DATA, HF_OPT_STRING, "./data.db",
     .help = "the database of db.*: a file or postgres://…", .meta = "FILE",
     ENV},
    {"workers", O_WORKERS, HF_OPT_INT, "number of CPUs",
     .help = "threads running steps", .meta = "N", .min = 1,
     .max = HF_MAX_WORKERS, ENV},
    {"max-body", O_MAX_BODY, HF_OPT_SIZE, .ndef = HF_DEFAULT_MAX_BODY,
     .help = "largest webhook body accepted", .meta = "SIZE", .min = 1,
     .max = INT64_MAX, ENV},
    {"admin-token", O_ADMIN_TOKEN, HF_OPT_STRING,
     .help = "admin API token (else a random one, logged)", .meta = "TOKEN",
     ENV},
    {"sync", O_SYNC, HF_OPT_CHOICE, "full", .help = "state database durability",
     .choices = "full|normal", ENV},
    {"max-queue", O_MAX_QUEUE, HF_OPT_INT, .ndef = HF_MAX_QUEUE,
     .help = "runs held in memory; the rest wait on disk", .meta = "N",
     .min = 1, .max = INT64_MAX, ENV},
    {"drain-timeout", O_DRAIN_TIMEOUT, HF_OPT_DURATION,
     .ndef = HF_DRAIN_TIMEOUT_MS,
     .help = "how long a stop waits for running steps", .meta = "DURATION",
     .min = 0, .max = INT64_MAX, ENV},
    {"retain", O_RETAIN, HF_OPT_DURATION, "keep everything",
     .help = "delete history older than this", .meta = "DURATION", .min = 0,
     .max = INT64_MAX, ENV},
    {"http-threads", O_HTTP_THREADS, HF_OPT_INT, .ndef = 2,
     .help = "threads answering HTTP (0: the default)", .meta = "N", .min = 0,
     .max = INT32_MAX, ENV},
    {"data-sync", O_DATA_SYNC, HF_OPT_CHOICE, "normal",
     .help = "data database durability", .choices = "full|normal", ENV},
    {"log-format", O_LOG_FORMAT, HF_OPT_CHOICE, "text",
     .help = "how stderr lines look", .choices = "text|logfmt|json", ENV},
    {"egress-deny", O_EGRESS_DENY, HF_OPT_STRING,
     .help = "also refuse outbound connections to these (e.g. private)",
     .meta = "CIDR,...", ENV},
    {"egress-allow", O_EGRESS_ALLOW, HF_OPT_STRING,
     .help = "allow these ranges even inside a refused one", .meta = "CIDR,...",
     ENV},
    {"max-value", O_MAX_VALUE, HF_OPT_SIZE, .ndef = HF_DEFAULT_MAX_VALUE,
     .help = "largest value or row a step's SQL may make", .meta = "SIZE",
     .min = HF_DB_MAX_VALUE_MIN, .max = HF_DB_MAX_VALUE_MAX, ENV},
    {"strict", O_STRICT, HF_OPT_FLAG,
     .help = "refuse to start while a workflow file fails to load"},
    {"public-url", O_PUBLIC_URL, HF_OPT_STRING,
     .help = "scheme and host senders call, for {url} in signatures",
     .meta = "URL", ENV},
    {"max-backlog", O_MAX_BACKLOG, HF_OPT_INT, .ndef = HF_MAX_BACKLOG,
     .help = "runs waiting on disk before webhooks get 503", .meta = "N",
     .min = 0, .max = INT64_MAX, ENV},
    {"node", O_NODE, HF_OPT_STRING, "the host name",
     .help = "this node's name among those sharing a PostgreSQL state",
     .meta = "NAME", ENV},
    {"lease", O_LEASE, HF_OPT_DURATION, .ndef = HF_NODE_LEASE_MS,
     .help = "PostgreSQL: others take over a silent node's work after this",
     .meta = "DURATION", .min = 500, .max = 3600 * 1000, ENV},
    {"pg-notify", O_PG_NOTIFY, HF_OPT_CHOICE, "on",
     .help = "PostgreSQL: LISTEN/NOTIFY wake-ups (off behind a pooler)",
     .choices = "on|off", ENV},
    {"http-io", O_HTTP_IO, HF_OPT_CHOICE, "epoll",
     .help = "how HTTP threads wait: poll is cheaper with few connections",
     .choices = "epoll|poll", ENV},
};

static const struct hf_cmd_spec serve_spec = {
    HF_CMD("serve", "", 0, 0, serve_opts),
    .about = "Receives webhooks, runs their workflows, delivers what they "
	     "emit, and\n"
	     "serves the admin API and dashboard, until SIGTERM or SIGINT "
	     "(drains).\n"
	     "SIGHUP reloads the workflows.",
};

/* False for a given token that is whitespace alone or has whitespace at
 * either end: an HTTP header's value loses it, so "Bearer " followed by
 * spaces would unlock the API, or the token could never be sent whole.
 * None given (NULL or empty: a random one) is fine. */
static bool token_ok(const char *given)
{
	static const char ws[] = " \t\r\n\v\f";
	if (!given || !*given)
		return true;
	size_t n = strlen(given);
	return !strchr(ws, given[0]) && !strchr(ws, given[n - 1]);
}

/* --admin-token, or a random one (logged, so that the operator can use it).
 * Returns a malloc'd token, or NULL when there is no randomness. */
static char *admin_token(const char *given)
{
	if (given && *given)
		return hf_xstrdup(given);
	unsigned char raw[HF_ADMIN_TOKEN_BYTES];
	char hex[2 * HF_ADMIN_TOKEN_BYTES + 1];
	if (hf_random_bytes(raw, sizeof raw) < 0) {
		fprintf(stderr, "hookflow: no randomness for a token\n");
		return NULL;
	}
	hf_hex_encode(raw, sizeof raw, hex);
	hf_log(HF_LOG_INFO, "admin token: %s", hex);
	return hf_xstrdup(hex);
}

/* The server's options from the parsed ones (strings point into a). */
static void options(const struct hf_args *a, struct hf_options *o)
{
	const struct hf_optval *v = a->v;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	o->listen = (char *)v[O_LISTEN].str;
	o->workflows_dir = (char *)v[O_WORKFLOWS].str;
	o->scripts_dir = (char *)v[O_SCRIPTS].str;
	o->state_path = (char *)v[O_STATE].str;
	o->data_path = (char *)v[O_DATA].str;
	o->workers = v[O_WORKERS].set ? (int)v[O_WORKERS].num
				      : (int)(ncpu > 0 ? ncpu : 2);
	o->max_body = v[O_MAX_BODY].num;
	o->sync_full = strcmp(v[O_SYNC].str, "full") == 0;
	o->data_sync_full = strcmp(v[O_DATA_SYNC].str, "full") == 0;
	o->max_queue = v[O_MAX_QUEUE].num;
	o->max_backlog = v[O_MAX_BACKLOG].num;
	o->drain_timeout_ms = v[O_DRAIN_TIMEOUT].num;
	o->retain_ms = v[O_RETAIN].num;
	o->http_threads = (int)v[O_HTTP_THREADS].num;
	o->max_value = v[O_MAX_VALUE].num;
	o->strict = v[O_STRICT].set;
	o->public_url = (char *)v[O_PUBLIC_URL].str;
	o->node_name = v[O_NODE].set ? (char *)v[O_NODE].str : NULL;
	o->lease_ms = v[O_LEASE].num;
	o->pg_notify = strcmp(v[O_PG_NOTIFY].str, "on") == 0;
	o->http_poll = strcmp(v[O_HTTP_IO].str, "poll") == 0;
}

/* A node name: what /metrics can show as a label value unescaped. */
static bool node_name_ok(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
			     "WXYZ0123456789._:-");
	return n > 0 && s[n] == '\0' && n < 100;
}

int hf_cmd_serve(int argc, char **argv)
{
	struct hf_args a;
	int rc;
	if (!hf_args_parse(&serve_spec, argc, argv, 2, &a, &rc))
		return rc;
	struct hf_options o = {0};
	options(&a, &o);
	if (o.public_url && !*o.public_url)
		o.public_url = NULL;
	if (o.node_name && !node_name_ok(o.node_name)) {
		fprintf(stderr, "hookflow serve: --node takes letters, digits "
				"and . _ : - (at most 99)\n");
		hf_args_release(&a);
		return 2;
	}
	if (o.public_url && strncmp(o.public_url, "http://", 7) != 0 &&
	    strncmp(o.public_url, "https://", 8) != 0) {
		fprintf(stderr,
			"hookflow serve: --public-url must start with http:// "
			"or https:// (e.g. https://hooks.example.com)\n");
		hf_args_release(&a);
		return 2;
	}
	if (!token_ok(a.v[O_ADMIN_TOKEN].str)) {
		fprintf(
		    stderr,
		    "hookflow serve: --admin-token (or HOOKFLOW_ADMIN_TOKEN) "
		    "is blank or has whitespace around it: give the token "
		    "alone, as clients send it after 'Bearer '\n");
		hf_args_release(&a);
		return 2;
	}
	hf_log_set_format(
	    (enum hf_log_format)hf_log_format_parse(a.v[O_LOG_FORMAT].str));
	char why[512];
	o.egress = hf_egress_parse(a.v[O_EGRESS_DENY].str,
				   a.v[O_EGRESS_ALLOW].str, why, sizeof why);
	if (!o.egress)
		fprintf(stderr, "hookflow serve: %s\n", why);
	const char *proxy = o.egress ? hf_cli_proxy_var() : NULL;
	if (proxy)
		hf_log(HF_LOG_WARN, HF_CLI_PROXY_WARNING, proxy);
	o.admin_token = o.egress ? admin_token(a.v[O_ADMIN_TOKEN].str) : NULL;
	rc = o.admin_token ? hf_server_run(&o) : 2;
	free(o.admin_token);
	hf_egress_free(o.egress);
	hf_args_release(&a);
	return rc;
}
