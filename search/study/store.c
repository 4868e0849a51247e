/* store.c — the SQLite study store of store.h: locking, schema creation and checks, and
 * one cached prepared statement per operation. It is not a general database layer: every
 * SQL statement it runs is in the table below, and docs/study-format.md documents them. */
#include "search/study/store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/atomic.h"

#ifndef NS_VERSION
#define NS_VERSION "unknown"
#endif

/* PRAGMA application_id: "NSSD" (nnsearch study database), so that another program's
 * SQLite file in the output folder is recognised and left alone. */
#define NS_STORE_APP_ID 0x4E535344
#define NS_STORE_BUSY_MS 5000 /* readers and checkpoints can hold the file briefly */

/* Schema version 1, then migrate_v2, migrate_v3 and migrate_v4 on top: a new study runs
 * them all in one transaction (a kill during creation leaves an empty database, which the
 * next open creates again); an older study opened for writing runs the migrations it lacks
 * in one transaction. A version-2 or -3 study opens read-only as it is (a version-2 study's
 * epochs read with no per-class scores; neither has trial predictions); a version-1 study
 * must be upgraded first. */
static const char schema_v1[] =
    "CREATE TABLE study ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " name TEXT NOT NULL,"
    " config TEXT NOT NULL,"
    " config_hash TEXT NOT NULL,"
    " original_hash TEXT NOT NULL,"
    " seed INTEGER NOT NULL,"
    " metric TEXT NOT NULL,"
    " higher_is_better INTEGER NOT NULL CHECK (higher_is_better IN (0, 1)),"
    " created REAL NOT NULL,"
    " updated REAL NOT NULL,"
    " nnsearch_version TEXT NOT NULL);"
    "CREATE TABLE stage ("
    " name TEXT PRIMARY KEY,"
    " position INTEGER NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'complete')),"
    " decision TEXT,"
    " started REAL,"
    " finished REAL);"
    "CREATE TABLE trial ("
    " number INTEGER PRIMARY KEY CHECK (number >= 0),"
    " stage TEXT NOT NULL REFERENCES stage (name),"
    " params TEXT NOT NULL,"
    " seed INTEGER NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'complete', 'pruned',"
    "  'diverged', 'failed', 'interrupted')),"
    " started REAL,"
    " finished REAL,"
    " seconds REAL,"
    " epochs INTEGER NOT NULL DEFAULT 0,"
    " val_metric REAL,"
    " result TEXT,"
    " health TEXT,"
    " checkpoint TEXT,"
    " error TEXT);"
    "CREATE INDEX trial_state ON trial (state, val_metric);"
    "CREATE TABLE epoch ("
    " trial INTEGER NOT NULL REFERENCES trial (number),"
    " epoch INTEGER NOT NULL CHECK (epoch >= 1),"
    " step INTEGER NOT NULL,"
    " train_loss REAL,"
    " val_loss REAL,"
    " val_acc REAL,"
    " val_rmse REAL,"
    " lr REAL,"
    " grad_norm REAL,"
    " layer_grad_norm TEXT NOT NULL,"
    " seconds REAL,"
    " samples_per_s REAL,"
    " PRIMARY KEY (trial, epoch)) WITHOUT ROWID;";

/* Version 2: the health detectors' inputs and results (trial.health_flags, epoch.diverged
 * and epoch.stopped_early) and the
 * study's data checks. */
static const char migrate_v2[] =
    "ALTER TABLE study ADD COLUMN data_checks TEXT;"
    "ALTER TABLE trial ADD COLUMN health_flags INTEGER;"
    "ALTER TABLE epoch ADD COLUMN diverged INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE epoch ADD COLUMN stopped_early INTEGER NOT NULL DEFAULT 0;";

/* Version 3: each epoch's balanced accuracy and macro-F1 (classification), which pruning
 * compares in a study ranked by one of them. */
static const char migrate_v3[] =
    "ALTER TABLE epoch ADD COLUMN val_bacc REAL;"
    "ALTER TABLE epoch ADD COLUMN val_macro_f1 REAL;";

/* Version 4: each complete classification trial's predicted class for every held-out row
 * (the validation split, or under cross-validation every row by the fold that held it
 * out), one byte a row (two, little-endian, with more than 256 classes): the select
 * stage's estimate of the winner's score on new data resamples them. */
static const char migrate_v4[] =
    "CREATE TABLE trial_pred ("
    " trial INTEGER PRIMARY KEY REFERENCES trial (number),"
    " rows INTEGER NOT NULL CHECK (rows >= 1),"
    " pred BLOB NOT NULL);";

#define TRIAL_COLS "number, stage, params, seed, state, started, finished, seconds, epochs, " \
                   "val_metric, result, health, checkpoint, error, health_flags"
#define STAGE_COLS "name, position, state, decision, started, finished"

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

