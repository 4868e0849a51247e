/* trial.c — one trial's life in the search driver: opening it (its config, checkpoint and
 * store row), training it here, on an MPI worker or in an array with others of its shape,
 * and closing it (its result, health findings, pruning, folds, files and progress line).
 * Not which trials a stage runs or when (driver.c), nor what a stage plans or decides
 * (stages.c, stage_bayes.c, select.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/atomic.h"
#include "search/config/config.h"
#include "search/stages/driver_impl.h"
#include "search/stages/pipeline.h"
#include "search/study/store.h"

static const char *json_num(char buf[32], double v)
{
    if (isfinite(v))
        snprintf(buf, 32, "%.9g", v);
    else
        snprintf(buf, 32, "null");
    return buf;
}

typedef struct trial_ctx {
    ns_search *s;
    long n;
    int pruned;            /* the stage's pruning rule stopped it */
    int store_failed;
    ns_err store_err;
} trial_ctx;

static int record_epoch(void *user, const ns_epoch_record *rec)
{
    trial_ctx *t = user;
    int rc;
#pragma omp critical(ns_store)
    rc = ns_store_epoch_add(t->s->store, t->n, rec, &t->store_err);
    if (rc) {
        t->store_failed = 1;
        return 1; /* stop this trial: the study cannot record it */
    }
    if (ns_stage_should_prune(t->s, rec)) {
        t->pruned = 1;
        return 1;
    }
    return 0;
}


/* The health findings of trial n from all its epoch records in the store (a resumed trial's
 * earlier epochs included), with the noise of its losses where hs leaves it unknown
 * (ns_pipeline_health_noise): *json (caller frees; NULL on error) and *flags. */
static int judge_trial(ns_search *s, long n, const ns_health_spec *hs, int selected_epoch,
                       char **json, unsigned *flags, ns_finding *f, int *nf, ns_err *err)
{
    ns_epoch_record *recs = NULL;
    int nrec = 0, rc;
    *json = NULL;
#pragma omp critical(ns_store)
    rc = ns_store_epochs(s->store, (int)n, &recs, &nrec, err);
    if (rc)
        return rc;
    ns_health_spec h = *hs;
    if (s->folds.n) /* the mean over the folds: every row validated, (K - 1) times trained on */
        ns_pipeline_health_noise_rows(&h, s->data.task, s->folds.rows,
                                      s->folds.rows * (long)(s->folds.k - 1));
    else
        ns_pipeline_health_noise(&h, &s->data);
    *nf = ns_health_check(&h, recs, nrec, selected_epoch, f, NS_HEALTH_MAX_FINDINGS);
    free(recs);
    *flags = ns_findings_flags(f, *nf);
    int len = ns_findings_json(f, *nf, NULL, 0);
    if (len < 0 || !(*json = malloc((size_t)len + 1)))
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    ns_findings_json(f, *nf, *json, (size_t)len + 1);
    return NS_OK;
}

/* Appends to the result JSON text in buf (an object, cap bytes) the cross-validation's
 * evidence: the metric per fold run, its standard error, the folds and repeats. */
static void append_folds(char *buf, size_t cap, const ns_cv_result *cv, const ns_folds *fo)
{
    size_t len = strlen(buf);
    if (len < 2 || buf[len - 1] != '}')
        return;
    len--;
    char v[32];
    len += (size_t)snprintf(buf + len, cap - len, ",\"folds\":[");
    for (int i = 0; i < cv->done && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "," : "", json_num(v, cv->metric[i]));
    if (len < cap)
        snprintf(buf + len, cap - len, "],\"val_se\":%s,\"cv\":%d,\"repeats\":%d%s}",
                 json_num(v, cv->se), fo->k, fo->repeats, cv->raced ? ",\"raced\":true" : "");
}

/* Drops trial n's checkpoint when it is ahead of the store: when the store lacks an epoch
 * record up to the checkpoint's epoch. Checkpoints are fsynced while the store commits
 * with synchronous=NORMAL, so a power loss can take the store's last commits and leave a
 * later checkpoint; continuing from it would leave those epochs unrecorded (and judge the
 * trial's health without them). Run again from the start instead, the trial repeats them
 * to the same bits. (A kill without power loss keeps the store ahead: each epoch is
 * recorded before its checkpoint is written.) */
