/* The system side of open and close, kept thin: libblkid probe, loop devices (autoclear), the
 * kernel keyring (logon keys in the thread keyring, as cryptsetup) and device-mapper through
 * libdevmapper.  Everything that decides what to load lives in luks*.c and table.c. */
#include "activate.h"

#include <blkid/blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <libdevmapper.h>
#include <linux/fs.h>
#include <linux/keyctl.h>
#include <linux/loop.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

/* --- blkid --------------------------------------------------------------------------------- */

int probe_is_luks(int fd, struct err *e)
{
	blkid_probe pr = blkid_new_probe();
	if (!pr)
		return err_set(e, EXIT_INTERNAL, "probing the device: out of memory");
	int r = -1;
	if (blkid_probe_set_device(pr, fd, 0, 0) != 0) {
		err_set(e, EXIT_DEVICE, "probing the device: libblkid cannot read it");
		goto out;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_VERSION);
	blkid_probe_enable_partitions(pr, 1);
	int rc = blkid_do_safeprobe(pr);
	const char *type = NULL;
	if (rc == -2) {
		err_set(e, EXIT_CONFIG, "not a LUKS volume: ambiguous signatures (more than one format on the device; "
			"check it with blkid -p)");
		goto out;
	}
	if (rc < 0) {
		err_set(e, EXIT_DEVICE, "probing the device: libblkid failed");
		goto out;
	}
	if (rc == 1) {
		err_set(e, EXIT_CONFIG, "not a LUKS volume: no known signature found");
		goto out;
	}
	if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) != 0 &&
	    blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL) != 0)
		type = "unknown";
	if (strcmp(type, "crypto_LUKS") != 0) {
		char safe[64];
		size_t i = 0;
		for (; type[i] && i + 1 < sizeof safe; i++)
			safe[i] = type[i] > 0x20 && type[i] < 0x7f ? type[i] : '?';
		safe[i] = '\0';
		err_set(e, EXIT_CONFIG, "not a LUKS volume: found %s", safe);
		goto out;
	}
	r = 0;
out:
	blkid_free_probe(pr);
	return r;
}

/* --- sizes --------------------------------------------------------------------------------- */

int fd_size(int fd, uint64_t *size, bool *is_blk, bool *is_reg)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -1;
	*is_blk = S_ISBLK(st.st_mode);
	*is_reg = S_ISREG(st.st_mode);
	if (*is_blk)
		return ioctl(fd, BLKGETSIZE64, size) == 0 ? 0 : -1;
	if (*is_reg) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	errno = ENODEV;
	return -1;
}

/* --- loop devices -------------------------------------------------------------------------- */

/* Binds file ffd to the loop device lfd with cfg: LOOP_CONFIGURE (Linux 5.8), else LOOP_SET_FD
 * and LOOP_SET_STATUS64; then checks that the kernel kept autoclear (and read-only), as
 * cryptsetup does, since a loop device without autoclear would outlive the dm device.  0, or an
 * errno value (EBUSY: someone else took the device). */
static int loop_bind(int lfd, int ffd, const struct loop_config *cfg)
{
	if (ioctl(lfd, LOOP_CONFIGURE, cfg) != 0) {
		if (errno != EINVAL && errno != ENOTTY)
			return errno;
		if (ioctl(lfd, LOOP_SET_FD, ffd) != 0)
			return errno;
		if (ioctl(lfd, LOOP_SET_STATUS64, &cfg->info) != 0) {
			int saved = errno;
			(void)ioctl(lfd, LOOP_CLR_FD, 0);
			return saved;
		}
	}
	struct loop_info64 info;
	unsigned want = cfg->info.lo_flags & (LO_FLAGS_AUTOCLEAR | LO_FLAGS_READ_ONLY);
	if (ioctl(lfd, LOOP_GET_STATUS64, &info) != 0 || (info.lo_flags & want) != want) {
		(void)ioctl(lfd, LOOP_CLR_FD, 0);
		return ENOTSUP;
	}
	return 0;
}