static const char *const sql_text[ST_COUNT] = {
    [ST_STUDY_GET] = "SELECT name, config, config_hash, original_hash, seed, created, updated,"
                     " nnsearch_version, metric, higher_is_better, data_checks FROM study"
                     " WHERE id = 1",
    [ST_STUDY_INSERT] = "INSERT INTO study (id, name, config, config_hash, original_hash, seed,"
                        " metric, higher_is_better, created, updated, nnsearch_version)"
                        " VALUES (1, ?1, ?2, ?3, ?3, ?4, ?7, ?8, ?5, ?5, ?6)",
    [ST_STUDY_UPDATE] = "UPDATE study SET config = ?1, config_hash = ?2, seed = ?3, updated = ?4,"
                        " metric = ?5, higher_is_better = ?6 WHERE id = 1",
    [ST_STUDY_CHECKS] = "UPDATE study SET data_checks = ?1 WHERE id = 1",
    /* ?5 is now: started from the first non-pending state on, finished only when complete. */
    [ST_STAGE_SET] = "INSERT INTO stage (" STAGE_COLS ") VALUES (?1, ?2, ?3, ?4,"
                     " CASE WHEN ?3 = 'pending' THEN NULL ELSE ?5 END,"
                     " CASE WHEN ?3 = 'complete' THEN ?5 END)"
                     " ON CONFLICT (name) DO UPDATE SET position = excluded.position,"
                     " state = excluded.state, decision = coalesce(excluded.decision, decision),"
                     " started = coalesce(started, excluded.started), finished = excluded.finished",
    [ST_STAGE_GET] = "SELECT " STAGE_COLS " FROM stage WHERE name = ?1",
    [ST_STAGES] = "SELECT " STAGE_COLS " FROM stage ORDER BY position, name",
    [ST_TRIAL_NEXT] = "SELECT coalesce(max(number) + 1, 0) FROM trial",
    [ST_TRIAL_INSERT] = "INSERT INTO trial (number, stage, params, seed, state)"
                        " VALUES (?1, ?2, ?3, ?4, 'queued')",
    [ST_TRIAL_START] = "UPDATE trial SET state = 'running', started = coalesce(started, ?2),"
                       " finished = NULL WHERE number = ?1 AND state IN ('queued', 'interrupted')",
    [ST_TRIAL_CKPT] = "UPDATE trial SET checkpoint = ?2 WHERE number = ?1",
    [ST_TRIAL_FINISH] = "UPDATE trial SET state = ?2, finished = ?3, seconds = ?4, epochs = ?5,"
                        " val_metric = ?6, result = ?7, health = ?8, error = ?9,"
                        " health_flags = ?10"
                        " WHERE number = ?1 AND state = 'running'",
    [ST_TRIAL_GET] = "SELECT " TRIAL_COLS " FROM trial WHERE number = ?1",
    [ST_TRIALS] = "SELECT " TRIAL_COLS " FROM trial ORDER BY number",
    [ST_TRIALS_FROM] = "SELECT " TRIAL_COLS " FROM trial WHERE number >= ?1 ORDER BY number",
    /* ?1: the health flags that disqualify; such trials come after every other one */
    [ST_BEST_LOW] = "SELECT " TRIAL_COLS " FROM trial WHERE state = 'complete'"
                    " AND val_metric IS NOT NULL ORDER BY (coalesce(health_flags, 0) & ?1) != 0,"
                    " val_metric ASC, number ASC LIMIT 1",
    [ST_BEST_HIGH] = "SELECT " TRIAL_COLS " FROM trial WHERE state = 'complete'"
                     " AND val_metric IS NOT NULL ORDER BY (coalesce(health_flags, 0) & ?1) != 0,"
                     " val_metric DESC, number ASC LIMIT 1",
    [ST_RESET] = "UPDATE trial SET state = 'interrupted' WHERE state = 'running'",
    /* A resumed trial repeats the epochs after its checkpoint: the repeat replaces. */
    [ST_EPOCH_ADD] = "INSERT OR REPLACE INTO epoch (trial, epoch, step, train_loss, val_loss,"
                     " val_acc, val_rmse, lr, grad_norm, layer_grad_norm, seconds, samples_per_s,"
                     " diverged, stopped_early, val_bacc, val_macro_f1)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    [ST_EPOCH_TRUNC] = "DELETE FROM epoch WHERE trial = ?1 AND epoch > ?2",
    [ST_EPOCHS] = "SELECT epoch, step, train_loss, val_loss, val_acc, val_rmse, lr, grad_norm,"
                  " layer_grad_norm, seconds, samples_per_s, diverged, stopped_early, val_bacc,"
                  " val_macro_f1 FROM epoch WHERE trial = ?1 ORDER BY epoch",
    [ST_EPOCHS_V2] = "SELECT epoch, step, train_loss, val_loss, val_acc, val_rmse, lr, grad_norm,"
                     " layer_grad_norm, seconds, samples_per_s, diverged, stopped_early, NULL,"
                     " NULL FROM epoch WHERE trial = ?1 ORDER BY epoch",
    [ST_PRED_SET] = "INSERT OR REPLACE INTO trial_pred (trial, rows, pred) VALUES (?1, ?2, ?3)",
    [ST_PRED_GET] = "SELECT rows, pred FROM trial_pred WHERE trial = ?1",
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

static const char *const stage_names[] = {"pending", "running", "complete"};
static const char *const trial_names[] = {"queued",   "running", "complete",   "pruned",
                                          "diverged", "failed",  "interrupted"};
#define N_STAGE_STATES (int)(sizeof stage_names / sizeof *stage_names)
#define N_TRIAL_STATES (int)(sizeof trial_names / sizeof *trial_names)

const char *ns_stage_state_name(ns_stage_state st)
{
    return (int)st >= 0 && (int)st < N_STAGE_STATES ? stage_names[st] : "?";
}

const char *ns_trial_state_name(ns_trial_state st)
{
    return (int)st >= 0 && (int)st < N_TRIAL_STATES ? trial_names[st] : "?";
}

static int parse_state(const char *text, const char *const *names, int n)
{
    for (int i = 0; text && i < n; i++)
        if (strcmp(text, names[i]) == 0)
            return i;
    return -1;
}

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- errors ------------------------------------------------------------------------- */

/* Whether DIR/trials holds anything: then the folder had a study whose record was
 * committed (the trials are created after the database), and a missing, empty or
 * unreadable study.db is damage, never a study to start afresh. */
static int has_trials(const char *dir)
{
    char *path = join_path(dir, "trials");
    DIR *d = path ? opendir(path) : NULL;
    free(path);
    if (!d)
        return 0;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d)) != NULL)
        any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

/* The one message for a damaged study: what is damaged, that nothing was changed, and
 * the two ways on. Always NS_EINPUT: the user, not a retry, can fix it. */
static int damaged(const char *dir, const char *db_path, const char *what, ns_err *err)
{
    return ns_err_set(err, NS_EINPUT, "%s: the study is damaged: %s; nnsearch left it as it is: "
                      "restore %s from a backup, or run the config into a new folder "
                      "(nnsearch CONFIG -o NEWDIR)", dir, what, db_path);
}

/* One line from the SQLite error rc of `what`. Busy and locked mean another process holds
 * the file (a writer outside our lock, or a long checkpoint); the user can wait for it. */
static int db_fail(ns_store *s, int rc, const char *what, ns_err *err)
{
    const char *msg = sqlite3_errmsg(s->db);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ns_err_set(err, NS_EINPUT, "%s: the study is in use by another nnsearch "
                          "(the database is locked); wait for it or stop it", s->dir);
    case SQLITE_CORRUPT: {
        char why[300];
        snprintf(why, sizeof why, "study.db: %s (%s)", msg, what);
        return damaged(s->dir, s->db_path, why, err);
    }
    case SQLITE_NOTADB:
        if (has_trials(s->dir)) {
            char why[300];
            snprintf(why, sizeof why, "study.db is not a database (%s) but trials/ holds the "
                     "study's trials", msg);
            return damaged(s->dir, s->db_path, why, err);
        }
        return ns_err_set(err, NS_EINPUT, "%s: not an nnsearch study (%s); use a new output "
                          "folder", s->db_path, msg);
    case SQLITE_READONLY:
        if (s->readonly)
            return ns_err_set(err, NS_ERUNTIME, "%s: %s: the study is open read-only",
                              s->db_path, what);
        break;
    default:
        break;
    }
    return ns_err_set(err, NS_ERUNTIME, "%s: %s: %s", s->db_path, what, msg);
}

static int oom(ns_store *s, ns_err *err)
{
    return ns_err_set(err, NS_ERUNTIME, "%s: out of memory reading the study", s->db_path);
}

/* ---- statements --------------------------------------------------------------------- */

static int prep(ns_store *s, int id, sqlite3_stmt **out, ns_err *err)
{
    if (!s->st[id]) {
        int rc = sqlite3_prepare_v3(s->db, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->st[id], NULL);
        if (rc != SQLITE_OK) {
            s->st[id] = NULL;
            return db_fail(s, rc, "preparing a statement", err);
        }
    }
    *out = s->st[id];
    return NS_OK;
}

/* Ready for the next use; also ends the statement's read transaction. */
static void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* NaN and infinities are stored as NULL (SQLite would keep an infinity as such). */
static int bind_real(sqlite3_stmt *st, int i, double v)
{
    return isfinite(v) ? sqlite3_bind_double(st, i, v) : sqlite3_bind_null(st, i);
}

/* Seeds are full 64-bit values: stored as the signed integer with the same bits. */
static int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    sqlite3_int64 x;
    memcpy(&x, &v, sizeof x);
    return sqlite3_bind_int64(st, i, x);
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
    sqlite3_int64 x = sqlite3_column_int64(st, i);
    uint64_t v;
    memcpy(&v, &x, sizeof v);
    return v;
}