static int drop_checkpoint_ahead(ns_search *s, long n, const char *ckpt, ns_err *err)
{
    int epoch = 0;
    ns_err e = {0};
    if (access(ckpt, F_OK))
        return NS_OK;
    int crc = ns_checkpoint_epoch(ckpt, &epoch, &e);
    if (crc == NS_EINPUT) { /* damaged (a disk error, a hand edit): the trial is deterministic,
                             * so running it again from the start gives what it would have */
        if (unlink(ckpt) && errno != ENOENT)
            return ns_err_set(err, NS_ERUNTIME, "%s: cannot remove: %s", ckpt, strerror(errno));
#pragma omp critical(ns_store)
        ns_search_progress(s, "trial %ld: %s: it runs again from the start\n", n, e.msg);
        return NS_OK;
    }
    if (crc || epoch == 0)
        return NS_OK; /* unreadable (the trainer says why), or nothing to miss */
    ns_epoch_record *recs = NULL;
    int nrec = 0, rc, have = 0;
#pragma omp critical(ns_store)
    rc = ns_store_epochs(s->store, (int)n, &recs, &nrec, err);
    if (rc)
        return rc;
    for (int k = 0; k < nrec; k++)
        have += recs[k].epoch >= 1 && recs[k].epoch <= epoch;
    free(recs);
    if (have >= epoch)
        return NS_OK;
    if (unlink(ckpt) && errno != ENOENT)
        return ns_err_set(err, NS_ERUNTIME, "%s: cannot remove: %s", ckpt, strerror(errno));
#pragma omp critical(ns_store)
    ns_search_progress(s, "trial %ld: its checkpoint (epoch %d) is ahead of the study's records (%d of its "
             "epochs; a power loss?): it runs again from the start\n", n, epoch, have);
    return NS_OK;
}

/* One trial from its start in the store to its record: trial_open, then trial_train (or
 * a share of train_array), then trial_close. */
typedef struct trial_job {
    long n;
    char cfg_path[4300], ckpt[4300], model[4300];
    trial_ctx t;
    double t0;
    ns_config tc;
    int have_tc;           /* tc loaded (trc == 0) */
    int trc;               /* the trial's own outcome: 0, or its failure */
    ns_err terr;
    ns_health_spec hs;
    ns_run_result res;
    int lrfind, use_cv, race;
    ns_cv_result cv;
    int32_t *pred;         /* holdout classification: the validation rows' predicted classes */
    char *lr_result;
} trial_job;

/* Starts trial n in the store and loads its config (a config that does not load is the
 * trial's failure, in j->trc). Returns NS_OK unless the study itself could not be written. */
static int trial_open(ns_search *s, const ns_stage_cfg *st, long n, trial_job *j, ns_err *err)
{
    memset(j, 0, sizeof *j);
    j->n = n;
    ns_trial_path(s, n, "config.yaml", j->cfg_path, sizeof j->cfg_path);
    ns_trial_path(s, n, "checkpoint", j->ckpt, sizeof j->ckpt);
    ns_trial_path(s, n, "model.nsm", j->model, sizeof j->model);
    j->t = (trial_ctx){.s = s, .n = n};
    int rc;
    char rel[64];
    snprintf(rel, sizeof rel, "trials/%ld/checkpoint", n);
#pragma omp critical(ns_store)
    {
        rc = ns_store_trial_start(s->store, n, err);
        if (!rc)
            rc = ns_store_trial_set_checkpoint(s->store, n, rel, err);
        if (!rc) {
            s->running++;
            ns_search_emit(s, &(ns_progress){.kind = NS_PROGRESS_TRIAL_START, .trial = n, .value = NAN});
        }
    }
    if (rc)
        return rc;
    j->t0 = ns_now_s();
    /* an LR range test is a sweep of a few hundred steps, not a training: no epochs, no
     * checkpoint (an interrupted one runs again), no health */
    j->lrfind = st->kind == NS_STAGE_LR_RANGE;
    j->use_cv = s->folds.n > 0 && !j->lrfind;
    j->race = st->kind == NS_STAGE_RANDOM || st->kind == NS_STAGE_BAYES;
    j->trc = ns_config_load(&j->tc, j->cfg_path, &j->terr);
    if (!j->trc) {
        j->have_tc = 1;
        j->hs = j->tc.health;
        j->hs.baseline_loss = ns_pipeline_baseline_loss(&j->tc, &s->data);
    }
    /* a holdout trial trained here keeps its validation predictions (select's estimate;
     * under MPI they come back with the worker's result) */
    const ns_dataset *v = &s->data.val;
    if (!j->trc && !j->use_cv && !j->lrfind && s->opts->ranks <= 1 && v->n && v->y &&
        v->task == NS_TASK_CLASSIFY) {
        if (!(j->pred = malloc((size_t)v->n * sizeof *j->pred)))
            j->trc = ns_err_set(&j->terr, NS_ERUNTIME, "out of memory");
    }
    return NS_OK;
}

