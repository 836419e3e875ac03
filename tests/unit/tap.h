/* tap.h - the smallest test harness that reports what failed and where.
 * CHECK(cond) records a failure and goes on; tap_done() returns the exit
 * status. */
#ifndef TAP_H
#define TAP_H

#include <stdio.h>
#include <string.h>

static int tap_failures;
static int tap_checks;

#define CHECK(cond)                                                            \
	do {                                                                   \
		tap_checks++;                                                  \
		if (!(cond)) {                                                 \
			tap_failures++;                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
		}                                                              \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *tap_a = (a), *tap_b = (b);                         \
		tap_checks++;                                                  \
		if (!tap_a || !tap_b || strcmp(tap_a, tap_b) != 0) {           \
			tap_failures++;                                        \
			fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, \
				__LINE__, tap_a ? tap_a : "(null)",            \
				tap_b ? tap_b : "(null)");                     \
		}                                                              \
	} while (0)

static inline int tap_done(void)
{
	printf("%d checks, %d failed\n", tap_checks, tap_failures);
	return tap_failures ? 1 : 0;
}

#endif
