/* hf_json_check.h - validating JSON without building it: true only when
 * hf_json_parse (hf_body.h: jansson, JSON_DECODE_ANY, HF_JSON_MAX_DEPTH)
 * accepts the bytes, and for every text it accepts but one quirk: jansson's
 * lexer drops a NUL byte right after a number or a literal ("[1\0]"), which
 * this refuses. So a caller parses what is refused, for the error message,
 * and keeps the tree when it parses after all (ingest does). About fifteen
 * times cheaper than parsing a 1 KiB body into a tree. */
#ifndef HF_JSON_CHECK_H
#define HF_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>

bool hf_json_check(const char *text, size_t len);

#endif
