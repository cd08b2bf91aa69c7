/* wisp_state: small state files kept in one directory (wisp-agent's
 * --state-dir: CA key and certificate, issued tokens, applied policy),
 * written atomically: a reader, or the agent after a crash or power loss,
 * sees either the old content or the new, never a mix or a torn file.
 *
 * A state file name is 1 to WISP_STATE_NAME_MAX bytes of [A-Za-z0-9._-],
 * not starting with '.' (names starting with '.' are this module's temp
 * files). Errors are written to |err| (|err_len| bytes, always
 * NUL-terminated; may be NULL) naming the file and the failed step. */
#ifndef WISP_STATE_H
#define WISP_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/wisp_err.h"

#define WISP_STATE_NAME_MAX 128
/* Modes used when the caller passes 0. */
#define WISP_STATE_FILE_MODE 0600
#define WISP_STATE_DIR_MODE 0700

/* Makes sure |dir| is a directory we can keep secrets in: creates it with
 * |mode| (0: 0700) if it is missing (its parent must exist), then requires
 * that it is a directory owned by our effective uid and sets its mode to
 * exactly |mode|. |dir| may be a symlink to such a directory if the symlink
 * is owned by us or by root. Returns WISP_ERR_USAGE if |dir| is not a
 * directory, is owned by another user, or is a symlink owned by another
 * user; WISP_ERR_IO (errno says why) if a system call failed. */
wisp_err wisp_state_ensure_dir(const char *dir, mode_t mode, char *err, size_t err_len) WISP_MUST_CHECK;

/* Replaces |dir|/|name| with |len| bytes of |data|, atomically and durably:
 * writes a new temp file in |dir| (O_CREAT|O_EXCL, mode exactly |mode|,
 * 0: 0600, whatever the umask), fsyncs it, renames it over |dir|/|name| and
 * fsyncs |dir|. If any step fails, the temp file is removed and the old
 * |dir|/|name| (if any) is left as it was, except when only the final
 * fsync of |dir| failed: the new content is then in place but may not
 * survive a power loss. Returns WISP_ERR_USAGE for a bad |name|, WISP_ERR_IO
 * (errno says why) if a system call failed. */
wisp_err wisp_state_write(const char *dir, const char *name, const void *data, size_t len, mode_t mode, char *err,
                          size_t err_len) WISP_MUST_CHECK;

/* Reads the whole of |dir|/|name|, which must be a regular file of at most
 * |max_len| bytes (and not a symlink). On success |*out| is a new buffer of
 * |*out_len| bytes plus a NUL terminator (convenient for text), which the
 * caller frees with free(). On failure |*out| is NULL and |*out_len| 0:
 * WISP_ERR_IO with errno set (ENOENT: the file does not exist, so a caller
 * can tell "first start" from a real failure), WISP_ERR_TOO_BIG if the file
 * is larger than |max_len|, WISP_ERR_USAGE for a bad |name| or a file that
 * is not a regular file. */
wisp_err wisp_state_read(const char *dir, const char *name, size_t max_len, uint8_t **out, size_t *out_len, char *err,
                         size_t err_len) WISP_MUST_CHECK;

#endif
