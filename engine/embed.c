/* embed.c - a build tool, not part of hookflow: turns a file into a C source
 * defining `const char NAME[]` with its bytes, so that the dashboard is
 * embedded in the binary without a front-end build step. Usage: embed NAME
 * INPUT OUTPUT */
#include <stdio.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: embed NAME INPUT OUTPUT\n");
		return 2;
	}
	FILE *in = fopen(argv[2], "rb");
	FILE *out = fopen(argv[3], "wb");
	if (!in || !out) {
		fprintf(stderr, "embed: cannot open files\n");
		return 1;
	}
	fprintf(out, "/* Generated from %s by embed.c. */\nconst char %s[] = {",
		argv[2], argv[1]);
	int c;
	unsigned long n = 0;
	while ((c = fgetc(in)) != EOF)
		fprintf(out, "%s%d,", n++ % 20 ? "" : "\n", c);
	fprintf(out, "0};\n");
	fclose(in);
	return fclose(out) == 0 ? 0 : 1;
}
