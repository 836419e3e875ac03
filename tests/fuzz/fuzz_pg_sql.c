/* fuzz_pg_sql.c - hf_pg_sql_translate (a step's SQL, `?` placeholders to
 * `$n`, for PostgreSQL) on arbitrary bytes, since that SQL comes from
 * workflows: no reads past the end, and what it returns holds together: the
 * same answer twice, a text of the length it says, parameters and statements
 * in range, input without '?' copied unchanged, and each '?' that became a
 * placeholder accounted for by a '$'. */
#include "hf_pg_sql.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count(const char *s, size_t n, char c)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += s[i] == c;
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a copy of exactly size bytes: a read past it is caught by ASan */
	char *sql = malloc(size ? size : 1);
	memcpy(sql, data, size);
	struct hf_pg_sql a, b;
	int ra = hf_pg_sql_translate(sql, size, &a);
	int rb = hf_pg_sql_translate(sql, size, &b);
	if (ra != rb)
		abort();
	if (ra != 0) {
		if (a.text || !a.error[0] || strcmp(a.error, b.error) != 0)
			abort();
		free(sql);
		return 0;
	}
	if (!a.text || strlen(a.text) != a.len || a.len != b.len ||
	    memcmp(a.text, b.text, a.len) != 0)
		abort();
	if (a.nparams < 0 || a.nparams > HF_PG_SQL_MAX_PARAMS ||
	    a.nparams != b.nparams || a.nstatements < 0 ||
	    (size_t)a.nstatements > size)
		abort();
	size_t q_in = count(sql, size, '?'), q_out = count(a.text, a.len, '?');
	if (!q_in && (a.len != size || memcmp(a.text, sql, size) != 0))
		abort();
	/* a '?' is kept, halves a '??', or becomes one '$' */
	if (q_out > q_in || count(a.text, a.len, '$') < count(sql, size, '$') ||
	    count(a.text, a.len, '$') - count(sql, size, '$') > q_in - q_out)
		abort();
	hf_pg_sql_release(&a);
	hf_pg_sql_release(&b);
	free(sql);
	return 0;
}
