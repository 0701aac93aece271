/* The shared command-line grammar: -v/--verbose, one-line usage errors. */
#include "cli.h"

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

_Noreturn void cli_usage(const char *fmt, ...)
{
	char why[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	die(EXIT_USAGE, "usage: %s (see --help)", why);
}

_Noreturn void cli_bad_option(char **argv, const char *shortopts, const struct option *longopts)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";
	/* a long option: the word getopt stopped at (its "=value" left out) */
	if (arg && strncmp(arg, "--", 2) == 0) {
		size_t n = strcspn(arg, "=");
		for (const struct option *o = longopts; o && o->name; o++)
			if (strlen(o->name) == n - 2 && strncmp(o->name, arg + 2, n - 2) == 0) {
				if (o->has_arg == required_argument)
					cli_usage("%.*s needs a value", (int)n, arg);
				cli_usage("%.*s takes no value", (int)n, arg);
			}
		cli_usage("unknown option %.*s", (int)n, arg);
	}
	if (optopt > 0 && optopt < 256) {
		const char *p = strchr(shortopts, optopt);
		if (p && p[1] == ':')
			cli_usage("-%c needs a value", optopt);
		cli_usage("unknown option -%c", optopt);
	}
	cli_usage("bad option %s", arg ? arg : "");
}

int cli_leading_verbose(int argc, char **argv)
{
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--verbose") == 0) {
			log_more_verbose();
		} else if (a[0] == '-' && a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1)) {
			for (size_t k = 1; a[k]; k++)
				log_more_verbose();
		} else {
			break;
		}
	}
	return i;
}

void cli_shift(int *argc, char ***argv, int i)
{
	if (i <= 0)
		return;
	(*argv)[i] = (*argv)[0];
	*argv += i;
	*argc -= i;
}
