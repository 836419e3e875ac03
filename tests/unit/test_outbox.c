/* test_outbox.c - the outbox's outcome rules and retry schedule
 * (hf_outbox_next_attempt) and Retry-After parsing, as pure functions. */
#include "hf_limits.h"
#include "hf_outbox.h"
#include "tap.h"

#include <string.h>

#define NOW 1700000000000LL
#define S 1000LL
#define M (60 * S)
#define H (60 * M)

static const char *next(int status, int attempts, int max, int64_t backoff,
			int64_t retry_after, double rnd, int64_t *delay)
{
	int64_t at = -1;
	const char *o = hf_outbox_next_attempt(status, attempts, max, backoff,
					       retry_after, rnd, NOW, &at);
	*delay = at - NOW;
	return o;
}

static void test_outcomes(void)
{
	int64_t d;
	CHECK_STR(next(200, 1, 8, 0, -1, 0.5, &d), "delivered");
	CHECK(d == 0);
	CHECK_STR(next(204, 8, 8, 0, -1, 0.5, &d), "delivered");
	CHECK_STR(next(299, 3, 8, 0, -1, 0.5, &d), "delivered");
	/* 410 Gone: the receiver asks us to stop. */
	CHECK_STR(next(410, 1, 8, 0, -1, 0.5, &d), "failed");
	CHECK(d == 0);
	/* Everything else is retried while attempts are left. */
	int retried[] = {0,   301, 302, 400, 401, 404, 408,
			 429, 500, 502, 503, 504, 199};
	for (size_t i = 0; i < sizeof retried / sizeof retried[0]; i++) {
		CHECK_STR(next(retried[i], 1, 8, 0, -1, 0.5, &d), "pending");
		CHECK(d > 0);
		CHECK_STR(next(retried[i], 8, 8, 0, -1, 0.5, &d), "failed");
	}
	CHECK_STR(next(500, 1, 1, 0, -1, 0.5, &d), "failed");
}

static void test_default_schedule(void)
{
	/* 0, 5s, 5m, 30m, 2h, 5h, 10h, 10h: the delay after attempt n. */
	const int64_t want[] = {5 * S, 5 * M,  30 * M, 2 * H,
				5 * H, 10 * H, 10 * H};
	int64_t d, total_lo = 0, total_hi = 0;
	for (int n = 1; n <= 7; n++) {
		/* rnd 0.5 is the middle of the +-20% jitter: exact. */
		CHECK_STR(next(500, n, HF_DELIVERY_ATTEMPTS, 0, -1, 0.5, &d),
			  "pending");
		CHECK(d == want[n - 1]);
		next(500, n, HF_DELIVERY_ATTEMPTS, 0, -1, 0.0, &d);
		CHECK(d == want[n - 1] * 8 / 10);
		total_lo += d;
		next(500, n, HF_DELIVERY_ATTEMPTS, 0, -1, 0.999999, &d);
		CHECK(d <= want[n - 1] * 12 / 10 && d > want[n - 1]);
		total_hi += d;
	}
	/* Eight attempts over about a day. */
	CHECK(total_lo > 20 * H && total_hi < 40 * H);
	CHECK_STR(next(500, 8, 8, 0, -1, 0.5, &d), "failed");
	/* More attempts than the table: 10h apart. */
	CHECK_STR(next(500, 20, 30, 0, -1, 0.5, &d), "pending");
	CHECK(d == 10 * H);
}

static void test_backoff(void)
{
	int64_t d;
	/* Full jitter over backoff * 2^(n-1). */
	next(500, 1, 10, 100, -1, 0.999999, &d);
	CHECK(d >= 99 && d <= 100);
	next(500, 2, 10, 100, -1, 0.999999, &d);
	CHECK(d >= 199 && d <= 200);
	next(500, 4, 10, 100, -1, 0.5, &d);
	CHECK(d == 400);
	next(500, 4, 10, 100, -1, 0.0, &d);
	CHECK(d == 0);
	/* Capped at a day, even after many doublings. */
	next(500, 99, 100, 1 * H, -1, 0.999999, &d);
	CHECK(d <= HF_DELIVERY_MAX_BACKOFF_MS && d > 23 * H);
}

static void test_retry_after(void)
{
	int64_t d;
	/* Never sooner than Retry-After, capped at a day. */
	CHECK_STR(next(503, 1, 8, 100, 30 * S, 0.5, &d), "pending");
	CHECK(d == 30 * S);
	next(429, 1, 8, 0, 1 * S, 0.5, &d);
	CHECK(d == 5 * S); /* the schedule is later */
	next(429, 1, 8, 0, 90 * H, 0.5, &d);
	CHECK(d == HF_DELIVERY_MAX_BACKOFF_MS);
	/* It does not buy attempts. */
	CHECK_STR(next(503, 3, 3, 100, 30 * S, 0.5, &d), "failed");

	CHECK(hf_outbox_retry_after(NULL, NOW) == -1);
	CHECK(hf_outbox_retry_after("", NOW) == -1);
	CHECK(hf_outbox_retry_after("120", NOW) == 120 * S);
	CHECK(hf_outbox_retry_after(" 0 ", NOW) == 0);
	CHECK(hf_outbox_retry_after("12abc", NOW) == -1);
	CHECK(hf_outbox_retry_after("-5", NOW) == -1);
	CHECK(hf_outbox_retry_after("999999999999", NOW) ==
	      HF_DELIVERY_MAX_BACKOFF_MS);
	CHECK(hf_outbox_retry_after("soon", NOW) == -1);
	/* 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT. */
	CHECK(hf_outbox_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", NOW) ==
	      30 * S);
	CHECK(hf_outbox_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", NOW) == 0);
}

int main(void)
{
	test_outcomes();
	test_default_schedule();
	test_backoff();
	test_retry_after();
	return tap_done();
}
