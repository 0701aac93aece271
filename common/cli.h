/* The command-line grammar every encfs tool shares: -v/--verbose anywhere (also before a
 * subcommand), option errors as one line "encfs-TOOL: usage: WHY (see --help)", exit 2. */
#ifndef ENCFS_CLI_H
#define ENCFS_CLI_H

#include <getopt.h>

/* Prints "PROG: usage: WHY (see --help)" and exits EXIT_USAGE. */
_Noreturn void cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* After getopt_long returned '?' (with opterr 0): one usage line naming the option it did not
 * know, or the one whose argument is missing. */
_Noreturn void cli_bad_option(char **argv, const char *shortopts, const struct option *longopts);

/* -v, -vv... and --verbose at the front of argv[1..]: each raises the log level.  Returns the
 * index of the first other argument (argc when none): where a subcommand is. */
int cli_leading_verbose(int argc, char **argv);

/* For a tool with a subcommand at argv[i] (after the leading -v's, already applied): drops
 * argv[1..i] so that getopt sees the subcommand's options, argv[0] staying the program name. */
void cli_shift(int *argc, char ***argv, int i);

#endif
