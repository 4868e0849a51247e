/* ensemble.c — a fold ensemble trained from a fixed config (model.ensemble: K): one member
 * per stratified fold of the training rows, each trained as a cross-validated trial trains
 * that fold, packed into one ensemble file, and the averaged prediction scored on the test
 * set. `nnsearch train` and select's final model both come here, so an exported ensemble
 * trains to the same file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/atomic.h"
#include "engine/train/metrics.h"
#include "model/infer.h"
#include "model/modelfile.h"
#include "search/stages/pipeline.h"

/* Adds member mf's prediction on test (raw rows; standardised with the member's own
 * statistics) into acc: class probabilities (n x K) or the output in target units (n). */
static int add_member(ns_infer *r, const ns_model_file *mf, const ns_dataset *test, double *acc,
                      ns_err *err)
{
    const int EB = r->eb, K = mf->spec.n_out;
    float *p = malloc((size_t)EB * K * sizeof *p);
    if (!p)
        return ns_err_set(err, NS_ERUNTIME, "out of memory scoring the ensemble");
    int rc = NS_OK;
    for (long i0 = 0; i0 < test->n && !rc; i0 += EB) {
        int B = (int)(test->n - i0 < EB ? test->n - i0 : EB);
        if ((rc = ns_infer_run(r, mf, test->x + (size_t)i0 * test->d, B, 1, NS_INFER_PROBS, p, err)))
            break;
        if (mf->task == NS_TASK_CLASSIFY)
            for (size_t i = 0; i < (size_t)B * K; i++)
                acc[(size_t)i0 * K + i] += p[i];
        else
            for (int i = 0; i < B; i++)
                acc[i0 + i] += (double)p[i] * mf->stdz.t_std + mf->stdz.t_mean;
    }
    free(p);
    return rc;
}

/* The averaged prediction's test figures from the summed member outputs acc. */
static int score_test(const ns_dataset *test, int K, int n, const double *acc, ns_run_result *res,
                      ns_err *err)
{
    if (test->task == NS_TASK_REGRESS) {
        double sq = 0;
        for (long i = 0; i < test->n; i++) {
            double e = acc[i] / n - test->t[i];
            sq += e * e;
        }
        res->test_rmse = sqrt(sq / (double)test->n);
        return NS_OK;
    }
    long *conf = calloc((size_t)K * K, sizeof *conf), hits = 0;
    if (!conf)
        return ns_err_set(err, NS_ERUNTIME, "out of memory scoring the ensemble");
    double loss = 0;
    for (long i = 0; i < test->n; i++) {
        const double *a = acc + (size_t)i * K;
        int arg = 0;
        for (int k = 1; k < K; k++)
            if (a[k] > a[arg])
                arg = k;
        int y = test->y[i];
        hits += arg == y;
        conf[(long)y * K + arg]++;
        loss -= log(fmax(a[y] / n, 1e-30));
    }
    res->test_acc = (double)hits / (double)test->n;
    res->test_loss = loss / (double)test->n;
    ns_class_metrics(conf, K, &res->test_bacc, &res->test_f1);
    free(conf);
    return NS_OK;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int ns_run_ensemble(const ns_config *c, ns_epoch_fn fn, ns_member_fn mfn, void *user,
                    const char *model_path, const ns_stop_flag *stop, ns_run_result *res,
                    ns_run_result *members, ns_err *err)
{
    memset(res, 0, sizeof *res);
    res->val_loss = res->val_acc = res->val_rmse = NAN;
    res->test_loss = res->test_acc = res->test_rmse = NAN;
    res->val_bacc = res->val_f1 = res->test_bacc = res->test_f1 = NAN;
    const int K = c->ensemble;
    if (K < 2 || K > NS_CV_MAX_FOLDS || !model_path)
        return ns_err_set(err, NS_EINPUT, "%s: model.ensemble %d is not an ensemble of 2 to %d "
                          "members", c->path ? c->path : "config", K, NS_CV_MAX_FOLDS);
    ns_folds fo;
    int rc = ns_prepare_folds(&fo, c, K, 1, c->ensemble_seed, err);
    if (rc)
        return rc;
    ns_dataset test = {0};
    ns_infer inf = {0};
    ns_model_file *mf = calloc((size_t)K, sizeof *mf);
    char **path = calloc((size_t)K, sizeof *path);
    int *best = calloc((size_t)K, sizeof *best);
    double *acc = NULL, sum[5] = {0};
    int trained = 0;
    if (!mf || !path || !best) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory for the ensemble");
        goto done;
    }
    if ((rc = ns_load_test(&test, c, &fo.part[0], err)))
        goto done;
    if (test.n && (rc = ns_infer_open(&inf, 1024, err)))
        goto done;
    int KO = test.task == NS_TASK_CLASSIFY ? fo.part[0].n_classes : 1;
    if (test.n && !(acc = calloc((size_t)test.n * KO, sizeof *acc))) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory for the ensemble's test predictions");
        goto done;
    }
    size_t plen = strlen(model_path) + 32;
    for (int k = 0; k < K; k++) {
        if (!(path[k] = malloc(plen))) {
            rc = ns_err_set(err, NS_ERUNTIME, "out of memory for the ensemble");
            goto done;
        }
        snprintf(path[k], plen, "%s.member%d", model_path, k);
        if (mfn)
            mfn(user, k, K);
        ns_run_result r = {0};
        if ((rc = ns_run_training(c, &fo.part[k], fn, user, &(ns_run_out){.model = path[k]}, stop,
                                  &r, err)))
            goto done;
        trained = k + 1;
        if (members)
            members[k] = r;
        if (r.interrupted) {
            res->interrupted = 1;
            goto done;
        }
        res->diverged |= r.diverged;
        res->stopped_early |= r.stopped_early;
        res->epochs = r.epochs > res->epochs ? r.epochs : res->epochs;
        res->last = r.last;
        best[k] = r.best_epoch;
        const double v[5] = {r.val_loss, r.val_acc, r.val_rmse, r.val_bacc, r.val_f1};
        for (int i = 0; i < 5; i++)
            sum[i] += v[i];
        if ((rc = ns_model_load(path[k], &mf[k], err)))
            goto done;
        if (test.n && (rc = add_member(&inf, &mf[k], &test, acc, err)))
            goto done;
    }
    res->val_loss = sum[0] / K;
    res->val_acc = sum[1] / K;
    res->val_rmse = sum[2] / K;
    res->val_bacc = sum[3] / K;
    res->val_f1 = sum[4] / K;
    qsort(best, (size_t)K, sizeof *best, cmp_int);
    res->best_epoch = best[(K - 1) / 2];
    if (test.n && (rc = score_test(&test, KO, K, acc, res, err)))
        goto done;
    rc = ns_ensemble_save(model_path, mf, K, err);
done:
    for (int k = 0; path && k < K; k++) {
        if (path[k] && k < trained)
            unlink(path[k]);
        free(path ? path[k] : NULL);
    }
    for (int k = 0; mf && k < K; k++)
        ns_model_file_free(&mf[k]);
    free(mf);
    free(path);
    free(best);
    free(acc);
    ns_infer_close(&inf);
    ns_dataset_free(&test);
    ns_folds_free(&fo);
    return rc;
}
