/* prepare.c — a fixed config's data made ready for its runs (pipeline.h): the training
 * file loaded and split into training and validation parts, standardised on the training
 * part, the test file against the same vocabulary and columns (by name), a study's stratified
 * folds and the fingerprint of the rows. Nothing here trains: pipeline.c runs the training. */
#include "search/stages/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"

void ns_prepared_free(ns_prepared *p)
{
    ns_dataset_free(&p->train);
    ns_dataset_free(&p->val);
    ns_dataset_free(&p->test);
    ns_standardizer_free(&p->stdz);
    free(p->class_counts);
    memset(p, 0, sizeof *p);
}

/* A training file whose labels are all one class: every model scores 1.0 on it by
 * predicting that class, so a run or a search would report a perfect, meaningless result.
 * Only the training file is checked: a test file may well hold one class. */
static int one_class_check(const ns_dataset *ds, const ns_config *c, const char *path,
                           const char *labels, ns_err *err)
{
    for (long i = 1; i < ds->n; i++)
        if (ds->y[i] != ds->y[0])
            return NS_OK;
    char cls[64];
    if (ds->class_names)
        snprintf(cls, sizeof cls, "'%.40s'", ds->class_names[ds->y[0]]);
    else
        snprintf(cls, sizeof cls, "%d", (int)ds->y[0]);
    char where[300];
    if (labels)
        snprintf(where, sizeof where, "%s: all %ld labels", labels, ds->n);
    else
        snprintf(where, sizeof where, "%s: the label column '%.60s' of all %ld rows", path,
                 c->data.label, ds->n);
    return ns_err_set(err, NS_EINPUT, "%s is class %s; a classifier needs at least 2 classes: "
                      "check that data.label names the class column, add rows of the other "
                      "classes, or set data.task: regression for a numeric target", where, cls);
}

/* Purposes of the streams derived from data.split_seed for the row limits. */
#define SEED_ROWS 0x726f7773ULL      /* "rows": data.max_rows' sample of the training file */
#define SEED_TEST_ROWS 0x74726f7773ULL /* "trows": data.test_max_rows' sample of the test file */

/* Keeps a stratified sample of max rows of *ds (0: all), drawn from the split seed: the
 * same rows for every load of the file, so every trial, fold and refit sees the same data. */
static int limit_rows(ns_dataset *ds, long max, uint64_t seed, ns_err *err)
{
    if (max <= 0 || ds->n <= max)
        return NS_OK;
    int32_t *idx = malloc((size_t)max * sizeof *idx);
    if (!idx)
        return ns_err_set(err, NS_ERUNTIME, "out of memory for %ld row numbers", max);
    long k = 0;
    ns_dataset sub = {0};
    int rc = ns_sample_stratified(ds, max, seed, idx, &k, err);
    if (!rc)
        rc = ns_dataset_subset(&sub, ds, idx, k, err);
    free(idx);
    if (rc)
        return rc;
    sub.n_classes = ds->n_classes; /* a class left without rows keeps its output */
    ns_dataset_free(ds);
    *ds = sub;
    return NS_OK;
}

/* Loads the training file (test 0) or the test file (test 1, with the training vocabulary
 * vocab), cut to data.max_rows / data.test_max_rows. */
static int load_one(ns_dataset *ds, const ns_config *c, int test, const ns_dataset *vocab, ns_err *err)
{
    const char *path = test ? c->data.test : c->data.train;
    const char *labels = test ? c->data.test_labels : c->data.train_labels;
    ns_csv_opts o = {.label = c->data.label, .task = c->data.task};
    if (vocab) {
        o.class_names = vocab->class_names;
        o.n_classes = vocab->n_classes;
    }
    int rc = ns_dataset_load(ds, path, labels, &o, err);
    if (rc)
        return rc;
    if (ds->task != c->data.task)
        return ns_err_set(err, NS_EINPUT, "%s: data.task is %s but the file holds %s data", path,
                          c->data.task == NS_TASK_CLASSIFY ? "classification" : "regression",
                          ds->task == NS_TASK_CLASSIFY ? "classification" : "regression");
    rc = test ? limit_rows(ds, c->data.test_max_rows, ns_seed_derive(c->data.split_seed, 0, SEED_TEST_ROWS), err)
              : limit_rows(ds, c->data.max_rows, ns_seed_derive(c->data.split_seed, 0, SEED_ROWS), err);
    if (rc)
        return rc;
    if (!test && ds->task == NS_TASK_CLASSIFY && ds->y)
        return one_class_check(ds, c, path, labels, err);
    return NS_OK;
}

/* Fills p's train and val parts from rows itr / iva of full, standardised with the training
 * part's statistics (p->test, when loaded, too), and the class counts. On error p keeps
 * what was built; the caller frees it. */
