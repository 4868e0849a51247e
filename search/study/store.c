/* store.c — the SQLite study store of store.h, its file: the schema and its migrations,
 * the lock, opening (with the checks that tell damage from a new study), closing,
 * transactions and the integrity check. The rows it holds are read and written by
 * store_rows.c, whose table has every statement they run; docs/study-format.md documents
 * both. Not a general database layer. */
#include "search/study/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/atomic.h"
#include "search/study/store_impl.h"

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
int ns_store_fail(ns_store *s, int rc, const char *what, ns_err *err)
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

/* ---- statements --------------------------------------------------------------------- */

static int exec(ns_store *s, const char *sql, const char *what, ns_err *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? NS_OK : ns_store_fail(s, rc, what, err);
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
    int ret = rc == SQLITE_OK ? NS_OK : ns_store_fail(s, rc, "reading the schema", err);
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
        rc = ns_store_fail(s, src, "checking the database", err);
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
        rc = ns_store_fail(s, src, "checking integrity", err);
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
        rc = ns_store_fail(s, src, "checking foreign keys", err);
    sqlite3_finalize(st);
    return rc;
}