int loop_attach_fd(int ffd, const char *file, uint64_t offset, bool ro, char *path, size_t pathsz, int *loop_fd,
		   struct err *e)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return err_set(e, EXIT_DEVICE, "/dev/loop-control: %s (is the loop module loaded?)", strerror(errno));
	struct loop_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.fd = (uint32_t)ffd;
	cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (ro ? LO_FLAGS_READ_ONLY : 0);
	cfg.info.lo_offset = offset;
	snprintf((char *)cfg.info.lo_file_name, sizeof cfg.info.lo_file_name, "%s", file);
	int r = -1, attempt = 0;
	for (; attempt < 16; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			err_set(e, EXIT_DEVICE, "finding a free loop device: %s", strerror(errno));
			break;
		}
		snprintf(path, pathsz, "/dev/loop%d", n);
		int lfd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (lfd < 0) {
			err_set(e, EXIT_DEVICE, "%s: %s", path, strerror(errno));
			break;
		}
		int err = loop_bind(lfd, ffd, &cfg);
		if (err == 0) {
			*loop_fd = lfd;
			r = 0;
			break;
		}
		close(lfd);
		if (err != EBUSY) {
			err_set(e, EXIT_DEVICE, "%s: attaching %s: %s", path, file,
				err == ENOTSUP ? "the kernel did not keep autoclear or read-only" : strerror(err));
			break;
		}
		/* another process took it between GET_FREE and binding: try the next one */
	}
	if (attempt == 16)
		err_set(e, EXIT_DEVICE, "attaching %s: every free loop device was taken by others", file);
	close(ctl);
	return r;
}

/* --- kernel keyring ------------------------------------------------------------------------ */

bool keyring_available(void)
{
	/* logon descriptions need a "prefix:"; the lookup fails, but not with ENOSYS, when keys exist */
	return syscall(__NR_request_key, "logon", "dummy", NULL, 0) == -1 && errno != ENOSYS;
}

int32_t keyring_add_logon(const char *desc, const unsigned char *key, size_t len)
{
	return (int32_t)syscall(__NR_add_key, "logon", desc, key, len, KEY_SPEC_THREAD_KEYRING);
}

void keyring_unlink_thread(int32_t id)
{
	if (id > 0)
		(void)syscall(__NR_keyctl, KEYCTL_UNLINK, id, KEY_SPEC_THREAD_KEYRING);
}

void keyring_drop_by_desc(const char *desc)
{
	long id = syscall(__NR_request_key, "logon", desc, NULL, 0);
	if (id <= 0)
		return;
	static const int rings[] = {KEY_SPEC_THREAD_KEYRING, KEY_SPEC_PROCESS_KEYRING, KEY_SPEC_SESSION_KEYRING,
				    KEY_SPEC_USER_KEYRING};
	for (size_t i = 0; i < sizeof rings / sizeof rings[0]; i++)
		(void)syscall(__NR_keyctl, KEYCTL_UNLINK, id, rings[i]);
}

/* --- device-mapper ------------------------------------------------------------------------- */

static char dm_last_error[256];

__attribute__((format(printf, 5, 6))) static void dm_log(int level, const char *file, int line, int errno_or_class,
							 const char *f, ...)
{
	(void)file;
	(void)line;
	(void)errno_or_class;
	char msg[256];
	va_list ap;
	va_start(ap, f);
	vsnprintf(msg, sizeof msg, f, ap);
	va_end(ap);
	if ((level & 7) <= 3) { /* _LOG_ERR and worse; higher bits are _LOG_STDERR/_LOG_ONCE flags */
		snprintf(dm_last_error, sizeof dm_last_error, "%s", msg);
		log_debug("libdevmapper: %s", msg);
	} else
		log_trace("libdevmapper: %s", msg);
}

static void dm_setup(void)
{
	static bool done;
	if (!done) {
		dm_log_with_errno_init(dm_log);
		done = true;
	}
	dm_last_error[0] = '\0';
}

static const char *dm_why(const char *fallback)
{
	return dm_last_error[0] ? dm_last_error : fallback;
}

int dm_available(struct err *e)
{
	char v[64];
	dm_setup();
	if (!dm_driver_version(v, sizeof v))
		return err_set(e, EXIT_DEVICE, "device-mapper: %s (load dm_mod, run as root)",
			       dm_why("not available in this kernel"));
	return 0;
}

