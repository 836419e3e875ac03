/* cmd_check.c - `hookflow check`: validates workflow files and directories the
 * way `serve` loads them and prints every problem as FILE:LINE:COL: MSG, then
 * a warning for each read of a global the sandbox does not define (lua_lint.c)
 * in the Lua of the workflows that loaded, and for each wait_for whose verify
 * also checks a workflow's requests that it verifies another way; all of it
 * escaped for a terminal (hf_cli_print_diags). With --json, prints each YAML
 * file as one line of JSON instead (no validation, no warnings).
 *
 * Reads files only: no state database, no server. Main thread. Neighbours:
 * cli.c (table, helpers), flags.c (options), workflow.c and yaml_json.c. */
#include "cli_int.h"
#include "hf_lua_lint.h"
#include "hf_router.h"
#include "hf_yaml_json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { O_SCRIPTS, O_JSON };

static const struct hf_opt check_opts[] = {
    {"scripts", O_SCRIPTS, HF_OPT_STRING,
     .help = "scripts directory (else the one beside the workflows)",
     .meta = "DIR"},
    {"json", O_JSON, HF_OPT_FLAG,
     .help = "print each YAML FILE as one line of JSON, without validating"},
};

static const struct hf_cmd_spec check_spec = {
    HF_CMD("check", "[PATH...]", 0, SIZE_MAX, check_opts),
    .about = "Validates workflow files or directories (default ./workflows).",
};

/* The warnings of one check: where they go, and the script files already
 * linted (a script shared by several steps is reported once). */
struct lint {
	struct hf_diags warn;
	char **seen;
	size_t nseen;
	const char *scripts; /* for require("NAME") */
	/* the chunk being linted */
	const char *file;
	const char *yaml; /* the YAML text (inline Lua), or NULL (a script) */
	size_t yaml_len;
	int line0; /* chunk line l is file line line0 + l */
	int col0;  /* chunk column c is file column col0 + c */
	bool with; /* a `with:` chunk: columns found from "${{" */
	unsigned where;
	/* the workflows loaded, each with its scope (the directory served
	 * together), for the checks across workflows (signal_warnings) */
	struct hf_workflow **wfs;
	char **scopes;
	size_t nwfs;
};

static bool ident_char(char c)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* The first whole-word occurrence of name in s[at, end), or -1. */
static long find_word(const char *s, size_t at, size_t end, const char *name,
		      size_t n)
{
	for (; at + n <= end; at++)
		if (memcmp(s + at, name, n) == 0 &&
		    (at == 0 || !ident_char(s[at - 1])) &&
		    (at + n == end || !ident_char(s[at + n])))
			return (long)at;
	return -1;
}

/* Inline Lua maps to the YAML by a column offset, which escapes in a quoted
 * scalar shift: when the name is not at *col of the YAML line, takes its
 * first whole-word occurrence on that line at or after column from, or with
 * from 0 (`with:`), inside the line's first `${{ }}` that has it. */
static void yaml_col(const struct lint *l, int line, int from, int *col,
		     const char *name, size_t n)
{
	const char *s = l->yaml, *end = l->yaml + l->yaml_len;
	for (int i = 1; i < line && s < end; i++) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		s = nl ? nl + 1 : end;
	}
	const char *eol = memchr(s, '\n', (size_t)(end - s));
	size_t len = eol ? (size_t)(eol - s) : (size_t)(end - s);
	long at = -1;
	if (*col > 0 && (size_t)*col - 1 + n <= len &&
	    memcmp(s + *col - 1, name, n) == 0)
		return;
	if (from > 0) {
		at = find_word(s, (size_t)from - 1, len, name, n);
	} else {
		const char *p = s, *e = s + len, *o, *c;
		while (at < 0 && (o = memmem(p, (size_t)(e - p), "${{", 3))) {
			c = memmem(o + 3, (size_t)(e - o - 3), "}}", 2);
			size_t stop = c ? (size_t)(c - s) : len;
			at = find_word(s, (size_t)(o + 3 - s), stop, name, n);
			p = c ? c + 2 : e;
		}
	}
	if (at >= 0)
		*col = (int)at + 1;
}

