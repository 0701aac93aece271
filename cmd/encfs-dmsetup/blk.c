/* Bounded reads from the header device (or from memory, for the fuzzer and unit tests). */
#include "luks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int blk_read(const struct blk *b, uint64_t off, void *buf, size_t len)
{
	if (off > b->size || len > b->size - off) {
		errno = EIO;
		return -1;
	}
	if (!b->mem) {
		size_t done = 0;
		while (done < len) {
			ssize_t r = pread(b->fd, (char *)buf + done, len - done, (off_t)(off + done));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				if (r == 0)
					errno = EIO;
				return -1;
			}
			done += (size_t)r;
		}
		return 0;
	}
	memcpy(buf, b->mem + off, len);
	return 0;
}

void luks_volume_free(struct luks_volume *v)
{
	free(v->json);
	v->json = NULL;
	v->json_len = 0;
}
