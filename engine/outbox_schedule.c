/* outbox_schedule.c - the outbox's pure rules: when the next attempt of a
 * delivery is due (the default schedule after Standard Webhooks / Svix, or
 * an emit's own exponential backoff with full jitter, never sooner than the
 * receiver's Retry-After) and how a Retry-After value reads.
 *
 * No state, no threads: outbox.c calls these after each attempt; the unit
 * tests call them directly. <curl/curl.h> is included for curl_getdate (HTTP
 * dates), as in outbox.c and lua_http.c. */
#include "hf_limits.h"
#include "hf_outbox.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>

#define SECOND 1000LL
#define MINUTE (60 * SECOND)
#define HOUR (60 * MINUTE)

/* Delays before attempts 2..8, after Standard Webhooks / Svix. */
static const int64_t schedule[] = {
    5 * SECOND, 5 * MINUTE, 30 * MINUTE, 2 * HOUR,
    5 * HOUR,	10 * HOUR,  10 * HOUR,
};

const char *hf_outbox_next_attempt(int status, int attempts, int max_attempts,
				   int64_t backoff_ms, int64_t retry_after_ms,
				   double rnd, int64_t now, int64_t *next_at)
{
	*next_at = now;
	if (status >= 200 && status < 300)
		return "delivered";
	if (status == 410 || attempts >= max_attempts)
		return "failed";
	if (rnd < 0)
		rnd = 0;
	if (rnd >= 1)
		rnd = 0.999999;
	int64_t delay;
	if (backoff_ms > 0) {
		/* Full jitter: uniform over [0, min(cap, base * 2^(n-1))]. */
		double d = (double)backoff_ms;
		for (int i = 1; i < attempts && d < HF_DELIVERY_MAX_BACKOFF_MS;
		     i++)
			d *= 2;
		if (d > HF_DELIVERY_MAX_BACKOFF_MS)
			d = HF_DELIVERY_MAX_BACKOFF_MS;
		delay = (int64_t)(d * rnd);
	} else {
		size_t n = sizeof schedule / sizeof schedule[0];
		size_t i = attempts >= 1 ? (size_t)attempts - 1 : 0;
		int64_t base = schedule[i < n ? i : n - 1];
		delay = (int64_t)((double)base * (0.8 + 0.4 * rnd));
	}
	if (retry_after_ms > delay)
		delay = retry_after_ms < HF_DELIVERY_MAX_BACKOFF_MS
			    ? retry_after_ms
			    : HF_DELIVERY_MAX_BACKOFF_MS;
	*next_at = now + delay;
	return "pending";
}

int64_t hf_outbox_retry_after(const char *value, int64_t now)
{
	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (!*value)
		return -1;
	if (isdigit((unsigned char)*value)) {
		char *end;
		long long s = strtoll(value, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (*end || s < 0)
			return -1;
		if (s > HF_DELIVERY_MAX_BACKOFF_MS / 1000)
			s = HF_DELIVERY_MAX_BACKOFF_MS / 1000;
		return s * 1000;
	}
	time_t t = curl_getdate(value, NULL);
	if (t < 0)
		return -1;
	int64_t ms = (int64_t)t * 1000 - now;
	return ms > 0 ? ms : 0;
}
