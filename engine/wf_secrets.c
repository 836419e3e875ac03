/* wf_secrets.c - ${NAME} references in verify secrets, expanded from the
 * environment at load time; `check` may run without the secrets.
 *
 * Owns: the expansion and its error messages, which never show a secret, and
 * wiping partial copies. Does not own: what a secret verifies (hf_verify),
 * where secrets are declared (workflow.c).
 *
 * Threading: expansion is reentrant (getenv only); the `check` switch is an
 * atomic set once at start-up. */
#include "hf_limits.h"
#include "wf_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Set by `check`: an unset ${NAME} in a secret is not an error there, since a
 * linter should not need the production secrets. `serve` keeps it an error. */
static atomic_bool env_optional;

void hf_workflow_set_env_optional(bool optional)
{
	atomic_store(&env_optional, optional);
}

/* Expands the ${NAME} references of secret node n from the environment. Returns
 * the secret (caller frees, wipes) or NULL after reporting. Messages never show
 * the secret. Two passes, so that no partial copy is left in freed memory. */
char *wf_expand_secret(struct wf_ctx *c, const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE) {
		wf_nerr(c, n, "a secret must be a string");
		return NULL;
	}
	const char *s = sval(n);
	size_t len = slen(n), cap = 0;
	char *out = NULL;
	if (memchr(s, '\0', len)) {
		wf_nerr(c, n, "a secret must not contain NUL bytes");
		return NULL;
	}
	for (int pass = 0; pass < 2; pass++) {
		size_t o = 0;
		for (size_t i = 0; i < len;) {
			if (s[i] != '$' || i + 1 >= len || s[i + 1] != '{') {
				if (out && o < cap)
					out[o] = s[i];
				o++, i++;
				continue;
			}
			size_t j = i + 2;
			while (j < len &&
			       (isalnum((unsigned char)s[j]) || s[j] == '_'))
				j++;
			char name[HF_SECRET_NAME_MAX + 1];
			if (j == i + 2 || j >= len || s[j] != '}' ||
			    isdigit((unsigned char)s[i + 2]) ||
			    j - i - 2 >= sizeof name) {
				wf_nerr(
				    c, n,
				    "invalid '${' in secret (expected ${NAME}, "
				    "NAME of letters, digits and '_')");
				goto fail;
			}
			memcpy(name, s + i + 2, j - i - 2);
			name[j - i - 2] = '\0';
			const char *v = getenv(name);
			if ((!v || !*v) && atomic_load(&env_optional))
				v = "unset"; /* `check` needs no secrets */
			if (!v || !*v) {
				wf_nerr(c, n,
					"environment variable %s is not set",
					name);
				goto fail;
			}
			size_t vl = strlen(v);
			if (out && o + vl <= cap)
				memcpy(out + o, v, vl);
			o += vl;
			i = j + 1;
		}
		if (!out) {
			if (o == 0) {
				wf_nerr(c, n, "a secret must not be empty");
				return NULL;
			}
			cap = o;
			out = hf_xmalloc(cap + 1);
		} else {
			out[o < cap ? o : cap] = '\0';
		}
	}
	return out;
fail:
	if (out) {
		explicit_bzero(out, cap);
		free(out);
	}
	return NULL;
}
