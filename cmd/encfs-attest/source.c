/* Report sources.  configfs-tsm (Documentation/ABI/testing/configfs-tsm): mkdir an entry, check
 * its provider, write 64 bytes to inblob, read outblob, check that generation moved by exactly our
 * writes (nobody else wrote to the entry), rmdir it.  Then the two ioctl interfaces. */
#include "source.h"

#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sev-guest.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define TSM_ATTR_MAX 64		/* provider, generation, privlevel_floor: short text */
#define TSM_OUTBLOB_MAX (16u << 10) /* a report is 1184 bytes; anything far larger is wrong */

const char *snp_fw_status_name(uint32_t status)
{
	static const char *const names[] = {
		"SUCCESS", "INVALID_PLATFORM_STATE", "INVALID_GUEST_STATE", "INVALID_CONFIG",
		"INVALID_LENGTH", "ALREADY_OWNED", "INVALID_CERTIFICATE", "POLICY_FAILURE",
		"INACTIVE", "INVALID_ADDRESS", "BAD_SIGNATURE", "BAD_MEASUREMENT", "ASID_OWNED",
		"INVALID_ASID", "WBINVD_REQUIRED", "DF_FLUSH_REQUIRED", "INVALID_GUEST",
		"INVALID_COMMAND", "ACTIVE", "HWERROR_PLATFORM", "HWERROR_UNSAFE", "UNSUPPORTED",
		"INVALID_PARAM", "RESOURCE_LIMIT", "SECURE_DATA_INVALID", "INVALID_PAGE_SIZE",
		"INVALID_PAGE_STATE", "INVALID_MDATA_ENTRY", "INVALID_PAGE_OWNER", "AEAD_OFLOW",
		"unknown(0x1e)", "RMP_INIT_REQUIRED", "BAD_SVN", "BAD_VERSION", "SHUTDOWN_REQUIRED",
		"UPDATE_FAILED", "RESTORE_REQUIRED", "RMP_INITIALIZATION_FAILED", "INVALID_KEY",
	};
	if (status < sizeof names / sizeof names[0])
		return names[status];
	return status == 0x27 ? "INVALID_KEY_SELECTION" : "unknown";
}

/* --- configfs-tsm ----------------------------------------------------------------------------- */

