/* Whole-file reads with a cap, and complete writes. */
#ifndef ENCFS_IO_H
#define ENCFS_IO_H

#include <stddef.h>
#include <sys/types.h>

/* Reads fd to its end into a new malloc'd buffer (NUL-terminated, *len excludes the NUL).
 * Returns NULL with errno EFBIG past cap bytes, or the read error. */
char *read_fd_capped(int fd, size_t cap, size_t *len);
/* The same for a path ("-" is stdin). */
char *read_file_capped(const char *path, size_t cap, size_t *len);
/* A tool that reads data from standard input refuses a terminal (nobody types a token or a
 * release response): "WHAT: standard input is a terminal (HINT)", exit EXIT_USAGE. */
void stdin_refuse_tty(const char *what, const char *hint);

/* Empty input is what a failed step before this one leaves in a pipeline, never a success:
 * fills e (EXIT_CONFIG) with "WHAT: nothing on standard input: did the previous step fail?
 * (HINT)" and returns -1. */
struct err;
int stdin_empty(struct err *e, const char *what, const char *hint);

/* Writes all of buf, retrying short writes and EINTR; -1 on error. */
int write_all(int fd, const void *buf, size_t len);

#endif
