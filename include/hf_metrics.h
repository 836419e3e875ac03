/* hf_metrics.h - process-wide counters and histograms rendered in the
 * Prometheus text format at /metrics. Thread-safe (atomics and a small
 * mutex-guarded table for per-workflow series). */
#ifndef HF_METRICS_H
#define HF_METRICS_H

#include "hf_util.h"

/* An event answered: workflow is the first matched workflow's name or NULL. */
void hf_metrics_event(const char *workflow, int status);
/* A run reached a final status ("succeeded"/"failed"). */
void hf_metrics_run(const char *workflow, const char *status);
/* A step finished with status after seconds. */
void hf_metrics_step(const char *status, double seconds);
void hf_metrics_delivery(const char *outcome);
void hf_metrics_verify_failure(const char *workflow);
/* A schedule fired: outcome "run", "skipped", "duplicate" or "failed". */
void hf_metrics_schedule_fire(const char *workflow, const char *outcome);
/* The number of workflow files that failed to load in the set in force. */
void hf_metrics_load_errors(size_t files);
/* The number of parked runs (hf_park.h), a gauge. */
void hf_metrics_runs_waiting(long long n);
/* Appends the exposition to out, with the gauges given. */
void hf_metrics_render(struct hf_buf *out, size_t queue_depth,
		       size_t queue_ready, int workers_busy);

#endif
