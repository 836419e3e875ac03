/* yaml_json.c - a YAML document as JSON (see hf_yaml_json.h). Uses libyaml's
 * document API; aliases are expanded, with a bound on the nodes visited so that
 * a "billion laughs" document fails instead of exhausting memory. No threads,
 * no state: one call, one document. */
#include "hf_limits.h"
#include "hf_yaml_json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct conv {
	yaml_document_t *doc;
	const char *file;
	struct hf_diags *diags;
	size_t visited;
	bool failed;
};

static void fail(struct conv *c, const yaml_node_t *n, const char *msg)
{
	if (c->failed)
		return;
	c->failed = true;
	hf_diags_add(c->diags, c->file, n ? (int)n->start_mark.line + 1 : 0,
		     n ? (int)n->start_mark.column + 1 : 0, "%s", msg);
}

static bool all(const char *s, size_t n, int (*pred)(int))
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!pred((unsigned char)s[i]))
			return false;
	return true;
}

static int is_octal(int ch)
{
	return ch >= '0' && ch <= '7';
}

static bool one_of(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (strcmp(s, *words) == 0)
			return true;
	return false;
}

/* [-+]? ( \.[0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_float(const char *s)
{
	size_t i = 0, digits = 0;
	if (s[i] == '-' || s[i] == '+')
		i++;
	while (isdigit((unsigned char)s[i]))
		i++, digits++;
	if (s[i] == '.')
		for (i++; isdigit((unsigned char)s[i]); i++)
			digits++;
	if (!digits)
		return false;
	if (s[i] == 'e' || s[i] == 'E') {
		i++;
		if (s[i] == '-' || s[i] == '+')
			i++;
		if (!isdigit((unsigned char)s[i]))
			return false;
		while (isdigit((unsigned char)s[i]))
			i++;
	}
	return s[i] == '\0';
}

/* A plain scalar resolved by the core schema; anything else is a string. */
static json_t *plain_scalar(const char *s, size_t n)
{
	static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
	static const char *const trues[] = {"true", "True", "TRUE", NULL};
	static const char *const falses[] = {"false", "False", "FALSE", NULL};
	static const char *const infs[] = {".inf", ".Inf", ".INF", NULL};
	static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
	if (n == 0 || one_of(s, nulls))
		return json_null();
	if (one_of(s, trues))
		return json_true();
	if (one_of(s, falses))
		return json_false();
	/* JSON has no infinity or NaN: they stay strings. */
	if (one_of(s, infs) || one_of(s, nans) ||
	    ((s[0] == '-' || s[0] == '+') && one_of(s + 1, infs)))
		return json_stringn(s, n);
	const char *d = s + (s[0] == '-' || s[0] == '+');
	int base = 0;
	if (all(d, strlen(d), isdigit))
		base = 10;
	else if (d == s && strncmp(s, "0x", 2) == 0 &&
		 all(s + 2, n - 2, isxdigit))
		base = 16;
	else if (d == s && strncmp(s, "0o", 2) == 0 &&
		 all(s + 2, n - 2, is_octal))
		base = 8;
	if (base) {
		errno = 0;
		long long v = strtoll(base == 10 ? s : s + 2, NULL, base);
		if (errno == 0)
			return json_integer(v);
		/* Too large for an integer: a JSON number all the same. */
		return json_real(strtod(s, NULL));
	}
	if (is_float(s)) {
		double v = strtod(s, NULL);
		if (isfinite(v))
			return json_real(v);
	}
	return json_stringn(s, n);
}

static json_t *convert(struct conv *c, yaml_node_t *n, int depth)
{
	if (c->failed)
		return NULL;
	if (!n) {
		fail(c, NULL, "broken YAML document");
		return NULL;
	}
	if (depth > HF_YAML_JSON_MAX_DEPTH) {
		fail(c, n, "document is nested too deeply");
		return NULL;
	}
	if (++c->visited > HF_YAML_JSON_MAX_NODES) {
		fail(c, n, "document is too large (aliases expand too far)");
		return NULL;
	}
	switch (n->type) {
	case YAML_SCALAR_NODE: {
		const char *s = (const char *)n->data.scalar.value;
		size_t len = n->data.scalar.length;
		json_t *v = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
				? plain_scalar(s, len)
				: json_stringn(s, len);
		if (!v)
			fail(c, n, "scalar is not valid UTF-8");
		return v;
	}
	case YAML_SEQUENCE_NODE: {
		json_t *arr = json_array();
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top && !c->failed; it++) {
			json_t *v = convert(
			    c, yaml_document_get_node(c->doc, *it), depth + 1);
			if (v)
				json_array_append_new(arr, v);
		}
		if (c->failed) {
			json_decref(arr);
			return NULL;
		}
		return arr;
	}
	case YAML_MAPPING_NODE: {
		json_t *obj = json_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top && !c->failed; p++) {
			yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
			if (!k || k->type != YAML_SCALAR_NODE) {
				fail(c, k ? k : n,
				     "a mapping key must be a scalar");
				break;
			}
			char *key =
			    hf_xstrndup((const char *)k->data.scalar.value,
					k->data.scalar.length);
			json_t *v =
			    convert(c, yaml_document_get_node(c->doc, p->value),
				    depth + 1);
			if (v && json_object_set_new(obj, key, v) != 0)
				fail(c, k, "mapping key is not valid UTF-8");
			free(key);
		}
		if (c->failed) {
			json_decref(obj);
			return NULL;
		}
		return obj;
	}
	case YAML_NO_NODE:
		break;
	}
	return json_null();
}

int hf_yaml_depth_over(const char *text, size_t len, int max, int *line,
		       int *col)
{
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p))
		abort(); /* out of memory, as hf_xmalloc */
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	int depth = 0, over = 0;
	for (bool end = false; !end && !over;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev))
			break;
		switch (ev.type) {
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (++depth > max) {
				over = 1;
				*line = (int)ev.start_mark.line + 1;
				*col = (int)ev.start_mark.column + 1;
			}
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_STREAM_END_EVENT:
			end = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return over;
}

json_t *hf_yaml_to_json(const char *text, size_t len, const char *file,
			struct hf_diags *diags)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	json_t *out = NULL;
	if (!yaml_parser_initialize(&parser)) {
		hf_diags_add(diags, file, 0, 0, "cannot start the YAML parser");
		return NULL;
	}
	int line, col;
	if (hf_yaml_depth_over(text, len, HF_YAML_MAX_DEPTH, &line, &col)) {
		hf_diags_add(diags, file, line, col,
			     "document is nested too deeply");
		goto parser_done;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		hf_diags_add(diags, file, (int)parser.problem_mark.line + 1,
			     (int)parser.problem_mark.column + 1,
			     "YAML syntax error: %s%s%s",
			     parser.problem ? parser.problem : "unknown",
			     parser.context ? " " : "",
			     parser.context ? parser.context : "");
		goto parser_done;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (!root) {
		out = json_null();
	} else {
		struct conv c = {&doc, file, diags, 0, false};
		out = convert(&c, root, 0);
	}
	yaml_document_delete(&doc);
parser_done:
	yaml_parser_delete(&parser);
	return out;
}
