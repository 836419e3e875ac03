/* flags.c - the commands' options as tables (struct hf_opt, see cli_int.h):
 * one parser for all of them (--name VALUE, --name=VALUE, the environment
 * variable HOOKFLOW_NAME, the default), one checked reading of integers,
 * durations and sizes, and --help and usage lines generated from the tables.
 *
 * Does not know any command: cmd_*.c hold the tables and act on the values.
 * Runs on the main thread before anything else starts. */
#include "cli_int.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* --- values --- */

/* Reads a decimal integer that is the whole of s. Returns 0 or -1. */
static int parse_int(const char *s, int64_t *out)
{
	if (!isdigit((unsigned char)*s) && *s != '-' && *s != '+')
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*out = v;
	return 0;
}

struct unit {
	const char *name;
	int64_t mult;
};
static const struct unit size_units[] = {
    {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {NULL, 0}};
static const struct unit duration_units[] = {
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {NULL, 0}};

/* Writes v as the option would be written: "1MiB", "30s", "5000". */
static void format_num(const struct hf_opt *o, int64_t v, char *out,
		       size_t size)
{
	const struct unit *u = o->kind == HF_OPT_SIZE	    ? size_units
			       : o->kind == HF_OPT_DURATION ? duration_units
							    : NULL;
	for (; u && u->name && v != 0; u++) {
		if (v % u->mult == 0) {
			snprintf(out, size, "%lld%s", (long long)(v / u->mult),
				 u->name);
			return;
		}
	}
	snprintf(out, size, "%lld%s", (long long)v,
		 o->kind == HF_OPT_DURATION ? "ms" : "");
}

/* What an option's value must look like, for error messages. */
static void expected(const struct hf_opt *o, char *out, size_t size)
{
	char lo[32], hi[32];
	format_num(o, o->min, lo, sizeof lo);
	format_num(o, o->max, hi, sizeof hi);
	const char *what = o->kind == HF_OPT_INT ? "an integer"
			   : o->kind == HF_OPT_DURATION
			       ? "a duration such as 500ms, 30s, 2m, 1h or 7d"
			       : "a size such as 512, 64KiB or 1MiB";
	if (o->max >= INT32_MAX && o->min <= 0 && o->kind != HF_OPT_INT)
		snprintf(out, size, "%s", what);
	else if (o->max >= INT32_MAX)
		snprintf(out, size, "%s, at least %s", what, lo);
	else
		snprintf(out, size, "%s, from %s to %s", what, lo, hi);
}

static bool is_choice(const char *choices, const char *s)
{
	size_t len = strlen(s);
	for (const char *p = choices; *p;) {
		size_t n = strcspn(p, "|");
		if (n == len && strncmp(p, s, n) == 0)
			return true;
		p += n + (p[n] == '|');
	}
	return false;
}

/* Checks and stores text as o's value. from names where it came from
 * ("--workers", "HOOKFLOW_WORKERS"). Returns 0, or 2 after printing why
 * not. */
static int set_value(const struct hf_cmd_spec *spec, const struct hf_opt *o,
		     struct hf_optval *v, const char *text, const char *from)
{
	char want[128];
	int bad = 0;
	switch (o->kind) {
	case HF_OPT_FLAG:
	case HF_OPT_STRING:
		break;
	case HF_OPT_REPEAT:
		v->list =
		    hf_xrealloc((void *)v->list, (v->n + 1) * sizeof *v->list);
		v->list[v->n++] = text;
		break;
	case HF_OPT_CHOICE:
		bad = !is_choice(o->choices, text);
		snprintf(want, sizeof want, "one of %s", o->choices);
		break;
	case HF_OPT_INT:
	case HF_OPT_DURATION:
	case HF_OPT_SIZE:
		bad = (o->kind == HF_OPT_INT ? parse_int(text, &v->num)
		       : o->kind == HF_OPT_DURATION
			   ? hf_parse_duration(text, &v->num)
			   : hf_parse_size(text, &v->num)) < 0 ||
		      v->num < o->min || v->num > o->max;
		expected(o, want, sizeof want);
		break;
	}
	if (bad) {
		fprintf(stderr, "hookflow %s: invalid %s '%s' (expected %s)\n",
			spec->cmd, from, text, want);
		return 2;
	}
	v->set = true;
	v->str = text;
	return 0;
}

/* HOOKFLOW_<NAME> for an option. */
static void env_name(const struct hf_opt *o, char *out, size_t size)
{
	size_t n = (size_t)snprintf(out, size, "HOOKFLOW_");
	for (const char *p = o->name; *p && n + 1 < size; p++)
		out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	out[n] = '\0';
}

/* The environment and the defaults, for the options not given. */
static int fill_unset(const struct hf_cmd_spec *spec, struct hf_args *a)
{
	for (size_t i = 0; i < spec->nopts; i++) {
		const struct hf_opt *o = &spec->opts[i];
		struct hf_optval *v = &a->v[o->id];
		if (v->set || o->kind == HF_OPT_FLAG)
			continue;
		char env[128];
		env_name(o, env, sizeof env);
		const char *e = o->flags & HF_OPT_ENV ? getenv(env) : NULL;
		if (e && *e) {
			if (set_value(spec, o, v, e, env))
				return 2;
		} else if (o->kind == HF_OPT_STRING ||
			   o->kind == HF_OPT_CHOICE) {
			v->str = o->def;
		} else {
			v->num = o->ndef;
		}
	}
	return 0;
}

/* --- help --- */

static const char *meta(const struct hf_opt *o)
{
	return o->meta ? o->meta : o->choices ? o->choices : "VALUE";
}

void hf_args_usage(const struct hf_cmd_spec *spec, FILE *f)
{
	char line[256];
	int len = snprintf(line, sizeof line, "usage: hookflow %s%s%s",
			   spec->cmd, *spec->args ? " " : "", spec->args);
	fputs(line, f);
	for (size_t i = 0; i < spec->nopts; i++) {
		const struct hf_opt *o = &spec->opts[i];
		bool req = o->flags & HF_OPT_REQUIRED;
		int n = snprintf(
		    line, sizeof line, "%s--%s%s%s%s%s", req ? "" : "[",
		    o->name, o->kind == HF_OPT_FLAG ? "" : " ",
		    o->kind == HF_OPT_FLAG ? "" : meta(o), req ? "" : "]",
		    o->kind == HF_OPT_REPEAT ? "..." : "");
		if (len + 1 + n > 79) {
			fputs("\n       ", f);
			len = 7;
		}
		fprintf(f, " %s", line);
		len += 1 + n;
	}
	fputc('\n', f);
}

/* One option's line(s) in --help: name, help, then [default; env], wrapped
 * below the help when the line would pass 79 columns. */
static void print_option(const struct hf_opt *o)
{
	char name[64], def[64] = "", env[64] = "", tail[160] = "";
	snprintf(name, sizeof name, "--%s%s%s", o->name,
		 o->kind == HF_OPT_FLAG ? "" : " ",
		 o->kind == HF_OPT_FLAG ? "" : meta(o));
	if (o->def)
		snprintf(def, sizeof def, "default %s", o->def);
	else if (o->kind >= HF_OPT_INT && o->kind <= HF_OPT_SIZE) {
		memcpy(def, "default ", 8);
		format_num(o, o->ndef, def + 8, sizeof def - 8);
	}
	if (o->flags & HF_OPT_ENV)
		env_name(o, env, sizeof env);
	if (*def || *env)
		snprintf(tail, sizeof tail, "[%s%s%s]", def,
			 *def && *env ? "; " : "", env);
	int col = printf("  %-24s", name);
	if (col > 26)
		col = printf("\n%26s", "") - 1;
	col += printf(" ");
	col += printf("%s", o->help);
	if (*tail && col + 1 + (int)strlen(tail) > 79)
		printf("\n%27s%s\n", "", tail);
	else
		printf("%s%s\n", *tail ? " " : "", tail);
}

static void print_help(const struct hf_cmd_spec *spec)
{
	hf_args_usage(spec, stdout);
	printf("\n%s\n\nOptions:\n", spec->about);
	for (size_t i = 0; i < spec->nopts; i++)
		print_option(&spec->opts[i]);
	printf("  %-24s %s\n", "--help", "show this help");
}

/* --- parsing --- */

static const struct hf_opt *find(const struct hf_cmd_spec *spec,
				 const char *name, size_t len)
{
	for (size_t k = 0; k < spec->nopts; k++)
		if (strlen(spec->opts[k].name) == len &&
		    strncmp(spec->opts[k].name, name, len) == 0)
			return &spec->opts[k];
	return NULL;
}

/* One "--name[=value]" at argv[*i] (the value may be the next argument).
 * Returns 0 or 2 after printing the problem. */
static int parse_option(const struct hf_cmd_spec *spec, int argc, char **argv,
			int *i, struct hf_args *a)
{
	const char *name = argv[*i] + 2;
	const char *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	const struct hf_opt *o = find(spec, name, len);
	if (!o) {
		fprintf(stderr,
			"hookflow %s: unknown flag '--%.*s' (see hookflow %s "
			"--help)\n",
			spec->cmd, (int)len, name, spec->cmd);
		return 2;
	}
	if (o->kind == HF_OPT_FLAG) {
		if (eq) {
			fprintf(stderr, "hookflow %s: --%s takes no value\n",
				spec->cmd, o->name);
			return 2;
		}
		a->v[o->id].set = true;
		return 0;
	}
	const char *val = eq ? eq + 1 : NULL;
	if (!val && *i + 1 >= argc) {
		fprintf(stderr, "hookflow %s: --%s needs a value\n", spec->cmd,
			o->name);
		return 2;
	}
	if (!val)
		val = argv[++*i];
	char from[80];
	snprintf(from, sizeof from, "--%s", o->name);
	return set_value(spec, o, &a->v[o->id], val, from);
}

/* Options marked required, and the count of positional arguments. */
static int check_complete(const struct hf_cmd_spec *spec, struct hf_args *a)
{
	bool ok = a->npos >= spec->minpos;
	for (size_t i = 0; i < spec->nopts; i++)
		if (spec->opts[i].flags & HF_OPT_REQUIRED &&
		    !a->v[spec->opts[i].id].set)
			ok = false;
	if (ok)
		return 0;
	hf_args_usage(spec, stderr);
	return 2;
}

bool hf_args_parse(const struct hf_cmd_spec *spec, int argc, char **argv,
		   int first, struct hf_args *a, int *rc)
{
	for (size_t i = 0; i < spec->nopts; i++)
		assert(spec->opts[i].id >= 0 && spec->opts[i].id < HF_OPTS_MAX);
	memset(a, 0, sizeof *a);
	a->pos = hf_xcalloc((size_t)argc + 1, sizeof *a->pos);
	*rc = 0;
	for (int i = first; i < argc && !*rc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--help") == 0) {
			print_help(spec);
			hf_args_release(a);
			return false;
		}
		if (strncmp(arg, "--", 2) == 0 && arg[2] != '\0') {
			*rc = parse_option(spec, argc, argv, &i, a);
		} else if (a->npos >= spec->maxpos) {
			fprintf(stderr,
				"hookflow %s: unexpected argument '%s'\n",
				spec->cmd, arg);
			*rc = 2;
		} else {
			a->pos[a->npos++] = arg;
		}
	}
	if (!*rc)
		*rc = fill_unset(spec, a);
	if (!*rc)
		*rc = check_complete(spec, a);
	if (*rc)
		hf_args_release(a);
	return !*rc;
}

void hf_args_release(struct hf_args *a)
{
	for (size_t i = 0; i < HF_OPTS_MAX; i++) {
		free((void *)a->v[i].list);
		a->v[i].list = NULL;
	}
	free((void *)a->pos);
	a->pos = NULL;
}