static double col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* *out = a copy of the column or NULL for SQL NULL; returns -1 when out of memory. */
static int col_str(sqlite3_stmt *st, int i, char **out)
{
    *out = NULL;
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t)
        return sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM ? -1 : 0;
    *out = strdup((const char *)t);
    return *out ? 0 : -1;
}

/* Runs a write statement whose parameters are bound; bind_rc is the first bind failure. */
static int step_write(ns_store *s, sqlite3_stmt *st, int bind_rc, const char *what,
                      ns_err *err)
{
    int rc = bind_rc != SQLITE_OK ? bind_rc : sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? NS_OK : db_fail(s, rc, what, err);
    done(st);
    return ret;
}

static int exec(ns_store *s, const char *sql, const char *what, ns_err *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? NS_OK : db_fail(s, rc, what, err);
}

/* The single integer a PRAGMA or aggregate query returns. */
static int query_int(ns_store *s, const char *sql, sqlite3_int64 *v, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *v = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    int ret = rc == SQLITE_OK ? NS_OK : db_fail(s, rc, "reading the schema", err);
    sqlite3_finalize(st);
    return ret;
}

/* ---- open and close ----------------------------------------------------------------- */

/* mkdir -p; the error names the folder as the user wrote it. */
static int make_dirs(const char *dir, ns_err *err)
{
    char failed[4096];
    int e = ns_mkdir_p(dir, failed, sizeof failed);
    if (e == ENOMEM)
        return ns_err_set(err, NS_ERUNTIME, "%s: out of memory", dir);
    if (e)
        return ns_err_set(err, ns_err_code_of_errno(e), "%s: cannot create the study folder "
                          "%s: %s%s", dir, failed, strerror(e),
                          ns_err_code_of_errno(e) == NS_EINPUT ? "; check the path and its permissions" : "");
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ns_err_set(err, NS_EINPUT, "%s: not a folder; choose another output folder", dir);
    return NS_OK;
}

/* Takes DIR/study.lock for the handle's lifetime and writes our pid into it. A lock held
 * elsewhere is reported with the holder's pid; flock locks die with their process, so a
 * killed nnsearch never leaves a stale lock behind. */
static int take_lock(ns_store *s, ns_err *err)
{
    char *path = join_path(s->dir, "study.lock");
    if (!path)
        return ns_err_set(err, NS_ERUNTIME, "%s: out of memory", s->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int e = errno;
    free(path);
    if (fd < 0)
        return ns_err_set(err, ns_err_code_of_errno(e), "%s: cannot open study.lock: %s%s", s->dir,
                          strerror(e),
                          ns_err_code_of_errno(e) == NS_EINPUT ? "; check the folder's permissions" : "");
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        e = errno;
        char buf[32] = {0};
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        close(fd);
        if (e != EWOULDBLOCK)
            return ns_err_set(err, NS_ERUNTIME, "%s: cannot lock study.lock: %s", s->dir,
                              strerror(e));
        long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
        if (pid > 0)
            return ns_err_set(err, NS_EINPUT, "%s: the study is in use by another nnsearch "
                              "(pid %ld); wait for it or stop it", s->dir, pid);
        return ns_err_set(err, NS_EINPUT, "%s: the study is in use by another nnsearch; wait "
                          "for it or stop it", s->dir);
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    /* The pid only serves the message above; failing to write it is harmless. */
    if (ftruncate(fd, 0) == 0)
        (void)!pwrite(fd, buf, (size_t)len, 0);
    s->lock_fd = fd;
    return NS_OK;
}

/* Checks that the database is a study this code understands; creates the schema in an
 * empty database when create != 0. */
static int check_schema(ns_store *s, int create, ns_err *err)
{
    sqlite3_int64 app = 0, version = 0, n_objects = 0;
    int rc = query_int(s, "PRAGMA application_id", &app, err);
    if (rc == NS_OK)
        rc = query_int(s, "PRAGMA user_version", &version, err);
    if (rc == NS_OK)
        rc = query_int(s, "SELECT count(*) FROM sqlite_schema", &n_objects, err);
    if (rc != NS_OK)
        return rc;
    if (app == 0 && version == 0 && n_objects == 0) {
        if (!create || s->readonly)
            return ns_err_set(err, NS_EINPUT, "%s: the study is empty (it was stopped while "
                              "being created); run the config again to start it", s->dir);
        /* WAL must be chosen outside a transaction; it is stored in the file. */
        if ((rc = exec(s, "PRAGMA journal_mode = WAL", "choosing WAL mode", err)) != NS_OK)
            return rc;
        char sql[sizeof schema_v1 + sizeof migrate_v2 + sizeof migrate_v3 + sizeof migrate_v4 + 160];
        snprintf(sql, sizeof sql, "BEGIN IMMEDIATE; %s %s %s %s PRAGMA application_id = %d; "
                 "PRAGMA user_version = %d; COMMIT;", schema_v1, migrate_v2, migrate_v3,
                 migrate_v4, NS_STORE_APP_ID, NS_STORE_VERSION);
        rc = exec(s, sql, "creating the study", err);
        if (rc != NS_OK)
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->version = NS_STORE_VERSION;
        return rc;
    }
    if (app != NS_STORE_APP_ID)
        return ns_err_set(err, NS_EINPUT, "%s: not an nnsearch study (another program's "
                          "database); use a new output folder", s->db_path);
    if (version > NS_STORE_VERSION)
        return ns_err_set(err, NS_EINPUT, "%s: study format version %lld is newer than this "
                          "nnsearch (%s) understands (%d); use a newer nnsearch", s->db_path,
                          (long long)version, NS_VERSION, NS_STORE_VERSION);
    if (version == 1 && s->readonly)
        return ns_err_set(err, NS_EINPUT, "%s: study format version 1 (an older nnsearch); "
                          "`nnsearch resume %s` upgrades it to version %d", s->db_path, s->dir,
                          NS_STORE_VERSION);
    if ((version == 2 || version == 3) && s->readonly) { /* read as it is */
        s->version = (int)version;
        return NS_OK;
    }
    if (version >= 1 && version <= 3) { /* the lock is held: no other writer can interleave */
        char sql[sizeof migrate_v2 + sizeof migrate_v3 + sizeof migrate_v4 + 80];
        snprintf(sql, sizeof sql, "BEGIN IMMEDIATE; %s %s %s PRAGMA user_version = %d; COMMIT;",
                 version < 2 ? migrate_v2 : "", version < 3 ? migrate_v3 : "", migrate_v4,
                 NS_STORE_VERSION);
        rc = exec(s, sql, "upgrading the study to the current format version", err);
        if (rc != NS_OK)
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->version = NS_STORE_VERSION;
        return rc;
    }
    if (version != NS_STORE_VERSION)
        return ns_err_set(err, NS_EINPUT, "%s: unknown study format version %lld (this nnsearch "
                          "reads version %d); use a new output folder", s->db_path,
                          (long long)version, NS_STORE_VERSION);
    s->version = NS_STORE_VERSION;
    return NS_OK;
}

/* PRAGMA quick_check on open: a damaged page is found before anything is read or written
 * (integrity_check would also cross-check the indexes, at several times the cost). It
 * reads every page once: 0.2 s of CPU for a 145 MB database on the build machine, where a
 * study of a few hundred trials takes a few MB. */
static int quick_check(ns_store *s, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL);
    int rc = NS_OK;
    if (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!t || strcmp(t, "ok") != 0) {
            /* "*** in database main ***\nPage 2: ..." on one line, without the banner */
            char why[300], first[200];
            const char *m = t ? t : "no message";
            if (!strncmp(m, "*** in database main ***", 24))
                m += 24;
            size_t k = 0;
            for (; *m && k < sizeof first - 1; m++)
                if (!((unsigned char)*m < 0x20 && (k == 0 || first[k - 1] == ' ')))
                    first[k++] = (unsigned char)*m < 0x20 ? ' ' : *m;
            first[k] = 0;
            snprintf(why, sizeof why, "study.db fails SQLite's check (%s)", first);
            rc = damaged(s->dir, s->db_path, why, err);
        }
    } else if (src != SQLITE_DONE) {
        rc = db_fail(s, src, "checking the database", err);
    }
    sqlite3_finalize(st);
    return rc;
}

