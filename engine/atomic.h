/* atomic.h — writing a file so that a reader, or a process killed at any moment, sees the
 * old file or the new one and never a part: a temporary file beside it (PATH.tmp.XXXXXX),
 * fsync, rename over PATH, fsync of the folder. Every file nnsearch writes goes through it;
 * and the folders those files go in (ns_mkdir_p). */
#ifndef NS_ATOMIC_H
#define NS_ATOMIC_H

#include <stddef.h>
#include <stdio.h>

#include "engine/err.h"

typedef struct ns_atomic_file {
    FILE *f;    /* write the contents here */
    char *path; /* the destination */
    char *tmp;  /* the temporary file */
} ns_atomic_file;

/* Whether path can be written as a whole file: NS_EINPUT with the reason when it is empty,
 * ends in '/', or names something other than a regular file (a folder, a device such as
 * /dev/null, a pipe); NS_OK when it is a regular file or does not exist. For commands to
 * check their outputs before the work that fills them. */
int ns_atomic_check_dest(const char *path, ns_err *err);
/* NS_EINPUT when dest is the same file (device and inode) as one of inputs[0..n) that
 * exist (NULL entries are skipped): the output would replace what the command reads, e.g.
 * `export DIR -o DIR/study.db`. NS_OK otherwise. */
int ns_atomic_check_not_input(const char *dest, const char *const *inputs, int n, ns_err *err);
/* Creates PATH.tmp.XXXXXX exclusively, mode 0666 less the umask (mkstemp's 0600 would make
 * models and configs unreadable to others). NS_EINPUT as ns_atomic_check_dest says, else
 * NS_ERUNTIME with the reason on failure. */
int ns_atomic_open(ns_atomic_file *a, const char *path, ns_err *err);
/* Flushes, fsyncs, closes and renames the temporary file over the destination, then syncs
 * the folder (best effort). On any failure the temporary file is removed, the destination
 * is left as it was and NS_ERUNTIME is returned. Frees *a either way. */
int ns_atomic_commit(ns_atomic_file *a, ns_err *err);
/* After a failure of either call, errno holds the cause, for callers that word their own
 * message. */
/* Closes and removes the temporary file (the contents could not be produced); frees *a. */
void ns_atomic_abort(ns_atomic_file *a);

/* Removes PATH.tmp.* left by a process killed between ns_atomic_open and the rename
 * (PATH itself is intact then). For paths that one writer rewrites, e.g. a checkpoint. */
void ns_atomic_remove_stale(const char *path);

/* mkdir -p: creates dir and its missing parents (mode 0777 less the umask). Returns 0, or
 * the errno of the first folder that could not be created, whose path then goes to
 * failed (cap bytes; may be NULL) so that the caller can word its own message. */
int ns_mkdir_p(const char *dir, char *failed, size_t cap);

#endif
