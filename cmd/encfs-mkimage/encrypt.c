/* The data segment: each extent of the plaintext that holds data (SEEK_DATA/SEEK_HOLE), widened to
 * whole 4096-byte sectors, is encrypted as dm-crypt will decrypt it for this header: aes-xts-plain64,
 * sector_size 4096, the IV of each sector its offset in the segment counted in 512-byte units (LUKS2
 * sets no iv_large_sectors, and cryptsetup gives the segment iv_offset 0, as encfs-dmsetup's table
 * does).  Everything else is left unwritten: a hole in IMAGE, and a page never sent to the blob. */
#include "mkimage.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static int io_all(bool rd, int fd, unsigned char *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = rd ? pread(fd, buf, len, (off_t)off) : pwrite(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			if (!rd)
				return errno = EIO, -1;
			memset(buf, 0, len); /* past the end of the file: zeros, as a read of the device gives */
			return 0;
		}
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int encrypt_extents(int plain_fd, uint64_t size, int out_fd, const unsigned char *vk, uint64_t *written, struct err *e)
{
	unsigned char *buf = malloc(CHUNK);
	uint64_t off = 0;
	int r = -1;
	*written = 0;
	if (!buf)
		return err_set(e, EXIT_INTERNAL, "encrypting: out of memory");
	while (off < size) {
		off_t d = lseek(plain_fd, (off_t)off, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break; /* only a hole is left */
		if (d < 0) {
			err_set(e, EXIT_DEVICE, "the temporary file: SEEK_DATA: %s", strerror(errno));
			goto out;
		}
		off_t h = lseek(plain_fd, d, SEEK_HOLE);
		if (h < 0) {
			err_set(e, EXIT_DEVICE, "the temporary file: SEEK_HOLE: %s", strerror(errno));
			goto out;
		}
		/* whole sectors: a filesystem with smaller blocks may report a hole inside one */
		uint64_t start = (uint64_t)d / FS_BLOCK * FS_BLOCK, end = ((uint64_t)h + FS_BLOCK - 1) / FS_BLOCK * FS_BLOCK;
		if (start < off)
			start = off;
		if (end > size)
			end = size;
		for (uint64_t p = start; p < end; p += CHUNK) {
			size_t n = end - p < CHUNK ? (size_t)(end - p) : CHUNK;
			if (io_all(true, plain_fd, buf, n, p) != 0) {
				err_set(e, EXIT_DEVICE, "reading the temporary file: %s", strerror(errno));
				goto out;
			}
			if (luks_crypt_sectors("aes-xts-plain64", vk, LUKS2_KEY_BYTES, buf, n, FS_BLOCK, p / 512, true, e) != 0)
				goto out;
			if (io_all(false, out_fd, buf, n, LUKS2_DATA_OFFSET + p) != 0) {
				err_set(e, EXIT_DEVICE, "writing IMAGE: %s", strerror(errno));
				goto out;
			}
			*written += n;
		}
		off = end;
	}
	r = 0;
out:
	/* the plaintext of the last chunk */
	wipe(buf, CHUNK);
	free(buf);
	return r;
}
