/* hf_cli.h - the command line. main.c calls hf_cli_main, which dispatches on
 * the subcommand table (cli.c); each command takes its arguments and returns
 * the exit code (0 success, 1 failure of the thing asked, 2 bad usage). The
 * commands and their option tables are internal to the CLI (engine/cli_int.h).
 */
#ifndef HF_CLI_H
#define HF_CLI_H

int hf_cli_main(int argc, char **argv);

#endif
