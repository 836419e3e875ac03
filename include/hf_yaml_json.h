/* hf_yaml_json.h - a YAML document as JSON, for `hookflow check --json`, so
 * that JSON Schema tools (and the schema test) see a workflow file the way a
 * YAML editor does. It is not the workflow loader (workflow.c), which reads
 * every scalar as text and checks it against the model. */
#ifndef HF_YAML_JSON_H
#define HF_YAML_JSON_H

#include "hf_util.h"
#include <jansson.h>

/* Parses the first YAML document of text (len bytes) and returns it as a new
 * JSON value, resolving plain scalars as YAML 1.2's core schema does (null,
 * booleans, integers, floats; quoted scalars stay strings). An empty document
 * is JSON null. On a syntax error, a non-scalar mapping key or a document too
 * deep or too large, returns NULL and adds one problem to diags, positioned in
 * file (which may be NULL). */
json_t *hf_yaml_to_json(const char *text, size_t len, const char *file,
			struct hf_diags *diags);

/* Whether text holds a collection opened deeper than max levels (nested
 * collections, any style), read as events up to that point only: 1 with the
 * collection's 1-based *line and *col, else 0 (a syntax error is left to the
 * loader). A pass before yaml_parser_load, whose scanner is quadratic in the
 * depth: HF_YAML_MAX_DEPTH. */
int hf_yaml_depth_over(const char *text, size_t len, int max, int *line,
		       int *col);

#endif
