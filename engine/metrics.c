/* metrics.c - counters behind /metrics (see hf_metrics.h). Series live in an
 * open-addressed table: counting is a lock-free lookup and an atomic add (it
 * happens once per request); only a new series takes the mutex. */
#include "hf_limits.h"
#include "hf_metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* One counter series: a family and up to two label values. Looked up without
 * a lock (the hash is published last, with release order); created under
 * `lock`. */
struct series {
	_Atomic uint64_t hash; /* 0: free slot */
	const char *family;
	const char *label1, *label2; /* label names */
	char value1[64], value2[32];
	_Atomic unsigned long long value;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct series series[HF_METRICS_MAX_SERIES];

/* Step duration histogram (seconds). */
static const double buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1,
				 0.5,	1,     5,    30,   120};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])
static unsigned long long step_buckets[NBUCKETS];
static unsigned long long step_count;
static double step_sum;
/* Workflow files that failed to load, in the set in force. */
static _Atomic size_t load_errors;
static _Atomic long long runs_waiting; /* parked runs (hf_park.h) */

static uint64_t mix(uint64_t h, const char *s)
{
	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (h ^ 0xff) * 1099511628211ULL;
}

/* Label values are workflow names ([a-z0-9_-]) and fixed words; anything else
 * is replaced so that the exposition stays well-formed. */
static void clean(const char *in, char *out, size_t size)
{
	size_t i = 0;
	for (; in && *in && i + 1 < size; in++)
		out[i++] =
		    (*in == '"' || *in == '\\' || *in == '\n') ? '_' : *in;
	out[i] = '\0';
}

static bool same(const struct series *x, const char *family, const char *v1,
		 const char *v2)
{
	char c1[64], c2[32];
	clean(v1, c1, sizeof c1);
	clean(v2, c2, sizeof c2);
	return x->family == family && strcmp(x->value1, c1) == 0 &&
	       strcmp(x->value2, c2) == 0;
}

static void add(const char *family, const char *label1, const char *v1,
		const char *label2, const char *v2)
{
	uint64_t h = mix(mix(mix(1469598103934665603ULL, family), v1), v2);
	if (!h)
		h = 1;
	size_t i = h & (HF_METRICS_MAX_SERIES - 1);
	for (size_t probe = 0; probe < HF_METRICS_MAX_SERIES; probe++) {
		struct series *x =
		    &series[(i + probe) & (HF_METRICS_MAX_SERIES - 1)];
		uint64_t xh =
		    atomic_load_explicit(&x->hash, memory_order_acquire);
		if (xh == h && same(x, family, v1, v2)) {
			atomic_fetch_add_explicit(&x->value, 1,
						  memory_order_relaxed);
			return;
		}
		if (xh)
			continue;
		pthread_mutex_lock(&lock);
		if (atomic_load(&x->hash)) { /* taken meanwhile: look again */
			pthread_mutex_unlock(&lock);
			probe--;
			continue;
		}
		x->family = family;
		x->label1 = label1;
		x->label2 = label2;
		clean(v1, x->value1, sizeof x->value1);
		clean(v2, x->value2, sizeof x->value2);
		atomic_store(&x->value, 1);
		atomic_store_explicit(&x->hash, h, memory_order_release);
		pthread_mutex_unlock(&lock);
		return;
	}
}

static const char events_family[] = "hookflow_events_total";
static const char runs_family[] = "hookflow_runs_total";
static const char steps_family[] = "hookflow_steps_total";
static const char deliveries_family[] = "hookflow_delivery_attempts_total";
static const char verify_family[] = "hookflow_signature_failures_total";
static const char schedule_family[] = "hookflow_schedule_fires_total";

void hf_metrics_event(const char *workflow, int status)
{
	char code[16];
	if (status >= 100 && status <= 999) { /* per webhook: no snprintf */
		code[0] = (char)('0' + status / 100);
		code[1] = (char)('0' + status / 10 % 10);
		code[2] = (char)('0' + status % 10);
		code[3] = '\0';
	} else {
		snprintf(code, sizeof code, "%d", status);
	}
	add(events_family, "workflow", workflow ? workflow : "", "status",
	    code);
}

void hf_metrics_run(const char *workflow, const char *status)
{
	add(runs_family, "workflow", workflow, "status", status);
}

void hf_metrics_step(const char *status, double seconds)
{
	add(steps_family, "status", status, NULL, "");
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
	add(deliveries_family, "outcome", outcome, NULL, "");
}

void hf_metrics_verify_failure(const char *workflow)
{
	add(verify_family, "workflow", workflow, NULL, "");
}

void hf_metrics_schedule_fire(const char *workflow, const char *outcome)
{
	add(schedule_family, "workflow", workflow, "outcome", outcome);
}

/* Renders each family once, with its HELP and TYPE lines. */
static void family(struct hf_buf *out, const char *name, const char *help)
{
	bool first = true;
	for (size_t i = 0; i < HF_METRICS_MAX_SERIES; i++) {
		const struct series *x = &series[i];
		if (!atomic_load(&x->hash) || x->family != name)
			continue;
		if (first)
			hf_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n",
				      name, help, name);
		first = false;
		if (x->label2)
			hf_buf_printf(out, "%s{%s=\"%s\",%s=\"%s\"} %llu\n",
				      name, x->label1, x->value1, x->label2,
				      x->value2, atomic_load(&x->value));
		else
			hf_buf_printf(out, "%s{%s=\"%s\"} %llu\n", name,
				      x->label1, x->value1,
				      atomic_load(&x->value));
	}
}

void hf_metrics_runs_waiting(long long n)
{
	atomic_store(&runs_waiting, n);
}

void hf_metrics_load_errors(size_t files)
{
	atomic_store(&load_errors, files);
}

void hf_metrics_render(struct hf_buf *out, size_t queue_depth,
		       size_t queue_ready, int workers_busy)
{
	pthread_mutex_lock(&lock);
	family(out, events_family,
	       "Webhook requests answered, by workflow and HTTP status.");
	family(out, runs_family, "Runs finished, by status.");
	family(out, steps_family, "Steps finished, by status.");
	family(out, deliveries_family,
	       "Outbound delivery attempts, by outcome.");
	family(out, verify_family,
	       "Requests refused for a missing or wrong signature.");
	family(out, schedule_family,
	       "Schedule fires (on.schedule), by workflow and outcome: run, "
	       "skipped (if: false), duplicate (already fired), failed.");
	hf_buf_printf(out,
		      "# HELP hookflow_step_duration_seconds Step execution "
		      "time.\n# TYPE hookflow_step_duration_seconds "
		      "histogram\n");
	for (size_t i = 0; i < NBUCKETS; i++)
		hf_buf_printf(out,
			      "hookflow_step_duration_seconds_bucket{le=\"%g\"}"
			      " %llu\n",
			      buckets[i], step_buckets[i]);
	hf_buf_printf(
	    out,
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
	hf_buf_printf(out,
		      "# HELP hookflow_workflow_load_errors Workflow files "
		      "that failed to load.\n"
		      "# TYPE hookflow_workflow_load_errors gauge\n"
		      "hookflow_workflow_load_errors %zu\n",
		      atomic_load(&load_errors));
	hf_buf_printf(out,
		      "# HELP hookflow_runs_waiting Runs parked: waiting for "
		      "a sleep, an until or a signal (wait_for).\n"
		      "# TYPE hookflow_runs_waiting gauge\n"
		      "hookflow_runs_waiting %lld\n",
		      atomic_load(&runs_waiting));
}