static const char *where_name(unsigned where)
{
	return where == HF_LUA_IN_EXPR	   ? "a workflow-level expression"
	       : where == HF_LUA_IN_IF	   ? "a step's if:"
	       : where == HF_LUA_IN_SIGNAL ? "a wait_for's or cancel_on's if:"
					   : "a step's code";
}

/* Where a name defined only in some chunks is, for the warning's hint. */
static const char *defined_name(unsigned defined)
{
	return defined == HF_LUA_IN_SIGNAL
		   ? "wait_for's and cancel_on's if: only"
	       : defined & HF_LUA_IN_IF ? "steps only"
					: "a step's code only";
}

static void on_unknown(void *ud, const struct hf_lua_unknown *u)
{
	struct lint *l = ud;
	int line = l->line0 + u->line, col = l->with ? 0 : l->col0 + u->col;
	if (l->yaml)
		yaml_col(l, line, l->with ? 0 : l->col0 + 1, &col, u->name,
			 u->len);
	char hint[128] = "";
	if (u->defined)
		snprintf(hint, sizeof hint, " in %s (defined in %s)",
			 l->with ? "a step's with:" : where_name(l->where),
			 defined_name(u->defined));
	else if (u->suggest)
		snprintf(hint, sizeof hint, " (did you mean '%s'?)",
			 u->suggest);
	hf_diags_add(&l->warn, l->file, line, col,
		     "warning: unknown global '%.*s'%s", (int)u->len, u->name,
		     hint);
}

static void lint_expr(struct lint *l, const struct hf_workflow *wf,
		      const struct hf_expr *e, unsigned where)
{
	if (!e || !e->src)
		return;
	l->file = wf->file;
	l->yaml = wf->source;
	l->yaml_len = wf->source_len;
	l->line0 = e->line - 1;
	l->col0 = e->col - 1;
	l->with = false;
	l->where = where;
	hf_lua_lint(e->src, strlen(e->src), where, on_unknown, l);
}

static void lint_file(struct lint *l, const char *path);

static void on_require(void *ud, const char *name, size_t n)
{
	struct lint *l = ud;
	if (!l->scripts || n == 0 || n > 200 || memchr(name, '/', n) ||
	    memmem(name, n, "..", 2))
		return;
	char *path = hf_xasprintf("%s/%.*s.lua", l->scripts, (int)n, name);
	for (char *p = path + strlen(l->scripts) + 1; *p; p++)
		if (*p == '.' && strcmp(p, ".lua") != 0)
			*p = '/';
	lint_file(l, path);
	free(path);
}

/* Lints a script file once, then the modules it requires by literal name. */
static void lint_file(struct lint *l, const char *path)
{
	for (size_t i = 0; i < l->nseen; i++)
		if (strcmp(l->seen[i], path) == 0)
			return;
	l->seen = hf_xrealloc(l->seen, (l->nseen + 1) * sizeof *l->seen);
	l->seen[l->nseen++] = hf_xstrdup(path);
	size_t len;
	char *code = hf_read_file(path, &len);
	if (!code)
		return;
	l->file = path;
	l->yaml = NULL;
	l->line0 = l->col0 = 0;
	l->where = HF_LUA_IN_STEP;
	hf_lua_lint(code, len, HF_LUA_IN_STEP, on_unknown, l);
	hf_lua_lint_requires(code, len, on_require, l);
	free(code);
}

static int by_pos(const void *a, const void *b)
{
	const struct hf_error *x = a, *y = b;
	return x->line != y->line ? (x->line > y->line) - (x->line < y->line)
				  : (x->col > y->col) - (x->col < y->col);
}