/* Trains an opened trial alone: here or (under MPI) on the worker behind pool slot `slot`.
 * Returns NS_OK unless the study's store could not be read. */
static int trial_train(ns_search *s, const ns_stage_cfg *st, trial_job *j, int slot, ns_err *err)
{
    int rc = NS_OK;
    if (j->lrfind) /* under MPI too: a sweep of a few hundred steps, here on rank 0 */
        j->trc = ns_stage_run_lrfind(s, st, j->n, &j->tc, &j->lr_result, &j->res.interrupted, &j->terr);
    else if (s->opts->ranks > 1) { /* slot's worker rank trains it; records come here */
        if (j->use_cv || !(rc = drop_checkpoint_ahead(s, j->n, j->ckpt, err)))
            rc = ns_remote_trial(s, slot, j->n, j->cfg_path, j->ckpt, j->model, j->use_cv, j->race,
                                 record_epoch, &j->t, &j->cv, &j->res, &j->trc, &j->terr, err);
        /* a holdout trial's validation predictions came back where cross-validation's do */
        if (!rc && !j->use_cv && j->cv.pred) {
            if (j->cv.n_pred == s->data.val.n)
                j->pred = j->cv.pred;
            else
                free(j->cv.pred);
            j->cv.pred = NULL;
            j->cv.n_pred = 0;
        }
    } else if (j->use_cv)
        j->trc = ns_cv_run(s, &s->folds, &j->tc, j->race, &j->cv, &j->res, &j->terr);
    else if (!(rc = drop_checkpoint_ahead(s, j->n, j->ckpt, err))) {
        ns_run_out out = {.checkpoint = j->ckpt, .model = j->model, .val_pred = j->pred};
        j->trc = ns_run_training(&j->tc, &s->data, record_epoch, &j->t, &out, s->opts->stop,
                                 &j->res, &j->terr);
    }
    return rc;
}

/* Trains K opened trials that share a shape key as one array (ns_run_training_array): on
 * the CPU each ends as trial_train would end it. */
static int train_array(ns_search *s, trial_job *const *jobs, int K, ns_err *err)
{
    for (int k = 0; k < K; k++) {
        int rc = drop_checkpoint_ahead(s, jobs[k]->n, jobs[k]->ckpt, err);
        if (rc)
            return rc;
    }
    const ns_config **c = calloc((size_t)K, sizeof *c);
    void **user = calloc((size_t)K, sizeof *user);
    ns_run_out *out = calloc((size_t)K, sizeof *out);
    ns_run_result *res = calloc((size_t)K, sizeof *res);
    int *rcs = calloc((size_t)K, sizeof *rcs);
    ns_err *errs = calloc((size_t)K, sizeof *errs);
    int rc = NS_OK;
    if (!c || !user || !out || !res || !rcs || !errs) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory for an array of %d trials", K);
    } else {
        char line[512];
        size_t len = (size_t)snprintf(line, sizeof line, "trials");
        for (int k = 0; k < K && len < sizeof line; k++)
            len += (size_t)snprintf(line + len, sizeof line - len, "%s %ld", k ? "," : "", jobs[k]->n);
#pragma omp critical(ns_store)
        ns_search_progress(s, "%s train together as one array\n", line);
        for (int k = 0; k < K; k++) {
            c[k] = &jobs[k]->tc;
            user[k] = &jobs[k]->t;
            out[k] = (ns_run_out){.checkpoint = jobs[k]->ckpt, .model = jobs[k]->model,
                                  .val_pred = jobs[k]->pred};
        }
        ns_run_training_array(c, K, &s->data, record_epoch, user, out, s->opts->stop, res, rcs,
                              errs);
        for (int k = 0; k < K; k++) {
            jobs[k]->res = res[k];
            jobs[k]->trc = rcs[k];
            jobs[k]->terr = errs[k];
        }
    }
    free(c);
    free(user);
    free(out);
    free(res);
    free(rcs);
    free(errs);
    return rc;
}