static int prepare_parts(ns_prepared *p, const ns_config *c, const ns_dataset *full, const int32_t *itr,
                         long ntr, const int32_t *iva, long nva, ns_err *err)
{
    int rc = ns_dataset_subset(&p->train, full, itr, ntr, err);
    if (!rc && nva > 0)
        rc = ns_dataset_subset(&p->val, full, iva, nva, err);
    if (rc)
        return rc;
    /* Classes come from the whole training file, so a class missing from the training
     * part still has an output. */
    p->train.n_classes = p->val.n_classes = full->n_classes;
    if (p->test.n)
        p->test.n_classes = full->n_classes;
    rc = ns_standardizer_fit(&p->stdz, &p->train, err);
    if (rc)
        return rc;
    if (!c->data.standardize) { /* keep the statistics' shape, make them the identity */
        for (int j = 0; j < p->stdz.d; j++) {
            p->stdz.mean[j] = 0.0f;
            p->stdz.scale[j] = 1.0f;
        }
        p->stdz.t_mean = 0.0f;
        p->stdz.t_std = 1.0f;
    }
    ns_dataset *parts[3] = {&p->train, &p->val, &p->test};
    for (int i = 0; i < 3; i++) {
        if (!parts[i]->n)
            continue;
        ns_standardizer_apply(&p->stdz, parts[i]->x, parts[i]->n);
        if (parts[i]->t)
            ns_standardizer_apply_targets(&p->stdz, parts[i]->t, parts[i]->n);
    }
    p->task = full->task;
    p->n_classes = full->n_classes;
    p->class_names = p->train.class_names;

    if (p->task == NS_TASK_CLASSIFY) {
        p->class_counts = calloc((size_t)p->n_classes, sizeof *p->class_counts);
        if (!p->class_counts)
            return ns_err_set(err, NS_ERUNTIME, "out of memory for class counts");
        ns_dataset_class_counts(&p->train, p->class_counts);
    }
    return NS_OK;
}

int ns_prepare_data(ns_prepared *p, const ns_config *c, ns_err *err)
{
    memset(p, 0, sizeof *p);
    ns_dataset full = {0};
    int32_t *itr = NULL, *iva = NULL;
    int rc = load_one(&full, c, 0, NULL, err);
    if (rc)
        goto fail;
    if (full.n < 2) {
        rc = ns_err_set(err, NS_EINPUT, "%s: only %ld rows; training needs at least 2",
                        c->data.train, full.n);
        goto fail;
    }
    if (c->data.test) {
        rc = load_one(&p->test, c, 1, &full, err);
        if (rc)
            goto fail;
        /* by name: a test file with its columns in another order is the same data */
        if ((rc = ns_dataset_match_columns(&p->test, full.feature_names, full.d, 0, c->data.test,
                                           "the training file has it", err)))
            goto fail;
        if (full.task == NS_TASK_CLASSIFY && p->test.n_classes > full.n_classes) {
            rc = ns_err_set(err, NS_EINPUT, "%s: labels go up to %d but the training file has only "
                            "%d classes", c->data.test, p->test.n_classes - 1, full.n_classes);
            goto fail;
        }
    }
    itr = malloc((size_t)full.n * sizeof *itr);
    iva = malloc((size_t)full.n * sizeof *iva);
    if (!itr || !iva) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory splitting the data");
        goto fail;
    }
    long ntr = 0, nva = 0;
    rc = ns_split_stratified(&full, c->data.val_fraction, c->data.split_seed, itr, &ntr, iva, &nva, err);
    if (rc)
        goto fail;
    if (ntr < 1) {
        rc = ns_err_set(err, NS_EINPUT, "data.val_fraction %g leaves no training rows; lower it",
                        c->data.val_fraction);
        goto fail;
    }
    if ((rc = prepare_parts(p, c, &full, itr, ntr, iva, nva, err)))
        goto fail;
    free(itr);
    free(iva);
    ns_dataset_free(&full);
    return NS_OK;
fail:
    free(itr);
    free(iva);
    ns_dataset_free(&full);
    ns_prepared_free(p);
    return rc;
}

/* Contract in pipeline.h. */
uint64_t ns_prepared_fingerprint(const ns_prepared *p)
{
    const ns_dataset *part[3] = {&p->train, &p->val, &p->test};
    uint64_t h = 0x6e6e736561726368ULL;
    for (int k = 0; k < 3; k++) {
        const ns_dataset *ds = part[k];
        size_t nx = (size_t)ds->n * (size_t)ds->d;
        h = ns_hash64(h ^ (uint64_t)ds->n) ^ (uint64_t)ds->d;
        for (size_t i = 0; ds->x && i < nx; i++) {
            uint32_t b;
            memcpy(&b, &ds->x[i], 4);
            h = ns_hash64(h ^ b);
        }
        for (long i = 0; i < ds->n; i++) {
            uint32_t b = 0;
            if (ds->y)
                b = (uint32_t)ds->y[i];
            else if (ds->t)
                memcpy(&b, &ds->t[i], 4);
            h = ns_hash64(h ^ b ^ 0x9e3779b97f4a7c15ULL);
        }
    }
    return h;
}

