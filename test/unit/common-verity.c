/* common/verity.c: the tree geometry as the kernel's verity_ctr computes it (levels, where each
 * starts, the top level first), the parsers of the pinned values, and the table parameters. */
#include "verity.h"
#include "tap.h"

int main(void)
{
	struct verity_geom g;
	struct err e;
	static const struct {
		uint64_t blocks;
		int levels;
		uint64_t hash_blocks, level0_at, level0_blocks;
	} v[] = {
		{2, 1, 1, 0, 1},                       /* one hash block: the root's block */
		{128, 1, 1, 0, 1},
		{129, 2, 3, 1, 2},                     /* two level-0 blocks under one top block */
		{5632, 2, 45, 1, 44},                  /* encfs-mkimage(1)'s example */
		{16384, 2, 129, 1, 128},
		{16385, 3, 132, 3, 129},               /* 129 level 0, 2 level 1, 1 top */
		{(uint64_t)1 << 30, 5, 8454661, 66053, 8388608},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		is_int(verity_geometry(v[i].blocks, &g, &e), 0, "%llu data blocks: a geometry", (unsigned long long)v[i].blocks);
		is_int(g.levels, v[i].levels, "... %d levels", v[i].levels);
		is_int(g.hash_blocks, v[i].hash_blocks, "... %llu hash blocks", (unsigned long long)v[i].hash_blocks);
		is_int(g.level_block[g.levels - 1], 0, "... the top level first");
		is_int(g.level_blocks[g.levels - 1], 1, "... one top block");
		is_int(g.level_block[0], v[i].level0_at, "... level 0 at block %llu", (unsigned long long)v[i].level0_at);
		is_int(g.level_blocks[0], v[i].level0_blocks, "... of %llu blocks", (unsigned long long)v[i].level0_blocks);
	}
	is_int(verity_geometry(1, &g, &e), -1, "one data block: refused");
	is_int(e.code, EXIT_CONFIG, "... exit 3");
	is_int(verity_geometry(((uint64_t)1 << 40) + 1, &g, &e), -1, "more than 2^40 blocks: refused");

	struct verity_params p = {0};
	const char *why = NULL;
	char root[65];
	memset(root, 'a', 64);
	root[64] = '\0';
	is_int(verity_parse_root(root, &p, &why), 0, "a 64-digit root hash");
	ok(p.root[0] == 0xaa && p.root[31] == 0xaa, "... decoded");
	root[63] = '\0';
	is_int(verity_parse_root(root, &p, &why), -1, "63 digits: refused");
	root[63] = 'g';
	is_int(verity_parse_root(root, &p, &why), -1, "a non-hex digit: refused");
	is_int(verity_parse_salt("00ff", &p, &why), 0, "a 2-byte salt");
	is_int(p.salt_len, 2, "... 2 bytes");
	is_int(verity_parse_salt("", &p, &why), -1, "an empty salt: refused");
	is_int(verity_parse_salt("0", &p, &why), -1, "an odd salt: refused");
	uint64_t x;
	is_int(verity_parse_u64("5632", &x), 0, "5632");
	is_int(x, 5632, "... parsed");
	is_int(verity_parse_u64("-1", &x), -1, "-1: refused");
	is_int(verity_parse_u64("12x", &x), -1, "12x: refused");
	is_int(verity_parse_u64("99999999999999999999", &x), -1, "past 2^64: refused");

	char t[1024];
	p.data_blocks = 5632;
	is_int(verity_table_params(&p, "7:0", "7:0", 23068672, t, sizeof t), 0, "table parameters");
	is_str(t, "1 7:0 7:0 4096 4096 5632 5632 sha256 "
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 00ff",
	       "... format 1, the hash start in blocks, no optional argument");
	is_int(verity_table_params(&p, "7:0", "7:0", 23068672, t, 20), -1, "... too long for its buffer: -1");
	return done_testing();
}
