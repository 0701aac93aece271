#!/usr/bin/env python3
"""4 KiB random reads for test/bench/mount.sh.

    randread.py FILE COUNT SEED [--lat OUT]

Reads COUNT blocks of 4 KiB with pread(2) at 4 KiB-aligned offsets drawn from FILE's size by a
generator seeded with SEED (the same offsets for every file of the same size), one at a time,
after posix_fadvise(POSIX_FADV_RANDOM) (no kernel read-ahead: each read is what the file system
is asked for).  Prints one line: the SHA-256 of the blocks in the order read (compared by the
caller with the same run on the reference file), then the p50, p99 and max latency and the
mean, in microseconds; with --lat, appends every latency (microseconds, one a line) to OUT.
Exit 1 with a line on stderr on a short or failed read.
"""
import hashlib
import os
import random
import sys
import time

BLOCK = 4096


def main():
    path, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    latfile = sys.argv[5] if len(sys.argv) == 6 and sys.argv[4] == "--lat" else None
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    if size < BLOCK:
        sys.exit(f"randread: {path}: {size} bytes, less than one block")
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    rng = random.Random(seed)
    offsets = [rng.randrange(size // BLOCK) * BLOCK for _ in range(count)]
    digest = hashlib.sha256()
    lat = []
    clock = time.perf_counter_ns
    for off in offsets:
        t0 = clock()
        try:
            buf = os.pread(fd, BLOCK, off)
        except OSError as e:
            sys.exit(f"randread: {path}: read at {off}: {e.strerror}")
        t1 = clock()
        if len(buf) != BLOCK:
            sys.exit(f"randread: {path}: read at {off}: {len(buf)} bytes, not {BLOCK}")
        lat.append((t1 - t0) // 1000)
        digest.update(buf)
    os.close(fd)
    if latfile:
        with open(latfile, "a") as f:
            f.write("".join(f"{x}\n" for x in lat))
    lat.sort()

    def pct(p):
        # nearest rank
        return lat[max(0, min(len(lat) - 1, (p * len(lat) + 99) // 100 - 1))]

    print(digest.hexdigest(), pct(50), pct(99), lat[-1], sum(lat) // len(lat))


if __name__ == "__main__":
    main()
