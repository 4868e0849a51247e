/* store_impl.h — what the parts of the study store share (store.c the file, store_rows.c and
 * store_epochs.c the rows): the handle, the ids of its cached statements (their SQL is
 * store_rows.c's table), the translation of SQLite's errors and the small statement
 * helpers. Inside search/study only. */
#ifndef NS_STORE_IMPL_H
#define NS_STORE_IMPL_H

#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- statements: store_rows.c and store_epochs.c --------------------------------------- */

/* The cached statement id, prepared on first use (its SQL: store_rows.c's table). */
int ns_store_prep(ns_store *s, int id, sqlite3_stmt **out, ns_err *err);

static inline int oom(ns_store *s, ns_err *err)
{
    return ns_err_set(err, NS_ERUNTIME, "%s: out of memory reading the study", s->db_path);
}

/* Ready for the next use; also ends the statement's read transaction. */
static inline void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static inline int bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* NaN and infinities are stored as NULL (SQLite would keep an infinity as such). */
static inline int bind_real(sqlite3_stmt *st, int i, double v)
{
    return isfinite(v) ? sqlite3_bind_double(st, i, v) : sqlite3_bind_null(st, i);
}

/* Seeds are full 64-bit values: stored as the signed integer with the same bits. */
static inline int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    sqlite3_int64 x;
    memcpy(&x, &v, sizeof x);
    return sqlite3_bind_int64(st, i, x);
}

static inline uint64_t col_u64(sqlite3_stmt *st, int i)
{
    sqlite3_int64 x = sqlite3_column_int64(st, i);
    uint64_t v;
    memcpy(&v, &x, sizeof v);
    return v;
}

static inline double col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* *out = a copy of the column or NULL for SQL NULL; returns -1 when out of memory. */
static inline int col_str(sqlite3_stmt *st, int i, char **out)
{
    *out = NULL;
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t)
        return sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM ? -1 : 0;
    *out = strdup((const char *)t);
    return *out ? 0 : -1;
}

/* Runs a write statement whose parameters are bound; bind_rc is the first bind failure. */
static inline int step_write(ns_store *s, sqlite3_stmt *st, int bind_rc, const char *what,
                      ns_err *err)
{
    int rc = bind_rc != SQLITE_OK ? bind_rc : sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? NS_OK : ns_store_fail(s, rc, what, err);
    done(st);
    return ret;
}

#endif
