/* wf_load.c - workflow YAML files turned into immutable, validated struct
 * hf_workflow values, every problem reported as FILE:LINE:COL; freeing them
 * and their reference counts.
 *
 * Owns: reading the one YAML document, the defaults, the scratch Lua state
 * and the version hash of a parse. Does not own: the sections (workflow.c),
 * the set of a directory (wf_set.c).
 *
 * Threading: loading is reentrant. A loaded workflow never changes and may be
 * shared between threads; ref/unref are atomic. */
#include "hf_limits.h"
#include "hf_verify.h"
#include "hf_yaml_json.h"
#include "wf_int.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A step's wait_for.verify (the workflow's own is freed inline below). */
static void verify_conf_free(struct hf_verify_conf *v)
{
	for (size_t i = 0; i < v->nsecrets; i++) {
		explicit_bzero(v->secrets[i], strlen(v->secrets[i]));
		free(v->secrets[i]);
	}
	free(v->secrets);
	free(v->header);
	free(v->prefix);
	free(v->timestamp_header);
	free(v->signed_tmpl);
	free(v->url);
	free(v->query);
}

static void wf_free(struct hf_workflow *wf)
{
	free(wf->name);
	free(wf->description);
	free(wf->file);
	free(wf->version);
	free(wf->source);
	free(wf->path);
	for (size_t i = 0; i < wf->verify.nsecrets; i++) {
		explicit_bzero(wf->verify.secrets[i],
			       strlen(wf->verify.secrets[i]));
		free(wf->verify.secrets[i]);
	}
	free(wf->verify.secrets);
	free(wf->verify.header);
	free(wf->verify.prefix);
	free(wf->verify.timestamp_header);
	free(wf->verify.signed_tmpl);
	free(wf->verify.url);
	free(wf->verify.query);
	wf_expr_free(wf->dedupe);
	wf_expr_free(wf->if_expr);
	wf_expr_free(wf->concurrency_key);
	wf_flow_free(wf);
	for (size_t i = 0; i < hf_workflow_nall(wf); i++) {
		struct hf_step *st = &wf->steps[i];
		free(st->id);
		free(st->code);
		free(st->code_name);
		free(st->script);
		wf_expr_free(st->if_expr);
		wf_throttle_free(st->throttle);
		free(st->with_chunk);
		free(st->wait_path);
		wf_expr_free(st->wait_if);
		verify_conf_free(&st->wait_verify);
	}
	free(wf->steps);
	for (size_t i = 0; i < wf->nschedules; i++) {
		free(wf->schedules[i].cron);
		free(wf->schedules[i].timezone);
		hf_tz_free(wf->schedules[i].tz);
	}
	free(wf->schedules);
	free(wf); /* the struct wf_priv it is the start of */
}

static void yaml_problem(struct wf_ctx *c, const yaml_parser_t *ps)
{
	int line = (int)ps->problem_mark.line + 1;
	int col = (int)ps->problem_mark.column + 1;
	if (ps->error == YAML_READER_ERROR) {
		/* reader errors carry a byte offset, not a mark */
		size_t end =
		    ps->problem_offset < c->len ? ps->problem_offset : c->len;
		size_t ls = 0;
		line = 1;
		for (size_t i = 0; i < end; i++)
			if (c->text[i] == '\n') {
				line++;
				ls = i + 1;
			}
		col = (int)(end - ls) + 1;
	}
	if (ps->error == YAML_MEMORY_ERROR)
		wf_diag(c, 0, 0, "out of memory while reading YAML");
	else if (ps->context)
		wf_diag(c, line, col, "invalid YAML: %s (%s at line %d)",
			ps->problem ? ps->problem : "syntax error", ps->context,
			(int)ps->context_mark.line + 1);
	else
		wf_diag(c, line, col, "invalid YAML: %s",
			ps->problem ? ps->problem : "syntax error");
}

/* Reads the one document of the file into c->doc. Returns 0 or -1. */
static int load_doc(struct wf_ctx *c)
{
	yaml_parser_t ps;
	yaml_document_t extra;
	int rc = -1;
	int line, col;
	if (hf_yaml_depth_over(c->text, c->len, HF_YAML_MAX_DEPTH, &line,
			       &col)) {
		wf_diag(c, line, col, "nested too deeply (at most %d levels)",
			HF_YAML_MAX_DEPTH);
		return -1;
	}
	if (!yaml_parser_initialize(&ps))
		abort(); /* out of memory, as hf_xmalloc */
	yaml_parser_set_input_string(&ps, (const unsigned char *)c->text,
				     c->len);
	if (!yaml_parser_load(&ps, &c->doc)) {
		yaml_problem(c, &ps);
		goto out;
	}
	rc = 0;
	if (!yaml_document_get_root_node(&c->doc))
		goto out;
	if (!yaml_parser_load(&ps, &extra)) {
		yaml_problem(c, &ps);
		goto out;
	}
	yaml_node_t *r = yaml_document_get_root_node(&extra);
	if (r)
		wf_diag(c, (int)r->start_mark.line + 1,
			(int)r->start_mark.column + 1,
			"a workflow file holds one YAML document");
	yaml_document_delete(&extra);
out:
	yaml_parser_delete(&ps);
	return rc;
}

