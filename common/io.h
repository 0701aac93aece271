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
/* Writes all of buf, retrying short writes and EINTR; -1 on error. */
int write_all(int fd, const void *buf, size_t len);

#endif
