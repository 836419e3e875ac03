/* test_router.c - path + method to workflows: exact match, trailing '/', method
 * filtering, the Allow mask, several workflows on one path, unknown paths. */
#include "hf_router.h"
#include "tap.h"

#include <stdio.h>
#include <string.h>

static struct hf_workflow *wf(const char *name, const char *path,
			      const char *methods)
{
	char text[512];
	struct hf_diags d = {0};
	snprintf(text, sizeof text,
		 "name: %s\non: {webhook: {path: %s, methods: %s}}\n"
		 "steps: [{id: s, run: return 1}]\n",
		 name, path, methods);
	struct hf_workflow *w =
	    hf_workflow_parse("wf.yml", text, strlen(text), NULL, &d);
	if (!w)
		fprintf(stderr, "%s: %s\n", name, d.n ? d.items[0].msg : "?");
	hf_diags_release(&d);
	return w;
}

int main(void)
{
	struct hf_workflow *items[] = {
	    wf("b1", "/b", "[POST]"),	    wf("a1", "/a", "[GET, POST]"),
	    wf("b2", "/b/", "[POST, PUT]"), wf("c1", "/c/d", "[DELETE]"),
	    wf("b3", "/b", "[PATCH]"),	    wf("root", "/", "[GET]"),
	    wf("ab", "/ab", "[POST]"),
	};
	size_t n = sizeof items / sizeof items[0];
	for (size_t i = 0; i < n; i++)
		CHECK(items[i] != NULL);
	struct hf_workflow_set set = {.items = items, .n = n, .refs = 1};
	struct hf_router *r = hf_router_create(&set);
	CHECK(r != NULL);

	struct hf_workflow *out[8];
	int known = -1;
	unsigned allowed = 0;

	/* exact match */
	CHECK(hf_router_match(r, "/a", HF_METHOD_GET, out, 8, &known,
			      &allowed) == 1);
	CHECK(out[0] == items[1] && known == 1);
	CHECK(allowed == (HF_METHOD_GET | HF_METHOD_POST));
	CHECK(hf_router_match(r, "/ab", HF_METHOD_POST, out, 8, &known,
			      &allowed) == 1);
	CHECK(out[0] == items[6]);

	/* trailing slash ignored on both sides; several workflows, set order */
	CHECK(hf_router_match(r, "/b/", HF_METHOD_POST, out, 8, &known,
			      &allowed) == 2);
	CHECK(out[0] == items[0] && out[1] == items[2]);
	CHECK(allowed == (HF_METHOD_POST | HF_METHOD_PUT | HF_METHOD_PATCH));
	CHECK(hf_router_match(r, "/b", HF_METHOD_PATCH, out, 8, &known,
			      &allowed) == 1);
	CHECK(out[0] == items[4]);
	CHECK(hf_router_match(r, "/c/d//", HF_METHOD_DELETE, out, 8, &known,
			      &allowed) == 1);
	CHECK(out[0] == items[3]);

	/* max bounds what is written, not the count */
	out[1] = NULL;
	CHECK(hf_router_match(r, "/b", HF_METHOD_POST, out, 1, &known,
			      &allowed) == 2);
	CHECK(out[0] == items[0] && out[1] == NULL);
	CHECK(hf_router_match(r, "/b", HF_METHOD_POST, NULL, 0, NULL, NULL) ==
	      2);

	/* method not allowed: path known, Allow mask for 405 */
	CHECK(hf_router_match(r, "/a", HF_METHOD_DELETE, out, 8, &known,
			      &allowed) == 0);
	CHECK(known == 1);
	CHECK(allowed == (HF_METHOD_GET | HF_METHOD_POST));
	char buf[64];
	hf_methods_format(allowed, buf, sizeof buf);
	CHECK_STR(buf, "GET, POST");

	/* unknown paths, prefixes and the root */
	CHECK(hf_router_match(r, "/nope", HF_METHOD_POST, out, 8, &known,
			      &allowed) == 0);
	CHECK(known == 0 && allowed == 0);
	CHECK(hf_router_match(r, "/c", HF_METHOD_DELETE, out, 8, &known,
			      &allowed) == 0);
	CHECK(known == 0);
	CHECK(hf_router_match(r, "/a/b", HF_METHOD_GET, out, 8, &known,
			      &allowed) == 0);
	CHECK(known == 0);
	CHECK(hf_router_match(r, "/", HF_METHOD_GET, out, 8, &known,
			      &allowed) == 1);
	CHECK(out[0] == items[5] && allowed == HF_METHOD_GET);
	CHECK(hf_router_match(r, "", HF_METHOD_GET, out, 8, &known, &allowed) ==
	      1);

	hf_router_destroy(r);
	hf_router_destroy(NULL);

	/* an empty set */
	struct hf_workflow_set empty = {.items = NULL, .n = 0, .refs = 1};
	r = hf_router_create(&empty);
	CHECK(hf_router_match(r, "/a", HF_METHOD_GET, out, 8, &known,
			      &allowed) == 0);
	CHECK(known == 0 && allowed == 0);
	hf_router_destroy(r);

	for (size_t i = 0; i < n; i++)
		hf_workflow_unref(items[i]);
	return tap_done();
}