/* Reads a short text attribute of the entry; -1 with errno on failure. */
static int tsm_read_attr(int dirfd, const char *name, char *buf, size_t size)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	char *text = read_fd_capped(fd, size - 1, &len);
	int saved = errno;
	close(fd);
	if (!text) {
		errno = saved;
		return -1;
	}
	memcpy(buf, text, len + 1);
	free(text);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	if (*s < '0' || *s > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

/* Writes an attribute in one write(2) and closes it: configfs commits a binary attribute (inblob)
 * when the file is released, so the close is part of the write and its error counts. */
static int tsm_write_attr(int dirfd, const char *name, const void *data, size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (write_all(fd, data, len) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}

/* The entry's generation counter: read failures and text that is not a number told apart. */
static int tsm_generation(int dirfd, const char *where, uint64_t *gen, struct err *e)
{
	char text[TSM_ATTR_MAX];
	if (tsm_read_attr(dirfd, "generation", text, sizeof text) != 0)
		return err_set(e, EXIT_ATTEST, "configfs-tsm %s/generation: %s", where, strerror(errno));
	if (parse_u64(text, gen) != 0)
		return err_set(e, EXIT_ATTEST, "configfs-tsm %s/generation: \"%s\" is not a number", where, text);
	return 0;
}

static int tsm_run(int dirfd, const char *where, const uint8_t report_data[64], uint8_t out[SNP_REPORT_SIZE],
		   struct err *e)
{
	char text[TSM_ATTR_MAX];
	uint64_t gen0, gen1, writes = 0;

	if (tsm_generation(dirfd, where, &gen0, e) != 0)
		return -1;
	/* Below an SVSM the guest cannot ask for VMPL 0: ask for the lowest level allowed. */
	if (tsm_read_attr(dirfd, "privlevel_floor", text, sizeof text) == 0) {
		uint64_t floor;
		if (parse_u64(text, &floor) != 0 || floor > 3)
			return err_set(e, EXIT_ATTEST, "configfs-tsm %s/privlevel_floor: \"%s\" is not 0..3",
				       where, text);
		if (floor > 0) {
			snprintf(text, sizeof text, "%u", (unsigned)floor);
			if (tsm_write_attr(dirfd, "privlevel", text, strlen(text)) != 0)
				return err_set(e, EXIT_ATTEST, "configfs-tsm %s/privlevel: %s", where,
					       strerror(errno));
			writes++;
		}
	}
	if (tsm_write_attr(dirfd, "inblob", report_data, SNP_REPORT_DATA_SIZE) != 0)
		return err_set(e, EXIT_ATTEST, "configfs-tsm %s/inblob: %s", where, strerror(errno));
	writes++;

	int fd = openat(dirfd, "outblob", O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	char *blob = fd >= 0 ? read_fd_capped(fd, TSM_OUTBLOB_MAX, &len) : NULL;
	int saved = errno;
	if (fd >= 0)
		close(fd);
	if (!blob)
		return err_set(e, EXIT_ATTEST, "configfs-tsm %s/outblob: %s (%s)", where,
			       strerror(saved),
			       saved == EIO ? "the SEV firmware refused the request; the kernel log "
					      "has its status"
			       : saved == EINVAL ? "the kernel rejected the request parameters"
						 : "is this an SEV-SNP guest?");
	if (len != SNP_REPORT_SIZE) {
		free(blob);
		return err_set(e, EXIT_ATTEST, "configfs-tsm %s/outblob: %zu bytes, not a %d-byte report",
			       where, len, SNP_REPORT_SIZE);
	}
	memcpy(out, blob, SNP_REPORT_SIZE);
	free(blob);

	if (tsm_generation(dirfd, where, &gen1, e) != 0)
		return -1;
	if (gen1 != gen0 + writes)
		return err_set(e, EXIT_ATTEST,
			       "configfs-tsm %s: generation went from %" PRIu64 " to %" PRIu64
			       ", not by our %" PRIu64 " writes: another process wrote to the entry "
			       "(retry; keep other tools off it)",
			       where, gen0, gen1, writes);
	return 0;
}

int tsm_get_report(const char *dir, const uint8_t report_data[SNP_REPORT_DATA_SIZE],
		   uint8_t out[SNP_REPORT_SIZE], char *skip_why, size_t skip_size, struct err *e)
{
	int top = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (top < 0) {
		snprintf(skip_why, skip_size, "%s: %s", dir, strerror(errno));
		return 1;
	}
	/* Our own entry, so no other requester shares it (the ABI's advice). */
	char name[64];
	int made = -1;
	for (int tries = 0; tries < 8 && made != 0; tries++) {
		snprintf(name, sizeof name, "encfs-attest.%ld.%08" PRIx32, (long)getpid(),
			 randombytes_random());
		made = mkdirat(top, name, 0700);
		if (made != 0 && errno != EEXIST)
			break;
	}
	if (made != 0) {
		snprintf(skip_why, skip_size, "%s: cannot create a report entry: %s", dir,
			 strerror(errno));
		close(top);
		return 1;
	}
	char where[4200];
	snprintf(where, sizeof where, "%s/%s", dir, name);
	int rc = 1;
	int entry = openat(top, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char provider[TSM_ATTR_MAX];
	if (entry < 0) {
		snprintf(skip_why, skip_size, "%s: %s", where, strerror(errno));
	} else if (tsm_read_attr(entry, "provider", provider, sizeof provider) != 0) {
		snprintf(skip_why, skip_size, "%s/provider: %s", where, strerror(errno));
	} else if (strcmp(provider, "sev_guest") != 0) {
		snprintf(skip_why, skip_size, "%s: provider is \"%s\", not sev_guest", dir, provider);
	} else {
		rc = tsm_run(entry, where, report_data, out, e);
	}
	if (entry >= 0)
		close(entry);
	/* configfs removes the entry and its attributes with one rmdir */
	if (unlinkat(top, name, AT_REMOVEDIR) != 0)
		log_warn("configfs-tsm: cannot remove %s: %s", where, strerror(errno));
	close(top);
	return rc;
}

/* --- /dev/sev-guest (SNP_GET_REPORT) ------------------------------------------------------------ */

/* The uapi layout this file relies on (linux/sev-guest.h): SNP_GET_REPORT is _IOWR('S', 0, 32 bytes)
 * = 0xC0205300; the request is user_data[64], vmpl, 28 reserved bytes; the response 4000 bytes. */
_Static_assert(sizeof(struct snp_guest_request_ioctl) == 32, "snp_guest_request_ioctl is 32 bytes");
_Static_assert(SNP_GET_REPORT == 0xC0205300u, "SNP_GET_REPORT ioctl number");
_Static_assert(sizeof(struct snp_report_req) == 96, "snp_report_req is MSG_REPORT_REQ, 96 bytes");
_Static_assert(sizeof(struct snp_report_resp) >= 32 + SNP_REPORT_SIZE, "snp_report_resp holds MSG_REPORT_RSP");

#define MSG_REPORT_RSP_STATUS 0
#define MSG_REPORT_RSP_SIZE 4
#define MSG_REPORT_RSP_REPORT 32

/* Checks an MSG_REPORT_RSP (ABI "MSG_REPORT_RSP Message Structure") and copies its report. */
static int take_report_rsp(const char *dev, const uint8_t *rsp, size_t rsp_len, uint8_t out[SNP_REPORT_SIZE],
			   struct err *e)
{
	uint32_t status = (uint32_t)rsp[0] | (uint32_t)rsp[1] << 8 | (uint32_t)rsp[2] << 16 |
			  (uint32_t)rsp[3] << 24;
	uint32_t size = (uint32_t)rsp[4] | (uint32_t)rsp[5] << 8 | (uint32_t)rsp[6] << 16 |
			(uint32_t)rsp[7] << 24;
	if (status != 0)
		return err_set(e, EXIT_ATTEST, "%s: the firmware answered status 0x%x (%s)", dev, status,
			       snp_fw_status_name(status));
	if (size != SNP_REPORT_SIZE || MSG_REPORT_RSP_REPORT + (size_t)size > rsp_len)
		return err_set(e, EXIT_ATTEST, "%s: the firmware returned a %u-byte report, not %d", dev,
			       size, SNP_REPORT_SIZE);
	memcpy(out, rsp + MSG_REPORT_RSP_REPORT, SNP_REPORT_SIZE);
	return 0;
}

static int sev_guest_report(const uint8_t report_data[64], uint8_t out[SNP_REPORT_SIZE], char *skip_why,
			    size_t skip_size, struct err *e)
{
	int fd = open(SEV_GUEST_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(skip_why, skip_size, "%s: %s", SEV_GUEST_DEVICE, strerror(errno));
		return 1;
	}
	struct snp_report_req req;
	struct snp_report_resp resp;
	memset(&req, 0, sizeof req);
	memset(&resp, 0, sizeof resp);
	memcpy(req.user_data, report_data, 64);
	struct snp_guest_request_ioctl io = {.msg_version = 1,
					     .req_data = (uint64_t)(uintptr_t)&req,
					     .resp_data = (uint64_t)(uintptr_t)&resp};
	int r = ioctl(fd, SNP_GET_REPORT, &io);
	int saved = errno;
	close(fd);
	if (r != 0)
		return err_set(e, EXIT_ATTEST,
			       "%s: SNP_GET_REPORT failed: %s (firmware status 0x%x %s, VMM error %u)",
			       SEV_GUEST_DEVICE, strerror(saved), io.fw_error,
			       snp_fw_status_name(io.fw_error), io.vmm_error);
	return take_report_rsp(SEV_GUEST_DEVICE, resp.data, sizeof resp.data, out, e);
}

/* --- Azure's 5.15 /dev/sev (SEV_SNP_GUEST_MSG_REPORT) ------------------------------------------ */

/* The request of that driver (its include/uapi/linux/psp-sev-guest.h), natural x86-64 layout. */
struct sev_snp_guest_request {
	uint8_t req_msg_type;
	uint8_t rsp_msg_type;
	uint8_t msg_version;
	uint16_t request_len;
	uint64_t request_uaddr;
	uint16_t response_len;
	uint64_t response_uaddr;
	uint32_t error; /* firmware error code on failure */
};
_Static_assert(sizeof(struct sev_snp_guest_request) == 40, "legacy /dev/sev request layout");
_Static_assert(offsetof(struct sev_snp_guest_request, request_len) == 4 &&
		       offsetof(struct sev_snp_guest_request, request_uaddr) == 8 &&
		       offsetof(struct sev_snp_guest_request, response_len) == 16 &&
		       offsetof(struct sev_snp_guest_request, response_uaddr) == 24 &&
		       offsetof(struct sev_snp_guest_request, error) == 32,
	       "legacy /dev/sev request field offsets");
#define SEV_SNP_GUEST_MSG_REPORT _IOWR('S', 0x1, struct sev_snp_guest_request)
_Static_assert(SEV_SNP_GUEST_MSG_REPORT == 0xC0285301u, "SEV_SNP_GUEST_MSG_REPORT = 3223868161, as upstream");
#define MSG_REPORT_REQ 5
#define MSG_REPORT_RSP 6
#define REPORT_REQ_SIZE 96
#define REPORT_RSP_SIZE 1280

static int sev_legacy_report(const uint8_t report_data[64], uint8_t out[SNP_REPORT_SIZE], char *skip_why,
			     size_t skip_size, struct err *e)
{
	int fd = open(SEV_LEGACY_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(skip_why, skip_size, "%s: %s", SEV_LEGACY_DEVICE, strerror(errno));
		return 1;
	}
	uint8_t req[REPORT_REQ_SIZE] = {0}, rsp[REPORT_RSP_SIZE] = {0};
	memcpy(req, report_data, 64); /* VMPL 0, rest reserved */
	struct sev_snp_guest_request io = {.req_msg_type = MSG_REPORT_REQ,
					   .rsp_msg_type = MSG_REPORT_RSP,
					   .msg_version = 1,
					   .request_len = REPORT_REQ_SIZE,
					   .request_uaddr = (uint64_t)(uintptr_t)req,
					   .response_len = REPORT_RSP_SIZE,
					   .response_uaddr = (uint64_t)(uintptr_t)rsp};
	int r = ioctl(fd, SEV_SNP_GUEST_MSG_REPORT, &io);
	int saved = errno;
	close(fd);
	if (r != 0)
		return err_set(e, EXIT_ATTEST,
			       "%s: SEV_SNP_GUEST_MSG_REPORT failed: %s (firmware status 0x%x %s)",
			       SEV_LEGACY_DEVICE, strerror(saved), io.error, snp_fw_status_name(io.error));
	return take_report_rsp(SEV_LEGACY_DEVICE, rsp, sizeof rsp, out, e);
}

/* The firmware echoes REPORT_DATA; anything else is a stale or foreign report, whatever the source. */
static int check_echo(const char *source, const uint8_t report_data[SNP_REPORT_DATA_SIZE],
		      const uint8_t report[SNP_REPORT_SIZE], struct err *e)
{
	if (sodium_memcmp(report + SNP_REPORT_DATA_OFF, report_data, SNP_REPORT_DATA_SIZE) != 0)
		return err_set(e, EXIT_ATTEST,
			       "%s: the report does not carry our REPORT_DATA (a stale or foreign report)", source);
	return 0;
}

int snp_get_report(const uint8_t report_data[SNP_REPORT_DATA_SIZE], uint8_t out[SNP_REPORT_SIZE],
		   char *source, size_t source_size, struct err *e)
{
	char why[3][512];
	const char *env = getenv("ENCFS_TSM_DIR");
	const char *tsm = env && *env ? env : TSM_REPORT_DIR;
	int rc = tsm_get_report(tsm, report_data, out, why[0], sizeof why[0], e);
	if (rc <= 0) {
		snprintf(source, source_size, "configfs-tsm %s", tsm);
		return rc < 0 ? rc : check_echo(source, report_data, out, e);
	}
	log_info("configfs-tsm not used: %s", why[0]);
	rc = sev_guest_report(report_data, out, why[1], sizeof why[1], e);
	if (rc <= 0) {
		snprintf(source, source_size, "%s", SEV_GUEST_DEVICE);
		return rc < 0 ? rc : check_echo(source, report_data, out, e);
	}
	log_info("%s not used: %s", SEV_GUEST_DEVICE, why[1]);
	rc = sev_legacy_report(report_data, out, why[2], sizeof why[2], e);
	if (rc <= 0) {
		snprintf(source, source_size, "%s", SEV_LEGACY_DEVICE);
		return rc < 0 ? rc : check_echo(source, report_data, out, e);
	}
	return err_set(e, EXIT_ATTEST,
		       "getting an SEV-SNP report: no source works (%s; %s; %s) (run inside an SEV-SNP "
		       "guest, or use --fake-report for tests)",
		       why[0], why[1], why[2]);
}
