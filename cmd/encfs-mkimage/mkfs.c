/* The plaintext filesystem: mke2fs -d into a private temporary file.
 *
 * IMAGE is sparse: whatever mke2fs does not write stays a hole, and a hole decrypts to garbage, not
 * zeros.  So ext4 must never count on a block being zero unless mke2fs wrote the zeros:
 *   - nodiscard: on a regular file mke2fs "discards" by punching holes, believes the holes read
 *     as zeros, and then marks every inode table zeroed (ITABLE_ZEROED): the kernel would never
 *     initialise them, and garbage would pass for inodes.
 *   - lazy_itable_init=1: inode tables are left unwritten and not marked zeroed; the kernel
 *     zeroes them itself (through dm-crypt) on the first read-write mount, and e2fsck and the
 *     kernel read no inode past a group's used count until then.  (Zeroing them here would not
 *     help: libext2fs zeroes a regular file by punching holes, which SEEK_DATA reports as holes.)
 *   - lazy_journal_init=1: only the journal superblock is written.  Its s_start is 0 (nothing to
 *     replay), and a replay stops at the first block that is not a descriptor of the expected
 *     sequence, which garbage is not (a zeroed journal would again be holes).
 *   - no resize_inode: its reserved descriptor blocks are reserved, not written, in the backup
 *     groups; without it there is nothing of the kind (the kernel can still grow the filesystem
 *     online, with meta_bg).
 *   - an explicit feature list and a configuration of our own (MKE2FS_CONFIG): the result does not
 *     depend on the host's /etc/mke2fs.conf, and stays within what Linux 5.15 mounts.
 * Block bitmaps of groups marked BLOCK_UNINIT are not written either: ext4 and e2fsck compute them
 * instead of reading them.  test/mkimage.t fills every hole with random bytes and requires a clean
 * e2fsck -fn and the tree back, byte for byte. */
#include "mkimage.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char FEATURES[] = "none,has_journal,ext_attr,dir_index,filetype,extent,64bit,flex_bg,sparse_super,"
			       "large_file,huge_file,dir_nlink,extra_isize,metadata_csum";
/* Types that exist, so that mke2fs neither warns nor reads the host's configuration. */
static const char CONFIG[] = "[fs_types]\n\text4 = {\n\t\tinode_size = 256\n\t}\n"
			     "\tencfs = {\n\t\tblocksize = 4096\n\t}\n";
#define STDERR_KEEP 4096 /* the end of a child's standard error, for the error line */

static volatile pid_t child = -1;

/* mke2fs and debugfs live in /sbin, which a user's PATH may lack: it is added at the end. */
static int sbin_on_path(struct err *e)
{
	static bool done;
	const char *path = getenv("PATH");
	if (done)
		return 0;
	size_t n = (path ? strlen(path) : 0) + 32;
	char *p = malloc(n);
	if (!p)
		return err_set(e, EXIT_INTERNAL, "out of memory");
	snprintf(p, n, "%s:/usr/sbin:/sbin", path && *path ? path : "/usr/bin:/bin");
	int r = setenv("PATH", p, 1);
	free(p);
	if (r != 0)
		return err_set(e, EXIT_INTERNAL, "setenv: %s", strerror(errno));
	done = true;
	return 0;
}

void mkfs_kill_child(void)
{
	pid_t p = child;
	if (p > 0)
		kill(p, SIGKILL);
}

int tmpfile_private(struct err *e)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	char path[4096];
	if ((size_t)snprintf(path, sizeof path, "%s/encfs-mkimage.XXXXXX", dir) >= sizeof path)
		return err_set(e, EXIT_CONFIG, "TMPDIR is too long");
	/* no signal between creating and unlinking: then nothing can be left behind */
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	int fd = mkostemp(path, O_CLOEXEC);
	int saved = errno;
	if (fd >= 0)
		unlink(path);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (fd < 0)
		return err_set(e, EXIT_DEVICE, "a temporary file in %s: %s (set TMPDIR to a writable directory)", dir,
			       strerror(saved));
	return fd;
}

/* Runs argv with stdout and stderr into a pipe; fds stay open in the child (no CLOEXEC) for it
 * to reach them as /proc/self/fd/N.  Returns the exit status (or 128 + signal), -1 on a failure
 * to run; tail receives the end of the output. */
