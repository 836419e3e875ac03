/* cli_int.h - internals shared by the command-line files: cli.c (the command
 * table, shared helpers), flags.c (option tables and their parser) and
 * cmd_*.c (the commands). Not for other modules: they see hf_cli.h only. */
#ifndef HF_CLI_INT_H
#define HF_CLI_INT_H

#include "hf_cli.h"
#include "hf_store.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* --- option tables (flags.c) --- */

enum hf_opt_kind {
	HF_OPT_FLAG,	 /* --name, no value */
	HF_OPT_STRING,	 /* any text */
	HF_OPT_CHOICE,	 /* one of `choices` */
	HF_OPT_INT,	 /* a decimal integer in [min, max] */
	HF_OPT_DURATION, /* "500ms", "30s", "7d": ms in [min, max] */
	HF_OPT_SIZE,	 /* "512", "64KiB", "1MiB": bytes in [min, max] */
	HF_OPT_REPEAT,	 /* text, given any number of times */
};

#define HF_OPT_ENV 1u	   /* falls back to HOOKFLOW_<NAME> */
#define HF_OPT_REQUIRED 2u /* must be given */

/* One option of a command. Values come from the command line, else (with
 * HF_OPT_ENV) from the environment variable HOOKFLOW_<NAME> (upper-case, '-'
 * as '_'; empty counts as unset), else the default. Every value is checked
 * where it is read, the default included. */
struct hf_opt {
	const char *name; /* without "--" */
	int id;		  /* where its value goes: hf_args.v[id] */
	enum hf_opt_kind kind;
	/* STRING, CHOICE: the default value. INT, DURATION, SIZE: how --help
	 * shows a default that ndef does not say ("number of CPUs"). */
	const char *def;
	int64_t ndef;	  /* INT, DURATION, SIZE: the default */
	const char *help; /* one line for --help */
	const char *meta; /* the value in --help: "FILE", "N"; NULL: "VALUE" */
	int64_t min, max; /* INT, DURATION, SIZE */
	const char *choices; /* CHOICE: "full|normal" */
	unsigned flags;	     /* HF_OPT_ENV, HF_OPT_REQUIRED */
};

/* --state FILE, which every command that reads history takes. */
#define HF_OPT_STATE(id)                                                       \
	{                                                                      \
		"state", (id), HF_OPT_STRING, "./hookflow.db",                 \
		    .help = "the state database: a file or postgres://…",      \
		    .meta = "FILE", .flags = HF_OPT_ENV                        \
	}

/* The number of entries of an array. */
#define HF_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The most options a command has. */
#define HF_OPTS_MAX 32

/* A parsed value. */
struct hf_optval {
	bool set;	   /* given (command line or environment) */
	const char *str;   /* the text, or a STRING/CHOICE default; or NULL */
	int64_t num;	   /* INT, DURATION (ms), SIZE (bytes) */
	const char **list; /* REPEAT: every value, in order */
	size_t n;
};

/* A command's command line: its name, positional arguments, options. */
struct hf_cmd_spec {
	const char *cmd;  /* as typed after "hookflow": "deliveries show" */
	const char *args; /* the positional arguments in usage: "RUN_ID" */
	const char *about;
	const struct hf_opt *opts;
	size_t nopts;
	size_t minpos, maxpos; /* how many positional arguments */
};

/* The start of a hf_cmd_spec initializer: its name, positional arguments (as
 * usage shows them, and how many: lo to hi) and options (an array). */
#define HF_CMD(name, usage, lo, hi, options)                                   \
	.cmd = (name), .args = (usage), .minpos = (lo), .maxpos = (hi),        \
	.opts = (options), .nopts = HF_COUNT(options)

struct hf_args {
	struct hf_optval v[HF_OPTS_MAX]; /* by hf_opt.id */
	const char **pos;		 /* positional arguments */
	size_t npos;
};

/* Parses argv[first..] by spec into a. Returns true to go on (release a
 * afterwards), or false with *rc the exit status: 0 after printing --help, 2
 * after printing a usage error. */
bool hf_args_parse(const struct hf_cmd_spec *spec, int argc, char **argv,
		   int first, struct hf_args *a, int *rc);