/* `with:` runs where the step's if: does (args is built from it). */
static void lint_with(struct lint *l, const struct hf_workflow *wf,
		      const struct hf_step *st)
{
	if (!st->with_chunk)
		return;
	l->file = wf->file;
	l->yaml = wf->source;
	l->yaml_len = wf->source_len;
	l->line0 = 0; /* the chunk keeps the YAML's lines */
	l->col0 = 0;
	l->with = true;
	l->where = HF_LUA_IN_IF;
	hf_lua_lint(st->with_chunk, strlen(st->with_chunk), HF_LUA_IN_IF,
		    on_unknown, l);
}

/* The workflow's own Lua in file order, then its scripts. */
static void lint_workflow(struct lint *l, const struct hf_workflow *wf)
{
	struct hf_diags all = l->warn;
	l->warn = (struct hf_diags){0};
	lint_expr(l, wf, wf->if_expr, HF_LUA_IN_EXPR);
	lint_expr(l, wf, wf->dedupe, HF_LUA_IN_EXPR);
	lint_expr(l, wf, wf->concurrency_key, HF_LUA_IN_EXPR);
	if (wf->throttle)
		lint_expr(l, wf, wf->throttle->key, HF_LUA_IN_EXPR);
	if (wf->debounce)
		lint_expr(l, wf, wf->debounce->key, HF_LUA_IN_EXPR);
	for (size_t i = 0; i < wf->ncancel_on; i++)
		lint_expr(l, wf, wf->cancel_on[i].if_expr, HF_LUA_IN_SIGNAL);
	for (size_t i = 0; i < hf_workflow_nall(wf); i++) {
		const struct hf_step *st = &wf->steps[i];
		lint_expr(l, wf, st->if_expr, HF_LUA_IN_IF);
		lint_expr(l, wf, st->wait_if, HF_LUA_IN_SIGNAL);
		if (st->throttle)
			lint_expr(l, wf, st->throttle->key, HF_LUA_IN_EXPR);
		lint_with(l, wf, st);
		if (!st->code || st->script)
			continue;
		l->with = false;
		l->file = wf->file;
		l->yaml = wf->source;
		l->yaml_len = wf->source_len;
		l->line0 = 0; /* the chunk is padded to the YAML's lines */
		l->col0 = st->code_col > 0 ? st->code_col - 1 : 0;
		l->where = HF_LUA_IN_STEP;
		hf_lua_lint(st->code, strlen(st->code), HF_LUA_IN_STEP,
			    on_unknown, l);
	}
	if (l->warn.n)
		qsort(l->warn.items, l->warn.n, sizeof *l->warn.items, by_pos);
	for (size_t i = 0; i < l->warn.n; i++) {
		const struct hf_error *e = &l->warn.items[i];
		hf_diags_add(&all, e->file, e->line, e->col, "%s", e->msg);
	}
	hf_diags_release(&l->warn);
	l->warn = all;
	for (size_t i = 0; i < hf_workflow_nall(wf); i++) {
		const struct hf_step *st = &wf->steps[i];
		if (st->code && st->script && st->code_name &&
		    st->code_name[0] == '@')
			lint_file(l, st->code_name + 1);
		else if (st->code)
			hf_lua_lint_requires(st->code, strlen(st->code),
					     on_require, l);
	}
}

/* Keeps wf (a new reference) for the checks across workflows, with its
 * scope: the directory path (a directory) or the directory of path (a file),
 * trailing '/'s dropped: the workflows one server loads together. */
