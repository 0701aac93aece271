/* What DIR holds, in ext4 terms, and the filesystem size that fits it.
 *
 * The count errs on the large side (a block per xattr-carrying inode, directories packed no better
 * than one longest entry short of full, extent blocks for every file that might need them): the
 * size printed as "would fit" must fit.  Space never written costs nothing in a sparse image, so
 * erring large is cheap. */
#include "mkimage.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define INODE_SIZE 256u
#define BLOCKS_PER_GROUP 32768u
#define DESC_SIZE 64u               /* 64bit feature */
#define EXTENT_BLOCKS 32768u        /* the longest extent */
#define EXTENTS_PER_BLOCK 340u      /* (4096 - 12) / 12 */
#define DIR_BLOCK_USE (FS_BLOCK - 12 - 264) /* csum tail, and one longest entry that did not fit */
#define FAST_SYMLINK_MAX 59u        /* longer targets take a block */
#define RESERVED_INODES 16u         /* 1..10 reserved, 11 lost+found, and margin */
#define LOST_FOUND_BLOCKS 4u        /* mke2fs makes lost+found 16 KiB */
#define BYTES_PER_FREE_INODE 16384u /* inodes for the free space: mke2fs's default ratio */

/* nftw has no user pointer: the walk's state lives here for its duration. */
static struct walk {
	struct tree *t;
	struct err *e;
	struct dir_acc {
		uint64_t bytes;     /* directory entry bytes so far */
	} *dirs;                    /* open directories by nftw level */
	size_t ndirs, cap;
	struct link {
		dev_t dev;
		ino_t ino;
		uint64_t blocks, bytes;
	} *links;                   /* inodes with more than one name: counted once */
	size_t nlinks, lcap;
	const char *root;
} W;

static uint64_t div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/* Blocks a directory of `bytes` entry bytes takes, with extent blocks for a fragmented one. */
static uint64_t dir_blocks(uint64_t bytes)
{
	uint64_t b = div_up(bytes, DIR_BLOCK_USE);
	if (b < 1)
		b = 1;
	/* mke2fs grows a directory a block at a time among the files: each block may be an extent */
	if (b > 4)
		b += div_up(b, EXTENTS_PER_BLOCK) + 1;
	return b;
}

static void close_dirs(size_t level)
{
	while (W.ndirs > level) {
		W.ndirs--;
		W.t->blocks += dir_blocks(W.dirs[W.ndirs].bytes);
	}
}

static int fail(const char *path, const char *why)
{
	const char *rel = path + strlen(W.root);
	while (*rel == '/')
		rel++;
	return err_set(W.e, EXIT_CONFIG, "%s/%s: %s (mke2fs -d must read all of DIR)", W.root, rel, why);
}

static int visit(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	if (flag == FTW_NS)
		return fail(path, "cannot stat it"), -1;
	if (flag == FTW_DNR)
		return fail(path, "cannot read the directory"), -1;
	size_t level = (size_t)f->level;
	close_dirs(level);
	if (level > 0) {
		/* the entry in its parent: 8 bytes + the name padded to 4 */
		size_t name = strlen(path + f->base);
		W.dirs[level - 1].bytes += 8 + (name + 3) / 4 * 4;
	}
	if (S_ISDIR(st->st_mode)) {
		if (access(path, R_OK | X_OK) != 0)
			return fail(path, "cannot read the directory"), -1;
		if (W.ndirs == W.cap) {
			size_t ncap = W.cap ? W.cap * 2 : 64;
			struct dir_acc *n = realloc(W.dirs, ncap * sizeof *n);
			if (!n)
				return err_set(W.e, EXIT_INTERNAL, "scanning DIR: out of memory"), -1;
			W.dirs = n;
			W.cap = ncap;
		}
		W.dirs[W.ndirs++].bytes = 24; /* "." and ".." */
		if (level == 0) {
			W.t->uid = st->st_uid;
			W.t->gid = st->st_gid;
			W.t->mode = st->st_mode & 07777;
		}
	}
	W.t->inodes++;
	uint64_t blocks = 0, bytes = 0;
	if (S_ISREG(st->st_mode)) {
		if (access(path, R_OK) != 0)
			return fail(path, "cannot read the file"), -1;
		bytes = (uint64_t)st->st_size;
		blocks = div_up(bytes, FS_BLOCK);
		/* extents: a run may break at every group's metadata; beyond 4 they need blocks */
		uint64_t extents = 2 * div_up(blocks, EXTENT_BLOCKS) + 2;
		if (extents > 4)
			blocks += div_up(extents, EXTENTS_PER_BLOCK) + 1;
	} else if (S_ISLNK(st->st_mode)) {
		if ((uint64_t)st->st_size > FAST_SYMLINK_MAX)
			blocks = 1;
	}
	/* extended attributes that do not fit in the inode take a block */
	ssize_t x = llistxattr(path, NULL, 0);
	if (x > 0)
		blocks++;
	if (!S_ISDIR(st->st_mode) && !S_ISLNK(st->st_mode) && st->st_nlink > 1) {
		if (W.nlinks == W.lcap) {
			size_t ncap = W.lcap ? W.lcap * 2 : 64;
			struct link *n = realloc(W.links, ncap * sizeof *n);
			if (!n)
				return err_set(W.e, EXIT_INTERNAL, "scanning DIR: out of memory"), -1;
			W.links = n;
			W.lcap = ncap;
		}
		W.links[W.nlinks++] = (struct link){st->st_dev, st->st_ino, blocks, bytes};
	}
	W.t->blocks += blocks;
	W.t->bytes += bytes;
	return 0;
}

