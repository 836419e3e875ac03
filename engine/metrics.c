/* metrics.c - counters behind /metrics (see hf_metrics.h). Per-workflow series
 * live in a small table under a mutex; it is touched once per event or run, far
 * from the hot loops. */
#include "hf_metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define MAX_SERIES 1024

struct series {
	char name[160]; /* metric name + labels, rendered */
	unsigned long long value;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct series series[MAX_SERIES];
static size_t nseries;

/* Step duration histogram (seconds). */
static const double buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1,
				 0.5,   1,     5,    30,   120};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])
static unsigned long long step_buckets[NBUCKETS];
static unsigned long long step_count;
static double step_sum;

/* Label values are workflow names ([a-z0-9_-]) and fixed words; anything else is
 * replaced so that the exposition stays well-formed. */
static void clean(const char *in, char *out, size_t size)
{
	size_t i = 0;
	for (; in && *in && i + 1 < size; in++)
		out[i++] = (*in == '"' || *in == '\\' || *in == '\n') ? '_' : *in;
	out[i] = '\0';
}

static void add(const char *key)
{
	pthread_mutex_lock(&lock);
	size_t i = 0;
	for (; i < nseries; i++)
		if (strcmp(series[i].name, key) == 0)
			break;
	if (i == nseries && nseries < MAX_SERIES)
		snprintf(series[nseries++].name, sizeof series[0].name, "%s",
			 key);
	if (i < nseries)
		series[i].value++;
	pthread_mutex_unlock(&lock);
}

void hf_metrics_event(const char *workflow, int status)
{
	char wf[64], key[160];
	clean(workflow ? workflow : "", wf, sizeof wf);
	snprintf(key, sizeof key,
		 "hookflow_events_total{workflow=\"%s\",status=\"%d\"}", wf,
		 status);
	add(key);
}

void hf_metrics_run(const char *workflow, const char *status)
{
	char wf[64], st[32], key[160];
	clean(workflow, wf, sizeof wf);
	clean(status, st, sizeof st);
	snprintf(key, sizeof key,
		 "hookflow_runs_total{workflow=\"%s\",status=\"%s\"}", wf, st);
	add(key);
}

void hf_metrics_step(const char *status, double seconds)
{
	char st[32], key[160];
	clean(status, st, sizeof st);
	snprintf(key, sizeof key, "hookflow_steps_total{status=\"%s\"}", st);
	add(key);
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < NBUCKETS; i++)
		if (seconds <= buckets[i])
			step_buckets[i]++;
	step_count++;
	step_sum += seconds;
	pthread_mutex_unlock(&lock);
}

void hf_metrics_delivery(const char *outcome)
{
	char st[32], key[160];
	clean(outcome, st, sizeof st);
	snprintf(key, sizeof key,
		 "hookflow_delivery_attempts_total{outcome=\"%s\"}", st);
	add(key);
}

void hf_metrics_verify_failure(const char *workflow)
{
	char wf[64], key[160];
	clean(workflow, wf, sizeof wf);
	snprintf(key, sizeof key,
		 "hookflow_signature_failures_total{workflow=\"%s\"}", wf);
	add(key);
}

/* Renders each family once, with its HELP and TYPE lines. */
static void family(struct hf_buf *out, const char *name, const char *help)
{
	size_t len = strlen(name);
	bool first = true;
	for (size_t i = 0; i < nseries; i++) {
		if (strncmp(series[i].name, name, len) != 0 ||
		    series[i].name[len] != '{')
			continue;
		if (first)
			hf_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n",
				      name, help, name);
		first = false;
		hf_buf_printf(out, "%s %llu\n", series[i].name,
			      series[i].value);
	}
}

void hf_metrics_render(struct hf_buf *out, size_t queue_depth,
		       size_t queue_ready, int workers_busy)
{
	pthread_mutex_lock(&lock);
	family(out, "hookflow_events_total",
	       "Webhook requests answered, by workflow and HTTP status.");
	family(out, "hookflow_runs_total", "Runs finished, by status.");
	family(out, "hookflow_steps_total", "Steps finished, by status.");
	family(out, "hookflow_delivery_attempts_total",
	       "Outbound delivery attempts, by outcome.");
	family(out, "hookflow_signature_failures_total",
	       "Requests refused for a missing or wrong signature.");
	hf_buf_printf(out,
		      "# HELP hookflow_step_duration_seconds Step execution "
		      "time.\n# TYPE hookflow_step_duration_seconds "
		      "histogram\n");
	for (size_t i = 0; i < NBUCKETS; i++)
		hf_buf_printf(out,
			      "hookflow_step_duration_seconds_bucket{le=\"%g\"}"
			      " %llu\n",
			      buckets[i], step_buckets[i]);
	hf_buf_printf(out,
		      "hookflow_step_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
		      "hookflow_step_duration_seconds_sum %.6f\n"
		      "hookflow_step_duration_seconds_count %llu\n",
		      step_count, step_sum, step_count);
	pthread_mutex_unlock(&lock);
	hf_buf_printf(out,
		      "# HELP hookflow_queue_depth Runs accepted and not "
		      "finished.\n# TYPE hookflow_queue_depth gauge\n"
		      "hookflow_queue_depth %zu\n"
		      "# HELP hookflow_queue_ready Runs waiting for a worker.\n"
		      "# TYPE hookflow_queue_ready gauge\n"
		      "hookflow_queue_ready %zu\n"
		      "# HELP hookflow_workers_busy Steps executing now.\n"
		      "# TYPE hookflow_workers_busy gauge\n"
		      "hookflow_workers_busy %d\n",
		      queue_depth, queue_ready, workers_busy);
}
