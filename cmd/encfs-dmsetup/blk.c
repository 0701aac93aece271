/* Bounded reads from the header device (or from memory, for the fuzzer and unit tests), and the
 * string helpers the LUKS1 and LUKS2 readers share. */
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

void luks_disk_str(char *out, const unsigned char *in, size_t n)
{
	size_t l = strnlen((const char *)in, n - 1);
	memcpy(out, in, l);
	out[l] = '\0';
}

void luks_header_text(char *buf, size_t n, const char *s)
{
	size_t len = strlen(s), i = 0;
	for (; i < len && i + 1 < n; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[i] = '\0';
	if (i < len && n > 4)
		memcpy(buf + n - 4, "...", 4);
}