/* Records an opened and trained trial's outcome and ends it in the store (or leaves it
 * running, to be continued, when it was interrupted or the machine failed). Returns NS_OK
 * unless the study itself could not be written or the machine failed (NS_ERUNTIME). */
static int trial_record(ns_search *s, const ns_stage_cfg *st, trial_job *j, int train_rc, ns_err *err)
{
    /* the job's outcome by value; what it owns (cv's arrays, lr_result) is freed here */
    const long n = j->n;
    const int lrfind = j->lrfind, use_cv = j->use_cv;
    ns_run_result res = j->res;
    ns_cv_result cv = j->cv;
    trial_ctx t = j->t;
    int trc = j->trc;
    ns_err terr = j->terr;
    char *lr_result = j->lr_result;
    const char *ckpt = j->ckpt;
    const double t0 = j->t0;
    int rc = train_rc;
    if (j->have_tc)
        ns_config_free(&j->tc);
    if (rc) { /* the store could not be read: the trial stays as a kill leaves it */
        ns_cv_result_free(&cv);
        free(lr_result);
        return rc;
    }
    if (use_cv && !trc && !res.interrupted) { /* the mean curve is the trial's record */
        t.pruned = cv.raced;
#pragma omp critical(ns_store)
        {
            rc = ns_store_begin(s->store, err);
            for (int e = 0; !rc && e < cv.n_curve; e++)
                rc = ns_store_epoch_add(s->store, (int)n, &cv.curve[e], err);
            if (!rc)
                rc = ns_store_commit(s->store, err);
            else
                ns_store_rollback(s->store);
        }
        if (rc) {
            ns_cv_result_free(&cv);
#pragma omp critical(ns_store)
            s->running--;
            return rc;
        }
    }
    if (t.store_failed) {
#pragma omp critical(ns_store)
        s->running--;
        if (err)
            *err = t.store_err;
        ns_cv_result_free(&cv);
        free(lr_result);
        return t.store_err.code ? t.store_err.code : NS_ERUNTIME;
    }
    if (trc == NS_ERUNTIME) {
        /* Out of memory or an I/O failure (a full disk): the machine failed, not the
         * trial's hyperparameters. Recorded as failed, the trial would be lost for good and
         * the study would end differently; left as a kill leaves it (running, with its
         * checkpoint), `nnsearch resume` trains it again once the cause is gone. The
         * study stops with the error. */
        if (err)
            *err = terr;
        ns_cv_result_free(&cv);
        free(lr_result);
        return trc;
    }
    ns_trial_state state;
    char codes[256] = "";
    /* the fixed keys, then per fold (cross-validation) up to 40 characters each */
    size_t rcap = 768 + (use_cv ? 40 * (size_t)cv.n_folds : 0);
    char *result = calloc(rcap, 1);
    if (!result) {
        ns_cv_result_free(&cv);
#pragma omp critical(ns_store)
        s->running--;
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    }
    char *health = NULL;
    unsigned flags = 0;
    ns_finding f[NS_HEALTH_MAX_FINDINGS];
    int nf = 0;
    double m = NAN;
    if (trc) {
        state = NS_TRIAL_FAILED;
    } else if (res.interrupted) {
        state = NS_TRIAL_INTERRUPTED;
    } else if (lrfind) {
        state = NS_TRIAL_COMPLETE; /* never a candidate: no validation metric */
        snprintf(codes, sizeof codes, "LR range test");
    } else {
        m = ns_search_metric_of(s, &res);
        state = res.diverged ? NS_TRIAL_DIVERGED : t.pruned ? NS_TRIAL_PRUNED : NS_TRIAL_COMPLETE;
        char vl[32], vm[32], vb[32], vf[32];
        if (s->data.task == NS_TASK_CLASSIFY)
            snprintf(result, rcap,
                     "{\"val_loss\":%s,\"val_acc\":%s,\"val_balanced_acc\":%s,\"val_macro_f1\":%s,"
                     "\"best_epoch\":%d,\"stopped_early\":%s,\"diverged\":%s}",
                     json_num(vl, res.val_loss), json_num(vm, res.val_acc), json_num(vb, res.val_bacc),
                     json_num(vf, res.val_f1), res.best_epoch, res.stopped_early ? "true" : "false",
                     res.diverged ? "true" : "false");
        else
            snprintf(result, rcap,
                     "{\"val_loss\":%s,\"val_rmse\":%s,\"best_epoch\":%d,\"stopped_early\":%s,"
                     "\"diverged\":%s}",
                     json_num(vl, res.val_loss), json_num(vm, res.val_rmse), res.best_epoch,
                     res.stopped_early ? "true" : "false", res.diverged ? "true" : "false");
        /* the test set is reported for the chosen configuration only, never to choose */
        size_t len = strlen(result);
        if (st->kind == NS_STAGE_FINAL && s->data.test.n && len > 0) {
            char tl[32], ta[32];
            snprintf(result + len - 1, rcap - len + 1, ",\"test_loss\":%s,\"%s\":%s}",
                     json_num(tl, res.test_loss), s->data.task == NS_TASK_CLASSIFY ? "test_acc" : "test_rmse",
                     json_num(ta, s->data.task == NS_TASK_CLASSIFY ? res.test_acc : res.test_rmse));
        }
        if (use_cv)
            append_folds(result, rcap, &cv, &s->folds);
        if ((rc = judge_trial(s, n, &j->hs, res.best_epoch, &health, &flags, f, &nf, err))) {
            free(result);
            ns_cv_result_free(&cv);
#pragma omp critical(ns_store)
            s->running--;
            return rc;
        }
        ns_health_flags_text(flags, codes, sizeof codes);
    }
    /* the held-out rows' predicted classes: by the fold that held each out, or the split's */
    const int32_t *pred = use_cv ? cv.pred : j->pred;
    const long n_pred = use_cv ? cv.n_pred : j->pred ? s->data.val.n : 0;
    ns_trial_result r = {.seconds = ns_now_s() - t0, .epochs = res.epochs, .val_metric = m,
                         .result = lrfind ? lr_result : result[0] ? result : NULL, .health = health,
                         .health_flags = flags, .error = trc ? terr.msg : NULL};
#pragma omp critical(ns_store)
    {
        if (state == NS_TRIAL_COMPLETE && pred && n_pred > 0) { /* both, or neither */
            rc = ns_store_begin(s->store, err);
            if (!rc)
                rc = ns_store_trial_pred_set(s->store, (int)n, pred, n_pred, err);
            if (!rc)
                rc = ns_store_trial_finish(s->store, n, state, &r, err);
            if (!rc)
                rc = ns_store_commit(s->store, err);
            else
                ns_store_rollback(s->store);
        } else {
            rc = ns_store_trial_finish(s->store, n, state, &r, err);
        }
        s->running--;
        if (state != NS_TRIAL_INTERRUPTED) {
            unlink(ckpt); /* a finished trial is never continued */
            s->done++;
            s->run++;
            /* the best so far as selection sees it: healthy trials first */
            int healthy = !(flags & NS_SELECT_REJECT);
            if (state == NS_TRIAL_COMPLETE && isfinite(m) &&
                (healthy > s->best_healthy || (healthy == s->best_healthy && ns_search_better(s, m, s->best)))) {
                s->best = m;
                s->best_trial = n;
                s->best_healthy = healthy;
            }
            /* [done/total], or [done] when a stage runs until the budget ends */
            char count[48], line[1400];
            if (s->open_ended)
                snprintf(count, sizeof count, "[%ld]", s->done);
            else
                snprintf(count, sizeof count, "[%ld/%ld]", s->done, s->total);
            if (state == NS_TRIAL_FAILED)
                snprintf(line, sizeof line, "trial %ld failed: %s %s", n, terr.msg, count);
            else if (lrfind)
                snprintf(line, sizeof line, "trial %ld complete: LR range test in %.1fs %s", n,
                         r.seconds, count);
            else
                snprintf(line, sizeof line, "trial %ld %s: %s %.4f in %d epochs, %.1fs, %s (best "
                         "%.4f, trial %ld) %s", n, ns_trial_state_name(state),
                         ns_metric_name(s->metric), m, res.epochs, r.seconds, codes, s->best,
                         s->best_trial, count);
            if (s->opts->on_progress)
                ns_search_emit(s, &(ns_progress){.kind = NS_PROGRESS_TRIAL_END, .text = line, .trial = n,
                                       .state = ns_trial_state_name(state), .value = m,
                                       .epochs = res.epochs, .seconds = r.seconds,
                                       .health = lrfind ? "" : codes,
                                       .error = state == NS_TRIAL_FAILED ? terr.msg : NULL,
                                       .lr_test = lrfind});
            else
                ns_search_progress(s, "%s\n", line);
        }
    }
    free(health);
    free(lr_result);
    free(result);
    ns_cv_result_free(&cv);
    return rc;
}