static int run_child(char *const argv[], const int *keep, int nkeep, char *tail, size_t tailsz, struct err *e)
{
	int p[2];
	if (sbin_on_path(e) != 0)
		return -1;
	if (pipe2(p, O_CLOEXEC) != 0)
		return err_set(e, EXIT_INTERNAL, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return err_set(e, EXIT_INTERNAL, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		/* the child dies with us: no mke2fs left writing plaintext after a kill */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(127);
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, STDIN_FILENO);
		for (int i = 0; i < nkeep; i++)
			fcntl(keep[i], F_SETFD, 0);
		execvp(argv[0], argv);
		fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	child = pid;
	close(p[1]);
	size_t used = 0;
	char buf[1024];
	for (;;) {
		ssize_t r = read(p[0], buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (log_enabled(LOG_DEBUG))
			fwrite(buf, 1, (size_t)r, stderr);
		/* keep the last tailsz - 1 bytes (tailsz > sizeof buf) */
		size_t n = (size_t)r;
		if (used + n > tailsz - 1) {
			size_t drop = used + n - (tailsz - 1);
			memmove(tail, tail + drop, used - drop);
			used -= drop;
		}
		memcpy(tail + used, buf, n);
		used += n;
	}
	tail[used] = '\0';
	close(p[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			child = -1;
			return err_set(e, EXIT_INTERNAL, "waitpid: %s", strerror(errno));
		}
	child = -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The last non-empty line of s, for a one-line error. */
static const char *last_line(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	char *nl = strrchr(s, '\n');
	char *line = nl ? nl + 1 : s;
	for (char *c = line; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' ';
	return *line ? line : "(no message)";
}

int mkfs_run(const char *dir, const struct tree *t, const struct fs_plan *plan, int fd, struct err *e)
{
	int cfg = memfd_create("mke2fs.conf", MFD_CLOEXEC);
	if (cfg < 0 || write(cfg, CONFIG, sizeof CONFIG - 1) != (ssize_t)(sizeof CONFIG - 1)) {
		if (cfg >= 0)
			close(cfg);
		return err_set(e, EXIT_INTERNAL, "mke2fs configuration: %s", strerror(errno));
	}
	if (ftruncate(fd, (off_t)(plan->blocks * FS_BLOCK)) != 0) {
		close(cfg);
		return err_set(e, EXIT_DEVICE, "the temporary file: %s (set TMPDIR to a larger filesystem)", strerror(errno));
	}
	char cfgpath[64], dev[64], inodes[32], blocks[32], journal[32], ext[128];
	snprintf(cfgpath, sizeof cfgpath, "/proc/self/fd/%d", cfg);
	snprintf(dev, sizeof dev, "/proc/self/fd/%d", fd);
	snprintf(inodes, sizeof inodes, "%" PRIu64, plan->inodes);
	snprintf(blocks, sizeof blocks, "%" PRIu64, plan->blocks);
	snprintf(journal, sizeof journal, "size=%" PRIu64, plan->journal_blocks * FS_BLOCK >> 20);
	snprintf(ext, sizeof ext, "nodiscard,lazy_itable_init=1,lazy_journal_init=1,root_owner=%lu:%lu",
		 (unsigned long)t->uid, (unsigned long)t->gid);
	char *argv[] = {"mke2fs", "-q", "-F", "-t", "ext4", "-T", "encfs", "-b", "4096", "-I", "256", "-N", inodes,
			"-m", "0", "-O", (char *)FEATURES, "-E", ext, "-J", journal, "-d", (char *)dir, dev, blocks,
			NULL};
	log_info("mke2fs -q -F -t ext4 -T encfs -b 4096 -I 256 -N %s -m 0 -O %s -E %s -J %s -d %s %s %s", inodes,
		 FEATURES, ext, journal, dir, dev, blocks);
	setenv("MKE2FS_CONFIG", cfgpath, 1);
	char tail[STDERR_KEEP];
	int keep[] = {fd, cfg};
	int st = run_child(argv, keep, 2, tail, sizeof tail, e);
	unsetenv("MKE2FS_CONFIG");
	close(cfg);
	if (st < 0)
		return -1;
	if (st == 127)
		return err_set(e, EXIT_INTERNAL, "running mke2fs: %s (install e2fsprogs)", last_line(tail));
	if (st != 0) {
		/* out of blocks or inodes: the caller may try a larger size */
		if (strstr(tail, "Could not allocate"))
			return log_info("mke2fs: %s", last_line(tail)), 1;
		return err_set(e, EXIT_CONFIG, "mke2fs -d %s failed (status %d): %s", dir, st, last_line(tail));
	}
	/* mke2fs -d gives the root directory DIR's owner (root_owner) but mode 0755 */
	if (t->mode != 0755) {
		char set[64];
		snprintf(set, sizeof set, "set_inode_field <2> mode 0%o", (unsigned)(040000 | t->mode));
		char *dargv[] = {"debugfs", "-w", "-R", set, dev, NULL};
		log_info("debugfs -w -R '%s' %s", set, dev);
		st = run_child(dargv, keep, 1, tail, sizeof tail, e);
		if (st < 0)
			return -1;
		/* debugfs exits 0 even when the command fails: it then says so */
		if (st != 0 || strstr(tail, "set_inode_field:"))
			return err_set(e, EXIT_INTERNAL, "debugfs (the root directory's mode) failed: %s", last_line(tail));
	}
	return 0;
}
