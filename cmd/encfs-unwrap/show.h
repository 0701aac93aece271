/* encfs-unwrap show: what a release response holds, for the admin's eyes. */
#ifndef ENCFS_UNWRAP_SHOW_H
#define ENCFS_UNWRAP_SHOW_H

/* Reads a release response from standard input (as encfs-skr prints it, or the vault's
 * {"value": ...}) and prints its header (x5c as each certificate's subject, issuer and validity)
 * and payload, with the release policy and the wrapped key's envelope (key_hsm) decoded, as
 * indented JSON.  Nothing is verified or unwrapped.  Returns the exit code. */
int show_release(void);

#endif
