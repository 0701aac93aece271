/* Whole-file reads with a cap, and complete writes. */
#include "io.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *read_fd_capped(int fd, size_t cap, size_t *len)
{
	size_t size = 0, used = 0;
	char *buf = NULL;
	for (;;) {
		if (size - used < 2) {
			if (size >= cap + 2) {
				free(buf);
				errno = EFBIG;
				return NULL;
			}
			size_t nsize = size ? size * 2 : 4096;
			if (nsize > cap + 2)
				nsize = cap + 2; /* room for one byte past the cap, and the NUL */
			char *nbuf = realloc(buf, nsize);
			if (!nbuf) {
				free(buf);
				errno = ENOMEM;
				return NULL;
			}
			buf = nbuf;
			size = nsize;
		}
		ssize_t r = read(fd, buf + used, size - used - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int saved = errno;
			free(buf);
			errno = saved;
			return NULL;
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used > cap) {
			free(buf);
			errno = EFBIG;
			return NULL;
		}
	}
	buf[used] = '\0';
	*len = used;
	return buf;
}

char *read_file_capped(const char *path, size_t cap, size_t *len)
{
	if (strcmp(path, "-") == 0)
		return read_fd_capped(STDIN_FILENO, cap, len);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = read_fd_capped(fd, cap, len);
	int saved = errno;
	close(fd);
	errno = saved;
	return buf;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

void stdin_refuse_tty(const char *what, const char *hint)
{
	if (isatty(STDIN_FILENO))
		die(EXIT_USAGE, "%s: standard input is a terminal (%s)", what, hint);
}

int stdin_empty(struct err *e, const char *what, const char *hint)
{
	return err_set(e, EXIT_CONFIG, "%s: nothing on standard input: did the previous step fail? (%s)",
		       what, hint);
}
