#!/usr/bin/python3
"""Make a hostile LUKS2 header for the VM tests: edit the JSON metadata of both header copies of
IMAGE and write them back with valid checksums, so that only the semantic checks of a reader can
refuse it.  Independent of the project's C code; written from the LUKS2 on-disk format
specification (binary header: magic, version, hdr_size at 8, checksum_alg at 72, checksum at 448;
JSON area after the 4096-byte binary header; secondary copy at offset hdr_size).

usage: luks2-edit.py IMAGE cipher_null|segment_over_keyslots
  cipher_null            the data segment's encryption becomes "cipher_null-ecb"
  segment_over_keyslots  the data segment starts inside keyslot 0's area
"""
import hashlib
import json
import struct
import sys

BINARY_HEADER = 4096
CSUM_OFFSET, CSUM_LEN = 448, 64
MAGICS = (b"LUKS\xba\xbe", b"SKUL\xba\xbe")


def edit(meta, mode):
    seg = meta["segments"]["0"]
    if mode == "cipher_null":
        seg["encryption"] = "cipher_null-ecb"
    elif mode == "segment_over_keyslots":
        seg["offset"] = meta["keyslots"]["0"]["area"]["offset"]
    else:
        sys.exit("luks2-edit: unknown mode " + mode)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, mode = sys.argv[1], sys.argv[2]
    with open(path, "r+b") as f:
        first = f.read(BINARY_HEADER)
        if first[:6] != MAGICS[0] or struct.unpack(">H", first[6:8])[0] != 2:
            sys.exit("luks2-edit: %s is not a LUKS2 image" % path)
        hdr_size = struct.unpack(">Q", first[8:16])[0]
        if not BINARY_HEADER < hdr_size <= 4 << 20:
            sys.exit("luks2-edit: bad hdr_size %d" % hdr_size)
        for offset, magic in ((0, MAGICS[0]), (hdr_size, MAGICS[1])):
            f.seek(offset)
            blob = bytearray(f.read(hdr_size))
            if len(blob) != hdr_size or bytes(blob[:6]) != magic:
                sys.exit("luks2-edit: no header copy at %d" % offset)
            alg = bytes(blob[72:104]).split(b"\0", 1)[0]
            if alg != b"sha256":
                sys.exit("luks2-edit: checksum algorithm %r not handled" % alg)
            meta = json.loads(bytes(blob[BINARY_HEADER:]).split(b"\0", 1)[0])
            edit(meta, mode)
            text = json.dumps(meta, separators=(",", ":")).encode()
            area = hdr_size - BINARY_HEADER
            if len(text) >= area:
                sys.exit("luks2-edit: edited JSON does not fit")
            blob[BINARY_HEADER:] = text + b"\0" * (area - len(text))
            blob[CSUM_OFFSET:CSUM_OFFSET + CSUM_LEN] = b"\0" * CSUM_LEN
            blob[CSUM_OFFSET:CSUM_OFFSET + 32] = hashlib.sha256(bytes(blob)).digest()
            f.seek(offset)
            f.write(blob)


if __name__ == "__main__":
    main()