/* trial_record, then frees what the job still owns. */
static int trial_close(ns_search *s, const ns_stage_cfg *st, trial_job *j, int train_rc, ns_err *err)
{
    int rc = trial_record(s, st, j, train_rc, err);
    free(j->pred);
    j->pred = NULL;
    return rc;
}

/* Runs trial n from its config file alone (continuing from its checkpoint if one is there),
 * here or (under MPI) on the worker behind pool slot `slot`, and records the outcome.
 * Returns NS_OK unless the study itself could not be written. */
static int run_trial(ns_search *s, const ns_stage_cfg *st, long n, int slot, ns_err *err)
{
    trial_job *j = malloc(sizeof *j);
    if (!j)
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    int rc = trial_open(s, st, n, j, err);
    if (!rc)
        rc = trial_close(s, st, j, j->trc ? NS_OK : trial_train(s, st, j, slot, err), err);
    free(j);
    return rc;
}

/* Runs trials nums[0..count) (handed to one worker) and records them: those that share a
 * shape key (ns_run_shape_key) train together as one array, the others alone. Holdout
 * trials of a training stage only: cross-validation, LR range tests and MPI workers train
 * each trial alone. Returns NS_OK unless the study itself could not be written. */
int ns_run_trials(ns_search *s, const ns_stage_cfg *st, const long *nums, int count, int slot,
                  ns_err *err)
{
    if (count == 1)
        return run_trial(s, st, nums[0], slot, err);
    trial_job *jobs = calloc((size_t)count, sizeof *jobs);
    trial_job **grp = calloc((size_t)count, sizeof *grp);
    char (*key)[160] = calloc((size_t)count, sizeof *key);
    int *keyed = calloc((size_t)count, sizeof *keyed), *done = calloc((size_t)count, sizeof *done);
    int rc = NS_OK, opened = 0;
    if (!jobs || !grp || !key || !keyed || !done) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        goto out;
    }
    for (; opened < count && !rc; opened++)
        rc = trial_open(s, st, nums[opened], &jobs[opened], err);
    if (rc) { /* the store failed: close what was opened, as a kill would leave them */
        for (int i = 0; i < opened - 1; i++)
            trial_close(s, st, &jobs[i], rc, NULL);
        goto out;
    }
    for (int i = 0; i < count; i++) {
        trial_job *j = &jobs[i];
        keyed[i] = !j->trc && !j->lrfind && !j->use_cv && s->opts->ranks <= 1 &&
                   ns_run_shape_key(&j->tc, &s->data, key[i], sizeof key[i]);
    }
    for (int i = 0; i < count; i++) {
        if (done[i])
            continue;
        if (rc) { /* the study failed: the rest stay as a kill leaves them, to be resumed */
            trial_close(s, st, &jobs[i], rc, NULL);
            continue;
        }
        int K = 0;
        if (keyed[i])
            for (int m = i; m < count; m++)
                if (!done[m] && keyed[m] && !strcmp(key[m], key[i])) {
                    grp[K++] = &jobs[m];
                    done[m] = 1;
                }
        int trc = NS_OK;
        if (K >= 2) {
            trc = train_array(s, grp, K, err);
        } else {
            K = 1;
            grp[0] = &jobs[i];
            done[i] = 1;
            if (!jobs[i].trc)
                trc = trial_train(s, st, &jobs[i], slot, err);
        }
        for (int k = 0; k < K; k++) {
            ns_err e = {0};
            int crc = trial_close(s, st, grp[k], trc, &e);
            if (crc && !rc) {
                rc = crc;
                if (err)
                    *err = e;
            }
        }
    }
out:
    free(jobs);
    free(grp);
    free(key);
    free(keyed);
    free(done);
    return rc;
}
