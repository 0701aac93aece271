/* encfs-mkimage: a LUKS2 image of an ext4 filesystem holding DIR, made without root, device-mapper,
 * loop devices, mounts or cryptsetup, and sparse end to end.  See encfs-mkimage(1).
 *
 *   DIR -> size (tree.c) -> mke2fs -d into an unlinked temporary file (mkfs.c) -> LUKS2 header
 *   (luks2.c) and the written extents encrypted (encrypt.c) into an unnamed file beside IMAGE ->
 *   the key file, if a new key -> IMAGE linked into place (never over an existing file). */
#include "mkimage.h"

#include "cli.h"
#include "encode.h"
#include "log.h"
#include "secmem.h"
#include "verity.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAX (8u << 20) /* cryptsetup's key file limit */
#define NEW_KEY_BYTES 32u       /* what Key Vault releases for an oct-HSM key */
#define MIB ((uint64_t)1 << 20)
#define MAX_SIZE ((uint64_t)16 << 40) /* 16 TiB: a page blob holds at most 8 */

static const char USAGE[] =
	"usage: encfs-mkimage [-v] [--size SIZE | --free SIZE] [--key-file FILE|-]\n"
	"                     [--pbkdf pbkdf2|argon2id] [--verity] [-o IMAGE] DIR\n"
	"       encfs-mkimage -h | --help\n"
	"options:\n"
	"  --free SIZE        free space beyond DIR's content (default: a tenth of it, plus 16M)\n"
	"  -h, --help         print this help\n"
	"  --key-file FILE|-  the key file whose bytes open the image (default: a new key of 32\n"
	"                     random bytes, written to IMAGE.key)\n"
	"  -o IMAGE           the image to create (default: DIR's name with .img, here)\n"
	"  --pbkdf KDF        the keyslot's key derivation: pbkdf2 (default: 1000 iterations) or\n"
	"                     argon2id (4 passes over 256 MiB, 4 lanes)\n"
	"  --size SIZE        the image size, header included, a multiple of 4096 (K, M, G, T:\n"
	"                     binary multiples); refused when DIR does not fit (the data\n"
	"                     area and header: a --verity hash tree comes on top)\n"
	"  -v, --verbose      more verbose (repeatable)\n"
	"  --verity           append a dm-verity hash tree over the encrypted data area and\n"
	"                     print its root hash, salt and the configuration that pins it\n";

struct opts {
	const char *dir, *image, *key_file;
	uint64_t size, free_bytes;
	bool has_size, has_free, verity;
	struct luks2_kdf kdf;
};

static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void usage_error(const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	die(EXIT_USAGE, "usage: %s (see --help)", why); /* one line: control characters escaped */
}

