/* test_yaml_json.c - YAML documents as JSON (`check --json`): scalar
 * resolution by YAML 1.2's core schema, quoted scalars kept as strings,
 * aliases, errors with positions, and the bounds on depth and alias expansion.
 */
#include "hf_yaml_json.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* The document as compact JSON text (caller frees), or NULL. */
static char *conv(const char *yaml, struct hf_diags *d)
{
	json_t *v = hf_yaml_to_json(yaml, strlen(yaml), "t.yml", d);
	char *s =
	    v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS)
	      : NULL;
	json_decref(v);
	return s;
}

static void expect(const char *yaml, const char *json)
{
	struct hf_diags d = {0};
	char *s = conv(yaml, &d);
	CHECK_STR(s, json);
	CHECK(d.n == 0);
	free(s);
	hf_diags_release(&d);
}

static void expect_error(const char *yaml, int line, const char *needle)
{
	struct hf_diags d = {0};
	char *s = conv(yaml, &d);
	CHECK(s == NULL);
	CHECK(d.n == 1);
	if (d.n == 1) {
		CHECK_STR(d.items[0].file, "t.yml");
		CHECK(line == 0 || d.items[0].line == line);
		CHECK(strstr(d.items[0].msg, needle) != NULL);
		if (!strstr(d.items[0].msg, needle))
			fprintf(stderr, "  message: %s\n", d.items[0].msg);
	}
	free(s);
	hf_diags_release(&d);
}

static void test_scalars(void)
{
	expect("a: 1", "{\"a\":1}");
	expect("a: -12", "{\"a\":-12}");
	expect("a: 0x1F", "{\"a\":31}");
	expect("a: 0o17", "{\"a\":15}");
	expect("a: 1.5", "{\"a\":1.5}");
	expect("a: 1e3", "{\"a\":1000.0}");
	expect("a: .5", "{\"a\":0.5}");
	expect("a: true\nb: False\nc: TRUE",
	       "{\"a\":true,\"b\":false,\"c\":true}");
	expect("a: ~\nb: null\nc:", "{\"a\":null,\"b\":null,\"c\":null}");
	/* YAML 1.1 booleans and other look-alikes stay strings. */
	expect("a: yes\nb: on\nc: 1_000\nd: 12abc",
	       "{\"a\":\"yes\",\"b\":\"on\",\"c\":\"1_000\",\"d\":\"12abc\"}");
	/* JSON has no infinity or NaN. */
	expect("a: .inf\nb: -.inf\nc: .nan",
	       "{\"a\":\".inf\",\"b\":\"-.inf\",\"c\":\".nan\"}");
	/* Quoted scalars are strings whatever they look like. */
	expect("a: '1'\nb: \"true\"\nc: ''",
	       "{\"a\":\"1\",\"b\":\"true\",\"c\":\"\"}");
	expect("a: |\n  x\n  y\n", "{\"a\":\"x\\ny\\n\"}");
	/* Too large for an integer: still a number. */
	expect("a: 123456789012345678901234567890",
	       "{\"a\":1.2345678901234568e29}");
}

static void test_structure(void)
{
	expect("", "null");
	expect("- 1\n- [a, {b: c}]", "[1,[\"a\",{\"b\":\"c\"}]]");
	expect("a: &x {k: v}\nb: *x",
	       "{\"a\":{\"k\":\"v\"},\"b\":{\"k\":\"v\"}}");
	expect("1: a\ntrue: b", "{\"1\":\"a\",\"true\":\"b\"}");
	/* Only the first document. */
	expect("a: 1\n---\nb: 2\n", "{\"a\":1}");
}

static void test_errors(void)
{
	expect_error("a: [1,\nb: 2\n", 0, "YAML syntax error");
	expect_error("a: b: c\n", 1, "YAML syntax error");
	expect_error("? [a]\n: 1\n", 1, "mapping key must be a scalar");
	expect_error("a: \xff\n", 0, "UTF-8"); /* raw invalid bytes */

	/* Nesting past the limit. */
	char deep[400];
	size_t n = 0;
	for (int i = 0; i < 100; i++)
		deep[n++] = '[';
	for (int i = 0; i < 100; i++)
		deep[n++] = ']';
	deep[n] = '\0';
	expect_error(deep, 1, "nested too deeply");

	/* A billion laughs: ten aliases of ten aliases of ... */
	char lol[2048];
	n = (size_t)snprintf(lol, sizeof lol,
			     "a0: &a0 [x,x,x,x,x,x,x,x,x,x]\n");
	for (int i = 1; i < 9; i++) {
		n += (size_t)snprintf(lol + n, sizeof lol - n, "a%d: &a%d [", i,
				      i);
		for (int k = 0; k < 10; k++)
			n += (size_t)snprintf(lol + n, sizeof lol - n, "%s*a%d",
					      k ? "," : "", i - 1);
		n += (size_t)snprintf(lol + n, sizeof lol - n, "]\n");
	}
	expect_error(lol, 0, "too large");
}

/* The first pass that stops at a depth, before the document is built: the
 * document's own collection is the first level, any style counts, and the
 * position is the first collection past max. */
static void test_depth_over(void)
{
	const char *y = "a:\n  b: [1, {c: [2]}]\n";
	int line = 0, col = 0;
	CHECK(hf_yaml_depth_over(y, strlen(y), 5, &line, &col) == 0);
	CHECK(hf_yaml_depth_over(y, strlen(y), 4, &line, &col) == 1);
	CHECK(line == 2 && col == 14);
	CHECK(hf_yaml_depth_over(y, strlen(y), 1, &line, &col) == 1);
	CHECK(line == 2 && col == 3);
	/* Scalars, however bracketed, are not collections; a syntax error
	 * is the loader's to report. */
	const char *q = "a: '[[[['\nb: |\n  [[[[\n";
	CHECK(hf_yaml_depth_over(q, strlen(q), 1, &line, &col) == 0);
	const char *bad = "a: [[[\n";
	CHECK(hf_yaml_depth_over(bad, strlen(bad), 8, &line, &col) == 0);
	CHECK(hf_yaml_depth_over(bad, strlen(bad), 3, &line, &col) == 1);
}

int main(void)
{
	test_scalars();
	test_structure();
	test_errors();
	test_depth_over();
	return tap_done();
}