static int link_cmp(const void *a, const void *b)
{
	const struct link *x = a, *y = b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

int tree_scan(const char *dir, struct tree *t, struct err *e)
{
	memset(t, 0, sizeof *t);
	memset(&W, 0, sizeof W);
	W.t = t;
	W.e = e;
	W.root = dir;
	struct stat st;
	if (stat(dir, &st) != 0)
		return err_set(e, EXIT_CONFIG, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(e, EXIT_CONFIG, "%s: not a directory", dir);
	e->code = 0;
	int r = nftw(dir, visit, 64, FTW_PHYS);
	if (r == 0) {
		close_dirs(0);
		/* a file with several names is stored once: take back all but one count */
		if (W.nlinks > 1)
			qsort(W.links, W.nlinks, sizeof *W.links, link_cmp);
		for (size_t i = 1; i < W.nlinks; i++)
			if (!link_cmp(&W.links[i], &W.links[i - 1])) {
				t->inodes--;
				t->blocks -= W.links[i].blocks;
				t->bytes -= W.links[i].bytes;
			}
		t->blocks += LOST_FOUND_BLOCKS;
	} else if (!e->code)
		err_set(e, EXIT_CONFIG, "%s: walking the tree: %s", dir, strerror(errno));
	free(W.dirs);
	free(W.links);
	memset(&W, 0, sizeof W);
	return r == 0 ? 0 : -1;
}

/* --- the plan ------------------------------------------------------------------------------- */

/* mke2fs's default journal size for a filesystem of this many blocks (ext2fs_default_journal_size):
 * only its first block is ever written here, the rest stays a hole. */
static uint64_t journal_for(uint64_t blocks)
{
	if (blocks < 32768)
		return 1024;
	if (blocks < 256 * 1024)
		return 4096;
	if (blocks < 512 * 1024)
		return 8192;
	if (blocks < 4096 * 1024)
		return 16384;
	if (blocks < 8192 * 1024)
		return 32768;
	if (blocks < 16384 * 1024)
		return 65536;
	if (blocks < 32768 * 1024)
		return 131072;
	return 262144;
}

static bool has_backup(uint64_t g)
{
	if (g <= 1)
		return true;
	for (uint64_t base = 3; base <= 7; base += 2) {
		uint64_t p = base;
		while (p < g)
			p *= base;
		if (p == g)
			return true;
	}
	return false;
}

/* Everything but the content: inode tables, bitmaps, superblock and descriptor copies, journal,
 * and a slack of 1% + 1 MiB for what the allocator leaves between. */
static uint64_t overhead(uint64_t blocks, uint64_t inodes, uint64_t journal)
{
	uint64_t groups = div_up(blocks, BLOCKS_PER_GROUP);
	uint64_t per_group = div_up(inodes, groups);
	per_group = div_up(per_group, FS_BLOCK / INODE_SIZE) * (FS_BLOCK / INODE_SIZE);
	uint64_t itable = groups * (per_group * INODE_SIZE / FS_BLOCK);
	uint64_t gdt = div_up(groups * DESC_SIZE, FS_BLOCK), copies = 0;
	for (uint64_t g = 0; g < groups; g++)
		copies += has_backup(g);
	return itable + 2 * groups + copies * (1 + gdt) + journal + blocks / 100 + 256;
}

static uint64_t inodes_for(const struct tree *t, uint64_t free_blocks)
{
	return t->inodes + RESERVED_INODES + free_blocks * FS_BLOCK / BYTES_PER_FREE_INODE;
}

void plan_fit(const struct tree *t, uint64_t free_bytes, struct fs_plan *p)
{
	uint64_t free_blocks = div_up(free_bytes, FS_BLOCK), inodes = inodes_for(t, free_blocks);
	uint64_t blocks = t->blocks + free_blocks, journal = 0;
	/* the overhead grows with the size: a few rounds settle it */
	for (int i = 0; i < 8; i++) {
		journal = journal_for(blocks);
		uint64_t next = t->blocks + free_blocks + overhead(blocks, inodes, journal);
		if (next < inodes + overhead(blocks, inodes, journal))
			next = inodes + overhead(blocks, inodes, journal); /* at least a block per inode */
		if (next <= blocks)
			break;
		blocks = next;
	}
	blocks = div_up(blocks, 256) * 256; /* whole MiB */
	if (blocks < 2048)
		blocks = 2048;          /* 8 MiB: mke2fs's smallest with a journal */
	p->blocks = blocks;
	p->inodes = inodes;
	p->journal_blocks = journal_for(blocks);
	/* the rounding may have crossed a journal step: keep the journal the size was made for */
	if (t->blocks + free_blocks + overhead(blocks, inodes, p->journal_blocks) > blocks)
		p->journal_blocks = journal;
}

int plan_for_blocks(const struct tree *t, uint64_t blocks, struct fs_plan *p)
{
	struct fs_plan min;
	plan_fit(t, 0, &min);
	if (blocks < min.blocks)
		return -1;
	p->blocks = blocks;
	p->inodes = inodes_for(t, blocks - min.blocks);
	/* mke2fs's journal for this size, halved while it would not leave room for the tree */
	p->journal_blocks = journal_for(blocks);
	while (p->journal_blocks > 1024 && t->blocks + overhead(blocks, p->inodes, p->journal_blocks) > blocks)
		p->journal_blocks /= 2;
	return t->blocks + overhead(blocks, p->inodes, p->journal_blocks) > blocks ? -1 : 0;
}