static struct hf_workflow *parse_ctx(struct wf_ctx c);

struct hf_workflow *hf_workflow_parse(const char *file, const char *text,
				      size_t len, const char *scripts_dir,
				      struct hf_diags *diags)
{
	return parse_ctx((struct wf_ctx){
	    .file = file ? file : "<input>",
	    .text = text ? text : "",
	    .len = text ? len : 0,
	    .scripts_dir = scripts_dir,
	    .diags = diags,
	});
}

struct hf_workflow *
hf_workflow_parse_stored(const char *file, const char *text, size_t len,
			 const char *scripts_dir,
			 const struct hf_script_src *scripts, size_t nscripts,
			 struct hf_diags *diags)
{
	static const struct hf_script_src none;
	return parse_ctx((struct wf_ctx){
	    .file = file ? file : "<input>",
	    .text = text ? text : "",
	    .len = text ? len : 0,
	    .scripts_dir = scripts_dir,
	    .stored = scripts ? scripts : &none,
	    .nstored = scripts ? nscripts : 0,
	    .diags = diags,
	});
}

static struct hf_workflow *parse_ctx(struct wf_ctx c)
{
	size_t first_diag = c.diags ? c.diags->n : 0;
	bool have_doc = false;
	struct wf_priv *p = hf_xcalloc(1, sizeof *p);
	struct hf_workflow *wf = &p->pub;
	c.p = p;
	wf->refs = 1;
	wf->file = hf_xstrdup(c.file);
	wf->methods = HF_METHOD_POST;
	wf->respond_timeout_ms = HF_SYNC_RESPOND_TIMEOUT_MS;
	wf->timeout_ms = HF_RUN_TIMEOUT_MS;
	wf->concurrency_max = 1;
	wf->verify.tolerance_ms = HF_VERIFY_TOLERANCE_MS;

	if (c.len > HF_MAX_WORKFLOW_FILE) {
		wf_diag(&c, 0, 0, "file is too large (at most %d bytes)",
			HF_MAX_WORKFLOW_FILE);
		goto out;
	}
	if (load_doc(&c) != 0)
		goto out;
	have_doc = true;
	yaml_node_t *root = yaml_document_get_root_node(&c.doc);
	if (!root || root->type != YAML_MAPPING_NODE) {
		wf_diag(&c, root ? (int)root->start_mark.line + 1 : 1,
			root ? (int)root->start_mark.column + 1 : 1,
			"a workflow must be a YAML mapping (with name, on and "
			"steps)");
		goto out;
	}
	c.L = luaL_newstate();
	c.md = hf_sha256_begin();
	if (!c.L)
		abort(); /* out of memory, as hf_xmalloc */
	hf_sha256_update(c.md, c.text, c.len);
	wf_parse_top(&c, root);
	if (!c.errors) {
		wf->version = hf_xmalloc(65);
		hf_sha256_end(c.md, wf->version);
		c.md = NULL;
		wf->source = hf_xstrndup(c.text, c.len);
		wf->source_len = c.len;
	}
out:
	if (have_doc)
		yaml_document_delete(&c.doc);
	if (c.L)
		lua_close(c.L);
	if (c.md) {
		char unused[65];
		hf_sha256_end(c.md, unused);
	}
	free(c.lines);
	if (c.errors) {
		wf_sort_diags(&c, first_diag);
		wf_free(wf);
		return NULL;
	}
	return wf;
}

struct hf_workflow *hf_workflow_load(const char *file, const char *scripts_dir,
				     struct hf_diags *diags)
{
	struct stat st;
	char ebuf[128];
	size_t len;
	if (stat(file, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size > HF_MAX_WORKFLOW_FILE) {
		hf_diags_add(diags, file, 0, 0,
			     "file is too large (at most %d bytes)",
			     HF_MAX_WORKFLOW_FILE);
		return NULL;
	}
	/* Bounded also where stat cannot tell (a device, a pipe). */
	char *text = hf_read_file_max(file, HF_MAX_WORKFLOW_FILE, &len);
	if (!text && errno == EFBIG) {
		hf_diags_add(diags, file, 0, 0,
			     "file is too large (at most %d bytes)",
			     HF_MAX_WORKFLOW_FILE);
		return NULL;
	}
	if (!text) {
		hf_diags_add(diags, file, 0, 0, "cannot read file: %s",
			     errstr(errno, ebuf, sizeof ebuf));
		return NULL;
	}
	struct hf_workflow *wf =
	    hf_workflow_parse(file, text, len, scripts_dir, diags);
	free(text);
	return wf;
}

struct hf_workflow *hf_workflow_ref(struct hf_workflow *wf)
{
	if (wf)
		atomic_fetch_add_explicit(refs_of(&wf->refs), 1,
					  memory_order_relaxed);
	return wf;
}

void hf_workflow_unref(struct hf_workflow *wf)
{
	if (wf && atomic_fetch_sub_explicit(refs_of(&wf->refs), 1,
					    memory_order_acq_rel) == 1)
		wf_free(wf);
}
