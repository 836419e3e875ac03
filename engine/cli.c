/* cli.c - the subcommand table (hf_cli_main dispatches on it, as git.c does)
 * and the helpers the commands share: opening the state database, printing
 * JSON and diagnostics, finding the scripts beside the workflows.
 *
 * The commands live in cmd_*.c, their options' parser in flags.c. Commands
 * that read history open the state database directly, so they work with or
 * without a server; the ones that write (replay, retry) leave new runs for a
 * running server to pick up within a second, or for the next `serve`. Runs on
 * the main thread. */
#include "cli_int.h"
#include "hf_esc.h"
#include "hf_limits.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef HF_VERSION
#define HF_VERSION "0.1.0"
#endif

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
    {"serve", hf_cmd_serve, "receive webhooks and run their workflows"},
    {"check", hf_cmd_check, "validate workflow files or directories"},
    {"run", hf_cmd_run, "run one workflow on an event file, here and now"},
    {"runs", hf_cmd_runs, "list recent runs (--follow: as they finish)"},
    {"show", hf_cmd_show, "show one run and its steps"},
    {"replay", hf_cmd_replay, "run the workflows again for a stored event"},
    {"retry", hf_cmd_retry, "re-run a failed run from its failed step"},
    {"cancel", hf_cmd_cancel, "end a run that has not finished (cancelled)"},
    {"deliveries", hf_cmd_deliveries,
     "list, show (show ID) or send again (retry ID) emitted webhooks"},
};

static void usage(FILE *f)
{
	fputs("usage: hookflow COMMAND [ARGS]\n\n", f);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
	fputs("  --help | --version\n"
	      "\n"
	      "'hookflow COMMAND --help' lists a command's options. Flags can\n"
	      "also come from the environment as HOOKFLOW_<FLAG>\n"
	      "(HOOKFLOW_LISTEN, HOOKFLOW_STATE, ...; see --help); a flag "
	      "wins.\n",
	      f);
}

int hf_cli_main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("hookflow %s\n", HF_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc, argv);
	fprintf(stderr, "hookflow: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}

/* --- helpers --- */

struct hf_store *hf_cli_open_state(const char *path)
{
	/* A URL (postgres://…) is the store's to accept or refuse; a file must
	 * exist: reading commands do not create an empty database. */
	const char *file = strncmp(path, "sqlite:", 7) == 0 ? path + 7 : path;
	if (!strstr(path, "://") && strcmp(file, ":memory:") != 0 &&
	    access(file, F_OK) != 0) {
		fprintf(stderr,
			"hookflow: no state database at '%s' (use --state "
			"FILE)\n",
			path);
		return NULL;
	}
	struct hf_error err = {0};
	struct hf_store *s = hf_store_open(path, true, false, &err);
	if (!s) {
		char line[2048];
		hf_error_format(&err, line, sizeof line);
		fprintf(stderr, "hookflow: %s\n", line);
	}
	return s;
}

int hf_cli_with_state(const struct hf_cmd_spec *spec, int first, int argc,
		      char **argv,
		      int (*fn)(struct hf_store *s, const struct hf_args *a))
{
	size_t state = 0;
	while (state < spec->nopts && strcmp(spec->opts[state].name, "state"))
		state++;
	assert(state < spec->nopts);
	struct hf_args a;
	int rc;
	if (!hf_args_parse(spec, argc, argv, first, &a, &rc))
		return rc;
	struct hf_store *s = hf_cli_open_state(a.v[spec->opts[state].id].str);
	rc = s ? fn(s, &a) : 1;
	hf_store_close(s);
	hf_args_release(&a);
	return rc;
}

void hf_cli_print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
	if (s)
		puts(s);
	free(s);
}

void hf_cli_show(json_t *v, bool as_json, void (*print)(json_t *v))
{
	if (as_json)
		hf_cli_print_json(v);
	else
		print(v);
	json_decref(v);
}

const char *hf_cli_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

/* Takes ownership of s (malloc'd) and returns it. */
static const char *keep(struct hf_cli_text *t, char *s)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 8;
		t->s = hf_xrealloc(t->s, t->cap * sizeof *t->s);
	}
	t->s[t->n++] = s;
	return s;
}

const char *hf_cli_text_of(struct hf_cli_text *t, const char *s)
{
	return keep(t, hf_esc(s ? s : "-", HF_ESC_TEXT));
}

const char *hf_cli_text(struct hf_cli_text *t, json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		return hf_cli_text_of(t, NULL);
	/* Whole, a NUL within the string included (shown as \x00). */
	struct hf_buf b = {0};
	hf_esc_append(&b, json_string_value(v), json_string_length(v),
		      HF_ESC_TEXT);
	hf_buf_append(&b, "", 0);
	return keep(t, b.data);
}

const char *hf_cli_text_json(struct hf_cli_text *t, json_t *v)
{
	char *s =
	    json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
	const char *out = keep(t, hf_esc(s ? s : "null", HF_ESC_JSON_TEXT));
	free(s);
	return out;
}

void hf_cli_text_release(struct hf_cli_text *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->s[i]);
	free(t->s);
	t->s = NULL;
	t->n = t->cap = 0;
}

void hf_cli_print_diags(const struct hf_diags *d, FILE *f)
{
	for (size_t i = 0; i < d->n; i++) {
		char line[2048];
		hf_error_format(&d->items[i], line, sizeof line);
		char *shown = hf_esc(line, HF_ESC_TEXT);
		fprintf(f, "%s\n", shown);
		free(shown);
	}
}

bool hf_cli_is_yaml(const char *path)
{
	size_t len = strlen(path);
	return (len > 4 && strcmp(path + len - 4, ".yml") == 0) ||
	       (len > 5 && strcmp(path + len - 5, ".yaml") == 0);
}

char *hf_cli_scripts_for(const char *path, const char *flag)
{
	if (flag)
		return hf_xstrdup(flag);
	char *copy = hf_xstrdup(path);
	size_t len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	if (hf_cli_is_yaml(copy)) {
		char *slash = strrchr(copy, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(copy, len + 1, ".");
	}
	char *slash = strrchr(copy, '/');
	char *cand =
	    slash ? hf_xasprintf("%.*s/scripts", (int)(slash - copy), copy)
		  : hf_xstrdup("scripts");
	free(copy);
	if (access(cand, F_OK) == 0)
		return cand;
	free(cand);
	return hf_xstrdup("./scripts");
}

const char *hf_cli_proxy_var(void)
{
	/* curl's own list; it ignores HTTP_PROXY in upper case (which CGI
	 * would take from a request's Proxy header). */
	static const char *const vars[] = {"http_proxy", "https_proxy",
					   "HTTPS_PROXY", "all_proxy",
					   "ALL_PROXY"};
	for (size_t i = 0; i < HF_COUNT(vars); i++) {
		const char *v = getenv(vars[i]);
		if (v && *v)
			return vars[i];
	}
	return NULL;
}