bool dm_crypt_keyring_supported(void)
{
	dm_setup();
	struct dm_task *t = dm_task_create(DM_DEVICE_GET_TARGET_VERSION);
	if (t) {
		/* loads dm-crypt if it is a module, so that the list below has it */
		if (dm_task_set_name(t, "crypt"))
			(void)dm_task_run(t);
		dm_task_destroy(t);
	}
	bool ok = false;
	if (!(t = dm_task_create(DM_DEVICE_LIST_VERSIONS)))
		return false;
	if (dm_task_run(t)) {
		struct dm_versions *v = dm_task_get_versions(t), *last;
		do {
			last = v;
			if (strcmp(v->name, "crypt") == 0) {
				/* 1.18.1: dm-crypt reads the key size from the keyring reference correctly */
				uint32_t a = v->version[0], b = v->version[1], c = v->version[2];
				ok = a > 1 || (a == 1 && (b > 18 || (b == 18 && c >= 1)));
			}
			v = (struct dm_versions *)(void *)((char *)v + v->next);
		} while (v != last);
	}
	dm_task_destroy(t);
	return ok;
}

int dm_exists(const char *name)
{
	struct dm_task *t = dm_task_create(DM_DEVICE_INFO);
	struct dm_info info;
	int r = 0;
	if (t && dm_task_set_name(t, name) && dm_task_run(t) && dm_task_get_info(t, &info))
		r = info.exists ? 1 : 0;
	if (t)
		dm_task_destroy(t);
	return r;
}

/* deferred: a device still open is marked to go when its last user closes it (no retries) */
static int dm_remove_name(const char *name, bool deferred)
{
	uint32_t cookie = 0;
	bool udev = dm_udev_get_sync_support();
	struct dm_task *t = dm_task_create(DM_DEVICE_REMOVE);
	int ok = t && dm_task_set_name(t, name) && (deferred ? dm_task_deferred_remove(t) : dm_task_retry_remove(t)) &&
		 (!udev || dm_task_set_cookie(t, &cookie, DM_UDEV_DISABLE_LIBRARY_FALLBACK)) && dm_task_run(t);
	if (udev && cookie)
		(void)dm_udev_wait(cookie);
	if (t)
		dm_task_destroy(t);
	dm_task_update_nodes();
	return ok ? 0 : -1;
}

int dm_create_crypt(const char *name, const char *uuid, bool ro, const struct table_line *tl, dev_t *dev,
		    struct err *e)
{
	dm_setup();
	uint32_t cookie = 0;
	/* with udev running it makes the /dev/mapper nodes and we wait for it; without udev (a
	 * container) libdevmapper makes them itself, which is what cryptsetup relies on too */
	bool udev = dm_udev_get_sync_support();
	struct dm_task *t = dm_task_create(DM_DEVICE_CREATE);
	int r = -1;
	if (!t) {
		err_set(e, EXIT_INTERNAL, "device-mapper: out of memory");
		goto out;
	}
	if (!dm_task_set_name(t, name) || !dm_task_set_uuid(t, uuid) || !dm_task_secure_data(t) ||
	    (ro && !dm_task_set_ro(t)) || !dm_task_add_target(t, tl->start, tl->length, tl->target, tl->params) ||
	    (udev && !dm_task_set_cookie(t, &cookie, DM_UDEV_DISABLE_LIBRARY_FALLBACK))) {
		err_set(e, EXIT_DEVICE, "device-mapper: preparing %s: %s", name, dm_why("libdevmapper refused"));
		goto out;
	}
	if (!dm_task_run(t)) {
		int err = dm_task_get_errno(t);
		err_set(e, EXIT_DEVICE, "device-mapper: creating %s: %s%s", name, dm_why(strerror(err ? err : EIO)),
			err == ENOKEY ? " (the key was not found in the kernel keyring: try --no-keyring)" : "");
		goto out;
	}
	struct dm_info info;
	if (dev && dm_task_get_info(t, &info) && info.exists)
		*dev = makedev((unsigned)info.major, (unsigned)info.minor);
	r = 0;
out:
	if (udev && cookie)
		(void)dm_udev_wait(cookie);
	if (t)
		dm_task_destroy(t);
	dm_task_update_nodes();
	return r;
}