static void keep_wf(struct lint *l, struct hf_workflow *wf, const char *path)
{
	char *scope = hf_xstrdup(path);
	if (hf_cli_is_yaml(scope)) {
		char *slash = strrchr(scope, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(scope, strlen(scope) + 1, ".");
	}
	size_t n = strlen(scope);
	while (n > 1 && scope[n - 1] == '/')
		scope[--n] = '\0';
	l->wfs = hf_xrealloc(l->wfs, (l->nwfs + 1) * sizeof *l->wfs);
	l->scopes = hf_xrealloc(l->scopes, (l->nwfs + 1) * sizeof *l->scopes);
	l->wfs[l->nwfs] = hf_workflow_ref(wf);
	l->scopes[l->nwfs++] = scope;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Whether one credential passes both a and b: the same check, the same
 * secrets (as read from the environment; `check` reads an unset one as
 * "unset"). */
static bool same_verify(const struct hf_verify_conf *a,
			const struct hf_verify_conf *b)
{
	if (a->scheme != b->scheme || a->nsecrets != b->nsecrets ||
	    a->algorithm != b->algorithm || a->encoding != b->encoding ||
	    a->timestamp_unit != b->timestamp_unit ||
	    !same_str(a->header, b->header) ||
	    !same_str(a->prefix, b->prefix) ||
	    !same_str(a->timestamp_header, b->timestamp_header) ||
	    !same_str(a->signed_tmpl, b->signed_tmpl) ||
	    !same_str(a->url, b->url) || !same_str(a->query, b->query))
		return false;
	for (size_t i = 0; i < a->nsecrets; i++)
		if (!same_str(a->secrets[i], b->secrets[i]))
			return false;
	return true;
}

/* Whether a request to the literal path reaches wf's webhook path. */
static bool path_reaches(const struct hf_workflow *wf, const char *path)
{
	if (!wf->path)
		return false;
	if (hf_path_is_pattern(wf->path)) {
		json_t *p = hf_path_params(wf->path, path);
		bool hit = json_object_size(p) > 0;
		json_decref(p);
		return hit;
	}
	size_t a = strlen(wf->path), b = strlen(path);
	while (a > 1 && wf->path[a - 1] == '/')
		a--;
	while (b > 1 && path[b - 1] == '/')
		b--;
	return a == b && memcmp(wf->path, path, a) == 0;
}

/* A wait_for's verify runs first on every request to its path (ingest.c),
 * so a workflow verifying that path in another way gets only the requests
 * that pass both, and one that does not verify it gets only the requests
 * that pass the wait_for's: warns at the wait_for's verify. */
static void signal_warnings(struct lint *l)
{
	for (size_t i = 0; i < l->nwfs; i++) {
		const struct hf_workflow *wf = l->wfs[i];
		for (size_t k = 0; k < wf->nsteps; k++) {
			const struct hf_step *st = &wf->steps[k];
			if (st->park != HF_PARK_WAIT_FOR || !st->wait_path ||
			    st->wait_verify.scheme == HF_VERIFY_NONE)
				continue;
			for (size_t j = 0; j < l->nwfs; j++) {
				const struct hf_workflow *o = l->wfs[j];
				if (strcmp(l->scopes[i], l->scopes[j]) != 0 ||
				    !path_reaches(o, st->wait_path) ||
				    same_verify(&o->verify, &st->wait_verify))
					continue;
				bool none = o->verify.scheme == HF_VERIFY_NONE;
				hf_diags_add(
				    &l->warn, wf->file, st->wait_verify_line,
				    st->wait_verify_col,
				    "warning: step '%s': this verify also "
				    "checks the requests of workflow '%s' "
				    "(%s) to '%s', %s",
				    st->id, o->name, o->file, st->wait_path,
				    none ? "which does not verify them: its "
					   "sender must pass this one"
					 : "which verifies them another way: "
					   "its sender must pass both, this "
					   "one first");
			}
		}
	}
}

static int check_path(const char *path, const char *scripts, int *nfiles,
		      struct hf_diags *diags, struct lint *l)
{
	l->scripts = scripts;
	if (hf_cli_is_yaml(path)) {
		struct hf_workflow *wf = hf_workflow_load(path, scripts, diags);
		(*nfiles)++;
		if (wf) {
			lint_workflow(l, wf);
			keep_wf(l, wf, path);
		}
		hf_workflow_unref(wf);
		return 0;
	}
	size_t before = diags->n;
	struct hf_workflow_set *set =
	    hf_workflow_set_load(path, scripts, NULL, diags);
	if (!set) {
		hf_diags_add(diags, path, 0, 0,
			     "cannot read (not a directory or a .yml file)");
		return -1;
	}
	*nfiles += (int)set->n + (int)(diags->n > before);
	for (size_t i = 0; i < set->n; i++) {
		lint_workflow(l, set->items[i]);
		keep_wf(l, set->items[i], path);
	}
	hf_workflow_set_unref(set);
	return 0;
}

/* `check --json FILE...`: each file's YAML document as one JSON line, as a
 * YAML editor would see it, for JSON Schema tools. Does not validate. */
static int check_json(const char **files, size_t n)
{
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		struct hf_diags diags = {0};
		size_t len;
		char *text = hf_read_file(files[i], &len);
		json_t *v = NULL;
		if (!text)
			hf_diags_add(&diags, files[i], 0, 0, "cannot read: %s",
				     strerror(errno));
		else
			v = hf_yaml_to_json(text, len, files[i], &diags);
		char *s =
		    v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		if (s)
			printf("%s\n", s);
		hf_cli_print_diags(&diags, stderr);
		if (!s)
			rc = 1;
		free(s);
		json_decref(v);
		free(text);
		hf_diags_release(&diags);
	}
	return rc;
}

static int check_paths(const char **paths, size_t n, const char *scripts_flag)
{
	hf_workflow_set_env_optional(true);
	struct hf_diags diags = {0};
	struct lint l = {0};
	int nfiles = 0;
	for (size_t i = 0; i < n; i++) {
		char *scripts = hf_cli_scripts_for(paths[i], scripts_flag);
		check_path(paths[i], scripts, &nfiles, &diags, &l);
		free(scripts);
	}
	signal_warnings(&l);
	hf_cli_print_diags(&diags, stdout);
	hf_cli_print_diags(&l.warn, stdout);
	int rc = diags.n ? 1 : 0;
	char warned[64] = "";
	if (l.warn.n)
		snprintf(warned, sizeof warned, ", %zu warning%s", l.warn.n,
			 l.warn.n == 1 ? "" : "s");
	if (!diags.n)
		fprintf(stderr, "hookflow: %d workflow%s valid%s\n", nfiles,
			nfiles == 1 ? "" : "s", warned);
	else
		fprintf(stderr, "hookflow: %zu problem%s found%s\n", diags.n,
			diags.n == 1 ? "" : "s", warned);
	hf_diags_release(&diags);
	hf_diags_release(&l.warn);
	for (size_t i = 0; i < l.nseen; i++)
		free(l.seen[i]);
	free(l.seen);
	for (size_t i = 0; i < l.nwfs; i++) {
		hf_workflow_unref(l.wfs[i]);
		free(l.scopes[i]);
	}
	free(l.wfs);
	free(l.scopes);
	return rc;
}

int hf_cmd_check(int argc, char **argv)
{
	struct hf_args a;
	int rc;
	if (!hf_args_parse(&check_spec, argc, argv, 2, &a, &rc))
		return rc;
	if (a.v[O_JSON].set && a.npos == 0) {
		fprintf(stderr, "usage: hookflow check --json FILE...\n");
		rc = 2;
	} else if (a.v[O_JSON].set) {
		rc = check_json(a.pos, a.npos);
	} else if (a.npos == 0) {
		const char *dflt = "./workflows";
		rc = check_paths(&dflt, 1, a.v[O_SCRIPTS].str);
	} else {
		rc = check_paths(a.pos, a.npos, a.v[O_SCRIPTS].str);
	}
	hf_args_release(&a);
	return rc;
}
