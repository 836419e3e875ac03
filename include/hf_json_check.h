/* hf_json_check.h - validating JSON without building it: true exactly when
 * hf_json_parse (hf_body.h: jansson, JSON_DECODE_ANY, HF_JSON_MAX_DEPTH)
 * would accept the bytes. About ten times cheaper than parsing into a tree;
 * for the error message, parse (only the refused bytes pay for it). */
#ifndef HF_JSON_CHECK_H
#define HF_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>

bool hf_json_check(const char *text, size_t len);

#endif