int dm_rollback(const char *name, const char *uuid)
{
	/* libdevmapper removes what a failed create made (it reverts a failed load or resume), so
	 * this only catches a revert that failed too: a device with our uuid that never went live.
	 * A live device under the name, even with our uuid, is someone else's (another open of the
	 * same volume that won the race) and is left alone. */
	struct dm_task *t = dm_task_create(DM_DEVICE_INFO);
	struct dm_info info;
	bool ours = false;
	if (t && dm_task_set_name(t, name) && dm_task_run(t) && dm_task_get_info(t, &info) && info.exists) {
		const char *u = dm_task_get_uuid(t);
		ours = u && strcmp(u, uuid) == 0 && !info.live_table;
	}
	if (t)
		dm_task_destroy(t);
	return ours ? dm_remove_name(name, false) : 0;
}

int dm_remove_ours(const char *name, const char *uuid)
{
	dm_setup();
	struct dm_task *t = dm_task_create(DM_DEVICE_INFO);
	struct dm_info info;
	bool ours = false;
	if (t && dm_task_set_name(t, name) && dm_task_run(t) && dm_task_get_info(t, &info) && info.exists) {
		const char *u = dm_task_get_uuid(t);
		ours = u && strcmp(u, uuid) == 0;
	}
	if (t)
		dm_task_destroy(t);
	return ours ? dm_remove_name(name, false) : 0;
}

int dm_close_verity(const char *name, bool deferred, struct err *e)
{
	char vname[256];
	if ((size_t)snprintf(vname, sizeof vname, "%s-verity", name) >= sizeof vname)
		return 0;
	dm_setup();
	struct dm_task *t = dm_task_create(DM_DEVICE_INFO);
	struct dm_info info;
	bool ours = false;
	if (t && dm_task_set_name(t, vname) && dm_task_run(t) && dm_task_get_info(t, &info) && info.exists) {
		const char *u = dm_task_get_uuid(t);
		ours = u && strncmp(u, "CRYPT-VERITY-", 13) == 0;
	}
	if (t)
		dm_task_destroy(t);
	if (ours && dm_remove_name(vname, deferred) != 0)
		return err_set(e, EXIT_DEVICE, "device-mapper: removing %s: %s", vname, dm_why("device busy or gone"));
	return 0;
}

int dm_close_crypt(const char *name, bool deferred, bool *still_open, struct err *e)
{
	*still_open = false;
	dm_setup();
	struct dm_task *t = dm_task_create(DM_DEVICE_TABLE);
	struct dm_info info;
	char keydesc[256] = "";
	int r = -1;
	if (!t || !dm_task_set_name(t, name) || !dm_task_secure_data(t) || !dm_task_run(t) ||
	    !dm_task_get_info(t, &info)) {
		err_set(e, EXIT_DEVICE, "device-mapper: %s: %s", name, dm_why("cannot query it"));
		goto out;
	}
	if (!info.exists) {
		err_set(e, EXIT_DEVICE, "device-mapper: %s: no such device", name);
		goto out;
	}
	const char *uuid = dm_task_get_uuid(t);
	if (!uuid || strncmp(uuid, "CRYPT-", 6) != 0) {
		err_set(e, EXIT_DEVICE, "device-mapper: %s is not a crypt device made by encfs-dmsetup or cryptsetup", name);
		goto out;
	}
	uint64_t start, length;
	char *type = NULL, *params = NULL;
	(void)dm_get_next_target(t, NULL, &start, &length, &type, &params);
	/* a keyring reference ":64:logon:cryptsetup:..." is the second word of the crypt params */
	if (type && params && strcmp(type, "crypt") == 0) {
		const char *k = strchr(params, ' ');
		if (k && k[1] == ':') {
			const char *d = strstr(k, ":logon:");
			const char *end = d ? strchr(d + 7, ' ') : NULL;
			if (d && end && (size_t)(end - d - 7) < sizeof keydesc) {
				memcpy(keydesc, d + 7, (size_t)(end - d - 7));
				keydesc[end - d - 7] = '\0';
			}
		}
		wipe(params, strlen(params)); /* the table may hold the key in hex */
	}
	if (dm_remove_name(name, deferred) != 0) {
		err_set(e, EXIT_DEVICE, "device-mapper: removing %s: %s%s", name, dm_why("device busy or gone"),
			info.open_count > 0 ? " (it is in use: unmount it, or close with --deferred)" : "");
		goto out;
	}
	*still_open = deferred && dm_exists(name);
	if (keydesc[0])
		keyring_drop_by_desc(keydesc);
	r = 0;
out:
	if (t)
		dm_task_destroy(t);
	return r;
}
