/* encfs-dmsetup: open LUKS2 and LUKS1 volumes without cryptsetup.  See encfs-dmsetup(1).
 *
 * open:  key file bytes (stdin) -> probe -> header read + validated once -> activation checks ->
 *        unlock -> loop (regular file) -> keyring key -> dm-crypt table -> device-mapper.
 *        Any failure removes what was made, in reverse order. */
#include "activate.h"
#include "cost.h"
#include "layer.h"
#include "luks.h"

#include "cli.h"
#include "encode.h"
#include "log.h"
#include "secmem.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/fs.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define KEY_FILE_MAX (8u << 20) /* cryptsetup's default key file limit: 8 MiB */

static const char USAGE[] =
	"usage: encfs-dmsetup [-v] open [--readonly] [--allow-discards] [--header HDR]\n"
	"                     [--key-file FILE|-] [--no-keyring] [LIMITS] [VERITY] DEVICE NAME\n"
	"       encfs-dmsetup [-v] close [--deferred] NAME\n"
	"       encfs-dmsetup [-v] table [--showkeys] [--header HDR] [--key-file FILE|-]\n"
	"                     [--no-keyring] [LIMITS] [VERITY] DEVICE [NAME]\n"
	"       encfs-dmsetup [-v] test [--header HDR] [--key-file FILE|-] [LIMITS] DEVICE\n"
	"       encfs-dmsetup [-v] dump [--json | VERITY] [--header HDR] DEVICE\n"
	"       encfs-dmsetup -h | --help\n"
	"options:\n"
	"  --allow-discards   pass discards (TRIM) through dm-crypt\n"
	"  --deferred         close: a device still in use goes when its last user closes it\n"
	"  --header HDR       read the LUKS header from HDR (detached header)\n"
	"  -h, --help         print this help\n"
	"  --json             dump: print the header as JSON\n"
	"  --key-file FILE|-  read the key file bytes from FILE (default: standard input)\n"
	"  --max-argon2-memory MIB      LIMITS: memory of an Argon2 keyslot (default 1024,\n"
	"                               never more than the memory available)\n"
	"  --max-argon2-time N          LIMITS: time cost of an Argon2 keyslot (default 32)\n"
	"  --max-pbkdf2-iterations N    LIMITS: iterations of a PBKDF2 keyslot (default 10000000)\n"
	"  --max-unlock-time SECONDS    LIMITS: time spent trying keyslots (default 60)\n"
	"  --no-keyring       put the volume key in the table as hex, not as a kernel keyring key\n"
	"  --readonly         open read-only\n"
	"  --showkeys         table: print the volume key in hex instead of zeros\n"
	"  -v, --verbose      more verbose (repeatable)\n"
	"  --verity-root-hash HEX       VERITY: the pinned dm-verity root hash (all four VERITY\n"
	"                               options together: dm-verity under dm-crypt, read-only)\n"
	"  --verity-salt HEX            VERITY: its salt\n"
	"  --verity-data-blocks N       VERITY: 4096-byte blocks of the data area\n"
	"  --verity-hash-offset BYTES   VERITY: where the hash tree starts in DEVICE\n";

struct opts {
	bool readonly, allow_discards, no_keyring, showkeys, json, deferred;
	struct verity_params verity;
	unsigned verity_given; /* bit per VERITY option */
	const char *header, *key_file;
	struct luks_limits limits;
	char *args[2];
	int nargs;
};

static _Noreturn void usage_error(const char *why)
{
	die(EXIT_USAGE, "usage: %s (see --help)", why);
}

static unsigned long long limit_arg(const char *opt, const char *v, unsigned long long max)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || x == 0 || x > max) {
		char why[160];
		snprintf(why, sizeof why, "%s wants a whole number from 1 to %llu", opt, max);
		usage_error(why);
	}
	return x;
}

enum { O_RO = 256, O_DISC, O_HDR, O_KEY, O_NOKR, O_SHOW, O_JSON, O_PBKDF2, O_A2TIME, O_A2MEM, O_UNLOCK, O_DEFER,
       O_VROOT, O_VSALT, O_VBLOCKS, O_VHASH };
