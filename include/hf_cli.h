/* hf_cli.h - the subcommands. main.c calls hf_cli_main; each command is one
 * function taking its arguments and returning the exit code (0 success, 1
 * failure of the thing asked, 2 bad usage). */
#ifndef HF_CLI_H
#define HF_CLI_H

#include "hf_server.h"

int hf_cli_main(int argc, char **argv);

/* Flag parsing shared by the commands: --name VALUE, --name=VALUE, and the
 * environment variable HOOKFLOW_NAME (upper-case, '-' as '_'); a flag wins. */
struct hf_flag {
	const char *name; /* without "--" */
	bool takes_value;
	bool repeat;	     /* values accumulate (e.g. --header) */
	const char *value;   /* the last value, or NULL */
	const char **values; /* with repeat */
	size_t nvalues;
	bool seen;
};
/* Parses argv[first..] into flags and positional arguments (returned in pos,
 * count in *npos). Returns 0, or 2 after printing the problem. */
int hf_flags_parse(const char *cmd, int argc, char **argv, int first,
		   struct hf_flag *flags, size_t nflags, const char **pos,
		   size_t maxpos, size_t *npos);

int hf_cmd_serve(int argc, char **argv);

#endif
