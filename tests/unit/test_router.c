/* test_router.c - path + method to workflows: exact match, trailing '/', method
 * filtering, the Allow mask, several workflows on one path, unknown paths;
 * path parameters: matching, precedence, values, and the pattern check. */
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

static const char *param(json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

static void patterns(void)
{
	struct hf_workflow *items[] = {
	    wf("t1", "'/t/{id}'", "[POST]"),
	    wf("t2", "'/t/{key}/'", "[POST, PUT]"),
	    wf("tn", "/t/new", "[GET]"),
	    wf("tx", "'/t/{id}/x/{sub}'", "[POST]"),
	    wf("ty", "'/t/{id}/x/lit'", "[POST]"),
	    wf("tz", "'/t/a/x/{sub}'", "[POST]"),
	};
	size_t n = sizeof items / sizeof items[0];
	for (size_t i = 0; i < n; i++)
		CHECK(items[i] != NULL);
	struct hf_workflow_set set = {.items = items, .n = n, .refs = 1};
	struct hf_router *r = hf_router_create(&set);
	struct hf_workflow *out[8];
	int known = -1;
	unsigned allowed = 0;

	/* one segment; two workflows share the shape, in set order */
	CHECK(hf_router_match(r, "/t/42", HF_METHOD_POST, out, 8, &known,
			      &allowed) == 2);
	CHECK(out[0] == items[0] && out[1] == items[1]);
	CHECK(allowed == (HF_METHOD_POST | HF_METHOD_PUT));
	CHECK(hf_router_match(r, "/t/42/", HF_METHOD_PUT, out, 8, &known,
			      &allowed) == 1);
	CHECK(out[0] == items[1]);
	/* not two segments, not an empty one, not none */
	CHECK(hf_router_match(r, "/t/4/2", HF_METHOD_POST, out, 8, &known,
			      &allowed) == 0 &&
	      known == 0);
	CHECK(hf_router_match(r, "/t//", HF_METHOD_POST, out, 8, &known,
			      &allowed) == 0 &&
	      known == 0);
	CHECK(hf_router_match(r, "/t", HF_METHOD_POST, out, 8, &known,
			      &allowed) == 0 &&
	      known == 0);
	/* a literal path wins, even for a method it lacks (405) */
	CHECK(hf_router_match(r, "/t/new", HF_METHOD_POST, out, 8, &known,
			      &allowed) == 0);
	CHECK(known == 1 && allowed == HF_METHOD_GET);
	/* the most specific pattern: a literal segment earlier wins */
	CHECK(hf_router_match(r, "/t/a/x/lit", HF_METHOD_POST, out, 8, &known,
			      &allowed) == 1);
	CHECK(out[0] == items[5]);
	CHECK(hf_router_match(r, "/t/b/x/lit", HF_METHOD_POST, out, 8, &known,
			      &allowed) == 1);
	CHECK(out[0] == items[4]);
	CHECK(hf_router_match(r, "/t/b/x/other", HF_METHOD_POST, out, 8, &known,
			      &allowed) == 1);
	CHECK(out[0] == items[3]);

	/* values */
	json_t *p = hf_path_params("/t/{id}/x/{sub}", "/t/a%20b/x/c/");
	CHECK_STR(param(p, "id"), "a%20b");
	CHECK_STR(param(p, "sub"), "c");
	json_decref(p);
	p = hf_path_params("/t/{id}", "/u/1");
	CHECK(json_object_size(p) == 0);
	json_decref(p);
	p = hf_path_params("/t/new", "/t/new");
	CHECK(json_is_object(p) && json_object_size(p) == 0);
	json_decref(p);
	p = hf_router_params(r, "/t/7");
	CHECK_STR(param(p, "id"), "7");
	CHECK_STR(param(p, "key"), "7");
	json_decref(p);
	p = hf_router_params(r, "/t/new");
	CHECK(json_object_size(p) == 0);
	json_decref(p);
	hf_router_destroy(r);
	for (size_t i = 0; i < n; i++)
		hf_workflow_unref(items[i]);
}

static void check_one(const char *path, size_t want_at, const char *want)
{
	size_t at = 999;
	char msg[160] = "";
	int rc = hf_path_pattern_check(path, &at, msg, sizeof msg);
	if (!want) {
		CHECK(rc == 0);
		return;
	}
	CHECK(rc < 0 && at == want_at && strstr(msg, want) != NULL);
	if (rc < 0 && (at != want_at || !strstr(msg, want)))
		fprintf(stderr, "%s: at %zu: %s\n", path, at, msg);
}

static void pattern_check(void)
{
	check_one("/t/{id}", 0, NULL);
	check_one("/t/{id}/x/{_b2}/", 0, NULL);
	check_one("/t/{}", 3, "empty parameter");
	check_one("/t/{id}/{id}", 8, "appears twice");
	check_one("/t/{id", 3, "not closed");
	check_one("/t/{id/x}", 3, "not closed");
	check_one("/t/{2x}", 4, "invalid parameter name");
	check_one("/t/{a-b}", 4, "invalid parameter name");
	check_one("/t/x{id}", 4, "whole segment");
	check_one("/t/{id}x", 7, "whole segment");
	check_one("/t/id}", 5, "without '{'");
}

int main(void)
{
	patterns();
	pattern_check();
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