static const struct option lo[] = {
	{"verity-root-hash", required_argument, NULL, O_VROOT},
	{"verity-salt", required_argument, NULL, O_VSALT},
	{"verity-data-blocks", required_argument, NULL, O_VBLOCKS},
	{"verity-hash-offset", required_argument, NULL, O_VHASH},
	{"deferred", no_argument, NULL, O_DEFER},
	{"max-pbkdf2-iterations", required_argument, NULL, O_PBKDF2},
	{"max-argon2-time", required_argument, NULL, O_A2TIME},
	{"max-argon2-memory", required_argument, NULL, O_A2MEM},
	{"max-unlock-time", required_argument, NULL, O_UNLOCK},
	{"readonly", no_argument, NULL, O_RO},    {"allow-discards", no_argument, NULL, O_DISC},
	{"header", required_argument, NULL, O_HDR}, {"key-file", required_argument, NULL, O_KEY},
	{"no-keyring", no_argument, NULL, O_NOKR}, {"showkeys", no_argument, NULL, O_SHOW},
	{"json", no_argument, NULL, O_JSON},      {"help", no_argument, NULL, 'h'},
	{"verbose", no_argument, NULL, 'v'},      {NULL, 0, NULL, 0},
};

static void verity_arg(int c, const char *opt, const char *v, struct opts *o)
{
	const char *why = "not a whole number";
	char msg[256];
	int r;
	if (c == O_VROOT)
		r = verity_parse_root(v, &o->verity, &why);
	else if (c == O_VSALT)
		r = verity_parse_salt(v, &o->verity, &why);
	else
		r = verity_parse_u64(v, c == O_VBLOCKS ? &o->verity.data_blocks : &o->verity.hash_offset);
	if (r != 0) {
		snprintf(msg, sizeof msg, "--%s: %s", opt, why);
		usage_error(msg);
	}
	o->verity_given |= 1u << (c - O_VROOT);
}

static void parse(int argc, char **argv, const char *cmd, struct opts *o)
{
	/* which options each subcommand takes */
	bool is_open = !strcmp(cmd, "open"), is_table = !strcmp(cmd, "table"), is_test = !strcmp(cmd, "test"),
	     is_dump = !strcmp(cmd, "dump");
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+vh", lo, NULL)) != -1) {
		bool ok = true;
		switch (c) {
		case 'v':
			log_more_verbose();
			break;
		case 'h':
			fputs(USAGE, stdout);
			exit(EXIT_OK);
		case O_RO:
			ok = is_open, o->readonly = true;
			break;
		case O_DISC:
			ok = is_open, o->allow_discards = true;
			break;
		case O_HDR:
			ok = is_open || is_table || is_test || is_dump, o->header = optarg;
			break;
		case O_KEY:
			ok = is_open || is_table || is_test, o->key_file = optarg;
			break;
		case O_NOKR:
			ok = is_open || is_table, o->no_keyring = true;
			break;
		case O_SHOW:
			ok = is_table, o->showkeys = true;
			break;
		case O_JSON:
			ok = is_dump, o->json = true;
			break;
		case O_DEFER:
			ok = !strcmp(cmd, "close"), o->deferred = true;
			break;
		case O_PBKDF2:
			ok = is_open || is_table || is_test;
			o->limits.max_pbkdf2_iterations = limit_arg("--max-pbkdf2-iterations", optarg, LUKS_MAX_PBKDF2_ITER);
			break;
		case O_A2TIME:
			ok = is_open || is_table || is_test;
			o->limits.max_argon2_time = (uint32_t)limit_arg("--max-argon2-time", optarg, LUKS_MAX_ARGON2_TIME);
			break;
		case O_A2MEM:
			ok = is_open || is_table || is_test;
			o->limits.max_argon2_memory_kib =
				1024 * limit_arg("--max-argon2-memory", optarg, LUKS_MAX_ARGON2_MEMORY_KIB / 1024);
			break;
		case O_UNLOCK:
			ok = is_open || is_table || is_test;
			o->limits.max_total_ms = 1000 * (long long)limit_arg("--max-unlock-time", optarg, 86400);
			break;
		case O_VROOT:
		case O_VSALT:
		case O_VBLOCKS:
		case O_VHASH:
			ok = is_open || is_table || is_dump;
			verity_arg(c, lo[c - O_VROOT].name, optarg, o);
			break;
		default:
			cli_bad_option(argv, "+vh", lo);
		}
		if (!ok) {
			char why[128];
			snprintf(why, sizeof why, "%s does not take %s", cmd, argv[optind - 1]);
			usage_error(why);
		}
	}
	limits_complete(&o->limits);
	if (o->verity_given && o->verity_given != 15)
		usage_error("--verity-root-hash, --verity-salt, --verity-data-blocks and --verity-hash-offset go "
			    "together");
	if (o->verity_given && o->json)
		usage_error("dump --json shows the LUKS header only (the verity layer is in the text dump)");
	for (; optind < argc; optind++) {
		if (o->nargs == 2)
			cli_usage("unexpected argument %s", argv[optind]);
		o->args[o->nargs++] = argv[optind];
	}
}

