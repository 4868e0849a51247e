/* test_store.c — the SQLite study store: persistence across reopen, the schema version,
 * the one-writer lock (same process and a forked child) and read-only access beside it,
 * the config-hash, seed and metric guard, trial and stage lifecycles, queries, NaN/inf as NULL, and a
 * writer killed with SIGKILL mid-loop leaving a consistent prefix of its writes. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "search/study/store.h"
#include "tests/testutil.h"

/* A study folder two levels below a fresh temporary folder (open must create both). */
static char *study_dir(void)
{
    char *t = tu_temp_dir();
    cr_assert(t);
    size_t n = strlen(t) + 32;
    char *d = malloc(n);
    snprintf(d, n, "%s/results/x", t);
    free(t);
    return d;
}

static char *db_path(const char *dir)
{
    size_t n = strlen(dir) + 16;
    char *p = malloc(n);
    snprintf(p, n, "%s/study.db", dir);
    return p;
}

static ns_store *open_ok(const char *dir, int create)
{
    ns_store *s = NULL;
    ns_err err = {0};
    int rc = ns_store_open(&s, dir, create, &err);
    cr_assert_eq(rc, NS_OK, "open %s: %s", dir, err.msg);
    cr_assert(s);
    return s;
}

/* Runs sql on the study's database with a plain SQLite connection; returns the first
 * column of the first row as an integer (0 when there is none). */
