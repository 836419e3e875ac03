/* hf_outbox.h - delivery of the webhooks that steps emitted (the outbox).
 *
 * One thread drives a libcurl multi handle: it reads due deliveries from the
 * state database (status pending, next_at passed), sends them with bounded
 * concurrency (HF_OUTBOX_MAX_INFLIGHT overall, HF_OUTBOX_MAX_PER_HOST per
 * host:port, connections reused), signs them per Standard Webhooks when they
 * have a secret, and records every attempt and the next due time through the
 * writer, so that a restart resumes the schedule. It sleeps in curl_multi_poll
 * until the next due time, a kick, or at most HF_OUTBOX_POLL_MS (rows written
 * by another process are seen within that).
 *
 * Delivery is at least once: an attempt cut short by a crash is sent again;
 * receivers deduplicate on `webhook-id`, which is the same for every attempt.
 */
#ifndef HF_OUTBOX_H
#define HF_OUTBOX_H

#include "hf_util.h"
#include <stdint.h>

struct hf_store;
struct hf_outbox;
struct hf_egress;

/* Starts the delivery thread on store. Every connection's address is checked
 * against egress (hf_egress.h; NULL: the default policy; it must outlive the
 * outbox): a refused destination fails the delivery at once, not retried,
 * with the error "destination ADDRESS refused (RULE)". Returns NULL with err
 * set when the thread or the curl handle cannot be created. */
struct hf_outbox *hf_outbox_start(struct hf_store *store,
				  const struct hf_egress *egress,
				  struct hf_error *err);
/* New deliveries were committed (or one was retried): look now instead of at
 * the next tick. Any thread; accepts NULL. */
void hf_outbox_kick(struct hf_outbox *ob);
/* Stops starting attempts, gives those in flight up to HF_OUTBOX_DRAIN_MS,
 * waits until their records are committed, and frees everything. Call before
 * the store closes. Accepts NULL. */
void hf_outbox_stop(struct hf_outbox *ob);

/* The outcome rules and the retry schedule, as a pure function.
 *
 * status is the HTTP status of the attempt (0: network error or timeout);
 * attempts counts the attempts made, this one included; backoff_ms is the
 * emit's base (0: the default schedule); retry_after_ms is the receiver's
 * Retry-After (-1: none); rnd is uniform in [0, 1) for the jitter.
 *
 * Returns "delivered" (2xx), "failed" (410, or no attempt left) or "pending"
 * with *next_at = now + the delay: the default schedule (5s, 5m, 30m, 2h,
 * 5h, 10h, 10h, then 10h; +-20% jitter), or with backoff_ms full jitter over
 * min(1 day, backoff_ms * 2^(attempts-1)); never sooner than Retry-After
 * (capped at a day). For final outcomes *next_at = now. */
const char *hf_outbox_next_attempt(int status, int attempts, int max_attempts,
				   int64_t backoff_ms, int64_t retry_after_ms,
				   double rnd, int64_t now, int64_t *next_at);

/* Parses a Retry-After value (delay-seconds or an HTTP date) into ms from now
 * (0 for a date in the past). Returns -1 when value is NULL or unparsable. */
int64_t hf_outbox_retry_after(const char *value, int64_t now);

#endif
