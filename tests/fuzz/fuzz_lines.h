/* fuzz_lines.h - splitting a fuzz input into lines (fuzz_verify.c,
 * fuzz_verify_template.c). */
#ifndef FUZZ_LINES_H
#define FUZZ_LINES_H

#include <stdlib.h>
#include <string.h>

/* Splits off the next line of [*p, end) into a malloc'd string, or NULL at the
 * end of the input. */
static inline char *next_line(const char **p, const char *end)
{
	if (*p >= end)
		return NULL;
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	const char *stop = nl ? nl : end;
	size_t n = (size_t)(stop - *p);
	char *s = malloc(n + 1);
	memcpy(s, *p, n);
	s[n] = '\0';
	*p = nl ? nl + 1 : end;
	return s;
}

#endif