int ns_store_check_damage(const char *dir, ns_err *err)
{
    char *db = join_path(dir, "study.db");
    if (!db)
        return ns_err_set(err, NS_ERUNTIME, "%s: out of memory", dir);
    struct stat sb;
    int have_db = stat(db, &sb) == 0, rc = NS_OK;
    if ((!have_db || sb.st_size == 0) && has_trials(dir))
        rc = damaged(dir, db, have_db ? "study.db is empty (0 bytes) but trials/ holds the "
                     "study's trials" : "study.db is missing but trials/ holds the study's "
                     "trials", err);
    free(db);
    return rc;
}

static int open_common(ns_store **out, const char *dir, int create, int readonly, ns_err *err)
{
    *out = NULL;
    int rc = NS_OK;
    ns_store *s = calloc(1, sizeof *s);
    if (!s)
        return ns_err_set(err, NS_ERUNTIME, "%s: out of memory", dir);
    s->lock_fd = -1;
    s->readonly = readonly;
    s->dir = strdup(dir);
    s->db_path = join_path(dir, "study.db");
    if (!s->dir || !s->db_path) {
        rc = ns_err_set(err, NS_ERUNTIME, "%s: out of memory", dir);
        goto fail;
    }
    if (create && (rc = make_dirs(dir, err)) != NS_OK)
        goto fail;
    struct stat sb;
    if ((rc = ns_store_check_damage(dir, err)) != NS_OK)
        goto fail;
    if (!create && stat(s->db_path, &sb) != 0) {
        rc = ns_err_set(err, NS_EINPUT, "%s: no study here (no study.db); check the folder",
                        dir);
        goto fail;
    }
    if (!readonly && (rc = take_lock(s, err)) != NS_OK)
        goto fail;
    int flags = readonly ? SQLITE_OPEN_READONLY
                         : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    int src = sqlite3_open_v2(s->db_path, &s->db, flags, NULL);
    if (src != SQLITE_OK) {
        if (!s->db) {
            rc = ns_err_set(err, NS_ERUNTIME, "%s: out of memory opening the study", dir);
            goto fail;
        }
        rc = ns_err_set(err, NS_EINPUT, "%s: cannot open the study: %s", s->db_path,
                        sqlite3_errmsg(s->db));
        goto fail;
    }
    sqlite3_busy_timeout(s->db, NS_STORE_BUSY_MS);
    /* Until the checks below pass, closing must not write: SQLite's last connection
     * checkpoints the WAL into study.db on close, which would change a damaged study. */
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    if ((rc = quick_check(s, err)) != NS_OK)
        goto fail;
    /* synchronous = NORMAL with WAL: a commit survives the process being killed at any
     * moment (SIGKILL included), which is what a study must survive; after an OS crash or
     * power loss the database is still consistent but may miss its last commits. FULL
     * added an fsync to every epoch record, taken under the store's one lock: with small
     * trials on two workers, a sixth of the wall time went into waiting for it. */
    if ((rc = exec(s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", "setting up",
                   err)) != NS_OK)
        goto fail;
    if ((rc = check_schema(s, create, err)) != NS_OK)
        goto fail;
    if (!readonly && (rc = exec(s, "PRAGMA journal_mode = WAL", "choosing WAL mode", err)) != NS_OK)
        goto fail;
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, (int *)NULL);
    *out = s;
    return NS_OK;
fail:
    ns_store_close(s);
    return rc;
}

int ns_store_open(ns_store **out, const char *dir, int create, ns_err *err)
{
    return open_common(out, dir, create, 0, err);
}

int ns_store_open_readonly(ns_store **out, const char *dir, ns_err *err)
{
    return open_common(out, dir, 0, 1, err);
}

void ns_store_close(ns_store *s)
{
    if (!s)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close_v2(s->db); /* rolls back an open transaction */
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock */
    free(s->dir);
    free(s->db_path);
    free(s);
}

/* ---- transactions ------------------------------------------------------------------- */

int ns_store_begin(ns_store *s, ns_err *err)
{
    if (!sqlite3_get_autocommit(s->db))
        return ns_err_set(err, NS_ERUNTIME, "%s: a transaction is already open", s->db_path);
    /* IMMEDIATE takes the write lock now; a read-only handle gets a consistent snapshot. */
    return exec(s, s->readonly ? "BEGIN" : "BEGIN IMMEDIATE", "starting a transaction", err);
}

int ns_store_commit(ns_store *s, ns_err *err)
{
    if (sqlite3_get_autocommit(s->db))
        return ns_err_set(err, NS_ERUNTIME, "%s: no transaction to commit", s->db_path);
    int rc = exec(s, "COMMIT", "committing", err);
    if (rc != NS_OK)
        ns_store_rollback(s);
    return rc;
}

void ns_store_rollback(ns_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- study -------------------------------------------------------------------------- */

static int read_study(sqlite3_stmt *st, ns_study_row *r)
{
    memset(r, 0, sizeof *r);
    r->seed = col_u64(st, 4);
    r->created = col_real(st, 5);
    r->updated = col_real(st, 6);
    r->higher_is_better = sqlite3_column_int(st, 9) != 0;
    return col_str(st, 0, &r->name) || col_str(st, 1, &r->config) ||
           col_str(st, 2, &r->config_hash) || col_str(st, 3, &r->original_hash) ||
           col_str(st, 7, &r->version) || col_str(st, 8, &r->metric) ||
           col_str(st, 10, &r->data_checks) ? -1 : 0;
}

void ns_study_row_free(ns_study_row *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->config);
    free(r->config_hash);
    free(r->original_hash);
    free(r->version);
    free(r->metric);
    free(r->data_checks);
    memset(r, 0, sizeof *r);
}

/* *found = 0 when the study row is missing. */
static int study_get(ns_store *s, ns_study_row *row, int *found, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    memset(row, 0, sizeof *row);
    *found = 0;
    int rc = prep(s, ST_STUDY_GET, &st, err);
    if (rc != NS_OK)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *found = 1;
        rc = read_study(st, row) ? oom(s, err) : NS_OK;
    } else if (src != SQLITE_DONE) {
        rc = db_fail(s, src, "reading the study", err);
    }
    done(st);
    if (rc != NS_OK)
        ns_study_row_free(row);
    return rc;
}