/* "4096", "64M", "4G", "1TiB": bytes, binary multiples. */
static int parse_size(const char *s, uint64_t *out)
{
	uint64_t x = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (x > (UINT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	static const char units[] = "KMGT";
	const char *u = *p ? strchr(units, *p & ~0x20) : NULL;
	if (*p && (!u || !*u))
		return -1;
	if (u) {
		for (int i = 0; i <= u - units; i++) {
			if (x > UINT64_MAX / 1024)
				return -1;
			x *= 1024;
		}
		p++;
		if (*p && strcmp(p, "iB") != 0)
			return -1;
	}
	*out = x;
	return 0;
}

static void parse(int argc, char **argv, struct opts *o)
{
	enum { O_SIZE = 256, O_FREE, O_KEY, O_PBKDF, O_VERITY };
	static const struct option lo[] = {
		{"size", required_argument, NULL, O_SIZE}, {"free", required_argument, NULL, O_FREE},
		{"key-file", required_argument, NULL, O_KEY}, {"pbkdf", required_argument, NULL, O_PBKDF},
		{"verity", no_argument, NULL, O_VERITY},   {"help", no_argument, NULL, 'h'},
		{"verbose", no_argument, NULL, 'v'},
		{NULL, 0, NULL, 0},
	};
	int c;
	opterr = 0; /* one line, ours: getopt's own message would be a second */
	o->kdf = (struct luks2_kdf){.type = KDF_PBKDF2, .iterations = 1000};
	while ((c = getopt_long(argc, argv, "vho:", lo, NULL)) != -1) {
		switch (c) {
		case 'v':
			log_more_verbose();
			break;
		case 'h':
			fputs(USAGE, stdout);
			exit(EXIT_OK);
		case 'o':
			o->image = optarg;
			break;
		case O_SIZE:
			if (parse_size(optarg, &o->size) != 0)
				usage_error("--size %s: not a size (bytes, or a number with K, M, G or T)", optarg);
			o->has_size = true;
			break;
		case O_FREE:
			if (parse_size(optarg, &o->free_bytes) != 0)
				usage_error("--free %s: not a size (bytes, or a number with K, M, G or T)", optarg);
			o->has_free = true;
			break;
		case O_KEY:
			o->key_file = optarg;
			break;
		case O_VERITY:
			o->verity = true;
			break;
		case O_PBKDF:
			/* pbkdf2: cryptsetup's smallest iteration count, for a random key from an HSM.
			 * argon2id: cryptsetup's smallest pass count, a memory cost that means something. */
			if (!strcmp(optarg, "pbkdf2"))
				o->kdf = (struct luks2_kdf){.type = KDF_PBKDF2, .iterations = 1000};
			else if (!strcmp(optarg, "argon2id"))
				o->kdf = (struct luks2_kdf){.type = KDF_ARGON2ID, .time = 4, .memory_kib = 262144, .lanes = 4};
			else
				usage_error("--pbkdf %s: pbkdf2 or argon2id", optarg);
			break;
		default:
			cli_bad_option(argv, "vho:", lo);
		}
	}
	if (optind != argc - 1)
		usage_error(optind >= argc ? "missing DIR" : "one DIR only");
	o->dir = argv[optind];
	if (o->has_size && o->has_free)
		usage_error("--size and --free exclude each other");
	if (o->size > MAX_SIZE || o->free_bytes > MAX_SIZE)
		usage_error("--%s: at most 16T (a page blob holds at most 8 TiB)", o->has_size ? "size" : "free");
	if (o->image && !strcmp(o->image, "-"))
		usage_error("-o -: an image cannot be written to standard output (give a file)");
	if (o->has_size && o->size % FS_BLOCK)
		usage_error("--size %" PRIu64 ": not a multiple of 4096 bytes", o->size);
}

/* What is removed when the run ends early (atexit, signals): a named temporary image where the
 * filesystem has no unnamed files, and a new key file until the image is in place. */
static char tmp_image[PATH_MAX + 16], new_key[PATH_MAX + 8];
static volatile sig_atomic_t have_tmp_image, have_new_key;

static void cleanup(void)
{
	if (have_tmp_image)
		unlink(tmp_image);
	if (have_new_key)
		unlink(new_key);
	have_tmp_image = have_new_key = 0;
}

static void on_signal(int sig)
{
	mkfs_kill_child();
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The output file, unnamed (O_TMPFILE) in IMAGE's directory until it is complete. */
static int open_image(const char *image, bool *unnamed)
{
	char dirbuf[PATH_MAX], basebuf[PATH_MAX];
	snprintf(dirbuf, sizeof dirbuf, "%s", image);
	snprintf(basebuf, sizeof basebuf, "%s", image);
	const char *dir = dirname(dirbuf), *base = basename(basebuf);
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
	if (fd >= 0) {
		*unnamed = true;
		return fd;
	}
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		die(EXIT_DEVICE, "%s: cannot create a file in %s: %s", image, dir, strerror(errno));
	/* no O_TMPFILE here: a hidden name, removed on every way out */
	*unnamed = false;
	if ((size_t)snprintf(tmp_image, sizeof tmp_image, "%s/.%s.XXXXXX", dir, base) >= sizeof tmp_image)
		die(EXIT_USAGE, "%s: path too long", image);
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	fd = mkostemp(tmp_image, O_CLOEXEC);
	if (fd >= 0)
		have_tmp_image = 1;
	int saved = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (fd < 0)
		die(EXIT_DEVICE, "%s: cannot create a file in %s: %s", image, dir, strerror(saved));
	mode_t um = umask(0);
	umask(um);
	if (fchmod(fd, 0644 & ~um) != 0)
		die(EXIT_DEVICE, "%s: %s", tmp_image, strerror(errno));
	return fd;
}

/* Gives the finished file its name; never replaces an existing one. */
static void name_image(int fd, bool unnamed, const char *image)
{
	int r;
	if (unnamed) {
		char proc[64];
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
		r = linkat(AT_FDCWD, proc, AT_FDCWD, image, AT_SYMLINK_FOLLOW);
	} else
		r = link(tmp_image, image);
	if (r != 0 && errno == EEXIST)
		die(EXIT_USAGE, "%s: IMAGE exists (it appeared while the image was made; nothing was replaced)", image);
	if (r != 0)
		die(EXIT_DEVICE, "%s: %s", image, strerror(errno));
	if (!unnamed) {
		unlink(tmp_image);
		have_tmp_image = 0;
	}
}

static void read_key(const char *path, struct secbuf *key)
{
	int fd = STDIN_FILENO;
	if (strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die(EXIT_CONFIG, "reading the key file: %s: %s", path, strerror(errno));
	} else if (isatty(STDIN_FILENO))
		die(EXIT_USAGE, "reading the key: standard input is a terminal (pipe the key file bytes, or --key-file FILE)");
	if (secbuf_read_fd(fd, KEY_FILE_MAX, key) != 0)
		die(errno == ENOMEM ? EXIT_INTERNAL : EXIT_CONFIG, "reading the key file %s: %s", path,
		    errno == EFBIG ? "more than 8 MiB (cryptsetup's key file limit)" : strerror(errno));
	if (fd != STDIN_FILENO)
		close(fd);
	if (!key->len)
		die(EXIT_CONFIG, "reading the key file %s: it is empty", path);
}

static void write_new_key(const char *path, const struct secbuf *key)
{
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		snprintf(new_key, sizeof new_key, "%s", path);
		have_new_key = 1;
	}
	int saved = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (fd < 0 && saved == EEXIST)
		die(EXIT_USAGE, "%s: the key file exists (it appeared while the image was made; nothing was replaced)", path);
	if (fd < 0)
		die(EXIT_DEVICE, "%s: %s", path, strerror(saved));
	if (write(fd, key->data, key->len) != (ssize_t)key->len || fsync(fd) != 0 || close(fd) != 0)
		die(EXIT_DEVICE, "writing the key file %s: %s", path, strerror(errno));
}

/* The filesystem for DIR, made into fd: its size follows --size, or the tree and --free (grown
 * when mke2fs finds the estimate short). */
/* IMAGE at its size (holes): a filesystem that cannot hold it fails here, before any work. */
static void size_image(int out, const char *image, const struct fs_plan *plan, bool verity)
{
	uint64_t size = LUKS2_DATA_OFFSET + plan->blocks * FS_BLOCK;
	struct verity_geom g;
	struct err e;
	if (verity) {
		if (verity_geometry(plan->blocks, &g, &e) != 0)
			die_err(&e);
		size += g.hash_blocks * VERITY_BLOCK;
	}
	if (ftruncate(out, (off_t)size) != 0)
		die(EXIT_DEVICE, "%s: %s%s", image, strerror(errno),
		    errno == EFBIG ? " (its filesystem cannot hold a file this large)" : "");
}

static void make_fs(const struct opts *o, const struct tree *t, int fd, int out, struct fs_plan *plan)
{
	struct err e;
	struct fs_plan min;
	plan_fit(t, 0, &min);
	uint64_t free_bytes = o->has_free ? o->free_bytes : 16 * MIB + t->bytes / 10;
	if (o->has_size) {
		uint64_t fs = o->size > LUKS2_DATA_OFFSET ? o->size - LUKS2_DATA_OFFSET : 0;
		if (plan_for_blocks(t, fs / FS_BLOCK, plan) != 0)
			die(EXIT_USAGE, "--size %" PRIu64 ": too small for %s: it needs --size %" PRIu64 " (%" PRIu64
			    " MiB) or more", o->size, o->dir, LUKS2_DATA_OFFSET + min.blocks * FS_BLOCK,
			    (LUKS2_DATA_OFFSET + min.blocks * FS_BLOCK) >> 20);
	} else
		plan_fit(t, free_bytes, plan);
	for (int attempt = 0;; attempt++) {
		log_info("filesystem: %" PRIu64 " blocks of 4096 bytes, %" PRIu64 " inodes, a journal of %" PRIu64 " blocks",
			 plan->blocks, plan->inodes, plan->journal_blocks);
		size_image(out, o->image, plan, o->verity);
		if (ftruncate(fd, 0) != 0)
			die(EXIT_DEVICE, "the temporary file: %s", strerror(errno));
		int r = mkfs_run(o->dir, t, plan, fd, &e);
		if (r < 0)
			die_err(&e);
		if (r == 0)
			return;
		if (o->has_size)
			die(EXIT_CONFIG, "%s does not fit in --size %" PRIu64 ": mke2fs ran out of space (give a larger --size)",
			    o->dir, o->size);
		if (attempt == 3)
			die(EXIT_INTERNAL, "%s: mke2fs still ran out of space in %" PRIu64 " bytes (a bug in the size "
			    "estimate: give --size)", o->dir, plan->blocks * FS_BLOCK);
		free_bytes += plan->blocks * FS_BLOCK; /* twice the size: holes cost nothing */
		plan_fit(t, free_bytes, plan);
	}
}

int main(int argc, char **argv)
{
	log_init(argv[0]);
	secmem_init();
	struct opts o = {0};
	parse(argc, argv, &o);

	char image_buf[PATH_MAX], key_path[PATH_MAX + 8];
	if (!o.image) {
		char d[PATH_MAX];
		snprintf(d, sizeof d, "%s", o.dir);
		const char *b = basename(d);
		if (!*b || !strcmp(b, "/") || !strcmp(b, ".") || !strcmp(b, ".."))
			usage_error("no IMAGE name can be made from DIR %s: give -o IMAGE", o.dir);
		snprintf(image_buf, sizeof image_buf, "%s.img", b);
		o.image = image_buf;
	}
	struct stat st;
	if (lstat(o.image, &st) == 0)
		die(EXIT_USAGE, "%s: IMAGE exists (encfs-mkimage never overwrites: remove it or give another -o)", o.image);
	if (!o.key_file) {
		if ((size_t)snprintf(key_path, sizeof key_path, "%s.key", o.image) >= sizeof key_path)
			usage_error("IMAGE path too long");
		if (lstat(key_path, &st) == 0)
			die(EXIT_USAGE, "%s: the key file exists (give it with --key-file, or remove it)", key_path);
	}
	atexit(cleanup);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	for (int s = 0, sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT}; s < 4; s++)
		sigaction(sigs[s], &sa, NULL);

	/* the output first: a directory that cannot take it fails before any work */
	bool unnamed;
	int out = open_image(o.image, &unnamed);

	/* the key file bytes are the passphrase of keyslot 0; the volume key is random */
	struct secbuf pass = {0}, vk = {0};
	if (o.key_file)
		read_key(o.key_file, &pass);
	else {
		if (secbuf_alloc(&pass, NEW_KEY_BYTES) != 0)
			die(EXIT_INTERNAL, "out of memory");
		randombytes_buf(pass.data, NEW_KEY_BYTES);
		pass.len = NEW_KEY_BYTES;
	}
	if (secbuf_alloc(&vk, LUKS2_KEY_BYTES) != 0)
		die(EXIT_INTERNAL, "out of memory");
	randombytes_buf(vk.data, LUKS2_KEY_BYTES);
	vk.len = LUKS2_KEY_BYTES;

	/* DIR may be a symlink: the walk does not follow symlinks, mke2fs -d follows this one */
	char real[PATH_MAX];
	if (lstat(o.dir, &st) == 0 && S_ISLNK(st.st_mode)) {
		if (!realpath(o.dir, real))
			die(EXIT_CONFIG, "%s: %s", o.dir, strerror(errno));
		o.dir = real;
	}
	struct err e;
	struct tree t;
	if (tree_scan(o.dir, &t, &e) != 0)
		die_err(&e);
	log_info("%s: %" PRIu64 " inodes, %" PRIu64 " bytes in files, %" PRIu64 " blocks to store", o.dir, t.inodes,
		 t.bytes, t.blocks);

	/* the plaintext filesystem, in a file nobody else can open */
	int plain = tmpfile_private(&e);
	if (plain < 0)
		die_err(&e);
	struct fs_plan plan;
	make_fs(&o, &t, plain, out, &plan);
	uint64_t fs_bytes = plan.blocks * FS_BLOCK, image_size = LUKS2_DATA_OFFSET + fs_bytes;

	struct luks2_header h;
	if (luks2_build(&h, vk.data, pass.data, pass.len, &o.kdf, o.verity ? fs_bytes : 0, &e) != 0 ||
	    luks2_write(out, &h, &e) != 0)
		die_err(&e);
	luks2_header_free(&h);
	uint64_t written;
	if (encrypt_extents(plain, fs_bytes, out, vk.data, &written, &e) != 0)
		die_err(&e);
	secbuf_free(&vk);
	close(plain);
	if (fsync(out) != 0)
		die(EXIT_DEVICE, "%s: %s", o.image, strerror(errno));
	log_info("encrypted %" PRIu64 " bytes of %" PRIu64, written, fs_bytes);
	/* the hash tree over the ciphertext, right after the data area */
	struct verity_params vp = {.data_blocks = plan.blocks, .hash_offset = image_size, .salt_len = VERITY_SALT_BYTES};
	if (o.verity) {
		struct verity_geom g;
		if (verity_geometry(plan.blocks, &g, &e) != 0)
			die_err(&e);
		randombytes_buf(vp.salt, vp.salt_len);
		if (verity_build(out, LUKS2_DATA_OFFSET, &vp, &e) != 0)
			die_err(&e);
		image_size += g.hash_blocks * VERITY_BLOCK;
		if (fsync(out) != 0)
			die(EXIT_DEVICE, "%s: %s", o.image, strerror(errno));
		log_info("verity: %d levels, %" PRIu64 " hash blocks at %" PRIu64, g.levels, g.hash_blocks, vp.hash_offset);
	}

	char kcv[KEY_CHECK_VALUE_LEN];
	key_check_value(pass.data, pass.len, kcv);
	/* the key file, then the image: a signal in between removes the key again, none after */
	sigset_t all, old;
	sigfillset(&all);
	if (!o.key_file)
		write_new_key(key_path, &pass);
	secbuf_free(&pass);
	sigprocmask(SIG_BLOCK, &all, &old);
	name_image(out, unnamed, o.image);
	have_new_key = 0; /* both are in place */
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (fstat(out, &st) != 0)
		die(EXIT_DEVICE, "%s: %s", o.image, strerror(errno));
	close(out);

	printf("image %s\nsize %" PRIu64 "\nallocated %" PRIu64 "\nkey-file %s\nkey-check-value %s\n", o.image,
	       image_size, (uint64_t)st.st_blocks * 512, o.key_file ? o.key_file : key_path, kcv);
	if (o.verity) {
		char root[2 * VERITY_DIGEST + 1], salt[2 * VERITY_SALT_BYTES + 1];
		hex_encode(vp.root, VERITY_DIGEST, root);
		hex_encode(vp.salt, vp.salt_len, salt);
		printf("verity-root-hash %s\nverity-salt %s\nverity-data-blocks %" PRIu64 "\nverity-hash-offset %" PRIu64
		       "\nverity-config \"verity\": {\"root_hash\": \"%s\", \"salt\": \"%s\", \"data_blocks\": %" PRIu64
		       ", \"hash_offset\": %" PRIu64 "}\n",
		       root, salt, vp.data_blocks, vp.hash_offset, root, salt, vp.data_blocks, vp.hash_offset);
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_INTERNAL;
}
