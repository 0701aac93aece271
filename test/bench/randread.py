#!/usr/bin/env python3
"""4 KiB random reads for test/bench/mount.sh.

    randread.py FILE COUNT SEED REF LAT

Reads COUNT blocks of 4 KiB from FILE with pread(2), one at a time, at 4 KiB-aligned offsets drawn
from FILE's size by a generator seeded with SEED (the same offsets for every file of the same
size), after posix_fadvise(POSIX_FADV_RANDOM) (no kernel read-ahead: each read is what the file
system is asked for).  Every block is compared with the same block of REF (the blob's bytes, a
local file) once its read is timed; every latency (microseconds) is appended to LAT as soon as
it is known, one a line, so that a run stopped at a read that never returns keeps the ones before.
Prints the number of reads and the p50 and p99 latency in microseconds.  Exit 1 with a line on
stderr on a failed or short read, 2 on a block that differs from REF.
"""
import os
import random
import sys
import time

BLOCK = 4096


def main():
    path, count, seed, ref, latpath = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    fd = os.open(path, os.O_RDONLY)
    rfd = os.open(ref, os.O_RDONLY)
    size = os.fstat(fd).st_size
    if size != os.fstat(rfd).st_size:
        sys.exit(f"randread: {path}: {size} bytes, {ref} has {os.fstat(rfd).st_size}")
    if size < BLOCK:
        sys.exit(f"randread: {path}: {size} bytes, less than one block")
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    rng = random.Random(seed)
    offsets = [rng.randrange(size // BLOCK) * BLOCK for _ in range(count)]
    lat = []
    clock = time.perf_counter_ns
    with open(latpath, "a", buffering=1) as out:
        for off in offsets:
            t0 = clock()
            try:
                buf = os.pread(fd, BLOCK, off)
            except OSError as e:
                sys.exit(f"randread: {path}: read at {off}: {e.strerror}")
            t1 = clock()
            if len(buf) != BLOCK:
                sys.exit(f"randread: {path}: read at {off}: {len(buf)} bytes, not {BLOCK}")
            if buf != os.pread(rfd, BLOCK, off):
                print(f"randread: {path}: the block at {off} differs from {ref}", file=sys.stderr)
                sys.exit(2)
            us = (t1 - t0) // 1000
            out.write(f"{us}\n")
            lat.append(us)
    lat.sort()

    def pct(p):
        # nearest rank
        return lat[max(0, min(len(lat) - 1, (p * len(lat) + 99) // 100 - 1))]

    print(len(lat), pct(50), pct(99))


if __name__ == "__main__":
    main()