int ns_store_study_get(ns_store *s, ns_study_row *row, ns_err *err)
{
    int found;
    int rc = study_get(s, row, &found, err);
    if (rc == NS_OK && !found)
        rc = ns_err_set(err, NS_EINPUT, "%s: the study has no config recorded (it was stopped "
                        "while being created); run the config again to start it", s->dir);
    return rc;
}

int ns_store_study_init(ns_store *s, const char *name, const char *config_text,
                        const char *hash, uint64_t seed, const char *metric,
                        int higher_is_better, int force, ns_err *err)
{
    ns_study_row old;
    int found;
    sqlite3_stmt *st = NULL;
    if (!metric || !*metric)
        return ns_err_set(err, NS_ERUNTIME, "%s: recording the study: no metric given",
                          s->db_path);
    int hib = higher_is_better != 0;
    int rc = study_get(s, &old, &found, err);
    if (rc != NS_OK)
        return rc;
    double now = now_unix();
    if (!found) {
        if ((rc = prep(s, ST_STUDY_INSERT, &st, err)) != NS_OK)
            return rc;
        int b = bind_text(st, 1, name ? name : "");
        if (b == SQLITE_OK) b = bind_text(st, 2, config_text);
        if (b == SQLITE_OK) b = bind_text(st, 3, hash);
        if (b == SQLITE_OK) b = bind_u64(st, 4, seed);
        if (b == SQLITE_OK) b = sqlite3_bind_double(st, 5, now);
        if (b == SQLITE_OK) b = bind_text(st, 6, NS_VERSION);
        if (b == SQLITE_OK) b = bind_text(st, 7, metric);
        if (b == SQLITE_OK) b = sqlite3_bind_int(st, 8, hib);
        return step_write(s, st, b, "recording the study", err);
    }
    int same_hash = strcmp(old.config_hash, hash ? hash : "") == 0;
    int same_seed = old.seed == seed;
    /* The metric orders every trial: results under another metric do not compare. */
    int same_metric = strcmp(old.metric, metric) == 0 && old.higher_is_better == hib;
    if (!same_hash && !force)
        rc = ns_err_set(err, NS_EINPUT, "%s: config changed since the study was created (hash "
                        "%s, now %s); pass --force to continue with the new config, or use a "
                        "new output folder", s->dir, old.config_hash, hash ? hash : "");
    else if (!same_seed && !force)
        rc = ns_err_set(err, NS_EINPUT, "%s: the seed changed since the study was created (%llu, "
                        "now %llu); pass --force to continue with the new seed, or use a new "
                        "output folder", s->dir, (unsigned long long)old.seed,
                        (unsigned long long)seed);
    else if (!same_metric && !force)
        rc = ns_err_set(err, NS_EINPUT, "%s: the metric changed since the study was created (%s, "
                        "%s is better; now %s, %s is better); pass --force to continue with the "
                        "new metric, or use a new output folder", s->dir, old.metric,
                        old.higher_is_better ? "higher" : "lower", metric,
                        hib ? "higher" : "lower");
    ns_study_row_free(&old);
    if (rc != NS_OK || (same_hash && same_seed && same_metric))
        return rc;
    if ((rc = prep(s, ST_STUDY_UPDATE, &st, err)) != NS_OK)
        return rc;
    int b = bind_text(st, 1, config_text);
    if (b == SQLITE_OK) b = bind_text(st, 2, hash);
    if (b == SQLITE_OK) b = bind_u64(st, 3, seed);
    if (b == SQLITE_OK) b = sqlite3_bind_double(st, 4, now);
    if (b == SQLITE_OK) b = bind_text(st, 5, metric);
    if (b == SQLITE_OK) b = sqlite3_bind_int(st, 6, hib);
    return step_write(s, st, b, "recording the new config", err);
}

/* ---- stages ------------------------------------------------------------------------- */

static int read_stage(sqlite3_stmt *st, ns_stage_row *r)
{
    memset(r, 0, sizeof *r);
    r->position = sqlite3_column_int(st, 1);
    r->state = (ns_stage_state)parse_state((const char *)sqlite3_column_text(st, 2),
                                           stage_names, N_STAGE_STATES);
    r->started = col_real(st, 4);
    r->finished = col_real(st, 5);
    return col_str(st, 0, &r->name) || col_str(st, 3, &r->decision) ? -1 : 0;
}

void ns_stage_row_free(ns_stage_row *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->decision);
    memset(r, 0, sizeof *r);
}

void ns_stage_rows_free(ns_stage_row *rows, int n)
{
    for (int i = 0; rows && i < n; i++)
        ns_stage_row_free(&rows[i]);
    free(rows);
}

int ns_store_stage_set(ns_store *s, const char *name, int position, ns_stage_state state,
                       const char *decision, ns_err *err)
{
    if ((int)state < 0 || (int)state >= N_STAGE_STATES)
        return ns_err_set(err, NS_ERUNTIME, "%s: stage %s: bad state %d", s->db_path,
                          name ? name : "(null)", (int)state);
    sqlite3_stmt *st = NULL;
    int rc = prep(s, ST_STAGE_SET, &st, err);
    if (rc != NS_OK)
        return rc;
    int b = bind_text(st, 1, name);
    if (b == SQLITE_OK) b = sqlite3_bind_int(st, 2, position);
    if (b == SQLITE_OK) b = bind_text(st, 3, stage_names[state]);
    if (b == SQLITE_OK) b = bind_text(st, 4, decision);
    if (b == SQLITE_OK) b = sqlite3_bind_double(st, 5, now_unix());
    return step_write(s, st, b, "recording a stage", err);
}

int ns_store_stage_get(ns_store *s, const char *name, ns_stage_row *row, int *found,
                       ns_err *err)
{
    sqlite3_stmt *st = NULL;
    memset(row, 0, sizeof *row);
    *found = 0;
    int rc = prep(s, ST_STAGE_GET, &st, err);
    if (rc != NS_OK)
        return rc;
    int src = bind_text(st, 1, name);
    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *found = 1;
        rc = read_stage(st, row) ? oom(s, err) : NS_OK;
    } else if (src != SQLITE_DONE) {
        rc = db_fail(s, src, "reading a stage", err);
    }
    done(st);
    if (rc != NS_OK) {
        ns_stage_row_free(row);
        *found = 0;
    }
    return rc;
}

/* Steps st (parameters bound) and collects every row: an array of `size`-byte rows read by
 * rd (nonzero: out of memory), freed with fr on failure. `what` names the rows in errors.
 * Finishes st either way. */
static int collect_rows(ns_store *s, sqlite3_stmt *st, size_t size,
                        int (*rd)(sqlite3_stmt *, void *), void (*fr)(void *, int),
                        const char *what, void **rows, int *n, ns_err *err)
{
    char *v = NULL;
    int cap = 0, len = 0, rc, src;
    *rows = NULL;
    *n = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            int nc = cap ? 2 * cap : 16;
            char *nv = realloc(v, (size_t)nc * size);
            if (!nv)
                goto nomem;
            v = nv;
            cap = nc;
        }
        if (rd(st, v + (size_t)len++ * size))
            goto nomem;
    }
    if (src != SQLITE_DONE) {
        rc = db_fail(s, src, what, err);
        goto fail;
    }
    done(st);
    *rows = v;
    *n = len;
    return NS_OK;
