/* fuzz_path.c - the path-pattern check and matcher on arbitrary bytes: the
 * input is "PATTERN\nPATH" (or "PATTERN\nPATTERN2\nPATH"). A pattern that
 * passes hf_path_pattern_check is matched against the path alone and in a
 * router with a second pattern and the literal path: no reads past the end,
 * and the router agrees with hf_path_params. */
#include "hf_limits.h"
#include "hf_router.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Splits s at its first '\n' (NUL-terminating the head); the tail, or "". */
static char *cut(char *s)
{
	char *nl = strchr(s, '\n');
	if (!nl)
		return s + strlen(s);
	*nl = '\0';
	return nl + 1;
}

static bool valid(const char *p)
{
	size_t at = 0;
	char msg[160];
	if (p[0] != '/' || strlen(p) > HF_WEBHOOK_PATH_MAX)
		return false;
	if (hf_path_pattern_check(p, &at, msg, sizeof msg) < 0) {
		if (at > strlen(p) || !msg[0])
			abort();
		return false;
	}
	return true;
}

static void route(char *a, char *b, const char *path)
{
	struct hf_workflow wa = {.path = a, .methods = HF_METHOD_POST};
	struct hf_workflow wb = {.path = b, .methods = HF_METHOD_GET};
	struct hf_workflow wc = {.path = (char *)"/lit",
				 .methods = HF_METHOD_PUT};
	struct hf_workflow *items[] = {&wa, &wb, &wc};
	struct hf_workflow_set set = {.items = items, .n = 3, .refs = 1};
	struct hf_router *r = hf_router_create(&set);
	struct hf_workflow *out[3];
	int known = 0;
	unsigned allowed = 0;
	size_t n =
	    hf_router_match(r, path, HF_METHOD_POST, out, 3, &known, &allowed);
	if (n > 3 || (n && !known) || (known && !allowed))
		abort();
	json_t *mine = hf_path_params(a, path);
	json_t *all = hf_router_params(r, path);
	/* a winning pattern's values are among the router's */
	const char *k;
	json_t *v;
	if (n == 1 && out[0] == &wa && hf_path_is_pattern(a)) {
		json_object_foreach(mine, k, v)
		{
			if (!json_object_get(all, k))
				abort();
		}
	}
	json_decref(mine);
	json_decref(all);
	hf_router_destroy(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 3 * HF_WEBHOOK_PATH_MAX)
		return 0;
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	char *a = s, *b = cut(a), *path = cut(b);
	if (!*path) { /* two lines: the second is the path */
		path = b;
		b = (char *)"/{x}";
	}
	if (valid(a) && valid(b))
		route(a, b, path);
	free(s);
	return 0;
}
