/* Where an SEV-SNP report comes from: configfs-tsm, /dev/sev-guest, Azure's legacy /dev/sev. */
#ifndef ENCFS_ATTEST_SOURCE_H
#define ENCFS_ATTEST_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "report.h"

#define TSM_REPORT_DIR "/sys/kernel/config/tsm/report"
#define SEV_GUEST_DEVICE "/dev/sev-guest"
#define SEV_LEGACY_DEVICE "/dev/sev"

/* Asks the platform for a report carrying report_data, trying in order configfs-tsm
 * ($ENCFS_TSM_DIR or TSM_REPORT_DIR), SNP_GET_REPORT on /dev/sev-guest, and
 * SEV_SNP_GUEST_MSG_REPORT on /dev/sev.  A source that is absent is skipped; one that is present
 * but fails ends the search with its error (firmware status included), and so does a report that
 * does not echo report_data.  source receives the name of the source used.  EXIT_ATTEST on
 * failure. */
int snp_get_report(const uint8_t report_data[SNP_REPORT_DATA_SIZE], uint8_t out[SNP_REPORT_SIZE],
		   char *source, size_t source_size, struct err *e);

/* The configfs-tsm step alone, on directory dir; returns 1 when dir is absent or has no usable
 * provider (why in skip_why), 0 on success, -1 on failure. */
int tsm_get_report(const char *dir, const uint8_t report_data[SNP_REPORT_DATA_SIZE],
		   uint8_t out[SNP_REPORT_SIZE], char *skip_why, size_t skip_size, struct err *e);

/* Names a firmware status code (SEV-SNP ABI "Status Codes"): "INVALID_PARAM" and so on. */
const char *snp_fw_status_name(uint32_t status);

#endif
