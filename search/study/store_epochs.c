/* store_epochs.c — the per-epoch records of the study store (store.h): one row per trial
 * and epoch, added as training goes, cut back when a trial resumes from a checkpoint, read
 * in epoch order (a version-2 study without the per-class scores). Statements: store_rows.c's
 * table. */
#include <ctype.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search/study/store.h"
#include "search/study/store_impl.h"

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
    int rc = ns_store_prep(s, ST_EPOCH_ADD, &st, err);
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
        rc = ns_store_fail(s, src, "recording an epoch", err);
    done(st);
    return rc;
}

int ns_store_epochs_truncate(ns_store *s, int trial, int epoch, ns_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = ns_store_prep(s, ST_EPOCH_TRUNC, &st, err);
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
    int rc = ns_store_prep(s, s->version == 2 ? ST_EPOCHS_V2 : ST_EPOCHS, &st, err);
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
        rc = ns_store_fail(s, src, "reading epoch records", err);
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
