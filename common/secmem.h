/* Memory for keys and tokens: libsodium guarded allocations (locked, guard pages, wiped on free). */
#ifndef ENCFS_SECMEM_H
#define ENCFS_SECMEM_H

#include <stddef.h>

struct secbuf {
	unsigned char *data; /* sodium_malloc'd, len bytes used, one NUL byte kept after them */
	size_t len;
	size_t cap;
};

/* Initialises libsodium and keeps core dumps off (a dump would hold keys).  Every tool calls it
 * before touching a key; exits with EXIT_INTERNAL if libsodium cannot start. */
void secmem_init(void);

/* Allocates cap bytes of guarded memory; returns -1 when out of memory.  mlock failure
 * (RLIMIT_MEMLOCK) is not fatal: libsodium then still wipes and guards. */
int secbuf_alloc(struct secbuf *b, size_t cap);
/* Wipes and frees; safe on a zeroed or already freed buffer. */
void secbuf_free(struct secbuf *b);

/* Reads fd to its end into a new guarded buffer; fails (-1, errno EFBIG) past cap bytes, so a
 * hostile or mistaken input cannot make us allocate without bound. */
int secbuf_read_fd(int fd, size_t cap, struct secbuf *b);

/* Wipes len bytes in a way the compiler cannot drop. */
void wipe(void *p, size_t len);

#endif