void hf_args_release(struct hf_args *a);
/* Prints "usage: hookflow CMD ARGS [--OPTION ...]" to f. */
void hf_args_usage(const struct hf_cmd_spec *spec, FILE *f);

/* --- the commands (argv[1] is the command's name) --- */

int hf_cmd_serve(int argc, char **argv);
int hf_cmd_check(int argc, char **argv);
int hf_cmd_run(int argc, char **argv);
int hf_cmd_runs(int argc, char **argv);
int hf_cmd_show(int argc, char **argv);
int hf_cmd_cancel(int argc, char **argv);
int hf_cmd_deliveries(int argc, char **argv); /* list, show, retry */
int hf_cmd_replay(int argc, char **argv);
int hf_cmd_retry(int argc, char **argv);
int hf_cmd_delivery_retry(int argc, char **argv); /* deliveries retry ID */

/* --- helpers (cli.c) --- */

/* Opens the state database at path, read and write, without a writer thread;
 * NULL (after printing why) when there is none. */
struct hf_store *hf_cli_open_state(const char *path);
/* A command on the state database: parses argv[first..] by spec, opens the
 * database its "state" option names (hf_cli_open_state) and runs fn, then
 * closes it. Returns fn's exit status; else 1 when the database does not open,
 * or the parser's (0 after --help, 2 after a usage error). */
int hf_cli_with_state(const struct hf_cmd_spec *spec, int first, int argc,
		      char **argv,
		      int (*fn)(struct hf_store *s, const struct hf_args *a));
/* Prints v as indented JSON, one value, to stdout. */
void hf_cli_print_json(json_t *v);
/* Prints v as JSON (as_json) or else with print, then drops the reference. */
void hf_cli_show(json_t *v, bool as_json, void (*print)(json_t *v));
/* A string member of o, or "-". */
const char *hf_cli_str(json_t *o, const char *key);
/* Stored strings made safe for a terminal, for the human-readable output of
 * runs, show, deliveries and run: every string that a sender, a step or a
 * workflow may have written (ids, errors, step logs, outputs, URLs) is
 * printed through it, escaped in hf_esc.h's text style, so that it shows its
 * control characters and stays on its line. The strings are kept until
 * hf_cli_text_release, so that one printf may take several. Zero-initialize. */
struct hf_cli_text {
	char **s;
	size_t n, cap;
};
/* hf_cli_str(o, key) escaped (the whole string, NULs included): owned by
 * t. */
const char *hf_cli_text(struct hf_cli_text *t, json_t *o, const char *key);
/* s escaped ("-" for NULL): owned by t. */
const char *hf_cli_text_of(struct hf_cli_text *t, const char *s);
/* v as compact JSON (null for NULL), with what JSON leaves raw (DEL, C1
 * controls) escaped as \u00XX: the same JSON value, owned by t. */
const char *hf_cli_text_json(struct hf_cli_text *t, json_t *v);
void hf_cli_text_release(struct hf_cli_text *t);
/* Prints each diagnostic as FILE:LINE:COL: MSG, one a line, to f, escaped
 * as the server's text log is (HF_ESC_TEXT): a file's names and values may
 * hold control characters. */
void hf_cli_print_diags(const struct hf_diags *d, FILE *f);
/* True when path names a .yml or .yaml file. */
bool hf_cli_is_yaml(const char *path);
/* The scripts directory that goes with a workflows path (malloc'd): flag,
 * else the "scripts" directory beside the workflows, else ./scripts. */
char *hf_cli_scripts_for(const char *path, const char *flag);
/* The first proxy variable of the environment that libcurl would use for
 * http.* and webhook.emit (http_proxy, https_proxy, HTTPS_PROXY, all_proxy,
 * ALL_PROXY; empty counts as unset), or NULL. Behind it, the egress policy
 * sees the proxy's address only: serve and run warn of it. */
const char *hf_cli_proxy_var(void);
/* The warning, with the variable's name for %s. */
#define HF_CLI_PROXY_WARNING                                                   \
	"%s is set: the http.* calls and webhook.emit deliveries it "          \
	"covers connect through that proxy, "                                  \
	"so --egress-deny and --egress-allow judge the proxy's address, not "  \
	"the destinations behind it: the proxy must enforce its own policy "   \
	"(docs/security.md, \"Outbound destinations\")"

#endif