nomem:
    rc = oom(s, err);
fail:
    done(st);
    fr(v, len);
    return rc;
}

static int read_stage_any(sqlite3_stmt *st, void *row) { return read_stage(st, row); }
static void free_stages_any(void *rows, int n) { ns_stage_rows_free(rows, n); }

int ns_store_stages(ns_store *s, ns_stage_row **rows, int *n, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    *rows = NULL;
    *n = 0;
    void *v = NULL;
    int rc = prep(s, ST_STAGES, &st, err);
    if (rc == NS_OK)
        rc = collect_rows(s, st, sizeof **rows, read_stage_any, free_stages_any,
                          "reading the stages", &v, n, err);
    *rows = v;
    return rc;
}

/* ---- trials ------------------------------------------------------------------------- */

static int read_trial(sqlite3_stmt *st, ns_trial_row *r)
{
    memset(r, 0, sizeof *r);
    r->number = sqlite3_column_int(st, 0);
    r->seed = col_u64(st, 3);
    r->state = (ns_trial_state)parse_state((const char *)sqlite3_column_text(st, 4),
                                           trial_names, N_TRIAL_STATES);
    r->started = col_real(st, 5);
    r->finished = col_real(st, 6);
    r->seconds = col_real(st, 7);
    r->epochs = sqlite3_column_int(st, 8);
    r->val_metric = col_real(st, 9);
    r->health_flags = sqlite3_column_type(st, 14) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 14);
    return col_str(st, 1, &r->stage) || col_str(st, 2, &r->params) ||
           col_str(st, 10, &r->result) || col_str(st, 11, &r->health) ||
           col_str(st, 12, &r->checkpoint) || col_str(st, 13, &r->error) ? -1 : 0;
}

void ns_trial_row_free(ns_trial_row *r)
{
    if (!r)
        return;
    free(r->stage);
    free(r->params);
    free(r->result);
    free(r->health);
    free(r->checkpoint);
    free(r->error);
    memset(r, 0, sizeof *r);
}

void ns_trial_rows_free(ns_trial_row *rows, int n)
{
    for (int i = 0; rows && i < n; i++)
        ns_trial_row_free(&rows[i]);
    free(rows);
}

int ns_store_study_set_data_checks(ns_store *s, const char *json, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s, ST_STUDY_CHECKS, &st, err);
    if (rc != NS_OK)
        return rc;
    return step_write(s, st, bind_text(st, 1, json), "recording the data checks", err);
}

int ns_store_trial_next(ns_store *s, int *number, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s, ST_TRIAL_NEXT, &st, err);
    if (rc != NS_OK)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *number = sqlite3_column_int(st, 0);
    else
        rc = db_fail(s, src, "numbering a trial", err);
    done(st);
    return rc;
}

int ns_store_trial_insert(ns_store *s, int number, const char *stage, const char *params,
                          uint64_t seed, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s, ST_TRIAL_INSERT, &st, err);
    if (rc != NS_OK)
        return rc;
    int src = sqlite3_bind_int(st, 1, number);
    if (src == SQLITE_OK) src = bind_text(st, 2, stage);
    if (src == SQLITE_OK) src = bind_text(st, 3, params);
    if (src == SQLITE_OK) src = bind_u64(st, 4, seed);
    if (src == SQLITE_OK) src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        rc = NS_OK;
    } else if (src == SQLITE_CONSTRAINT) {
        int ext = sqlite3_extended_errcode(s->db);
        if (ext == SQLITE_CONSTRAINT_PRIMARYKEY)
            rc = ns_err_set(err, NS_ERUNTIME, "%s: trial %d is already recorded", s->db_path,
                            number);
        else if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
            rc = ns_err_set(err, NS_ERUNTIME, "%s: trial %d: stage '%s' is not recorded; "
                            "record the stage first", s->db_path, number, stage ? stage : "");
        else
            rc = db_fail(s, src, "recording a trial", err);
    } else {
        rc = db_fail(s, src, "recording a trial", err);
    }
    done(st);
    return rc;
}

int ns_store_trial_get(ns_store *s, int number, ns_trial_row *row, int *found, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    memset(row, 0, sizeof *row);
    *found = 0;
    int rc = prep(s, ST_TRIAL_GET, &st, err);
    if (rc != NS_OK)
        return rc;
    int src = sqlite3_bind_int(st, 1, number);
    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *found = 1;
        rc = read_trial(st, row) ? oom(s, err) : NS_OK;
    } else if (src != SQLITE_DONE) {
        rc = db_fail(s, src, "reading a trial", err);
    }
    done(st);
    if (rc != NS_OK) {
        ns_trial_row_free(row);
        *found = 0;
    }
    return rc;
}

/* The message for an update of trial `number` that matched no row. */
static int bad_transition(ns_store *s, int number, const char *to, const char *allowed,
                          ns_err *err)
{
    ns_trial_row row;
    int found;
    int rc = ns_store_trial_get(s, number, &row, &found, err);
    if (rc != NS_OK)
        return rc;
    if (!found)
        return ns_err_set(err, NS_ERUNTIME, "%s: trial %d does not exist", s->db_path, number);
    rc = ns_err_set(err, NS_ERUNTIME, "%s: trial %d is %s; only a %s trial can become %s",
                    s->db_path, number, ns_trial_state_name(row.state), allowed, to);
    ns_trial_row_free(&row);
    return rc;
}

int ns_store_trial_start(ns_store *s, int number, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s, ST_TRIAL_START, &st, err);
    if (rc != NS_OK)
        return rc;
    int b = sqlite3_bind_int(st, 1, number);
    if (b == SQLITE_OK) b = sqlite3_bind_double(st, 2, now_unix());
    if ((rc = step_write(s, st, b, "starting a trial", err)) != NS_OK)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return bad_transition(s, number, "running", "queued or interrupted", err);
    return NS_OK;
}

int ns_store_trial_set_checkpoint(ns_store *s, int number, const char *path, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s, ST_TRIAL_CKPT, &st, err);
    if (rc != NS_OK)
        return rc;
    int b = sqlite3_bind_int(st, 1, number);
    if (b == SQLITE_OK) b = bind_text(st, 2, path);
    if ((rc = step_write(s, st, b, "recording a checkpoint", err)) != NS_OK)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return ns_err_set(err, NS_ERUNTIME, "%s: trial %d does not exist", s->db_path, number);
    return NS_OK;
}