int ns_load_test(ns_dataset *ds, const ns_config *c, const ns_prepared *ref, ns_err *err)
{
    memset(ds, 0, sizeof *ds);
    if (!c->data.test)
        return NS_OK;
    ns_dataset vocab = ref->train;
    vocab.n_classes = ref->n_classes;
    vocab.class_names = ref->class_names;
    int rc = load_one(ds, c, 1, &vocab, err);
    if (!rc)
        rc = ns_dataset_match_columns(ds, ref->train.feature_names, ref->train.d, 0, c->data.test,
                                      "the training file has it", err);
    if (!rc && ds->task == NS_TASK_CLASSIFY && ds->n_classes > ref->n_classes)
        rc = ns_err_set(err, NS_EINPUT, "%s: labels go up to %d but the training file has only "
                        "%d classes", c->data.test, ds->n_classes - 1, ref->n_classes);
    if (rc)
        ns_dataset_free(ds);
    else if (ds->task == NS_TASK_CLASSIFY)
        ds->n_classes = ref->n_classes;
    return rc;
}

void ns_folds_free(ns_folds *f)
{
    for (int i = 0; f->part && i < f->n; i++)
        ns_prepared_free(&f->part[i]);
    free(f->part);
    memset(f, 0, sizeof *f);
}

/* Purposes of the streams derived from the study seed for the folds. */
#define SEED_FOLDS 0x666f6c6473ULL /* "folds": repeat r's assignment of rows to folds */
#define SEED_ORDER 0x6f72646572ULL /* "order": fold i's training stream (row order, dropout) */

int ns_prepare_folds(ns_folds *f, const ns_config *c, int K, int R, uint64_t seed, ns_err *err)
{
    memset(f, 0, sizeof *f);
    ns_dataset full = {0};
    int32_t *fold = NULL, *itr = NULL, *iva = NULL;
    long *counts = NULL;
    int rc = load_one(&full, c, 0, NULL, err);
    if (rc)
        goto fail;
    if (full.n < 2L * K) {
        rc = ns_err_set(err, NS_EINPUT, "%s: %ld rows are too few for %d-fold cross-validation; use "
                        "search.resampling: {cv: %ld} or fewer folds", c->data.train, full.n, K,
                        full.n / 2 >= 2 ? full.n / 2 : 2);
        goto fail;
    }
    fold = malloc((size_t)full.n * sizeof *fold);
    itr = malloc((size_t)full.n * sizeof *itr);
    iva = malloc((size_t)full.n * sizeof *iva);
    f->part = calloc((size_t)K * R, sizeof *f->part);
    if (!fold || !itr || !iva || !f->part) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory for the cross-validation folds");
        goto fail;
    }
    f->k = K;
    f->repeats = R;
    f->rows = full.n;
    if (full.task == NS_TASK_CLASSIFY && full.n_classes > 0) {
        if (!(counts = calloc((size_t)full.n_classes, sizeof *counts))) {
            rc = ns_err_set(err, NS_ERUNTIME, "out of memory for class counts");
            goto fail;
        }
        ns_dataset_class_counts(&full, counts);
        for (int k = 0; k < full.n_classes && !f->advice[0]; k++)
            if (counts[k] > 0 && counts[k] < K) {
                char name[48];
                if (full.class_names)
                    snprintf(name, sizeof name, "'%.40s'", full.class_names[k]);
                else
                    snprintf(name, sizeof name, "%d", k);
                snprintf(f->advice, sizeof f->advice,
                         "class %s has %ld rows, fewer than the %d folds: %d folds validate without it; "
                         "collect more rows of it or use search.resampling: {cv: %ld}",
                         name, counts[k], K, K - (int)counts[k], counts[k] >= 2 ? counts[k] : 2);
            }
    }
    for (int r = 0; r < R; r++) {
        if ((rc = ns_folds_stratified(&full, K, ns_seed_derive(seed, (uint64_t)r, SEED_FOLDS), fold, err)))
            goto fail;
        for (int k = 0; k < K; k++) {
            long ntr = 0, nva = 0;
            for (long i = 0; i < full.n; i++) {
                if (fold[i] == k)
                    iva[nva++] = (int32_t)i;
                else
                    itr[ntr++] = (int32_t)i;
            }
            ns_prepared *p = &f->part[r * K + k];
            f->n = r * K + k + 1;
            if ((rc = prepare_parts(p, c, &full, itr, ntr, iva, nva, err)))
                goto fail;
            p->stream_seed = ns_seed_derive(seed, (uint64_t)(r * K + k), SEED_ORDER);
        }
    }
    free(counts);
    free(fold);
    free(itr);
    free(iva);
    ns_dataset_free(&full);
    return NS_OK;
fail:
    free(counts);
    free(fold);
    free(itr);
    free(iva);
    ns_dataset_free(&full);
    ns_folds_free(f);
    return rc;
}
