/* cmd_check.c - `hookflow check`: validates workflow files and directories the
 * way `serve` loads them and prints every problem as FILE:LINE:COL: MSG; with
 * --json, prints each YAML file as one line of JSON instead (no validation).
 *
 * Reads files only: no state database, no server. Main thread. Neighbours:
 * cli.c (table, helpers), flags.c (options), workflow.c and yaml_json.c. */
#include "cli_int.h"
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

static int check_path(const char *path, const char *scripts, int *nfiles,
		      struct hf_diags *diags)
{
	if (hf_cli_is_yaml(path)) {
		struct hf_workflow *wf = hf_workflow_load(path, scripts, diags);
		(*nfiles)++;
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
	int nfiles = 0;
	for (size_t i = 0; i < n; i++) {
		char *scripts = hf_cli_scripts_for(paths[i], scripts_flag);
		check_path(paths[i], scripts, &nfiles, &diags);
		free(scripts);
	}
	hf_cli_print_diags(&diags, stdout);
	int rc = diags.n ? 1 : 0;
	if (!diags.n)
		fprintf(stderr, "hookflow: %d workflow%s valid\n", nfiles,
			nfiles == 1 ? "" : "s");
	else
		fprintf(stderr, "hookflow: %zu problem%s found\n", diags.n,
			diags.n == 1 ? "" : "s");
	hf_diags_release(&diags);
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