static long long raw_int(const char *dir, const char *sql)
{
    char *p = db_path(dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    long long v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(p);
    return v;
}

static void raw_exec(const char *dir, const char *sql)
{
    char *p = db_path(dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    free(p);
}

static ns_epoch_record epoch_rec(int e)
{
    ns_epoch_record r;
    memset(&r, 0, sizeof r);
    r.epoch = e;
    r.step = 100L * e;
    r.train_loss = 1.0 / e;
    r.val_loss = 1.1 / e;
    r.val_acc = 0.5 + 0.01 * e;
    r.val_rmse = NAN;
    r.val_bacc = 0.25 + 0.01 * e;
    r.val_f1 = e == 2 ? NAN : 1.0 / 3.0 + e; /* NaN: no validation rows of a class */
    r.lr = 1e-3;
    r.grad_norm = 0.25 * e;
    r.n_groups = 3;
    r.group_grad_norm[0] = 0.1 * e;
    r.group_grad_norm[1] = 1.0 / 3.0;
    r.group_grad_norm[2] = 2.5e-7;
    r.seconds = 0.125;
    r.samples_per_s = 12345.5;
    return r;
}

/* A study with one stage "random" and trials 0..n-1 queued. */
static ns_store *fresh_study(const char *dir, int n_trials)
{
    ns_err err = {0};
    ns_store *s = open_ok(dir, 1);
    cr_assert_eq(ns_store_study_init(s, "x", "search: {}\n", "00ff", 42, "val_acc", 1, 0, &err),
                 NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_stage_set(s, "random", 4, NS_STAGE_RUNNING, NULL, &err), NS_OK, "%s",
                 err.msg);
    for (int i = 0; i < n_trials; i++) {
        char params[64];
        snprintf(params, sizeof params, "{\"lr\": %d}", i);
        cr_assert_eq(ns_store_trial_insert(s, i, "random", params, 1000 + (uint64_t)i, &err),
                     NS_OK, "%s", err.msg);
    }
    return s;
}

static void finish(ns_store *s, int number, ns_trial_state state, double metric)
{
    ns_err err = {0};
    ns_trial_result r = {.seconds = 1.5, .epochs = 3, .val_metric = metric,
                         .result = "{\"ok\": true}", .health = "{\"diverged\": false}"};
    cr_assert_eq(ns_store_trial_start(s, number, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_trial_finish(s, number, state, &r, &err), NS_OK, "%s", err.msg);
}

Test(store, create_close_reopen_persists)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 2);
    cr_assert_eq(ns_store_stage_set(s, "lr_range", 1, NS_STAGE_COMPLETE, "{\"lr_max\": 0.1}",
                                    &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_trial_set_checkpoint(s, 0, "ckpt/trial-0.ckpt", &err), NS_OK);
    finish(s, 0, NS_TRIAL_COMPLETE, 0.25);
    for (int e = 1; e <= 3; e++) {
        ns_epoch_record r = epoch_rec(e);
        cr_assert_eq(ns_store_epoch_add(s, 0, &r, &err), NS_OK, "%s", err.msg);
    }
    ns_store_close(s);

    cr_assert_eq(raw_int(dir, "PRAGMA user_version"), NS_STORE_VERSION);
    cr_assert_eq(raw_int(dir, "PRAGMA application_id"), 0x4E535344);
    s = open_ok(dir, 0);
    ns_study_row st;
    cr_assert_eq(ns_store_study_get(s, &st, &err), NS_OK, "%s", err.msg);
    cr_assert_str_eq(st.name, "x");
    cr_assert_str_eq(st.config, "search: {}\n");
    cr_assert_str_eq(st.config_hash, "00ff");
    cr_assert_str_eq(st.original_hash, "00ff");
    cr_assert_eq(st.seed, 42);
    cr_assert_str_eq(st.metric, "val_acc");
    cr_assert_eq(st.higher_is_better, 1);
    cr_assert_str_eq(st.version, NS_VERSION);
    cr_assert(st.created > 1.6e9 && st.created <= st.updated);
    ns_study_row_free(&st);

    ns_stage_row *stages;
    int n;
    cr_assert_eq(ns_store_stages(s, &stages, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(stages[0].name, "lr_range"); /* by position, not insertion */
    cr_assert_eq(stages[0].state, NS_STAGE_COMPLETE);
    cr_assert_str_eq(stages[0].decision, "{\"lr_max\": 0.1}");
    cr_assert(!isnan(stages[0].started) && !isnan(stages[0].finished));
    cr_assert_str_eq(stages[1].name, "random");
    cr_assert_eq(stages[1].state, NS_STAGE_RUNNING);
    cr_assert_null(stages[1].decision);
    cr_assert(isnan(stages[1].finished));
    ns_stage_rows_free(stages, n);

    ns_trial_row *t;
    cr_assert_eq(ns_store_trials(s, &t, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(t[0].number, 0);
    cr_assert_str_eq(t[0].stage, "random");
    cr_assert_str_eq(t[0].params, "{\"lr\": 0}");
    cr_assert_eq(t[0].seed, 1000);
    cr_assert_eq(t[0].state, NS_TRIAL_COMPLETE);
    cr_assert_eq(t[0].epochs, 3);
    cr_assert_eq(t[0].seconds, 1.5);
    cr_assert_eq(t[0].val_metric, 0.25);
    cr_assert_str_eq(t[0].result, "{\"ok\": true}");
    cr_assert_str_eq(t[0].health, "{\"diverged\": false}");
    cr_assert_str_eq(t[0].checkpoint, "ckpt/trial-0.ckpt");
    cr_assert_null(t[0].error);
    cr_assert(t[0].started <= t[0].finished);
    cr_assert_eq(t[1].state, NS_TRIAL_QUEUED);
    cr_assert(isnan(t[1].started) && isnan(t[1].val_metric) && isnan(t[1].seconds));
    ns_trial_rows_free(t, n);

    ns_epoch_record *e;
    cr_assert_eq(ns_store_epochs(s, 0, &e, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    for (int i = 0; i < 3; i++) {
        ns_epoch_record r = epoch_rec(i + 1);
        cr_assert_eq(e[i].epoch, r.epoch);
        cr_assert_eq(e[i].step, r.step);
        cr_assert_eq(e[i].train_loss, r.train_loss); /* REAL keeps every bit */
        cr_assert_eq(e[i].val_loss, r.val_loss);
        cr_assert_eq(e[i].val_acc, r.val_acc);
        cr_assert(isnan(e[i].val_rmse));
        cr_assert_eq(e[i].val_bacc, r.val_bacc);
        cr_assert(i == 1 ? isnan(e[i].val_f1) : e[i].val_f1 == r.val_f1);
        cr_assert_eq(e[i].lr, r.lr);
        cr_assert_eq(e[i].grad_norm, r.grad_norm);
        cr_assert_eq(e[i].n_groups, 3);
        for (int g = 0; g < 3; g++) /* %.17g round-trips through the JSON text */
            cr_assert_eq(e[i].group_grad_norm[g], r.group_grad_norm[g]);
        cr_assert_eq(e[i].seconds, r.seconds);
        cr_assert_eq(e[i].samples_per_s, r.samples_per_s);
    }
    free(e);
    cr_assert_eq(ns_store_integrity_check(s, &err), NS_OK, "%s", err.msg);
    ns_store_close(s);
    free(dir);
}

Test(store, wal_and_missing_study)
{
    char *dir = study_dir();
    ns_store *s = fresh_study(dir, 0);
    ns_store_close(s);
    char *p = db_path(dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(p);

    char *empty = tu_temp_dir();
    ns_err err = {0};
    cr_assert_eq(ns_store_open(&s, empty, 0, &err), NS_EINPUT);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, "no study here"), "%s", err.msg);
    cr_assert_eq(ns_store_open_readonly(&s, empty, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "no study here"), "%s", err.msg);
    free(empty);
    free(dir);
}

/* ---- damaged studies ------------------------------------------------------------------ */

/* The bytes of DIR/study.db (NULL, 0 when missing); caller frees. */
static unsigned char *file_bytes(const char *dir, long *len)
{
    char *p = db_path(dir);
    FILE *f = fopen(p, "rb");
    free(p);
    *len = 0;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*len + 1);
    cr_assert_eq(fread(b, 1, (size_t)*len, f), (size_t)*len);
    fclose(f);
    return b;
}

/* Both opens of dir refuse it with NS_EINPUT and one line holding what, and leave
 * study.db byte for byte as it was (also when missing: not created). */
static void refused_unchanged(const char *dir, const char *what)
{
    long n0, n1;
    unsigned char *b0 = file_bytes(dir, &n0);
    for (int readonly = 0; readonly <= 1; readonly++)
        for (int create = 0; create <= !readonly; create++) {
            ns_store *s = NULL;
            ns_err err = {0};
            int rc = readonly ? ns_store_open_readonly(&s, dir, &err) : ns_store_open(&s, dir, create, &err);
            cr_assert_eq(rc, NS_EINPUT, "readonly %d create %d: %d %s", readonly, create, rc, err.msg);
            cr_assert_null(s);
            cr_assert_null(strchr(err.msg, '\n'), "%s", err.msg);
            cr_assert(strstr(err.msg, ": the study is damaged: "), "%s", err.msg);
            cr_assert(strstr(err.msg, what), "lacks \"%s\": %s", what, err.msg);
            cr_assert(strstr(err.msg, "/study.db from a backup, or run the config into a new folder"), "%s", err.msg);
            unsigned char *b1 = file_bytes(dir, &n1);
            cr_assert(n1 == n0 && (!n0 || !memcmp(b0, b1, (size_t)n0)), "study.db changed");
            cr_assert_eq(!b1, !b0, "study.db created or removed");
            free(b1);
        }
    free(b0);
}

/* An emptied or missing study.db beside trials/ was started afresh; a damaged page was
 * found only by the query that read it (NS_ERUNTIME, exit 1), or not at all. */
Test(store, damaged_study_is_refused_and_left_unchanged)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 300); /* several pages of trials */
    for (int e = 1; e <= 40; e++) {
        ns_epoch_record r = epoch_rec(e);
        cr_assert_eq(ns_store_epoch_add(s, 0, &r, &err), NS_OK, "%s", err.msg);
    }
    ns_store_close(s);
    cr_assert_gt(raw_int(dir, "PRAGMA page_count"), 8);
    char trials[4200];
    snprintf(trials, sizeof trials, "%s/trials", dir);
    cr_assert_eq(mkdir(trials, 0755), 0);
    snprintf(trials, sizeof trials, "%s/trials/0", dir);
    cr_assert_eq(mkdir(trials, 0755), 0);
    cr_assert_eq(ns_store_check_damage(dir, &err), NS_OK, "%s", err.msg);
    long n;
    unsigned char *good = file_bytes(dir, &n);
    char *p = db_path(dir);

    /* every page but the header in turn: whichever b-tree it holds, open refuses it */
    long pages = n / 4096;
    for (long pg = 1; pg < pages; pg++) {
        FILE *f = fopen(p, "r+b");
        cr_assert(f);
        unsigned char junk[4096];
        for (int i = 0; i < 4096; i++)
            junk[i] = (unsigned char)(i * 37 + pg);
        fseek(f, pg * 4096, SEEK_SET);
        fwrite(junk, 1, sizeof junk, f);
        fclose(f);
        refused_unchanged(dir, "study.db fails SQLite's check (");
        f = fopen(p, "wb");
        fwrite(good, 1, (size_t)n, f);
        fclose(f);
    }
    s = open_ok(dir, 0); /* restored from the "backup": opens again */
    ns_store_close(s);

    /* the header page: not a database, but trials/ says it was a study */
    FILE *f = fopen(p, "r+b");
    fwrite("garbage!garbage!", 1, 16, f);
    fclose(f);
    refused_unchanged(dir, "study.db is not a database (file is not a database) but trials/ holds");

    f = fopen(p, "wb"); /* emptied */
    fclose(f);
    refused_unchanged(dir, "study.db is empty (0 bytes) but trials/ holds the study's trials");
    cr_assert_eq(ns_store_check_damage(dir, &err), NS_EINPUT);

    unlink(p); /* deleted */
    refused_unchanged(dir, "study.db is missing but trials/ holds the study's trials");

    /* without trials an empty study.db is one stopped while being created: it starts */
    rmdir(trials);
    f = fopen(p, "wb");
    fclose(f);
    s = open_ok(dir, 1);
    ns_store_close(s);
    free(p);
    free(good);
    free(dir);
}

Test(store, newer_or_foreign_database_refused)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 0);
    ns_store_close(s);
    raw_exec(dir, "PRAGMA user_version = 5");
    cr_assert_eq(ns_store_open(&s, dir, 1, &err), NS_EINPUT);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, "version 5 is newer"), "%s", err.msg);
    cr_assert_null(strchr(err.msg, '\n'));
    cr_assert_eq(ns_store_open_readonly(&s, dir, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "version 5 is newer"), "%s", err.msg);
    raw_exec(dir, "PRAGMA user_version = 0");
    cr_assert_eq(ns_store_open(&s, dir, 1, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "unknown study format version 0"), "%s", err.msg);

    /* Another program's database is left alone. */
    char *other = study_dir();
    cr_assert_eq(ns_store_open(&s, other, 1, &err), NS_OK); /* creates the folder */
    ns_store_close(s);
    char *p = db_path(other);
    remove(p);
    raw_exec(other, "CREATE TABLE t (a); INSERT INTO t VALUES (1)");
    cr_assert_eq(ns_store_open(&s, other, 1, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "not an nnsearch study"), "%s", err.msg);
    cr_assert_eq(raw_int(other, "SELECT a FROM t"), 1);

    /* And so is a file that is not a database at all. */
    FILE *f = fopen(p, "wb");
    fputs("this is not a database, just some text that is long enough......................."
          "..................................................................................",
          f);
    fclose(f);
    cr_assert_eq(ns_store_open(&s, other, 1, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "not an nnsearch study"), "%s", err.msg);
    free(p);
    free(other);
    free(dir);
}

