/* test_body.c - Content-Type classification, JSON parsing with its nesting
 * limit and error positions, and form / query decoding (percent escapes, '+',
 * invalid escapes, repeated keys, invalid UTF-8). */
#include "hf_body.h"
#include "hf_limits.h"
#include "hf_util.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static void test_kind(void)
{
	CHECK(hf_body_kind_of(NULL) == HF_BODY_OTHER);
	CHECK(hf_body_kind_of("") == HF_BODY_OTHER);
	CHECK(hf_body_kind_of("application/json") == HF_BODY_JSON);
	CHECK(hf_body_kind_of("Application/JSON") == HF_BODY_JSON);
	CHECK(hf_body_kind_of("application/json; charset=utf-8") ==
	      HF_BODY_JSON);
	CHECK(hf_body_kind_of("  application/json ;charset=utf-8") ==
	      HF_BODY_JSON);
	CHECK(hf_body_kind_of("application/vnd.api+json") == HF_BODY_JSON);
	CHECK(hf_body_kind_of("application/problem+JSON; q=1") == HF_BODY_JSON);
	CHECK(hf_body_kind_of("application/json-seq") == HF_BODY_OTHER);
	CHECK(hf_body_kind_of("application/jsonx") == HF_BODY_OTHER);
	CHECK(hf_body_kind_of("application/+json") == HF_BODY_OTHER);
	CHECK(hf_body_kind_of("+json") == HF_BODY_OTHER);
	CHECK(hf_body_kind_of("text/plain") == HF_BODY_OTHER);
	CHECK(hf_body_kind_of("application/x-www-form-urlencoded") ==
	      HF_BODY_FORM);
	CHECK(hf_body_kind_of("application/X-WWW-Form-Urlencoded; "
			      "charset=UTF-8") == HF_BODY_FORM);
	CHECK(hf_body_kind_of("multipart/form-data; boundary=x") ==
	      HF_BODY_OTHER);
}

static void test_json(void)
{
	char err[256] = "";
	json_t *v = NULL;
	const char *doc = "{\"a\": [1, 2, {\"b\": \"[{\\\"\"}], \"c\": null}";
	CHECK(hf_json_parse(doc, strlen(doc), &v, err, sizeof err) == 0);
	CHECK(json_is_object(v));
	CHECK(json_array_size(json_object_get(v, "a")) == 3);
	CHECK_STR(json_string_value(json_object_get(
		      json_array_get(json_object_get(v, "a"), 2), "b")),
		  "[{\"");
	json_decref(v);

	/* Any value at top level. */
	CHECK(hf_json_parse("42", 2, &v, err, sizeof err) == 0);
	CHECK(json_integer_value(v) == 42);
	json_decref(v);
	CHECK(hf_json_parse("\"s\"", 3, &v, err, sizeof err) == 0);
	CHECK_STR(json_string_value(v), "s");
	json_decref(v);

	/* Errors say where. */
	const char *bad = "{\n  \"a\": tru\n}";
	CHECK(hf_json_parse(bad, strlen(bad), &v, err, sizeof err) == -1);
	CHECK(v == NULL);
	CHECK(strncmp(err, "invalid JSON at line 2, column ", 31) == 0);
	bad = "{\"a\":1,}";
	CHECK(hf_json_parse(bad, strlen(bad), &v, err, sizeof err) == -1);
	CHECK(strncmp(err, "invalid JSON at line 1, column 8: ", 34) == 0);
	CHECK(hf_json_parse("{} x", 4, &v, err, sizeof err) == -1);
	CHECK(strstr(err, "invalid JSON at line 1") == err);

	/* Not UTF-8 (Latin-1 "café"). */
	const char *latin1 = "{\"name\": \"caf\xe9\"}";
	CHECK(hf_json_parse(latin1, strlen(latin1), &v, err, sizeof err) == -1);
	CHECK(strstr(err, "invalid JSON at line 1, column") == err);
	CHECK(strstr(err, "not valid UTF-8") != NULL);

	/* A NUL byte is not JSON. */
	CHECK(hf_json_parse("{\"a\":\0}", 7, &v, err, sizeof err) == -1);
}

/* "[[[...]]]" depth deep, or only the opening brackets. */
static char *brackets(size_t depth, int close, size_t *len)
{
	char *s = malloc(2 * depth + 1);
	memset(s, '[', depth);
	if (close)
		memset(s + depth, ']', depth);
	*len = close ? 2 * depth : depth;
	s[*len] = '\0';
	return s;
}

