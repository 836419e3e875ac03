/* main.c - hookflow's entry point: hands the command line to the subcommand
 * table in cli.c. */
#include "hf_cli.h"

int main(int argc, char **argv)
{
	return hf_cli_main(argc, argv);
}