static void read_key(const char *path, struct secbuf *key)
{
	int fd = STDIN_FILENO;
	const char *name = "standard input";
	if (path && strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die(EXIT_CONFIG, "reading the key file: %s: %s", path, strerror(errno));
		name = path;
	} else if (isatty(STDIN_FILENO))
		die(EXIT_USAGE, "reading the key: standard input is a terminal (pipe the key file bytes, or --key-file FILE)");
	if (secbuf_read_fd(fd, KEY_FILE_MAX, key) != 0)
		die(errno == ENOMEM ? EXIT_INTERNAL : EXIT_CONFIG, "reading the key from %s: %s", name,
		    errno == EFBIG ? "more than 8 MiB (cryptsetup's key file limit)" : strerror(errno));
	if (fd != STDIN_FILENO)
		close(fd);
	/* An empty key is never a key we were given: it is what a failed step before us in a
	 * pipeline leaves, and a hostile header can hold a keyslot that the empty passphrase opens. */
	if (key->len == 0)
		die(EXIT_CONFIG, "reading the key from %s: it is empty (the step before this one probably "
		    "failed: check its error)", name);
}

/* The header device, opened, probed, read and validated once. */
struct volume {
	int fd;
	struct blk blk;
	struct luks_volume v;
};

/* Reads the header from fd (owned by vol from here), which names path in messages. */
static void load_fd(int fd, const char *path, struct volume *vol)
{
	struct err e;
	vol->fd = fd;
	bool is_blk, is_reg;
	if (fd_size(vol->fd, &vol->blk.size, &is_blk, &is_reg) != 0)
		die(EXIT_DEVICE, "%s: %s (a block device or a regular file is needed)", path, strerror(errno));
	if (probe_is_luks(vol->fd, &e) != 0)
		die(e.code, "%s: %s", path, e.msg);
	vol->blk.fd = vol->fd;
	vol->blk.mem = NULL;
	if (luks_read(&vol->blk, &vol->v, &e) != 0)
		die(e.code, "%s: %s", path, e.msg);
	log_debug("%s: LUKS%d header, uuid %s", path, vol->v.version, vol->v.uuid);
}

static void load(const char *path, struct volume *vol)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(EXIT_DEVICE, "%s: %s", path, strerror(errno));
	load_fd(fd, path, vol);
}

/* UUIDs end up in the DM uuid and the keyring description: hex digits and dashes only. */
static void check_uuid(const struct luks_volume *v)
{
	if (!v->uuid[0] || strspn(v->uuid, "0123456789abcdefABCDEF-") != strlen(v->uuid))
		die(EXIT_CONFIG, "LUKS header: UUID is not hex digits and dashes (refused as a device-mapper UUID)");
}

/* A device-mapper name: 1..127 bytes (DM_NAME_LEN), no '/', not "." or "..", and no control
 * characters (they would reach udev, logs and this one-line error). */