static void test_json_depth(void)
{
	char err[256];
	json_t *v = NULL;
	size_t len;
	char *s = brackets(100000, 0, &len);
	CHECK(hf_json_parse(s, len, &v, err, sizeof err) == -1);
	CHECK_STR(err, "JSON nested deeper than 512 levels");
	CHECK(v == NULL);
	free(s);

	s = brackets(HF_JSON_MAX_DEPTH, 1, &len);
	CHECK(hf_json_parse(s, len, &v, err, sizeof err) == 0);
	CHECK(json_is_array(v));
	json_decref(v);
	free(s);

	s = brackets(HF_JSON_MAX_DEPTH + 1, 1, &len);
	CHECK(hf_json_parse(s, len, &v, err, sizeof err) == -1);
	CHECK_STR(err, "JSON nested deeper than 512 levels");
	free(s);

	/* Objects count too; brackets inside strings do not. */
	struct hf_buf b = {0};
	for (int i = 0; i < HF_JSON_MAX_DEPTH; i++)
		hf_buf_append(&b, "{\"[\\\"{\":", 8);
	hf_buf_append(&b, "1", 1);
	for (int i = 0; i < HF_JSON_MAX_DEPTH; i++)
		hf_buf_append(&b, "}", 1);
	CHECK(hf_json_parse(b.data, b.len, &v, err, sizeof err) == 0);
	CHECK(json_is_object(v));
	json_decref(v);
	hf_buf_release(&b);
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void test_form(void)
{
	const char *f = "a=1&b=x+y&c=%41%42&d=%zz&e=%&f=%4&&g&h=&=v&a=2";
	json_t *o = hf_form_decode(f, strlen(f));
	CHECK(json_is_object(o));
	CHECK_STR(str(o, "a"), "2"); /* repeated key: last wins */
	CHECK_STR(str(o, "b"), "x y");
	CHECK_STR(str(o, "c"), "AB");
	CHECK_STR(str(o, "d"), "%zz");
	CHECK_STR(str(o, "e"), "%");
	CHECK_STR(str(o, "f"), "%4");
	CHECK_STR(str(o, "g"), "");
	CHECK_STR(str(o, "h"), "");
	CHECK_STR(str(o, ""), "v");
	CHECK(json_object_size(o) == 9);
	json_decref(o);

	/* Keys are decoded too; '=' inside a value is kept. */
	f = "first+name=J%C3%BCrgen&q=a%3Db=c";
	o = hf_form_decode(f, strlen(f));
	CHECK_STR(str(o, "first name"), "J\xc3\xbcrgen");
	CHECK_STR(str(o, "q"), "a=b=c");
	json_decref(o);

	/* Invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart. */
	f = "k%FF=%E9t%C3%A9&t=%E2%82x&s=%ED%A0%80&o=%C0%AF";
	o = hf_form_decode(f, strlen(f));
	CHECK_STR(str(o, "k\xef\xbf\xbd"), "\xef\xbf\xbdt\xc3\xa9");
	CHECK_STR(str(o, "t"), "\xef\xbf\xbdx");
	CHECK_STR(str(o, "s"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	CHECK_STR(str(o, "o"), "\xef\xbf\xbd\xef\xbf\xbd");
	json_decref(o);

	/* Raw (unescaped) invalid bytes too; every string is valid for
	 * jansson, so the object dumps and parses back. */
	f = "x=\xff\xfe&\xc3=1";
	o = hf_form_decode(f, strlen(f));
	CHECK_STR(str(o, "x"), "\xef\xbf\xbd\xef\xbf\xbd");
	char *dump = json_dumps(o, 0);
	json_error_t je;
	json_t *back = json_loads(dump, 0, &je);
	CHECK(back && json_equal(o, back));
	json_decref(back);
	free(dump);
	json_decref(o);

	/* %00 is kept as a NUL byte inside the value. */
	o = hf_form_decode("z=a%00b", 7);
	CHECK(json_string_length(json_object_get(o, "z")) == 3);
	json_decref(o);
	/* ...but not in a key, which stays a C string. */
	o = hf_form_decode("a%00b=1", 7);
	CHECK_STR(str(o, "a\xef\xbf\xbd"
			 "b"),
		  "1");
	json_decref(o);

	o = hf_form_decode("", 0);
	CHECK(json_is_object(o) && json_object_size(o) == 0);
	json_decref(o);
	o = hf_form_decode(NULL, 0);
	CHECK(json_is_object(o) && json_object_size(o) == 0);
	json_decref(o);
	o = hf_form_decode("&&&", 3);
	CHECK(json_object_size(o) == 0);
	json_decref(o);

	o = hf_query_decode("page=2&q=hello%20world", 22);
	CHECK_STR(str(o, "page"), "2");
	CHECK_STR(str(o, "q"), "hello world");
	json_decref(o);
}

static void test_body_decode(void)
{
	char err[256];
	json_t *v = (json_t *)1;
	CHECK(hf_body_decode(HF_BODY_OTHER, "{}", 2, &v, err, sizeof err) == 0);
	CHECK(v == NULL);
	v = (json_t *)1;
	CHECK(hf_body_decode(HF_BODY_JSON, "", 0, &v, err, sizeof err) == 0);
	CHECK(v == NULL);
	CHECK(hf_body_decode(HF_BODY_JSON, "{\"a\":1}", 7, &v, err,
			     sizeof err) == 0);
	CHECK(json_integer_value(json_object_get(v, "a")) == 1);
	json_decref(v);
	CHECK(hf_body_decode(HF_BODY_JSON, "{\"a\":", 5, &v, err, sizeof err) ==
	      -1);
	CHECK(v == NULL);
	CHECK(strstr(err, "invalid JSON at line 1, column") == err);
	CHECK(hf_body_decode(HF_BODY_FORM, "a=b", 3, &v, err, sizeof err) == 0);
	CHECK_STR(json_string_value(json_object_get(v, "a")), "b");
	json_decref(v);
}

int main(void)
{
	test_kind();
	test_json();
	test_json_depth();
	test_form();
	test_body_decode();
	return tap_done();
}
