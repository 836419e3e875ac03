/* wf_lua.c - the load-time Lua syntax check: code and expressions are compiled
 * in text mode on the parse's scratch lua_State and thrown away, so that a
 * syntax error is reported at its line in the YAML file; hf_expr values.
 *
 * Owns: padding chunks so that Lua's line numbers are the file's. Does not
 * own: compiling code for execution or running it (hf_luart), the `with:`
 * translation (wf_with.c). Neighbours: wf_yaml.c for diagnostics.
 *
 * Threading: the scratch state belongs to one parse, on the calling thread. */
#include "wf_int.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends newlines so that the next text is on line `line`. */
void wf_pad(struct hf_buf *b, int line)
{
	static const char nl[] = "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n";
	size_t n = line > 1 ? (size_t)line - 1 : 0;
	while (n) {
		size_t k = n < sizeof nl - 1 ? n : sizeof nl - 1;
		hf_buf_append(b, nl, k);
		n -= k;
	}
	if (!b->data)
		hf_buf_append(b, "", 0);
}

/* The last line that text starting on `first` covers (trailing blanks aside).
 */
int wf_last_line(int first, const char *s, size_t n)
{
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n')
			first++;
	return first;
}

/* Compiles code in text mode on the scratch state and throws the function away.
 * Returns 0, or -1 with Lua's line (0 when unknown) and its message without the
 * "chunk:LINE:" prefix. */
int wf_lua_syntax(struct wf_ctx *c, const char *code, size_t len, int *line,
		  char *msg, size_t size)
{
	*line = 0;
	if (luaL_loadbufferx(c->L, code, len, "=?", "t") == LUA_OK) {
		lua_pop(c->L, 1);
		return 0;
	}
	const char *m = lua_tostring(c->L, -1);
	if (!m)
		m = "unknown error";
	if (strncmp(m, "?:", 2) == 0 && isdigit((unsigned char)m[2])) {
		char *end;
		long l = strtol(m + 2, &end, 10);
		if (*end == ':') {
			*line = l > 0 && l < 1000000000 ? (int)l : 0;
			m = end + 1;
			while (*m == ' ')
				m++;
		}
	}
	snprintf(msg, size, "%s", m);
	lua_pop(c->L, 1);
	return -1;
}

/* Builds the chunk of the expression src (which is at YAML line/col), padded so
 * that Lua's lines are the file's, and compiles it. Returns the chunk (caller
 * frees) or NULL after reporting. */
char *wf_expr_chunk(struct wf_ctx *c, const char *src, size_t n, int line,
		    int col, const char *what)
{
	if (wf_blank(src, n)) {
		wf_diag(c, line, col, "empty expression in '%s'", what);
		return NULL;
	}
	struct hf_buf b = {0};
	wf_pad(&b, line);
	hf_buf_append(&b, "return (", 8);
	hf_buf_append(&b, src, n);
	/* a trailing "-- comment" would swallow the parenthesis */
	if (memmem(src, n, "--", 2))
		hf_buf_append(&b, "\n", 1);
	hf_buf_append(&b, ")", 1);
	int el;
	char msg[512];
	if (wf_lua_syntax(c, b.data, b.len, &el, msg, sizeof msg) != 0) {
		wf_diag(c, clamp(el, line, wf_last_line(line, src, n)), col,
			"lua syntax error in '%s': %s", what, msg);
		hf_buf_release(&b);
		return NULL;
	}
	return b.data;
}

struct hf_expr *wf_parse_expr(struct wf_ctx *c, const yaml_node_t *n,
			      const char *what)
{
	const char *s = wf_want_str(c, n, what);
	if (!s)
		return NULL;
	int line, col;
	wf_text_pos(c, n, &line, &col);
	char *chunk = wf_expr_chunk(c, s, slen(n), line, col, what);
	if (!chunk)
		return NULL;
	struct hf_expr *e = hf_xcalloc(1, sizeof *e);
	e->src = hf_xstrdup(s);
	e->chunk = chunk;
	e->line = line;
	e->col = col;
	return e;
}

void wf_expr_free(struct hf_expr *e)
{
	if (!e)
		return;
	free(e->src);
	free(e->chunk);
	free(e);
}