int ns_store_trial_pred_set(ns_store *s, int number, const int32_t *pred, long rows, ns_err *err)
{
    if (rows < 1)
        return ns_err_set(err, NS_ERUNTIME, "%s: trial %d: no predictions to record", s->db_path, number);
    int wide = 0;
    for (long i = 0; i < rows; i++) {
        if (pred[i] < 0 || pred[i] > 65535)
            return ns_err_set(err, NS_ERUNTIME, "%s: trial %d: predicted class %d out of range",
                              s->db_path, number, (int)pred[i]);
        wide |= pred[i] > 255;
    }
    size_t w = wide ? 2 : 1;
    unsigned char *b = malloc((size_t)rows * w);
    if (!b)
        return oom(s, err);
    for (long i = 0; i < rows; i++) {
        b[(size_t)i * w] = (unsigned char)(pred[i] & 0xff);
        if (wide)
            b[(size_t)i * w + 1] = (unsigned char)(pred[i] >> 8);
    }
    sqlite3_stmt *st = NULL;
    int rc = prep(s, ST_PRED_SET, &st, err);
    if (rc == NS_OK) {
        int bd = sqlite3_bind_int(st, 1, number);
        if (bd == SQLITE_OK) bd = sqlite3_bind_int64(st, 2, rows);
        if (bd == SQLITE_OK) bd = sqlite3_bind_blob64(st, 3, b, (sqlite3_uint64)rows * w, SQLITE_TRANSIENT);
        rc = step_write(s, st, bd, "recording a trial's predictions", err);
    }
    free(b);
    return rc;
}

int ns_store_trial_pred_get(ns_store *s, int number, int32_t **pred, long *rows, ns_err *err)
{
    *pred = NULL;
    *rows = 0;
    if (s->version < 4)
        return NS_OK;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, ST_PRED_GET, &st, err);
    if (rc != NS_OK)
        return rc;
    int src = sqlite3_bind_int(st, 1, number);
    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        sqlite3_int64 n = sqlite3_column_int64(st, 0);
        const unsigned char *b = sqlite3_column_blob(st, 1);
        sqlite3_int64 len = sqlite3_column_bytes(st, 1);
        size_t w = n > 0 && len == n ? 1 : n > 0 && len == 2 * n ? 2 : 0;
        if (!w || !b) {
            rc = ns_err_set(err, NS_ERUNTIME, "%s: trial %d: its predictions are damaged (%lld "
                            "bytes for %lld rows)", s->db_path, number, (long long)len, (long long)n);
        } else if (!(*pred = malloc((size_t)n * sizeof **pred))) {
            rc = oom(s, err);
        } else {
            for (sqlite3_int64 i = 0; i < n; i++)
                (*pred)[i] = w == 1 ? b[i] : (int32_t)(b[2 * i] | b[2 * i + 1] << 8);
            *rows = (long)n;
        }
    } else if (src != SQLITE_DONE) {
        rc = db_fail(s, src, "reading a trial's predictions", err);
    }
    done(st);
    return rc;
}

int ns_store_trial_finish(ns_store *s, int number, ns_trial_state state,
                          const ns_trial_result *r, ns_err *err)
{
    if (state == NS_TRIAL_QUEUED || state == NS_TRIAL_RUNNING || (int)state < 0 ||
        (int)state >= N_TRIAL_STATES)
        return ns_err_set(err, NS_ERUNTIME, "%s: trial %d: %s is not a final state",
                          s->db_path, number, ns_trial_state_name(state));
    ns_trial_result none = {.seconds = NAN, .val_metric = NAN};
    if (!r)
        r = &none;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, ST_TRIAL_FINISH, &st, err);
    if (rc != NS_OK)
        return rc;
    int b = sqlite3_bind_int(st, 1, number);
    if (b == SQLITE_OK) b = bind_text(st, 2, trial_names[state]);
    if (b == SQLITE_OK) b = sqlite3_bind_double(st, 3, now_unix());
    if (b == SQLITE_OK) b = bind_real(st, 4, r->seconds);
    if (b == SQLITE_OK) b = sqlite3_bind_int(st, 5, r->epochs);
    if (b == SQLITE_OK) b = bind_real(st, 6, r->val_metric);
    if (b == SQLITE_OK) b = bind_text(st, 7, r->result);
    if (b == SQLITE_OK) b = bind_text(st, 8, r->health);
    if (b == SQLITE_OK) b = bind_text(st, 9, r->error);
    if (b == SQLITE_OK)
        b = r->health ? sqlite3_bind_int64(st, 10, r->health_flags) : sqlite3_bind_null(st, 10);
    if ((rc = step_write(s, st, b, "finishing a trial", err)) != NS_OK)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return bad_transition(s, number, trial_names[state], "running", err);
    return NS_OK;
}

static int read_trial_any(sqlite3_stmt *st, void *row) { return read_trial(st, row); }
static void free_trials_any(void *rows, int n) { ns_trial_rows_free(rows, n); }

/* Runs a trial query (parameters bound) and collects every row. */
static int collect_trials(ns_store *s, sqlite3_stmt *st, ns_trial_row **rows, int *n,
                          ns_err *err)
{
    void *v = NULL;
    int rc = collect_rows(s, st, sizeof **rows, read_trial_any, free_trials_any,
                          "reading the trials", &v, n, err);
    *rows = v;
    return rc;
}

int ns_store_trials(ns_store *s, ns_trial_row **rows, int *n, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    *rows = NULL;
    *n = 0;
    int rc = prep(s, ST_TRIALS, &st, err);
    return rc != NS_OK ? rc : collect_trials(s, st, rows, n, err);
}

int ns_store_trials_from(ns_store *s, int first, ns_trial_row **rows, int *n, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    *rows = NULL;
    *n = 0;
    int rc = prep(s, ST_TRIALS_FROM, &st, err);
    if (rc == NS_OK && (rc = sqlite3_bind_int64(st, 1, first)) != SQLITE_OK) {
        rc = db_fail(s, rc, "reading trials", err);
        done(st);
        return rc;
    }
    return rc != NS_OK ? rc : collect_trials(s, st, rows, n, err);
}

int ns_store_best(ns_store *s, int higher_is_better, int64_t reject, ns_trial_row *row,
                  int *found, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    ns_trial_row *v = NULL;
    int n = 0;
    memset(row, 0, sizeof *row);
    *found = 0;
    int rc = prep(s, higher_is_better ? ST_BEST_HIGH : ST_BEST_LOW, &st, err);
    if (rc == NS_OK && (rc = sqlite3_bind_int64(st, 1, reject)) != SQLITE_OK) {
        rc = db_fail(s, rc, "choosing the best trial", err);
        done(st);
    } else if (rc == NS_OK) {
        rc = collect_trials(s, st, &v, &n, err);
    }
    if (rc == NS_OK && n > 0) {
        *row = v[0];
        *found = 1;
        free(v);
    }
    return rc;
}

int ns_store_reset_running(ns_store *s, int *n_reset, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s, ST_RESET, &st, err);
    if (rc == NS_OK)
        rc = step_write(s, st, SQLITE_OK, "marking running trials interrupted", err);
    if (n_reset)
        *n_reset = rc == NS_OK ? sqlite3_changes(s->db) : 0;
    return rc;
}

/* ---- epochs ------------------------------------------------------------------------- */

/* The per-layer gradient norms as a JSON array, non-finite entries as null. */
static void norms_json(char *buf, size_t cap, const double *v, int n)
{
    size_t at = 0;
    buf[at++] = '[';
    for (int i = 0; i < n && at + 32 < cap; i++) {
        if (i)
            buf[at++] = ',';
        at += (size_t)(isfinite(v[i]) ? snprintf(buf + at, cap - at, "%.17g", v[i])
                                      : snprintf(buf + at, cap - at, "null"));
    }
    buf[at++] = ']';
    buf[at] = '\0';
}