static void check_name(const char *name)
{
	bool control = false;
	for (const char *p = name; *p; p++)
		control |= (unsigned char)*p < 0x20 || *p == 0x7f;
	if (control)
		die(EXIT_USAGE, "NAME: control characters are not allowed (use 1..127 printable characters without '/')");
	if (!name[0] || strlen(name) > 127 || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		die(EXIT_USAGE, "NAME \"%s\": must be 1..127 characters without '/'", name);
}

/* --header HDR makes the header detached unless HDR is DEVICE itself (then data offset 0 would
 * map the header).  Decided on the open descriptors, not on paths that could change meanwhile. */
static bool header_detached(const struct opts *o, const struct volume *vol, int data_fd)
{
	struct stat h, d;
	if (!o->header)
		return false;
	if (fstat(vol->fd, &h) != 0 || fstat(data_fd, &d) != 0)
		die(EXIT_DEVICE, "%s: %s", o->args[0], strerror(errno));
	if (S_ISBLK(h.st_mode) && S_ISBLK(d.st_mode))
		return h.st_rdev != d.st_rdev;
	return h.st_dev != d.st_dev || h.st_ino != d.st_ino;
}

/* The key file bytes: read first thing by the commands that unlock (an empty key is the first
 * thing to report), wiped once used, and at exit on every error path before that. */
static struct secbuf key;
static void wipe_key(void) { secbuf_free(&key); }

/* kcv, when not NULL, receives the key check value of the key file bytes (KEY_CHECK_VALUE_LEN). */
static void unlock(const struct volume *vol, const struct opts *o, bool for_segment, struct secbuf *vk, int *slot,
		   char *kcv)
{
	struct err e;
	if (kcv)
		key_check_value(key.data, key.len, kcv);
	unlock_deadline_arm(&o->limits);
	int r = luks_unlock(&vol->v, key.data, key.len, for_segment, &o->limits, vk, slot, &e);
	unlock_deadline_disarm();
	secbuf_free(&key);
	if (r != 0)
		die(e.code, "%s", e.msg);
	log_info("key slot %d unlocked", *slot);
}

/* dump's verity section: the pinned geometry, and whether the image agrees with it */
static void dump_verity(const struct opts *o, const struct luks_volume *v)
{
	struct verity_geom g;
	struct err e;
	uint64_t size, data_offset;
	bool blk, reg;
	char root[2 * VERITY_DIGEST + 1], salt[2 * VERITY_SALT_MAX + 1];
	int fd = open(o->args[0], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fd_size(fd, &size, &blk, &reg) != 0)
		die(EXIT_DEVICE, "%s: %s", o->args[0], strerror(errno));
	close(fd);
	if (verity_geometry(o->verity.data_blocks, &g, &e) != 0)
		die(e.code, "%s", e.msg);
	hex_encode(o->verity.root, VERITY_DIGEST, root);
	hex_encode(o->verity.salt, o->verity.salt_len, salt);
	printf("\nVerity (pinned by the options, under dm-crypt):\n");
	printf("\tformat:     \t1, sha256, 4096-byte data and hash blocks, no superblock\n");
	printf("\tdata blocks:\t%" PRIu64 " (%" PRIu64 " bytes)\n", g.data_blocks, g.data_blocks * VERITY_BLOCK);
	printf("\thash offset:\t%" PRIu64 " [bytes]\n", o->verity.hash_offset);
	printf("\thash blocks:\t%" PRIu64 " in %d levels\n", g.hash_blocks, g.levels);
	printf("\troot hash:  \t%s\n\tsalt:       \t%s\n", root, salt);
	if (verity_check_layout(v, &o->verity, size, &data_offset, &e) != 0)
		printf("\tlayout:     \tREFUSED: %s\n", e.msg);
	else
		printf("\tlayout:     \tdata area at %" PRIu64 " = the LUKS data segment; the tree ends at %" PRIu64
		       " of %" PRIu64 " bytes\n", data_offset, o->verity.hash_offset + g.hash_blocks * VERITY_BLOCK, size);
}

static int cmd_dump(struct opts *o)
{
	if (o->nargs > 1)
		cli_usage("unexpected argument %s (dump takes one DEVICE)", o->args[1]);
	if (o->nargs != 1)
		usage_error("dump needs DEVICE");
	struct volume vol;
	load(o->header ? o->header : o->args[0], &vol);
	if (o->json) {
		if (luks_dump_json(&vol.v, stdout) != 0)
			die(EXIT_INTERNAL, "dump: writing the JSON failed");
	} else {
		luks_dump_text(&vol.v, o->header ? o->header : o->args[0], stdout);
		if (o->verity_given)
			dump_verity(o, &vol.v);
	}
	luks_volume_free(&vol.v);
	close(vol.fd);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_INTERNAL;
}

static int cmd_test(struct opts *o)
{
	if (o->nargs > 1)
		cli_usage("unexpected argument %s (test takes one DEVICE)", o->args[1]);
	if (o->nargs != 1)
		usage_error("test needs DEVICE");
	read_key(o->key_file, &key);
	struct volume vol;
	struct secbuf vk = {0};
	int slot;
	char kcv[KEY_CHECK_VALUE_LEN];
	load(o->header ? o->header : o->args[0], &vol);
	unlock(&vol, o, false, &vk, &slot, kcv);
	secbuf_free(&vk);
	luks_volume_free(&vol.v);
	close(vol.fd);
	/* what encfs-mkimage printed for the key file, to match a released key with it */
	return printf("key-check-value %s\n", kcv) < 0 || fflush(stdout) != 0 ? EXIT_INTERNAL : EXIT_OK;
}

/* The data device, opened once: without --header its header is read from this descriptor, a
 * regular file is attached to the loop device from it, and a block device is named in the table
 * by its device number; so a path swapped after the checks cannot change what is opened. */
struct data_dev {
	int fd;
	char path[PATH_MAX]; /* for messages, and the device field `table` prints for a file */
	uint64_t size;
	bool is_reg, ro;
	dev_t rdev;          /* a block device's number */
};

static void data_open(const char *arg, bool want_ro, struct data_dev *d)
{
	bool is_blk;
	d->ro = want_ro;
	d->fd = open(arg, (want_ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (d->fd < 0 && !want_ro && (errno == EACCES || errno == EROFS || errno == EPERM)) {
		d->ro = true; /* as cryptsetup: a device we may only read is opened read-only */
		d->fd = open(arg, O_RDONLY | O_CLOEXEC);
	}
	if (d->fd < 0)
		die(EXIT_DEVICE, "%s: %s", arg, strerror(errno));
	if (fd_size(d->fd, &d->size, &is_blk, &d->is_reg) != 0)
		die(EXIT_DEVICE, "%s: %s (a block device or a regular file is needed)", arg, strerror(errno));
	int ro_flag = 0;
	if (is_blk && ioctl(d->fd, BLKROGET, &ro_flag) == 0 && ro_flag)
		d->ro = true;
	struct stat st;
	d->rdev = fstat(d->fd, &st) == 0 ? st.st_rdev : 0;
	if (!realpath(arg, d->path))
		die(EXIT_DEVICE, "%s: %s", arg, strerror(errno));
}

/* Opens the data device and reads the header: from --header HDR, or from the data device's own
 * descriptor. */
static void open_volume(const struct opts *o, bool want_ro, struct data_dev *d, struct volume *vol)
{
	data_open(o->args[0], want_ro, d);
	if (o->header)
		load(o->header, vol);
	else {
		int fd = dup(d->fd);
		if (fd < 0)
			die(EXIT_INTERNAL, "%s: %s", o->args[0], strerror(errno));
		load_fd(fd, o->args[0], vol);
	}
}

/* As cryptsetup: the keyring for LUKS2 only, when the kernel and dm-crypt (1.18.1) support it. */
static bool use_keyring(const struct opts *o, const struct luks_volume *v)
{
	if (o->no_keyring || v->version != 2 || !keyring_available())
		return false;
	struct err e;
	return dm_available(&e) == 0 && dm_crypt_keyring_supported();
}

/* The pinned root hash against the tree's top block, read from DEVICE itself before anything is
 * made (and while a stop signal still ends us): in dm-verity format 1 the root hash is
 * sha256(salt || top block), and the top block is the first of the tree, at the hash offset.  A
 * blob replaced by another image (an older one made with the same key) or a changed top level is
 * refused here, at open, with nothing to undo.  dm-verity checks every block read later against
 * the same root (a top block swapped after this check fails those reads with EIO).  No read goes
 * through the verity device here: with the signals held back, a hostile server that stalls it
 * would keep open from ending on SIGTERM, and the devices made would be left (SIGKILL). */
static int verity_check_root(const struct data_dev *d, const struct verity_params *p, const char *name,
			     struct err *e)
{
	struct blk b = {.fd = d->fd, .mem = NULL, .size = d->size};
	unsigned char *block = malloc(VERITY_BLOCK), md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	if (!block)
		return err_set(e, EXIT_INTERNAL, "out of memory");
	if (blk_read(&b, p->hash_offset, block, VERITY_BLOCK) != 0) {
		int saved = errno;
		free(block);
		return err_set(e, EXIT_DEVICE, "%s: reading the hash tree's top block at %" PRIu64 ": %s", d->path,
			       p->hash_offset, strerror(saved));
	}
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(c, p->salt, p->salt_len) == 1 &&
		 EVP_DigestUpdate(c, block, VERITY_BLOCK) == 1 && EVP_DigestFinal_ex(c, md, &len) == 1 &&
		 len == VERITY_DIGEST;
	EVP_MD_CTX_free(c);
	free(block);
	if (!ok)
		return err_set(e, EXIT_INTERNAL, "sha256 failed (OpenSSL)");
	if (memcmp(md, p->root, VERITY_DIGEST) != 0)
		return err_set(e, EXIT_CRYPTO, "%s: dm-verity refused the image: its hash tree does not match the "
			       "pinned root hash (the blob was replaced, by an older image perhaps, or altered; "
			       "or the configured root_hash/salt are not this image's)", name);
	return 0;
}

static int cmd_table(struct opts *o)
{
	if (o->nargs < 1)
		usage_error("table needs DEVICE [NAME]");
	read_key(o->key_file, &key);
	struct volume vol;
	struct data_dev d;
	struct secbuf vk = {0};
	struct table_line tl;
	struct err e;
	int slot;
	open_volume(o, true, &d, &vol);
	if (luks_check_activation(&vol.v, header_detached(o, &vol, d.fd), &e) != 0)
		die(e.code, "%s", e.msg);
	check_uuid(&vol.v);
	/* VERITY: the verity line first (over DEVICE from the data segment's offset on: open puts a
	 * loop device there), then the crypt line over NAME-verity */
	const char *name = o->nargs > 1 ? o->args[1] : "NAME";
	char vpath[PATH_MAX];
	struct luks_volume view = vol.v;
	uint64_t data_offset, crypt_bytes = d.size;
	const char *crypt_dev = d.path;
	if (o->verity_given) {
		struct table_line vtl;
		if (verity_check_layout(&vol.v, &o->verity, d.size, &data_offset, &e) != 0 ||
		    verity_build_table(&o->verity, data_offset, d.path, &vtl, &e) != 0)
			die(e.code, "%s: %s", d.path, e.msg);
		if (verity_check_root(&d, &o->verity, name, &e) != 0) {
			table_line_free(&vtl);
			die(e.code, "%s", e.msg);
		}
		char *vline = table_line_format(&vtl);
		if (!vline || puts(vline) < 0)
			die(EXIT_INTERNAL, "table: out of memory");
		free(vline);
		table_line_free(&vtl);
		snprintf(vpath, sizeof vpath, "/dev/mapper/%s" VERITY_NAME_SUFFIX, name);
		verity_crypt_view(&vol.v, &o->verity, &view);
		crypt_dev = vpath;
		crypt_bytes = o->verity.data_blocks * VERITY_BLOCK;
	}
	unlock(&vol, o, true, &vk, &slot, NULL);
	char desc[128];
	bool kr = use_keyring(o, &vol.v) && luks_keyring_desc(&vol.v, desc, sizeof desc) == 0;
	struct table_params p = {crypt_dev, crypt_bytes, false, kr ? desc : NULL, o->showkeys};
	if (luks_build_table(&view, vk.data, vk.len, &p, &tl, &e) != 0)
		die(e.code, "%s", e.msg);
	secbuf_free(&vk);
	char *line = table_line_format(&tl);
	if (!line)
		die(EXIT_INTERNAL, "table: out of memory");
	if (o->showkeys && !kr && isatty(STDOUT_FILENO))
		die(EXIT_USAGE, "table --showkeys: refusing to write the volume key to a terminal (redirect it)");
	int r = puts(line) < 0 || fflush(stdout) != 0 ? EXIT_INTERNAL : EXIT_OK;
	wipe(line, strlen(line));
	free(line);
	table_line_free(&tl);
	luks_volume_free(&vol.v);
	close(vol.fd);
	close(d.fd);
	return r;
}

static int cmd_open(struct opts *o)
{
	if (o->nargs != 2)
		usage_error("open needs DEVICE NAME");
	const char *name = o->args[1];
	struct volume vol;
	struct data_dev d;
	struct secbuf vk = {0};
	struct table_line tl = {0};
	struct err e;
	int slot, loop_fd = -1;
	int32_t key_id = -1;
	bool dm_tried = false, verity = o->verity_given != 0, verity_made = false;
	char dev_path[PATH_MAX], uuid[LUKS_DM_UUID_MAX + 1], desc[128];
	char vname[160], vuuid[LUKS_DM_UUID_MAX + 1];
	uint64_t data_offset = 0;
	struct table_line vtl = {0};
	struct luks_volume view;
	dev_t vdev = 0;

	check_name(name);
	if (verity && strlen(name) > 127 - strlen(VERITY_NAME_SUFFIX))
		die(EXIT_USAGE, "NAME \"%s\": at most 120 characters with dm-verity (NAME-verity is a device too)", name);
	read_key(o->key_file, &key);
	/* dm-verity is read-only: so is the volume on it */
	open_volume(o, o->readonly || verity, &d, &vol);
	if (luks_check_activation(&vol.v, header_detached(o, &vol, d.fd), &e) != 0)
		die(e.code, "%s", e.msg);
	check_uuid(&vol.v);
	if (luks_dm_uuid(&vol.v, name, uuid, sizeof uuid) != 0)
		die(EXIT_INTERNAL, "NAME \"%s\": building the device-mapper UUID failed", name);
	if (strlen(uuid) == LUKS_DM_UUID_MAX)
		log_info("DM uuid cut to %d bytes, as cryptsetup cuts it: %s", LUKS_DM_UUID_MAX, uuid);
	/* as cryptsetup: device-mapper and the name are checked before the key derivation runs */
	if (dm_available(&e) != 0)
		die(e.code, "%s", e.msg);
	if (dm_exists(name))
		die(EXIT_DEVICE, "device-mapper: %s already exists", name);
	view = vol.v;
	if (verity) {
		/* the pinned layout, checked against the header and the device before the key is used */
		if (verity_check_layout(&vol.v, &o->verity, d.size, &data_offset, &e) != 0)
			die(e.code, "%s: %s", name, e.msg);
		if (verity_check_root(&d, &o->verity, name, &e) != 0)
			die(e.code, "%s", e.msg);
		snprintf(vname, sizeof vname, "%s" VERITY_NAME_SUFFIX, name);
		if (verity_dm_uuid(&vol.v, name, vuuid, sizeof vuuid) != 0)
			die(EXIT_INTERNAL, "NAME \"%s\": building the device-mapper UUID failed", name);
		if (dm_exists(vname))
			die(EXIT_DEVICE, "device-mapper: %s already exists", vname);
		verity_crypt_view(&vol.v, &o->verity, &view);
	}
	unlock(&vol, o, true, &vk, &slot, NULL);
	/* Nothing exists yet: from here on every step is undone on failure.  Signals are held back
	 * until the end (and a closed stderr is no SIGPIPE), so that exit status 0 means "the device
	 * exists and is ours" and any other means "nothing was made": encfs.sh's cleanup relies on
	 * it.  (Only SIGKILL can break that.) */
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (d.is_reg || verity) {
		/* with dm-verity a loop device always: it starts at the data area (dm-verity has no
		 * data offset), for a block device too */
		char loop_path[64];
		if (loop_attach_fd(d.fd, d.path, data_offset, d.ro, loop_path, sizeof loop_path, &loop_fd, &e) != 0)
			goto fail;
		log_info("%s: attached to %s%s", d.path, loop_path, d.ro ? " (read-only)" : "");
		bool blk, reg;
		struct stat st;
		if (fd_size(loop_fd, &d.size, &blk, &reg) != 0 || fstat(loop_fd, &st) != 0) {
			err_set(&e, EXIT_DEVICE, "%s: size: %s", loop_path, strerror(errno));
			goto fail;
		}
		d.rdev = st.st_rdev;
	}
	snprintf(dev_path, sizeof dev_path, "%u:%u", major(d.rdev), minor(d.rdev));
	bool kr = use_keyring(o, &vol.v) && luks_keyring_desc(&vol.v, desc, sizeof desc) == 0;
	if (kr && (key_id = keyring_add_logon(desc, vk.data, vk.len)) < 0) {
		log_info("kernel keyring: %s; loading the key as hex", strerror(errno));
		kr = false;
	}
	static const int stops[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM};
	sigset_t pending;
	bool stopping = false;
	if (sigpending(&pending) == 0)
		for (size_t k = 0; k < sizeof stops / sizeof stops[0]; k++)
			stopping |= sigismember(&pending, stops[k]) == 1;
	if (stopping) {
		err_set(&e, EXIT_DEVICE, "open: stopped by a signal before the device was created (nothing was left)");
		goto fail;
	}
	uint64_t crypt_bytes = d.size;
	if (verity) {
		/* dm-verity over the loop device (data and tree), its root checked now, dm-crypt on it */
		if (verity_build_table(&o->verity, data_offset, dev_path, &vtl, &e) != 0)
			goto fail;
		verity_made = true;
		if (dm_create_crypt(vname, vuuid, true, &vtl, &vdev, &e) != 0)
			goto fail;
		snprintf(dev_path, sizeof dev_path, "%u:%u", major(vdev), minor(vdev));
		crypt_bytes = o->verity.data_blocks * VERITY_BLOCK;
		log_info("opened /dev/mapper/%s (%s): the root hash verifies", vname, vuuid);
	}
	struct table_params p = {dev_path, crypt_bytes, o->allow_discards, kr ? desc : NULL, true};
	if (luks_build_table(&view, vk.data, vk.len, &p, &tl, &e) != 0)
		goto fail;
	secbuf_free(&vk);
	dm_tried = true;
	if (dm_create_crypt(name, uuid, d.ro, &tl, NULL, &e) != 0)
		goto fail;
	/* dm-crypt holds its own copy of the key now; the keyring entry and our loop fd can go
	 * (autoclear detaches the loop device when the dm device is removed) */
	keyring_unlink_thread(key_id);
	table_line_free(&tl);
	table_line_free(&vtl);
	if (loop_fd >= 0)
		close(loop_fd);
	luks_volume_free(&vol.v);
	close(vol.fd);
	close(d.fd);
	log_info("opened /dev/mapper/%s (%s)", name, uuid);
	/* a stop signal that came meanwhile is for the caller, who now owns the device: exit 0 */
	return EXIT_OK;
fail:
	table_line_free(&tl);
	table_line_free(&vtl);
	secbuf_free(&vk);
	if (dm_tried)
		(void)dm_rollback(name, uuid);
	if (verity_made)
		(void)dm_remove_ours(vname, vuuid);
	keyring_unlink_thread(key_id);
	if (loop_fd >= 0)
		close(loop_fd); /* autoclear: the loop device goes with its last user */
	die(e.code, "%s", e.msg);
}

static int cmd_close(struct opts *o)
{
	struct err e;
	if (o->nargs > 1)
		cli_usage("unexpected argument %s (close takes one NAME)", o->args[1]);
	if (o->nargs != 1)
		usage_error("close needs NAME");
	check_name(o->args[0]);
	bool still_open;
	if (dm_available(&e) != 0 || dm_close_crypt(o->args[0], o->deferred, &still_open, &e) != 0 ||
	    dm_close_verity(o->args[0], o->deferred, &e) != 0)
		die(e.code, "%s", e.msg);
	if (still_open)
		log_warn("%s is in use: it is removed, with its key, when its last user closes it", o->args[0]);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	log_init(argv[0]);
	secmem_init();
	atexit(wipe_key);
	/* -v/--verbose and -h before the subcommand */
	int i = cli_leading_verbose(argc, argv);
	if (i < argc && (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))) {
		fputs(USAGE, stdout);
		return EXIT_OK;
	}
	if (i < argc && argv[i][0] == '-') {
		size_t n = strcspn(argv[i], "=");
		for (const struct option *p = lo; p->name && argv[i][1] == '-'; p++)
			if (strlen(p->name) == n - 2 && !strncmp(p->name, argv[i] + 2, n - 2))
				cli_usage("%s: options go after the subcommand", argv[i]);
		cli_usage("unknown option %.*s", (int)n, argv[i]);
	}
	if (i >= argc)
		usage_error("missing subcommand (open, close, table, test or dump)");
	const char *cmd = argv[i];
	struct opts o = {0};
	if (strcmp(cmd, "open") && strcmp(cmd, "close") && strcmp(cmd, "table") && strcmp(cmd, "test") &&
	    strcmp(cmd, "dump"))
		cli_usage("unknown subcommand %s (open, close, table, test or dump)", cmd);
	parse(argc - i, argv + i, cmd, &o);
	if (!strcmp(cmd, "open"))
		return cmd_open(&o);
	if (!strcmp(cmd, "close"))
		return cmd_close(&o);
	if (!strcmp(cmd, "table"))
		return cmd_table(&o);
	if (!strcmp(cmd, "test"))
		return cmd_test(&o);
	return cmd_dump(&o);
}
