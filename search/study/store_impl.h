/* store_impl.h — what the two halves of the study store share: the handle, the ids of its
 * cached statements (their SQL is store_rows.c's table) and the translation of SQLite's
 * errors. Inside search/study only. */
#ifndef NS_STORE_IMPL_H
#define NS_STORE_IMPL_H

#include <sqlite3.h>

#include "search/study/store.h"

/* The cached statements, one per operation; their SQL is sql_text in store_rows.c. */
enum {
    ST_STUDY_GET,
    ST_STUDY_INSERT,
    ST_STUDY_UPDATE,
    ST_STUDY_CHECKS,
    ST_STAGE_SET,
    ST_STAGE_GET,
    ST_STAGES,
    ST_TRIAL_NEXT,
    ST_TRIAL_INSERT,
    ST_TRIAL_START,
    ST_TRIAL_CKPT,
    ST_TRIAL_FINISH,
    ST_TRIAL_GET,
    ST_TRIALS,
    ST_TRIALS_FROM,
    ST_BEST_LOW,
    ST_BEST_HIGH,
    ST_RESET,
    ST_EPOCH_ADD,
    ST_EPOCH_TRUNC,
    ST_EPOCHS,
    ST_EPOCHS_V2, /* a version-2 study read as it is: no per-class scores */
    ST_PRED_SET,
    ST_PRED_GET,
    ST_COUNT
};

struct ns_store {
    sqlite3 *db;
    char *dir;       /* as the caller named it, for messages */
    char *db_path;   /* DIR/study.db */
    int lock_fd;     /* DIR/study.lock, held with flock(LOCK_EX); -1 for read-only handles */
    int readonly;
    int version;     /* the schema version of the file (older ones open read-only) */
    sqlite3_stmt *st[ST_COUNT]; /* prepared on first use, finalized by ns_store_close */
};

/* One line from the SQLite error rc of `what` (store.c). Busy and locked mean another
 * process holds the file; corrupt or not-a-database files with trials beside them are a
 * damaged study (NS_EINPUT, with the ways on); anything else is NS_ERUNTIME. */
int ns_store_fail(ns_store *s, int rc, const char *what, ns_err *err);

#endif
