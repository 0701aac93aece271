/* Guarded key memory on libsodium. */
#include "secmem.h"

#include "log.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

void secmem_init(void)
{
	if (sodium_init() < 0)
		die(EXIT_INTERNAL, "starting libsodium: sodium_init failed (check that /dev/urandom is readable)");
	struct rlimit no_core = {0, 0};
	(void)setrlimit(RLIMIT_CORE, &no_core);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int secbuf_alloc(struct secbuf *b, size_t cap)
{
	b->len = 0;
	b->cap = cap;
	b->data = sodium_malloc(cap + 1);
	if (!b->data) {
		b->cap = 0;
		return -1;
	}
	memset(b->data, 0, cap + 1);
	return 0;
}

void secbuf_free(struct secbuf *b)
{
	if (b->data)
		sodium_free(b->data); /* wipes before unmapping */
	b->data = NULL;
	b->len = b->cap = 0;
}

int secbuf_read_fd(int fd, size_t cap, struct secbuf *b)
{
	/* Grow by doubling inside guarded memory: each old copy is wiped by sodium_free. */
	size_t size = cap < 4096 ? cap : 4096;
	if (secbuf_alloc(b, size) != 0)
		return -1;
	for (;;) {
		if (b->len == b->cap) {
			if (b->cap >= cap) {
				/* one more byte tells "exactly cap" from "more than cap" */
				unsigned char probe;
				ssize_t r;
				do
					r = read(fd, &probe, 1);
				while (r < 0 && errno == EINTR);
				wipe(&probe, 1);
				if (r == 0)
					return 0;
				secbuf_free(b);
				errno = r < 0 ? errno : EFBIG;
				return -1;
			}
			size_t ncap = b->cap * 2 > cap ? cap : b->cap * 2;
			struct secbuf nb;
			if (secbuf_alloc(&nb, ncap) != 0) {
				secbuf_free(b);
				errno = ENOMEM;
				return -1;
			}
			memcpy(nb.data, b->data, b->len);
			nb.len = b->len;
			secbuf_free(b);
			*b = nb;
		}
		ssize_t r = read(fd, b->data + b->len, b->cap - b->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int saved = errno;
			secbuf_free(b);
			errno = saved;
			return -1;
		}
		if (r == 0)
			return 0;
		b->len += (size_t)r;
	}
}

void wipe(void *p, size_t len)
{
	sodium_memzero(p, len);
}