Test(store, second_open_in_same_process_refused)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *a = fresh_study(dir, 1);
    ns_store *b = NULL;
    cr_assert_eq(ns_store_open(&b, dir, 1, &err), NS_EINPUT);
    cr_assert_null(b);
    char want[64];
    snprintf(want, sizeof want, "(pid %ld)", (long)getpid());
    cr_assert(strstr(err.msg, "the study is in use by another nnsearch"), "%s", err.msg);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    cr_assert(strstr(err.msg, "wait for it or stop it"), "%s", err.msg);
    cr_assert(strncmp(err.msg, dir, strlen(dir)) == 0, "%s", err.msg);
    ns_store_close(a);
    b = open_ok(dir, 0);
    ns_store_close(b);
    free(dir);
}

/* Forks a child that opens the study; returns its exit status: 0 = opened, 1 = refused
 * with `pid` in the message, 2 = anything else. */
static int child_open(const char *dir, long pid)
{
    pid_t c = fork();
    cr_assert(c >= 0);
    if (c == 0) {
        ns_store *s = NULL;
        ns_err err = {0};
        int rc = ns_store_open(&s, dir, 0, &err);
        char want[64];
        snprintf(want, sizeof want, "in use by another nnsearch (pid %ld)", pid);
        if (rc == NS_OK)
            ns_store_close(s);
        _exit(rc == NS_OK ? 0 : rc == NS_EINPUT && strstr(err.msg, want) ? 1 : 2);
    }
    int status;
    cr_assert_eq(waitpid(c, &status, 0), c);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

Test(store, second_open_from_child_refused)
{
    char *dir = study_dir();
    ns_store *a = fresh_study(dir, 1);
    cr_assert_eq(child_open(dir, (long)getpid()), 1);
    ns_store_close(a);
    cr_assert_eq(child_open(dir, (long)getpid()), 0);
    free(dir);
}

Test(store, readonly_while_locked)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *w = fresh_study(dir, 2);
    finish(w, 0, NS_TRIAL_COMPLETE, 0.5);
    ns_store *r = NULL;
    cr_assert_eq(ns_store_open_readonly(&r, dir, &err), NS_OK, "%s", err.msg);
    ns_trial_row *t;
    int n;
    cr_assert_eq(ns_store_trials(r, &t, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(t[0].state, NS_TRIAL_COMPLETE);
    ns_trial_rows_free(t, n);

    /* The writer goes on; the reader sees each commit, also inside its own snapshot after
     * the snapshot ends. */
    cr_assert_eq(ns_store_begin(r, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_trials(r, &t, &n, &err), NS_OK);
    ns_trial_rows_free(t, n);
    finish(w, 1, NS_TRIAL_PRUNED, 0.7);
    cr_assert_eq(ns_store_trials(r, &t, &n, &err), NS_OK);
    cr_assert_eq(t[1].state, NS_TRIAL_QUEUED); /* still the snapshot */
    ns_trial_rows_free(t, n);
    cr_assert_eq(ns_store_commit(r, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_trials(r, &t, &n, &err), NS_OK);
    cr_assert_eq(t[1].state, NS_TRIAL_PRUNED);
    ns_trial_rows_free(t, n);

    cr_assert_eq(ns_store_trial_insert(r, 5, "random", "{}", 1, &err), NS_ERUNTIME);
    cr_assert(strstr(err.msg, "read-only"), "%s", err.msg);
    ns_store_close(w);
    /* After the writer has gone (and removed its WAL) the reader still reads. */
    ns_study_row st;
    cr_assert_eq(ns_store_study_get(r, &st, &err), NS_OK, "%s", err.msg);
    ns_study_row_free(&st);
    ns_store_close(r);
    cr_assert_eq(ns_store_open_readonly(&r, dir, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_trials(r, &t, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    ns_trial_rows_free(t, n);
    ns_store_close(r);
    free(dir);
}

Test(store, changed_config_refused_unless_forced)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 0);
    cr_assert_eq(ns_store_study_init(s, "x", "search: {}\n", "00ff", 42, "val_acc", 1, 0, &err),
                 NS_OK, "%s", err.msg); /* same config: fine */
    ns_store_close(s);
    s = open_ok(dir, 1);
    cr_assert_eq(ns_store_study_init(s, "x", "search: {a: 1}\n", "abcd", 42, "val_acc", 1, 0,
                                     &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "config changed since the study was created (hash 00ff, now "
                              "abcd); pass --force to continue with the new config, or use a "
                              "new output folder"), "%s", err.msg);
    cr_assert_eq(ns_store_study_init(s, "x", "search: {}\n", "00ff", 7, "val_acc", 1, 0, &err),
                 NS_EINPUT);
    cr_assert(strstr(err.msg, "seed changed"), "%s", err.msg);
    /* Same config and seed, another metric (or only another direction): refused too. */
    cr_assert_eq(ns_store_study_init(s, "x", "search: {}\n", "00ff", 42, "val_loss", 0, 0, &err),
                 NS_EINPUT);
    cr_assert(strstr(err.msg, "the metric changed since the study was created (val_acc, higher "
                              "is better; now val_loss, lower is better); pass --force"),
              "%s", err.msg);
    cr_assert_eq(ns_store_study_init(s, "x", "search: {}\n", "00ff", 42, "val_acc", 0, 0, &err),
                 NS_EINPUT);
    cr_assert(strstr(err.msg, "metric changed"), "%s", err.msg);
    cr_assert_eq(ns_store_study_init(s, "x", "search: {}\n", "00ff", 42, NULL, 1, 0, &err),
                 NS_ERUNTIME);
    cr_assert_eq(ns_store_study_init(s, "x", "search: {a: 1}\n", "abcd", 42, "val_loss", 0, 1,
                                     &err), NS_OK, "%s", err.msg);
    ns_study_row st;
    cr_assert_eq(ns_store_study_get(s, &st, &err), NS_OK);
    cr_assert_str_eq(st.config, "search: {a: 1}\n");
    cr_assert_str_eq(st.config_hash, "abcd");
    cr_assert_str_eq(st.original_hash, "00ff");
    cr_assert_str_eq(st.metric, "val_loss");
    cr_assert_eq(st.higher_is_better, 0);
    ns_study_row_free(&st);
    cr_assert_eq(ns_store_study_init(s, "x", "search: {a: 1}\n", "abcd", 42, "val_loss", 0, 0,
                                     &err), NS_OK, "%s", err.msg); /* now the study's */
    ns_store_close(s);

    /* A study whose config was never recorded says so. */
    char *d2 = study_dir();
    s = open_ok(d2, 1);
    cr_assert_eq(ns_store_study_get(s, &st, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "no config recorded"), "%s", err.msg);
    ns_store_close(s);
    free(d2);
    free(dir);
}

Test(store, stage_states_and_decisions)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 0);
    ns_stage_row r;
    int found;
    cr_assert_eq(ns_store_stage_get(s, "bayes", &r, &found, &err), NS_OK);
    cr_assert_eq(found, 0);
    cr_assert_eq(ns_store_stage_set(s, "bayes", 3, NS_STAGE_PENDING, NULL, &err), NS_OK);
    cr_assert_eq(ns_store_stage_get(s, "bayes", &r, &found, &err), NS_OK);
    cr_assert(found && r.state == NS_STAGE_PENDING && isnan(r.started) && isnan(r.finished));
    ns_stage_row_free(&r);
    cr_assert_eq(ns_store_stage_set(s, "bayes", 3, NS_STAGE_RUNNING, "{\"partial\": 1}", &err),
                 NS_OK);
    cr_assert_eq(ns_store_stage_get(s, "bayes", &r, &found, &err), NS_OK);
    double started = r.started;
    cr_assert(r.state == NS_STAGE_RUNNING && !isnan(started) && isnan(r.finished));
    ns_stage_row_free(&r);
    cr_assert_eq(ns_store_stage_set(s, "bayes", 3, NS_STAGE_COMPLETE, NULL, &err), NS_OK);
    cr_assert_eq(ns_store_stage_get(s, "bayes", &r, &found, &err), NS_OK);
    cr_assert_eq(r.state, NS_STAGE_COMPLETE);
    cr_assert_str_eq(r.decision, "{\"partial\": 1}"); /* NULL keeps the decision */
    cr_assert_eq(r.started, started);                 /* kept from the first start */
    cr_assert(r.finished >= started);
    cr_assert_eq(r.position, 3);
    ns_stage_row_free(&r);
    cr_assert_eq(ns_store_stage_set(s, "bayes", 3, NS_STAGE_COMPLETE, "{\"best\": 2}", &err),
                 NS_OK);
    cr_assert_eq(ns_store_stage_get(s, "bayes", &r, &found, &err), NS_OK);
    cr_assert_str_eq(r.decision, "{\"best\": 2}");
    ns_stage_row_free(&r);
    cr_assert_str_eq(ns_stage_state_name(NS_STAGE_COMPLETE), "complete");
    cr_assert_str_eq(ns_trial_state_name(NS_TRIAL_INTERRUPTED), "interrupted");
    ns_store_close(s);
    free(dir);
}

Test(store, trial_lifecycle_and_epochs)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 0);
    int next;
    cr_assert_eq(ns_store_trial_next(s, &next, &err), NS_OK);
    cr_assert_eq(next, 0);
    cr_assert_eq(ns_store_trial_insert(s, 0, "random", "{\"lr\": 0.01}", UINT64_MAX, &err),
                 NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_trial_insert(s, 0, "random", "{}", 1, &err), NS_ERUNTIME);
    cr_assert(strstr(err.msg, "trial 0 is already recorded"), "%s", err.msg);
    cr_assert_eq(ns_store_trial_insert(s, 1, "nope", "{}", 1, &err), NS_ERUNTIME);
    cr_assert(strstr(err.msg, "stage 'nope' is not recorded"), "%s", err.msg);
    cr_assert_eq(ns_store_trial_next(s, &next, &err), NS_OK);
    cr_assert_eq(next, 1);

    ns_trial_result res = {.seconds = 2, .epochs = 2, .val_metric = 0.3};
    cr_assert_eq(ns_store_trial_finish(s, 0, NS_TRIAL_COMPLETE, &res, &err), NS_ERUNTIME);
    cr_assert(strstr(err.msg, "trial 0 is queued; only a running trial can become complete"),
              "%s", err.msg);
    cr_assert_eq(ns_store_trial_start(s, 0, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_trial_start(s, 0, &err), NS_ERUNTIME);
    cr_assert(strstr(err.msg, "trial 0 is running"), "%s", err.msg);
    cr_assert_eq(ns_store_trial_start(s, 9, &err), NS_ERUNTIME);
    cr_assert(strstr(err.msg, "trial 9 does not exist"), "%s", err.msg);
    cr_assert_eq(ns_store_trial_finish(s, 0, NS_TRIAL_RUNNING, &res, &err), NS_ERUNTIME);

    ns_epoch_record r1 = epoch_rec(1), r2 = epoch_rec(2);
    cr_assert_eq(ns_store_epoch_add(s, 0, &r1, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_epoch_add(s, 0, &r2, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_epoch_add(s, 7, &r1, &err), NS_ERUNTIME);
    cr_assert(strstr(err.msg, "the trial does not exist"), "%s", err.msg);
    /* Interrupted after epoch 2 with the checkpoint at epoch 1: resume drops epoch 2 and
     * records it again. */
    cr_assert_eq(ns_store_trial_finish(s, 0, NS_TRIAL_INTERRUPTED, NULL, &err), NS_OK, "%s",
                 err.msg);
    ns_trial_row t;
    int found;
    cr_assert_eq(ns_store_trial_get(s, 0, &t, &found, &err), NS_OK);
    cr_assert(found && t.state == NS_TRIAL_INTERRUPTED && !isnan(t.finished));
    double started = t.started;
    ns_trial_row_free(&t);
    cr_assert_eq(ns_store_epochs_truncate(s, 0, 1, &err), NS_OK, "%s", err.msg);
    ns_epoch_record *e;
    int n;
    cr_assert_eq(ns_store_epochs(s, 0, &e, &n, &err), NS_OK);
    cr_assert_eq(n, 1);
    free(e);
    cr_assert_eq(ns_store_trial_start(s, 0, &err), NS_OK, "%s", err.msg);
    r2.train_loss = 0.75;
    cr_assert_eq(ns_store_epoch_add(s, 0, &r2, &err), NS_OK);
    r2.train_loss = 0.5; /* recording an epoch twice replaces it */
    cr_assert_eq(ns_store_epoch_add(s, 0, &r2, &err), NS_OK);
    cr_assert_eq(ns_store_epochs(s, 0, &e, &n, &err), NS_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(e[0].epoch, 1);
    cr_assert_eq(e[1].epoch, 2);
    cr_assert_eq(e[1].train_loss, 0.5);
    free(e);
    cr_assert_eq(ns_store_epochs(s, 5, &e, &n, &err), NS_OK);
    cr_assert(n == 0 && e == NULL);

    res.error = NULL;
    res.result = "{\"val_acc\": 0.7}";
    cr_assert_eq(ns_store_trial_finish(s, 0, NS_TRIAL_COMPLETE, &res, &err), NS_OK, "%s",
                 err.msg);
    cr_assert_eq(ns_store_trial_start(s, 0, &err), NS_ERUNTIME); /* never re-run */
    cr_assert(strstr(err.msg, "trial 0 is complete"), "%s", err.msg);
    cr_assert_eq(ns_store_trial_get(s, 0, &t, &found, &err), NS_OK);
    cr_assert_eq(t.state, NS_TRIAL_COMPLETE);
    cr_assert_eq(t.started, started); /* from the first start */
    cr_assert_eq(t.seed, UINT64_MAX); /* all 64 bits */
    cr_assert_eq(t.epochs, 2);
    cr_assert_str_eq(t.result, "{\"val_acc\": 0.7}");
    ns_trial_row_free(&t);
    cr_assert_eq(ns_store_trial_get(s, 3, &t, &found, &err), NS_OK);
    cr_assert_eq(found, 0);

    /* A failed trial keeps its error line. */
    cr_assert_eq(ns_store_trial_insert(s, 1, "random", "{}", 5, &err), NS_OK);
    cr_assert_eq(ns_store_trial_start(s, 1, &err), NS_OK);
    ns_trial_result fail = {.seconds = NAN, .val_metric = NAN, .error = "out of memory"};
    cr_assert_eq(ns_store_trial_finish(s, 1, NS_TRIAL_FAILED, &fail, &err), NS_OK);
    cr_assert_eq(ns_store_trial_get(s, 1, &t, &found, &err), NS_OK);
    cr_assert_eq(t.state, NS_TRIAL_FAILED);
    cr_assert_str_eq(t.error, "out of memory");
    ns_trial_row_free(&t);

    /* Explicit transactions: all or nothing. */
    cr_assert_eq(ns_store_begin(s, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_begin(s, &err), NS_ERUNTIME);
    cr_assert_eq(ns_store_trial_insert(s, 2, "random", "{}", 6, &err), NS_OK);
    ns_store_rollback(s);
    cr_assert_eq(ns_store_trial_get(s, 2, &t, &found, &err), NS_OK);
    cr_assert_eq(found, 0);
    cr_assert_eq(ns_store_commit(s, &err), NS_ERUNTIME);
    cr_assert_eq(ns_store_begin(s, &err), NS_OK);
    cr_assert_eq(ns_store_trial_insert(s, 2, "random", "{}", 6, &err), NS_OK);
    cr_assert_eq(ns_store_trial_insert(s, 3, "random", "{}", 7, &err), NS_OK);
    cr_assert_eq(ns_store_commit(s, &err), NS_OK, "%s", err.msg);
    ns_store_rollback(s); /* nothing open: no-op */
    ns_trial_row *all;
    cr_assert_eq(ns_store_trials(s, &all, &n, &err), NS_OK);
    cr_assert_eq(n, 4);
    for (int i = 0; i < n; i++)
        cr_assert_eq(all[i].number, i);
    ns_trial_rows_free(all, n);
    cr_assert_eq(ns_store_integrity_check(s, &err), NS_OK, "%s", err.msg);
    ns_store_close(s);
    free(dir);
}

Test(store, best_trial_both_directions)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 7);
    ns_trial_row b;
    int found;
    cr_assert_eq(ns_store_best(s, 0, 0, &b, &found, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(found, 0);
    finish(s, 0, NS_TRIAL_COMPLETE, 0.5);
    finish(s, 1, NS_TRIAL_COMPLETE, 0.2);
    finish(s, 2, NS_TRIAL_COMPLETE, NAN);      /* never best */
    finish(s, 3, NS_TRIAL_COMPLETE, 0.9);
    finish(s, 4, NS_TRIAL_PRUNED, 0.01);       /* not complete */
    finish(s, 5, NS_TRIAL_DIVERGED, 5.0);      /* not complete */
    finish(s, 6, NS_TRIAL_COMPLETE, INFINITY); /* stored as NULL: never best */
    cr_assert_eq(ns_store_best(s, 0, 0, &b, &found, &err), NS_OK, "%s", err.msg);
    cr_assert(found);
    cr_assert_eq(b.number, 1);
    cr_assert_eq(b.val_metric, 0.2);
    cr_assert_str_eq(b.params, "{\"lr\": 1}");
    ns_trial_row_free(&b);
    cr_assert_eq(ns_store_best(s, 1, 0, &b, &found, &err), NS_OK, "%s", err.msg);
    cr_assert(found);
    cr_assert_eq(b.number, 3);
    ns_trial_row_free(&b);
    /* A tie goes to the lower number. */
    cr_assert_eq(ns_store_trial_insert(s, 7, "random", "{}", 1, &err), NS_OK);
    finish(s, 7, NS_TRIAL_COMPLETE, 0.2);
    cr_assert_eq(ns_store_best(s, 0, 0, &b, &found, &err), NS_OK);
    cr_assert_eq(b.number, 1);
    ns_trial_row_free(&b);
    ns_store_close(s);
    free(dir);
}

Test(store, unhealthy_trials_win_only_when_nothing_else_is_left)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 4);
    const int64_t reject = 1 | 8; /* two codes' bits; others only warn */
    struct { double m; int64_t flags; const char *health; } t[4] = {
        {0.95, 8, "[{\"code\":\"overfitting\"}]"}, /* best metric, disqualified */
        {0.90, 32, "[{\"code\":\"not_converged\"}]"}, /* a warning only */
        {0.93, 0, NULL},                               /* not judged: not disqualified */
        {0.97, 1, "[{\"code\":\"diverged\"}]"},
    };
    for (int i = 0; i < 3; i++) {
        ns_trial_result r = {.seconds = 1, .epochs = 3, .val_metric = t[i].m,
                             .health = t[i].health, .health_flags = t[i].flags};
        cr_assert_eq(ns_store_trial_start(s, i, &err), NS_OK, "%s", err.msg);
        cr_assert_eq(ns_store_trial_finish(s, i, NS_TRIAL_COMPLETE, &r, &err), NS_OK, "%s", err.msg);
    }
    ns_trial_row b;
    int found;
    cr_assert_eq(ns_store_best(s, 1, reject, &b, &found, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(b.number, 2);
    cr_assert_eq(b.health_flags, -1, "no health text stores no flags");
    ns_trial_row_free(&b);
    cr_assert_eq(ns_store_best(s, 1, 0, &b, &found, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(b.number, 0, "without a reject set the metric alone decides");
    cr_assert_eq(b.health_flags, 8);
    ns_trial_row_free(&b);
    /* when every candidate is disqualified, the best of them is still reported */
    cr_assert_eq(ns_store_best(s, 1, 8 | 32, &b, &found, &err), NS_OK);
    cr_assert_eq(b.number, 2, "the unjudged trial is a candidate");
    ns_trial_row_free(&b);
    ns_store_close(s);
    free(dir);

    dir = study_dir();
    s = fresh_study(dir, 2);
    for (int i = 0; i < 2; i++) {
        ns_trial_result r = {.seconds = 1, .epochs = 3, .val_metric = t[i].m,
                             .health = t[i].health, .health_flags = t[i].flags};
        cr_assert_eq(ns_store_trial_start(s, i, &err), NS_OK, "%s", err.msg);
        cr_assert_eq(ns_store_trial_finish(s, i, NS_TRIAL_COMPLETE, &r, &err), NS_OK, "%s", err.msg);
    }
    cr_assert_eq(ns_store_best(s, 1, 8 | 32, &b, &found, &err), NS_OK);
    cr_assert(found);
    cr_assert_eq(b.number, 0);
    ns_trial_row_free(&b);
    ns_store_close(s);
    free(dir);
}

Test(store, data_checks_and_epoch_divergence_round_trip)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 1);
    cr_assert_eq(ns_store_study_set_data_checks(s, "{\"findings\":[]}", &err), NS_OK, "%s", err.msg);
    ns_study_row st;
    cr_assert_eq(ns_store_study_get(s, &st, &err), NS_OK);
    cr_assert_str_eq(st.data_checks, "{\"findings\":[]}");
    ns_study_row_free(&st);
    ns_epoch_record rec = {.epoch = 1, .step = 10, .train_loss = 2.0, .val_loss = NAN,
                           .val_acc = NAN, .val_rmse = NAN, .diverged = NS_DIV_BLOWUP,
                           .stopped_early = 1};
    cr_assert_eq(ns_store_epoch_add(s, 0, &rec, &err), NS_OK, "%s", err.msg);
    ns_epoch_record *v;
    int n;
    cr_assert_eq(ns_store_epochs(s, 0, &v, &n, &err), NS_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(v[0].diverged, NS_DIV_BLOWUP);
    cr_assert_eq(v[0].stopped_early, 1);
    free(v);
    ns_store_close(s);
    free(dir);
}

/* A study written by the version-1 schema: readers are told how to upgrade it, the writer
 * upgrades it in place and keeps every row. */
Test(store, version_1_study_is_upgraded_by_the_writer)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 1);
    finish(s, 0, NS_TRIAL_COMPLETE, 0.5);
    ns_store_close(s);
    char *db = db_path(dir);
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, "ALTER TABLE study DROP COLUMN data_checks;"
                                 "ALTER TABLE trial DROP COLUMN health_flags;"
                                 "ALTER TABLE epoch DROP COLUMN diverged;"
                                 "ALTER TABLE epoch DROP COLUMN stopped_early;"
                                 "ALTER TABLE epoch DROP COLUMN val_bacc;"
                                 "ALTER TABLE epoch DROP COLUMN val_macro_f1;"
                                 "DROP TABLE trial_pred;"
                                 "PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK,
                 "%s", sqlite3_errmsg(h));
    sqlite3_close(h);
    cr_assert_eq(ns_store_open_readonly(&s, dir, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "nnsearch resume") != NULL, "%s", err.msg);
    s = open_ok(dir, 0);
    ns_trial_row r;
    int found;
    cr_assert_eq(ns_store_trial_get(s, 0, &r, &found, &err), NS_OK, "%s", err.msg);
    cr_assert(found);
    cr_assert_eq(r.val_metric, 0.5);
    cr_assert_eq(r.health_flags, -1, "a v1 row has no flags: not judged");
    ns_trial_row_free(&r);
    cr_assert_eq(ns_store_integrity_check(s, &err), NS_OK, "%s", err.msg);
    ns_store_close(s);
    cr_assert_eq(ns_store_open_readonly(&s, dir, &err), NS_OK, "%s", err.msg);
    ns_store_close(s);
    free(db);
    free(dir);
}

/* A version-2 study (before per-class epoch scores) reads as it is, its epochs without
 * them; the writer upgrades it and then keeps them. */
Test(store, version_2_study_reads_as_is_and_is_upgraded_by_the_writer)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 1);
    ns_epoch_record rec = epoch_rec(1);
    cr_assert_eq(ns_store_trial_start(s, 0, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_epoch_add(s, 0, &rec, &err), NS_OK, "%s", err.msg);
    ns_store_close(s);
    raw_exec(dir, "ALTER TABLE epoch DROP COLUMN val_bacc; ALTER TABLE epoch DROP COLUMN "
                  "val_macro_f1; DROP TABLE trial_pred; PRAGMA user_version = 2;");
    ns_epoch_record *e;
    int n;
    cr_assert_eq(ns_store_open_readonly(&s, dir, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_epochs(s, 0, &e, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(e[0].val_acc, rec.val_acc);
    cr_assert(isnan(e[0].val_bacc) && isnan(e[0].val_f1));
    free(e);
    ns_store_close(s);
    cr_assert_eq(raw_int(dir, "PRAGMA user_version"), 2, "reading changes nothing");
    s = open_ok(dir, 0);
    cr_assert_eq(raw_int(dir, "PRAGMA user_version"), NS_STORE_VERSION);
    rec = epoch_rec(2);
    rec.val_f1 = 0.625;
    cr_assert_eq(ns_store_epoch_add(s, 0, &rec, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_epochs(s, 0, &e, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert(isnan(e[0].val_bacc), "an epoch of version 2 keeps no score");
    cr_assert_eq(e[1].val_bacc, rec.val_bacc);
    cr_assert_eq(e[1].val_f1, 0.625);
    free(e);
    cr_assert_eq(ns_store_integrity_check(s, &err), NS_OK, "%s", err.msg);
    ns_store_close(s);
    free(dir);
}

Test(store, reset_running)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 4);
    cr_assert_eq(ns_store_trial_start(s, 0, &err), NS_OK);
    cr_assert_eq(ns_store_trial_start(s, 1, &err), NS_OK);
    finish(s, 2, NS_TRIAL_COMPLETE, 0.1);
    ns_store_close(s); /* as if killed: 0 and 1 are left running */
    s = open_ok(dir, 0);
    int n = -1;
    cr_assert_eq(ns_store_reset_running(s, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    ns_trial_row *t;
    cr_assert_eq(ns_store_trials(s, &t, &n, &err), NS_OK);
    cr_assert_eq(t[0].state, NS_TRIAL_INTERRUPTED);
    cr_assert_eq(t[1].state, NS_TRIAL_INTERRUPTED);
    cr_assert_eq(t[2].state, NS_TRIAL_COMPLETE);
    cr_assert_eq(t[3].state, NS_TRIAL_QUEUED);
    ns_trial_rows_free(t, n);
    cr_assert_eq(ns_store_reset_running(s, &n, &err), NS_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(ns_store_trial_start(s, 0, &err), NS_OK, "%s", err.msg); /* resumable */
    ns_store_close(s);
    free(dir);
}

Test(store, nonfinite_values_are_null)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 1);
    ns_epoch_record r = epoch_rec(1);
    r.train_loss = INFINITY;
    r.val_loss = -INFINITY;
    r.val_acc = NAN;
    r.grad_norm = NAN;
    r.group_grad_norm[1] = INFINITY;
    cr_assert_eq(ns_store_epoch_add(s, 0, &r, &err), NS_OK, "%s", err.msg);
    ns_trial_result res = {.seconds = INFINITY, .epochs = 1, .val_metric = -INFINITY};
    cr_assert_eq(ns_store_trial_start(s, 0, &err), NS_OK);
    cr_assert_eq(ns_store_trial_finish(s, 0, NS_TRIAL_DIVERGED, &res, &err), NS_OK);
    cr_assert_eq(raw_int(dir, "SELECT count(*) FROM epoch WHERE train_loss IS NULL AND "
                              "val_loss IS NULL AND val_acc IS NULL AND grad_norm IS NULL"), 1);
    cr_assert_eq(raw_int(dir, "SELECT count(*) FROM epoch WHERE layer_grad_norm LIKE "
                              "'[%,null,%]'"), 1);
    cr_assert_eq(raw_int(dir, "SELECT count(*) FROM trial WHERE val_metric IS NULL AND "
                              "seconds IS NULL"), 1);
    ns_epoch_record *e;
    int n;
    cr_assert_eq(ns_store_epochs(s, 0, &e, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert(isnan(e[0].train_loss) && isnan(e[0].val_loss) && isnan(e[0].val_acc));
    cr_assert(isnan(e[0].grad_norm) && isnan(e[0].group_grad_norm[1]));
    cr_assert_eq(e[0].group_grad_norm[0], r.group_grad_norm[0]);
    cr_assert_eq(e[0].n_groups, 3);
    free(e);
    ns_trial_row t;
    int found;
    cr_assert_eq(ns_store_trial_get(s, 0, &t, &found, &err), NS_OK);
    cr_assert(isnan(t.val_metric) && isnan(t.seconds));
    ns_trial_row_free(&t);
    ns_store_close(s);
    free(dir);
}

/* ---- SIGKILL in the middle of writes ------------------------------------------------ */

#define EPOCHS_PER_TRIAL 3

/* The writer: finishes what a killed predecessor left (as a resume does), then loops
 * forever: {insert trial i + its epochs} in one transaction, start i, finish i. After each
 * call returns it reports 3 * i + phase on the pipe. Never returns. */
static void writer(const char *dir, int ack)
{
    ns_store *s;
    ns_err err;
    if (ns_store_open(&s, dir, 1, &err) != NS_OK)
        _exit(10);
    if (ns_store_reset_running(s, NULL, &err) != NS_OK)
        _exit(11);
    ns_trial_row *t;
    int n;
    if (ns_store_trials(s, &t, &n, &err) != NS_OK)
        _exit(12);
    for (int j = 0; j < n; j++) {
        ns_trial_result r = {.seconds = 1, .epochs = EPOCHS_PER_TRIAL, .val_metric = t[j].number};
        if (t[j].state == NS_TRIAL_COMPLETE)
            continue;
        if (ns_store_trial_start(s, t[j].number, &err) ||
            ns_store_trial_finish(s, t[j].number, NS_TRIAL_COMPLETE, &r, &err))
            _exit(13);
    }
    ns_trial_rows_free(t, n);
    int i;
    if (ns_store_trial_next(s, &i, &err) != NS_OK)
        _exit(14);
    for (;; i++) {
        if (ns_store_begin(s, &err) || ns_store_trial_insert(s, i, "random", "{}", (uint64_t)i, &err))
            _exit(15);
        for (int e = 1; e <= EPOCHS_PER_TRIAL; e++) {
            ns_epoch_record r = epoch_rec(e);
            if (ns_store_epoch_add(s, i, &r, &err))
                _exit(16);
        }
        if (ns_store_commit(s, &err))
            _exit(17);
        int a = 3 * i;
        if (write(ack, &a, sizeof a) != sizeof a)
            _exit(18);
        if (ns_store_trial_start(s, i, &err))
            _exit(19);
        a = 3 * i + 1;
        if (write(ack, &a, sizeof a) != sizeof a)
            _exit(18);
        ns_trial_result r = {.seconds = 1, .epochs = EPOCHS_PER_TRIAL, .val_metric = i};
        if (ns_store_trial_finish(s, i, NS_TRIAL_COMPLETE, &r, &err))
            _exit(20);
        a = 3 * i + 2;
        if (write(ack, &a, sizeof a) != sizeof a)
            _exit(18);
    }
}

/* Checks the study after a kill: intact, trials 0..k-1 without gaps, every trial but the
 * last complete, every trial with all its epochs (its insert was atomic), and everything
 * the writer reported before the kill present. */
static void check_prefix(const char *dir, int last_ack, int *n_trials)
{
    ns_err err = {0};
    ns_store *s = NULL;
    /* `status` reads a killed writer's study (its WAL not yet checkpointed) as it is. */
    cr_assert_eq(ns_store_open_readonly(&s, dir, &err), NS_OK, "%s", err.msg);
    ns_trial_row *t;
    int n;
    cr_assert_eq(ns_store_trials(s, &t, &n, &err), NS_OK, "%s", err.msg);
    cr_assert(n >= last_ack / 3 + 1);
    ns_trial_rows_free(t, n);
    ns_store_close(s);
    s = open_ok(dir, 0); /* the killed writer's lock died with it */
    cr_assert_eq(ns_store_integrity_check(s, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_trials(s, &t, &n, &err), NS_OK, "%s", err.msg);
    int acked_trial = last_ack / 3, acked_phase = last_ack % 3;
    cr_assert(n >= acked_trial + 1, "%d trials, but trial %d was reported", n, acked_trial);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(t[i].number, i);
        if (i < n - 1)
            cr_assert_eq(t[i].state, NS_TRIAL_COMPLETE, "trial %d of %d is %s", i, n,
                         ns_trial_state_name(t[i].state));
        if (i == acked_trial && acked_phase == 1)
            cr_assert(t[i].state == NS_TRIAL_RUNNING || t[i].state == NS_TRIAL_COMPLETE);
        if (i == acked_trial && acked_phase == 2)
            cr_assert_eq(t[i].state, NS_TRIAL_COMPLETE);
        if (t[i].state == NS_TRIAL_COMPLETE)
            cr_assert_eq(t[i].val_metric, (double)i);
        ns_epoch_record *e;
        int ne;
        cr_assert_eq(ns_store_epochs(s, i, &e, &ne, &err), NS_OK, "%s", err.msg);
        cr_assert_eq(ne, EPOCHS_PER_TRIAL, "trial %d has %d epochs", i, ne);
        free(e);
    }
    ns_trial_rows_free(t, n);
    ns_store_close(s);
    *n_trials = n;
}

Test(store, sigkill_leaves_consistent_prefix, .timeout = 30)
{
    char *dir = study_dir();
    ns_store *s = fresh_study(dir, 0);
    ns_store_close(s);
    /* Kill after a different number of reported writes each round, at a random moment
     * after the report (the writer is then mid-write), and resume each time. */
    const int rounds[] = {7, 20, 2, 31, 13, 5, 44, 1};
    srand((unsigned)time(NULL));
    int total = 0;
    for (size_t k = 0; k < sizeof rounds / sizeof *rounds; k++) {
        int fd[2];
        cr_assert_eq(pipe(fd), 0);
        pid_t c = fork();
        cr_assert(c >= 0);
        if (c == 0) {
            close(fd[0]);
            writer(dir, fd[1]);
        }
        close(fd[1]);
        int a = -1, got = 0, last = -1;
        while (got < rounds[k] && read(fd[0], &a, sizeof a) == sizeof a) {
            last = a;
            got++;
        }
        cr_assert_eq(got, rounds[k], "the writer stopped early");
        usleep((useconds_t)(rand() % 3000));
        kill(c, SIGKILL);
        int status;
        cr_assert_eq(waitpid(c, &status, 0), c);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "writer exited with %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        while (read(fd[0], &a, sizeof a) == sizeof a) /* reports sent before the kill */
            last = a;
        close(fd[0]);
        int n;
        check_prefix(dir, last, &n);
        cr_assert(n >= total, "trials went from %d to %d", total, n);
        total = n;
    }
    free(dir);
}

/* Predictions round trip (one byte a row, two above class 255), a trial run again replaces
 * them, a trial without any reads as none; a version-3 study (before them) reads as it is
 * with none, and the writer upgrades it. */
Test(store, trial_predictions_round_trip_and_version_3)
{
    char *dir = study_dir();
    ns_err err = {0};
    ns_store *s = fresh_study(dir, 3);
    const int32_t small[5] = {0, 3, 255, 1, 0}, wide[3] = {256, 0, 65535};
    int32_t *p;
    long n;
    cr_assert_eq(ns_store_trial_pred_set(s, 0, small, 5, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_trial_pred_set(s, 1, wide, 3, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_trial_pred_get(s, 0, &p, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 5);
    cr_assert_arr_eq(p, small, sizeof small);
    free(p);
    cr_assert_eq(ns_store_trial_pred_get(s, 1, &p, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_arr_eq(p, wide, sizeof wide);
    free(p);
    cr_assert_eq(ns_store_trial_pred_set(s, 0, wide, 3, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_trial_pred_get(s, 0, &p, &n, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(n, 3, "run again: replaced");
    free(p);
    cr_assert_eq(ns_store_trial_pred_get(s, 2, &p, &n, &err), NS_OK, "%s", err.msg);
    cr_assert(p == NULL && n == 0);
    const int32_t bad[1] = {-1};
    cr_assert_eq(ns_store_trial_pred_set(s, 2, bad, 1, &err), NS_ERUNTIME);
    cr_assert(strstr(err.msg, "out of range"), "%s", err.msg);
    cr_assert_eq(ns_store_trial_pred_set(s, 7, small, 5, &err), NS_ERUNTIME, "no trial 7: the key refers to trials");
    ns_store_close(s);

    raw_exec(dir, "DROP TABLE trial_pred; PRAGMA user_version = 3;");
    cr_assert_eq(ns_store_open_readonly(&s, dir, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_trial_pred_get(s, 1, &p, &n, &err), NS_OK, "%s", err.msg);
    cr_assert(p == NULL && n == 0, "a version-3 study has none");
    ns_store_close(s);
    cr_assert_eq(raw_int(dir, "PRAGMA user_version"), 3, "reading changes nothing");
    s = open_ok(dir, 0);
    cr_assert_eq(raw_int(dir, "PRAGMA user_version"), NS_STORE_VERSION);
    cr_assert_eq(ns_store_trial_pred_set(s, 1, small, 5, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_integrity_check(s, &err), NS_OK, "%s", err.msg);
    ns_store_close(s);
    free(dir);
}
