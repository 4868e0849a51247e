/* store_rows.c — the rows of the study store (store.h): the study, its stages, trials and
 * trial predictions, read and written through one cached prepared statement per operation
 * (the epochs: store_epochs.c). Every SQL statement the rows run is in the table below
 * (docs/study-format.md); the file itself (schema, lock, open, transactions) is store.c's. */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "search/study/store.h"
#include "search/study/store_impl.h"

#define TRIAL_COLS "number, stage, params, seed, state, started, finished, seconds, epochs, " \
                   "val_metric, result, health, checkpoint, error, health_flags"
#define STAGE_COLS "name, position, state, decision, started, finished"

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

/* ---- statements --------------------------------------------------------------------- */

int ns_store_prep(ns_store *s, int id, sqlite3_stmt **out, ns_err *err)
{
    if (!s->st[id]) {
        int rc = sqlite3_prepare_v3(s->db, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->st[id], NULL);
        if (rc != SQLITE_OK) {
            s->st[id] = NULL;
            return ns_store_fail(s, rc, "preparing a statement", err);
        }
    }
    *out = s->st[id];
    return NS_OK;
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
    int rc = ns_store_prep(s, ST_STUDY_GET, &st, err);
    if (rc != NS_OK)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *found = 1;
        rc = read_study(st, row) ? oom(s, err) : NS_OK;
    } else if (src != SQLITE_DONE) {
        rc = ns_store_fail(s, src, "reading the study", err);
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
        if ((rc = ns_store_prep(s, ST_STUDY_INSERT, &st, err)) != NS_OK)
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
    if ((rc = ns_store_prep(s, ST_STUDY_UPDATE, &st, err)) != NS_OK)
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
    int rc = ns_store_prep(s, ST_STAGE_SET, &st, err);
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
    int rc = ns_store_prep(s, ST_STAGE_GET, &st, err);
    if (rc != NS_OK)
        return rc;
    int src = bind_text(st, 1, name);
    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *found = 1;
        rc = read_stage(st, row) ? oom(s, err) : NS_OK;
    } else if (src != SQLITE_DONE) {
        rc = ns_store_fail(s, src, "reading a stage", err);
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
        rc = ns_store_fail(s, src, what, err);
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
    int rc = ns_store_prep(s, ST_STAGES, &st, err);
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
    int rc = ns_store_prep(s, ST_STUDY_CHECKS, &st, err);
    if (rc != NS_OK)
        return rc;
    return step_write(s, st, bind_text(st, 1, json), "recording the data checks", err);
}

int ns_store_trial_next(ns_store *s, int *number, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = ns_store_prep(s, ST_TRIAL_NEXT, &st, err);
    if (rc != NS_OK)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *number = sqlite3_column_int(st, 0);
    else
        rc = ns_store_fail(s, src, "numbering a trial", err);
    done(st);
    return rc;
}

int ns_store_trial_insert(ns_store *s, int number, const char *stage, const char *params,
                          uint64_t seed, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = ns_store_prep(s, ST_TRIAL_INSERT, &st, err);
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
            rc = ns_store_fail(s, src, "recording a trial", err);
    } else {
        rc = ns_store_fail(s, src, "recording a trial", err);
    }
    done(st);
    return rc;
}

int ns_store_trial_get(ns_store *s, int number, ns_trial_row *row, int *found, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    memset(row, 0, sizeof *row);
    *found = 0;
    int rc = ns_store_prep(s, ST_TRIAL_GET, &st, err);
    if (rc != NS_OK)
        return rc;
    int src = sqlite3_bind_int(st, 1, number);
    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *found = 1;
        rc = read_trial(st, row) ? oom(s, err) : NS_OK;
    } else if (src != SQLITE_DONE) {
        rc = ns_store_fail(s, src, "reading a trial", err);
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
    int rc = ns_store_prep(s, ST_TRIAL_START, &st, err);
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
    int rc = ns_store_prep(s, ST_TRIAL_CKPT, &st, err);
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
    int rc = ns_store_prep(s, ST_PRED_SET, &st, err);
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
    int rc = ns_store_prep(s, ST_PRED_GET, &st, err);
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
        rc = ns_store_fail(s, src, "reading a trial's predictions", err);
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
    int rc = ns_store_prep(s, ST_TRIAL_FINISH, &st, err);
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
    int rc = ns_store_prep(s, ST_TRIALS, &st, err);
    return rc != NS_OK ? rc : collect_trials(s, st, rows, n, err);
}

int ns_store_trials_from(ns_store *s, int first, ns_trial_row **rows, int *n, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    *rows = NULL;
    *n = 0;
    int rc = ns_store_prep(s, ST_TRIALS_FROM, &st, err);
    if (rc == NS_OK && (rc = sqlite3_bind_int64(st, 1, first)) != SQLITE_OK) {
        rc = ns_store_fail(s, rc, "reading trials", err);
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
    int rc = ns_store_prep(s, higher_is_better ? ST_BEST_HIGH : ST_BEST_LOW, &st, err);
    if (rc == NS_OK && (rc = sqlite3_bind_int64(st, 1, reject)) != SQLITE_OK) {
        rc = ns_store_fail(s, rc, "choosing the best trial", err);
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
    int rc = ns_store_prep(s, ST_RESET, &st, err);
    if (rc == NS_OK)
        rc = step_write(s, st, SQLITE_OK, "marking running trials interrupted", err);
    if (n_reset)
        *n_reset = rc == NS_OK ? sqlite3_changes(s->db) : 0;
    return rc;
}