/* Reads an array written by norms_json; returns -1 when it is not one. */
static int norms_parse(const char *t, double *v, int max, int *n)
{
    *n = 0;
    if (!t)
        return -1;
    while (isspace((unsigned char)*t))
        t++;
    if (*t++ != '[')
        return -1;
    while (isspace((unsigned char)*t))
        t++;
    if (*t == ']')
        return 0;
    for (;;) {
        while (isspace((unsigned char)*t))
            t++;
        double x;
        if (strncmp(t, "null", 4) == 0) {
            x = NAN;
            t += 4;
        } else {
            char *end;
            x = strtod(t, &end);
            if (end == t)
                return -1;
            t = end;
        }
        if (*n >= max)
            return -1;
        v[(*n)++] = x;
        while (isspace((unsigned char)*t))
            t++;
        if (*t == ']')
            return 0;
        if (*t++ != ',')
            return -1;
    }
}

int ns_store_epoch_add(ns_store *s, int trial, const ns_epoch_record *rec, ns_err *err)
{
    if (rec->n_groups < 0 || rec->n_groups > NS_MAX_GROUPS)
        return ns_err_set(err, NS_ERUNTIME, "%s: trial %d epoch %d: %d layer norms (at most "
                          "%d)", s->db_path, trial, rec->epoch, rec->n_groups, NS_MAX_GROUPS);
    char norms[NS_MAX_GROUPS * 26 + 4];
    norms_json(norms, sizeof norms, rec->group_grad_norm, rec->n_groups);
    sqlite3_stmt *st = NULL;
    int rc = prep(s, ST_EPOCH_ADD, &st, err);
    if (rc != NS_OK)
        return rc;
    int b = sqlite3_bind_int(st, 1, trial);
    if (b == SQLITE_OK) b = sqlite3_bind_int(st, 2, rec->epoch);
    if (b == SQLITE_OK) b = sqlite3_bind_int64(st, 3, rec->step);
    if (b == SQLITE_OK) b = bind_real(st, 4, rec->train_loss);
    if (b == SQLITE_OK) b = bind_real(st, 5, rec->val_loss);
    if (b == SQLITE_OK) b = bind_real(st, 6, rec->val_acc);
    if (b == SQLITE_OK) b = bind_real(st, 7, rec->val_rmse);
    if (b == SQLITE_OK) b = bind_real(st, 8, rec->lr);
    if (b == SQLITE_OK) b = bind_real(st, 9, rec->grad_norm);
    if (b == SQLITE_OK) b = bind_text(st, 10, norms);
    if (b == SQLITE_OK) b = bind_real(st, 11, rec->seconds);
    if (b == SQLITE_OK) b = bind_real(st, 12, rec->samples_per_s);
    if (b == SQLITE_OK) b = sqlite3_bind_int(st, 13, rec->diverged);
    if (b == SQLITE_OK) b = sqlite3_bind_int(st, 14, rec->stopped_early);
    if (b == SQLITE_OK) b = bind_real(st, 15, rec->val_bacc);
    if (b == SQLITE_OK) b = bind_real(st, 16, rec->val_f1);
    int src = b == SQLITE_OK ? sqlite3_step(st) : b;
    if (src == SQLITE_DONE)
        rc = NS_OK;
    else if (src == SQLITE_CONSTRAINT &&
             sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = ns_err_set(err, NS_ERUNTIME, "%s: epoch %d of trial %d: the trial does not exist",
                        s->db_path, rec->epoch, trial);
    else
        rc = db_fail(s, src, "recording an epoch", err);
    done(st);
    return rc;
}

int ns_store_epochs_truncate(ns_store *s, int trial, int epoch, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s, ST_EPOCH_TRUNC, &st, err);
    if (rc != NS_OK)
        return rc;
    int b = sqlite3_bind_int(st, 1, trial);
    if (b == SQLITE_OK) b = sqlite3_bind_int(st, 2, epoch);
    return step_write(s, st, b, "deleting epoch records", err);
}

int ns_store_epochs(ns_store *s, int trial, ns_epoch_record **recs, int *n, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    ns_epoch_record *v = NULL;
    int cap = 0, len = 0;
    *recs = NULL;
    *n = 0;
    int rc = prep(s, s->version == 2 ? ST_EPOCHS_V2 : ST_EPOCHS, &st, err);
    if (rc != NS_OK)
        return rc;
    int src = sqlite3_bind_int(st, 1, trial);
    while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        src = SQLITE_OK;
        if (len == cap) {
            int nc = cap ? 2 * cap : 32;
            ns_epoch_record *nv = realloc(v, (size_t)nc * sizeof *v);
            if (!nv) {
                rc = oom(s, err);
                goto fail;
            }
            v = nv;
            cap = nc;
        }
        ns_epoch_record *e = &v[len++];
        memset(e, 0, sizeof *e);
        e->epoch = sqlite3_column_int(st, 0);
        e->step = (long)sqlite3_column_int64(st, 1);
        e->train_loss = col_real(st, 2);
        e->val_loss = col_real(st, 3);
        e->val_acc = col_real(st, 4);
        e->val_rmse = col_real(st, 5);
        e->lr = col_real(st, 6);
        e->grad_norm = col_real(st, 7);
        e->seconds = col_real(st, 9);
        e->samples_per_s = col_real(st, 10);
        e->diverged = sqlite3_column_int(st, 11);
        e->stopped_early = sqlite3_column_int(st, 12);
        e->val_bacc = col_real(st, 13);
        e->val_f1 = col_real(st, 14);
        if (norms_parse((const char *)sqlite3_column_text(st, 8), e->group_grad_norm,
                        NS_MAX_GROUPS, &e->n_groups)) {
            rc = ns_err_set(err, NS_ERUNTIME, "%s: trial %d epoch %d: layer_grad_norm is not "
                            "a JSON array of at most %d numbers", s->db_path, trial, e->epoch,
                            NS_MAX_GROUPS);
            goto fail;
        }
    }
    if (src != SQLITE_DONE) {
        rc = db_fail(s, src, "reading epoch records", err);
        goto fail;
    }
    done(st);
    *recs = v;
    *n = len;
    return NS_OK;
fail:
    done(st);
    free(v);
    return rc;
}

/* ---- checks ------------------------------------------------------------------------- */

int ns_store_integrity_check(ns_store *s, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL);
    int rc = NS_OK;
    if (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!t || strcmp(t, "ok") != 0)
            rc = ns_err_set(err, NS_ERUNTIME, "%s: integrity check failed: %s", s->db_path,
                            t ? t : "(no message)");
    } else {
        rc = db_fail(s, src, "checking integrity", err);
    }
    sqlite3_finalize(st);
    if (rc != NS_OK)
        return rc;
    /* Rows: table, rowid, referenced table, constraint index; none when consistent. */
    src = sqlite3_prepare_v2(s->db, "PRAGMA foreign_key_check", -1, &st, NULL);
    if (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
        rc = ns_err_set(err, NS_ERUNTIME, "%s: integrity check failed: a row of %s refers to a "
                        "missing row of %s", s->db_path, sqlite3_column_text(st, 0),
                        sqlite3_column_text(st, 2));
    else if (src != SQLITE_DONE)
        rc = db_fail(s, src, "checking foreign keys", err);
    sqlite3_finalize(st);
    return rc;
}
