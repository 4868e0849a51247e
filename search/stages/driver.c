/* driver.c — the search driver: study set-up and resume, the data checks, the stages in
 * order (in rounds), the parallel trial pool and each trial's record (result, health).
 * A trial is a pure function of (data, its config file, its seed): its config is derived
 * from (study seed, trial number, the decisions and trials before its round) alone and
 * written to trials/<n>/config.yaml before it runs, so neither the number of workers nor
 * an interruption changes any result. Store writes go through one lock (one writer at a
 * time). Not what a stage plans or decides: stages.c and stage_bayes.c. */
#include "search/stages/driver.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/atomic.h"
#include "engine/rng.h"
#include "search/config/config.h"
#include "search/config/space.h"
#include "search/report/report.h"
#include "search/stages/driver_impl.h"
#include "search/stages/pipeline.h"
#include "search/study/store.h"

/* Purposes of the streams derived from (study seed, trial number). */
#define SEED_POINT 0x706f696e74ULL /* the trial's point in the search space */
#define SEED_TRAIN 0x747261696eULL /* the trial's train.seed */

double ns_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int mkdir_p(const char *path, ns_err *err)
{
    char failed[4096];
    int e = ns_mkdir_p(path, failed, sizeof failed);
    return e ? ns_err_set(err, NS_ERUNTIME, "%s: cannot create: %s", e == ENOMEM ? path : failed,
                          strerror(e))
             : NS_OK;
}

static void trial_path(const ns_search *s, long n, const char *file, char *out, size_t cap)
{
    snprintf(out, cap, "%s/trials/%ld/%s", s->dir, n, file);
}

double ns_search_metric_of(const ns_search *s, const ns_run_result *r)
{
    switch (s->metric) {
    case NS_METRIC_VAL_ACC: return r->val_acc;
    case NS_METRIC_VAL_RMSE: return r->val_rmse;
    case NS_METRIC_VAL_BACC: return r->val_bacc;
    case NS_METRIC_VAL_F1: return r->val_f1;
    case NS_METRIC_VAL_LOSS: break;
    }
    return r->val_loss;
}

int ns_search_better(const ns_search *s, double a, double b)
{
    if (!isfinite(a))
        return 0;
    if (!isfinite(b))
        return 1;
    return s->higher ? a > b : a < b;
}

/* A number as JSON text: "null" when not finite. */
static const char *json_num(char buf[32], double v)
{
    if (isfinite(v))
        snprintf(buf, 32, "%.9g", v);
    else
        snprintf(buf, 32, "null");
    return buf;
}

/* Sends ev to the caller's progress callback with the study's counts filled in; nothing
 * when quiet or without a callback. From the pool: under the store lock. */
static void emit(ns_search *s, ns_progress *ev)
{
    if (s->opts->quiet || !s->opts->on_progress)
        return;
    const ns_search_cfg *sc = &s->base.search;
    double now = ns_now_s();
    ev->stage = s->stage_name;
    ev->stage_kind = s->stage ? s->stage->name : NULL;
    ev->stage_index = s->stage ? (int)(s->stage - sc->stages) : -1;
    ev->n_stages = sc->n_stages;
    ev->stage_planned = s->stage_planned;
    ev->stage_done = s->done - s->stage_done0;
    ev->done = s->done;
    ev->total = s->total;
    ev->open_ended = s->open_ended;
    ev->running = s->running;
    ev->parallel = s->opts->parallel;
    ev->metric = ns_metric_name(s->metric);
    ev->higher = s->higher;
    ev->best_trial = s->best_trial;
    ev->best = s->best;
    ev->stage_time_left = isfinite(s->stage_stop_at) ? fmax(0, s->stage_stop_at - now) : INFINITY;
    ev->budget_left = s->budget > 0 ? fmax(0, s->t_start + s->budget - now) : INFINITY;
    s->opts->on_progress(s->opts->progress_user, ev);
}

/* A line of progress: a NOTE event (without its newline) to the callback, or the line on
 * opts->progress. */
static void progress(ns_search *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(ns_search *s, const char *fmt, ...)
{
    if (s->opts->quiet || (!s->opts->progress && !s->opts->on_progress))
        return;
    va_list ap;
    va_start(ap, fmt);
    if (s->opts->on_progress) {
        char line[1024];
        vsnprintf(line, sizeof line, fmt, ap);
        line[strcspn(line, "\n")] = 0;
        emit(s, &(ns_progress){.kind = NS_PROGRESS_NOTE, .text = line, .trial = -1});
    } else {
        vfprintf(s->opts->progress, fmt, ap);
        fflush(s->opts->progress);
    }
    va_end(ap);
}

/* ---- trial configs ------------------------------------------------------------------- */

void ns_plan_set(ns_trial_plan *p, const char *key, const char *fmt, ...)
{
    int k = 0;
    while (k < p->n_set && strcmp(p->set[k].key, key))
        k++;
    if (k == NS_PLAN_MAX_SETTINGS) {
        p->bad = key;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(p->value[k], sizeof p->value[k], fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof p->value[k]) {
        p->bad = key;
        return;
    }
    p->set[k].key = key;
    p->set[k].value = p->value[k];
    if (k == p->n_set)
        p->n_set++;
}

/* The keys a trial's stage set (in the order set, each once), then the searched keys not
 * set by it, with their values in the trial's config: the params of a trial as one compact
 * JSON object ({"train.optimizer":"adam","train.lr":0.0031,...}). NULL when out of memory. */
static char *trial_params_json(const ns_space *sp, const ns_config *tc, const ns_trial_plan *p)
{
    if (p->n_set == 0)
        return ns_space_params_json(sp, tc);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    int n = 0;
    fputc('{', f);
    for (int i = 0; i < p->n_set; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= !strcmp(p->set[i].key, p->set[j].key);
        if (seen)
            continue;
        fprintf(f, "%s\"%s\":", n++ ? "," : "", p->set[i].key); /* section.key: no escaping */
        ns_config_write_value(f, tc, ns_config_key_find(p->set[i].key), 1);
    }
    for (int i = 0; i < sp->n; i++) {
        int set = 0;
        for (int j = 0; j < p->n_set; j++)
            set |= !strcmp(sp->dims[i].name, p->set[j].key);
        if (set)
            continue;
        fprintf(f, "%s\"%s\":", n++ ? "," : "", sp->dims[i].name);
        ns_config_write_value(f, tc, sp->dims[i].key, 1);
    }
    fputc('}', f);
    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The searched values of point u as a JSON object of strings, for a point whose config
 * could not be built (the values are recorded with the failure, whole: a choice's text
 * has no length limit). NULL when out of memory. */
static char *params_of_point(const ns_space *sp, const double *u)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fputc('{', f);
    for (int i = 0; i < sp->n; i++) {
        char tmp[64];
        const char *v = ns_dim_text(&sp->dims[i], u[i], tmp);
        fprintf(f, "%s\"%s\":\"", i ? "," : "", sp->dims[i].name); /* section.key: no escaping */
        for (const char *c = v; *c; c++)
            if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20)
                fputc(*c, f);
        fputc('"', f);
    }
    fputc('}', f);
    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Builds trial n's fixed config from the study seed and n, writes it to
 * trials/<n>/config.yaml (atomically) and records the trial as queued. A point that breaks
 * a cross-key rule is recorded as a failed trial with its values and the reason, and
 * *failed_at_once is set. */
static int queue_trial(ns_search *s, const ns_stage_cfg *st, const char *stage, long n,
                       const ns_trial_plan *plan, int *failed_at_once, ns_err *err)
{
    *failed_at_once = 0;
    const ns_config *b = &s->base;
    double *u = calloc((size_t)(b->space.n > 0 ? b->space.n : 1), sizeof *u);
    if (!u)
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    ns_rng rng;
    ns_rng_seed(&rng, ns_seed_derive(b->search.seed, (uint64_t)n, SEED_POINT));
    if (plan->has_point)
        for (int i = 0; i < b->space.n && i < NS_PLAN_MAX_DIMS; i++)
            u[i] = plan->point[i];
    else if (plan->midpoint)
        for (int i = 0; i < b->space.n; i++)
            u[i] = 0.5;
    else if (b->space.n > 0)
        ns_space_sample(&b->space, &rng, u, b->space.n);
    uint64_t seed = ns_seed_derive(b->search.seed, (uint64_t)n, SEED_TRAIN);

    ns_config tc;
    ns_err why = {0};
    char *params = NULL;
    int rc = ns_config_instantiate_set(b, b->space.n > 0 ? u : NULL, plan->set, plan->n_set, &tc,
                                       &why);
    if (rc == NS_EINPUT) { /* a bad combination: a failed trial, not a failed search */
        params = params_of_point(&b->space, u);
        free(u);
        if (!params)
            return ns_err_set(err, NS_ERUNTIME, "out of memory");
        int wrc = ns_store_begin(s->store, err);
        if (!wrc)
            wrc = ns_store_trial_insert(s->store, n, stage, params, seed, err);
        if (!wrc)
            wrc = ns_store_trial_start(s->store, n, err);
        ns_trial_result r = {.seconds = 0, .epochs = 0, .val_metric = NAN, .error = why.msg};
        if (!wrc)
            wrc = ns_store_trial_finish(s->store, n, NS_TRIAL_FAILED, &r, err);
        if (!wrc)
            wrc = ns_store_commit(s->store, err);
        else
            ns_store_rollback(s->store);
        free(params);
        if (!wrc) {
            *failed_at_once = 1;
            progress(s, "trial %ld failed: %s\n", n, why.msg);
        }
        return wrc;
    }
    free(u);
    if (rc) {
        if (err)
            *err = why;
        return rc;
    }
    tc.train.seed = seed;
    if (!plan->own_budget && st->kind != NS_STAGE_LR_RANGE)
        ns_stage_cfg_apply_budget(st, &tc.train);

    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/trials/%ld", s->dir, n);
    trial_path(s, n, "config.yaml", path, sizeof path);
    char header[4700];
    snprintf(header, sizeof header,
             "trial %ld of study %s (stage %s): a complete training config\n"
             "run it alone with: nnsearch train %s", n, b->search.name, stage, path);
    ns_atomic_file f;
    ns_atomic_remove_stale(path); /* a study killed while queueing this trial left these */
    if (!(rc = mkdir_p(dir, err)) && !(rc = ns_atomic_open(&f, path, err))) {
        if ((rc = ns_config_export_yaml(&tc, f.f, header, err))) {
            int e = errno; /* the message names the file written, not the study's config */
            ns_atomic_abort(&f);
            if (rc == NS_ERUNTIME)
                ns_err_set(err, rc, "%s: cannot write the trial's config: %s", path, strerror(e));
        } else {
            rc = ns_atomic_commit(&f, err);
        }
    }
    if (!rc) {
        params = trial_params_json(&b->space, &tc, plan);
        if (!params)
            rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
    }
    if (!rc)
        rc = ns_store_trial_insert(s->store, n, stage, params, seed, err);
    free(params);
    ns_config_free(&tc);
    return rc;
}

/* ---- running trials -------------------------------------------------------------------- */

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
    if (access(ckpt, F_OK) || ns_checkpoint_epoch(ckpt, &epoch, &e) || epoch == 0)
        return NS_OK; /* none, nothing to miss, or one the trainer refuses with its reason */
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
    progress(s, "trial %ld: its checkpoint (epoch %d) is ahead of the study's records (%d of its "
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
    char *lr_result;
} trial_job;

/* Starts trial n in the store and loads its config (a config that does not load is the
 * trial's failure, in j->trc). Returns NS_OK unless the study itself could not be written. */
static int trial_open(ns_search *s, const ns_stage_cfg *st, long n, trial_job *j, ns_err *err)
{
    memset(j, 0, sizeof *j);
    j->n = n;
    trial_path(s, n, "config.yaml", j->cfg_path, sizeof j->cfg_path);
    trial_path(s, n, "checkpoint", j->ckpt, sizeof j->ckpt);
    trial_path(s, n, "model.nsm", j->model, sizeof j->model);
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
            emit(s, &(ns_progress){.kind = NS_PROGRESS_TRIAL_START, .trial = n, .value = NAN});
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
    } else if (j->use_cv)
        j->trc = ns_cv_run(s, &s->folds, &j->tc, j->race, &j->cv, &j->res, &j->terr);
    else if (!(rc = drop_checkpoint_ahead(s, j->n, j->ckpt, err)))
        j->trc = ns_run_training(&j->tc, &s->data, record_epoch, &j->t, j->ckpt, j->model,
                                 s->opts->stop, &j->res, &j->terr);
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
    const char **ckpt = calloc((size_t)K, sizeof *ckpt), **model = calloc((size_t)K, sizeof *model);
    ns_run_result *res = calloc((size_t)K, sizeof *res);
    int *rcs = calloc((size_t)K, sizeof *rcs);
    ns_err *errs = calloc((size_t)K, sizeof *errs);
    int rc = NS_OK;
    if (!c || !user || !ckpt || !model || !res || !rcs || !errs) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory for an array of %d trials", K);
    } else {
        char line[512];
        size_t len = (size_t)snprintf(line, sizeof line, "trials");
        for (int k = 0; k < K && len < sizeof line; k++)
            len += (size_t)snprintf(line + len, sizeof line - len, "%s %ld", k ? "," : "", jobs[k]->n);
#pragma omp critical(ns_store)
        progress(s, "%s train together as one array\n", line);
        for (int k = 0; k < K; k++) {
            c[k] = &jobs[k]->tc;
            user[k] = &jobs[k]->t;
            ckpt[k] = jobs[k]->ckpt;
            model[k] = jobs[k]->model;
        }
        ns_run_training_array(c, K, &s->data, record_epoch, user, ckpt, model, s->opts->stop,
                              res, rcs, errs);
        for (int k = 0; k < K; k++) {
            jobs[k]->res = res[k];
            jobs[k]->trc = rcs[k];
            jobs[k]->terr = errs[k];
        }
    }
    free(c);
    free(user);
    free(ckpt);
    free(model);
    free(res);
    free(rcs);
    free(errs);
    return rc;
}

/* Records an opened and trained trial's outcome and ends it in the store (or leaves it
 * running, to be continued, when it was interrupted or the machine failed). Returns NS_OK
 * unless the study itself could not be written or the machine failed (NS_ERUNTIME). */
static int trial_close(ns_search *s, const ns_stage_cfg *st, trial_job *j, int train_rc, ns_err *err)
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
    ns_trial_result r = {.seconds = ns_now_s() - t0, .epochs = res.epochs, .val_metric = m,
                         .result = lrfind ? lr_result : result[0] ? result : NULL, .health = health,
                         .health_flags = flags, .error = trc ? terr.msg : NULL};
#pragma omp critical(ns_store)
    {
        rc = ns_store_trial_finish(s->store, n, state, &r, err);
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
                emit(s, &(ns_progress){.kind = NS_PROGRESS_TRIAL_END, .text = line, .trial = n,
                                       .state = ns_trial_state_name(state), .value = m,
                                       .epochs = res.epochs, .seconds = r.seconds,
                                       .health = lrfind ? "" : codes,
                                       .error = state == NS_TRIAL_FAILED ? terr.msg : NULL,
                                       .lr_test = lrfind});
            else
                progress(s, "%s\n", line);
        }
    }
    free(health);
    free(lr_result);
    free(result);
    ns_cv_result_free(&cv);
    return rc;
}

/* ---- stages ---------------------------------------------------------------------------- */


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
static int run_trials(ns_search *s, const ns_stage_cfg *st, const long *nums, int count, int slot,
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

int ns_trial_is_final(ns_trial_state st)
{
    return st == NS_TRIAL_COMPLETE || st == NS_TRIAL_PRUNED || st == NS_TRIAL_DIVERGED ||
           st == NS_TRIAL_FAILED;
}

/* The monotonic time after which stage st starts no more trials under the study budget
 * (the shares of NS_BUDGET_EARLY_SHARE and NS_BUDGET_LATE_RESERVE); INFINITY without one. */
static double budget_deadline(const ns_search *s, const ns_stage_cfg *st)
{
    if (!(s->budget > 0))
        return INFINITY;
    const ns_search_cfg *sc = &s->base.search;
    int me = (int)(st - sc->stages), first_bayes = -1, last_bayes = -1;
    for (int i = 0; i < sc->n_stages; i++)
        if (sc->stages[i].kind == NS_STAGE_BAYES) {
            first_bayes = first_bayes < 0 ? i : first_bayes;
            last_bayes = i;
        }
    double share = 1;
    if (first_bayes >= 0 && me < first_bayes)
        share = NS_BUDGET_EARLY_SHARE;
    else if (st->kind == NS_STAGE_BAYES && last_bayes + 1 < sc->n_stages)
        share = 1 - NS_BUDGET_LATE_RESERVE;
    return s->t_start + share * s->budget;
}

/* One round's trials as the pool draws them, in number order: each is planned, its config
 * written and its row recorded only when a worker is about to run it, so that a stage of
 * many trials cut short by its seconds, the study budget or a signal leaves behind the
 * trials it ran and no others (a plan depends on the stored results before the round and
 * on the trials planned before it, never on when it is made). Under the store lock. */
typedef struct round_feed {
    ns_search *s;
    const ns_stage_cfg *st;
    const char *stage;
    long first;            /* the stage's first trial number */
    long next, end;        /* the round's next index in the stage, and its end */
    double stop_at;        /* no trial starts after this monotonic time */
    int failed;            /* the first error (store, plan or trial): nothing more starts */
    ns_err err;
} round_feed;

/* The next trial of the round to run into *n: 1, or 0 when the round is over (every trial
 * handed out, a stop request, the deadline, or an error). Trials already final in the
 * study are counted and passed over, and so is a point recorded as failed at once. */
static int next_trial(round_feed *f, long *n)
{
    ns_search *s = f->s;
    while (!f->failed && f->next < f->end) {
        if (ns_stop_requested(s->opts->stop) || ns_now_s() >= f->stop_at)
            return 0;
        long i = f->next++, num = f->first + i;
        ns_trial_row row;
        int found = 0, failed_at_once = 0, rc;
        if ((rc = ns_store_trial_get(s->store, (int)num, &row, &found, &f->err))) {
            f->failed = rc;
            return 0;
        }
        if (found) {
            ns_trial_state state = row.state;
            ns_trial_row_free(&row);
            if (ns_trial_is_final(state)) {
                s->done++;
                continue;
            }
        } else {
            ns_trial_plan plan;
            if ((rc = ns_stage_plan(s, f->st, f->first, i, &plan, &f->err)) ||
                (rc = queue_trial(s, f->st, f->stage, num, &plan, &failed_at_once, &f->err))) {
                f->failed = rc;
                return 0;
            }
            if (failed_at_once) {
                s->done++;
                continue;
            }
        }
        *n = num;
        return 1;
    }
    return 0;
}

/* How many of stage st's trials one worker trains together as one array: search.array, or
 * (auto) NS_ARRAY_AUTO_GPU when the trials train on a GPU and 1 on the CPU, where an array
 * is slower than its trials one after another (0.81-0.86x, docs/BENCHMARKS.md). LR
 * range tests, cross-validated trials and MPI workers train alone. */
static int array_size(const ns_search *s, const ns_stage_cfg *st)
{
    if (st->kind == NS_STAGE_LR_RANGE || s->folds.n > 0 || s->opts->ranks > 1)
        return 1;
    if (s->base.search.array > 0)
        return s->base.search.array;
    return ns_device_resolve((ns_device)s->base.device) == NS_DEVICE_CUDA ? NS_ARRAY_AUTO_GPU : 1;
}

/* A stage's trials first..first+T-1, each planned by stage_plan (random: a point drawn
 * from (study seed, number); bayes: a GP proposal; the others: settings from their options
 * and the decisions so far), in rounds: all of them at once, or bayes's `round` at a time,
 * each round planned from the trials final before it, so that no plan depends on which
 * worker finished first. Trials already final in the study are kept; the others (new,
 * queued, interrupted) run on the pool, in trial-number order as workers free up. */
static int run_stage(ns_search *s, const ns_stage_cfg *st, const char *stage, long first, long T,
                     ns_err *err)
{
    long R = st->kind == NS_STAGE_BAYES && st->round > 0 ? st->round : T;
    const double t0 = ns_now_s();
    /* no trial starts after the stage's own seconds or its share of the study budget */
    const double stop_at = fmin(st->seconds > 0 ? t0 + st->seconds : INFINITY, budget_deadline(s, st));
    s->stage_stop_at = stop_at;
    int rc = NS_OK;
    for (long r0 = 0; r0 < T && !rc; r0 += R) {
        if (ns_stop_requested(s->opts->stop) || ns_now_s() >= stop_at)
            break;
        if ((rc = ns_stage_round_begin(s, st, first, first + r0, err)) ||
            (rc = ns_race_begin(s, st, first + r0, err)))
            break;
        round_feed f = {.s = s, .st = st, .stage = stage, .first = first, .next = r0,
                        .end = r0 + R < T ? r0 + R : T, .stop_at = stop_at};
        const int G = array_size(s, st);
        long *take = NULL;
#pragma omp parallel num_threads(s->opts->parallel) private(take)
        for (take = G > 1 ? malloc((size_t)G * sizeof *take) : NULL;; ) {
            long one;
            long *nums = take ? take : &one;
            int got = 0;
#pragma omp critical(ns_store)
            {
                /* a worker takes up to G trials at once, no more than its share of what
                 * is left of the round, so that the pool stays busy */
                long left = f.end - f.next, share = (left + s->opts->parallel - 1) / s->opts->parallel;
                int want = take ? (int)(share < G ? (share > 0 ? share : 1) : G) : 1;
                while (got < want && next_trial(&f, &nums[got]))
                    got++;
            }
            if (!got) {
                free(take);
                break;
            }
            ns_err e = {0};
            int trc = run_trials(s, st, nums, got, omp_get_thread_num(), &e);
            if (trc) {
#pragma omp critical(ns_store)
                if (!f.failed) {
                    f.failed = trc;
                    f.err = e;
                }
            }
        }
        ns_stage_round_end(s);
        ns_race_end(s);
        if (f.failed) {
            if (err)
                *err = f.err;
            rc = f.failed;
        }
    }
    return rc;
}

/* Records where the config lives, for `nnsearch resume DIR` (atomically: a kill leaves the
 * old file or the new one). */
static int write_source(const ns_search *s, const char *config_path, ns_err *err)
{
    char abs[4096], path[4200];
    if (!realpath(config_path, abs))
        return ns_err_set(err, NS_ERUNTIME, "%s: %s", config_path, strerror(errno));
    snprintf(path, sizeof path, "%s/" NS_STUDY_SOURCE_FILE, s->dir);
    ns_atomic_file f;
    int rc = ns_atomic_open(&f, path, err);
    if (rc)
        return rc;
    fprintf(f.f, "%s\n", abs);
    return ns_atomic_commit(&f, err);
}

/* On imbalanced classes, how much to weigh the rare ones is a choice a search makes: when
 * the config searches something and leaves model.class_weights to its default, the key
 * joins the space as a choice of none, sqrt and balanced (sqrt in the middle, where the
 * stages' reference point takes it: the default's weighting). The data decide it alike on
 * every run, so a resumed study has the same space. */
static int search_class_weights(ns_search *s, ns_err *err)
{
    ns_space *sp = &s->base.space;
    int key = ns_config_key_find("model.class_weights");
    if (sp->n == 0 || s->base.given[key] || ns_space_find(sp, "model.class_weights") >= 0)
        return NS_OK;
    static const char *const names[] = {"none", "sqrt", "balanced"};
    if (ns_space_add_choice(sp, "model.class_weights", key, names, 3))
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    progress(s, "data: searching model.class_weights over none, sqrt and balanced (imbalanced "
             "classes; set model.class_weights to fix it)\n");
    return NS_OK;
}

/* Purpose of the stream derived from the study seed for the folds. */
#define SEED_CV 0x6376ULL

/* search.resampling resolved on the data: auto cross-validates training files of at most
 * NS_CV_AUTO_MAX_ROWS rows (with fewer folds when the file has under 2 rows a fold). */
static int prepare_resampling(ns_search *s, ns_err *err)
{
    const ns_search_cfg *sc = &s->base.search;
    long rows = s->data.train.n + s->data.val.n;
    int K = sc->folds;
    if (sc->resampling == NS_RESAMPLE_HOLDOUT ||
        (sc->resampling == NS_RESAMPLE_AUTO && (rows > NS_CV_AUTO_MAX_ROWS || rows < 4)))
        return NS_OK;
    if (sc->resampling == NS_RESAMPLE_AUTO && rows < 2L * K)
        K = (int)(rows / 2);
    s->fold_seed = ns_seed_derive(sc->seed, 0, SEED_CV);
    int rc = ns_prepare_folds(&s->folds, &s->base, K, sc->repeats, s->fold_seed, err);
    if (rc)
        return rc;
    progress(s, "data: %d-fold cross-validation x %d of %ld rows (search.resampling); each trial's "
             "metric is the mean over its folds\n", K, sc->repeats, rows);
    if (s->folds.advice[0])
        progress(s, "data: %s\n", s->folds.advice);
    return NS_OK;
}

int ns_search_prepare_worker(ns_search *s, ns_err *err)
{
    int rc = ns_prepare_data(&s->data, &s->base, err);
    return rc ? rc : prepare_resampling(s, err);
}

void ns_search_free(ns_search *s)
{
    ns_race_end(s);
    ns_stage_round_end(s);
    ns_bo_cache_free(s->bo_cache);
    s->bo_cache = NULL;
    ns_folds_free(&s->folds);
    ns_store_close(s->store);
    ns_prepared_free(&s->data);
    ns_config_free(&s->base);
}

int ns_search_run(const ns_search_opts *opts, ns_search_result *res, ns_err *err)
{
    memset(res, 0, sizeof *res);
    res->best_trial = -1;
    res->best_metric = NAN;
    ns_search s;
    memset(&s, 0, sizeof s);
    s.best_trial = -1;
    s.best = NAN;
    s.dec.final_trial = -1;
    s.stage_stop_at = INFINITY;
    ns_search_opts o = *opts;
    s.opts = &o;
    int rc = ns_config_load(&s.base, opts->config_path, err);
    if (rc)
        return rc;
    const ns_config *c = &s.base;
    if (!c->search.given) {
        ns_config_free(&s.base);
        return ns_err_set(err, NS_EINPUT, "%s: no search: section; `nnsearch train %s` trains this "
                          "fixed config, or add a search: section (docs/config.md, Searching)",
                          opts->config_path, opts->config_path);
    }
    if ((rc = ns_pipeline_device_check(c, err))) {
        ns_config_free(&s.base);
        return rc;
    }
    if (o.parallel <= 0)
        o.parallel = c->search.parallel;
    s.t_start = ns_now_s();
    s.budget = o.budget > 0 ? o.budget : c->search.budget;
    for (int i = 0; i < c->search.n_stages; i++) {
        const ns_stage_cfg *st = &c->search.stages[i];
        if (st->kind == NS_STAGE_BAYES && st->trials == 0 && !(s.budget > 0)) {
            rc = ns_err_set(err, NS_EINPUT, "%s:%d:%d: search.stages[%d]: a bayes stage without trials: "
                            "runs until the study budget is spent, but there is none; give trials: N, "
                            "search.budget or --budget", opts->config_path, st->line, st->column, i);
            ns_config_free(&s.base);
            return rc;
        }
    }
    /* BLAS threads per trial stay train.threads whatever -j is: threaded GEMMs round
     * differently, and a trial's bits must not depend on how many ran beside it. More
     * threads than cores only take turns (slower, same results): said once. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 0 && (long)c->threads * o.parallel > cores) {
        long fit = cores / c->threads;
        char fix[96];
        if (fit >= 1)
            snprintf(fix, sizeof fix, "give -j %ld (search.parallel)", fit);
        else
            snprintf(fix, sizeof fix, "set train.threads to %ld or fewer and give -j 1", cores);
        progress(&s, "warning: train.threads %d x %d parallel trials = %ld threads on %ld online cores: "
                 "they take turns and every trial runs slower; %s\n", c->threads, o.parallel,
                 (long)c->threads * o.parallel, cores, fix);
    }
    s.metric = c->search.metric;
    s.higher = ns_metric_higher_is_better(s.metric);
    snprintf(s.dir, sizeof s.dir, "%s", opts->output ? opts->output : c->search.output);
    snprintf(res->dir, sizeof res->dir, "%s", s.dir);

    /* The data first: a bad file is reported before anything is written. */
    if ((rc = ns_prepare_data(&s.data, c, err)) || (rc = ns_pipeline_search_memory_check(c, &s.data, err)))
        goto done;
    ns_data_report dr;
    char *checks = NULL;
    if ((rc = ns_pipeline_data_check(c, &s.data, &dr, err)))
        goto done;
    int imbalanced = 0;
    for (int i = 0; i < dr.n_findings; i++) {
        progress(&s, "data: %s (mistake %d): %s; %s\n", dr.findings[i].code, dr.findings[i].mistake,
                 dr.findings[i].message, dr.findings[i].fix);
        imbalanced |= !strcmp(dr.findings[i].code, "class_imbalance");
    }
    int jl = ns_data_report_json(&dr, NULL, 0);
    if (jl >= 0 && (checks = malloc((size_t)jl + 1)))
        ns_data_report_json(&dr, checks, (size_t)jl + 1);
    ns_data_report_free(&dr);
    if (!checks) {
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
        goto done;
    }
    /* On imbalanced classes accuracy rewards predicting the majority: unless the config
     * names a metric, trials are ranked by macro-F1, what imbalanced results are judged by
     * (balanced accuracy, the mean recall, also rewards over-predicting the rare classes;
     * ranked by it, winners had a lower test macro-F1: scripts/bench/imbalance_metric). */
    if (imbalanced && !c->given[ns_config_key_find("search.metric")]) {
        s.metric = NS_METRIC_VAL_F1;
        s.higher = 1;
        progress(&s, "data: ranking trials by val_macro_f1 (imbalanced classes; set "
                 "search.metric to choose)\n");
    }
    /* Each trial keeps the weights of its best epoch by the metric the study compares it
     * by: the most accurate epoch of an imbalanced set is often the one that predicts the
     * majority best. Written into every trial's config, so export and train keep it too
     * (and MPI workers, which train from that file). */
    if (!c->given[ns_config_key_find("train.metric")] && c->data.task == NS_TASK_CLASSIFY)
        s.base.train.monitor = s.metric == NS_METRIC_VAL_F1     ? NS_MONITOR_F1
                               : s.metric == NS_METRIC_VAL_BACC ? NS_MONITOR_BACC
                                                                : NS_MONITOR_AUTO;
    if ((imbalanced && (rc = search_class_weights(&s, err))) || (rc = prepare_resampling(&s, err))) {
        free(checks);
        goto done;
    }
    /* Under MPI the workers load the same data and answer before anything is written: a
     * worker that cannot is refused here. From now on the pool has a slot per worker
     * thread, rank 0's -j (search.parallel) on each worker. */
    if (o.ranks > 1) {
        if ((rc = ns_remote_start(&s, err))) {
            free(checks);
            goto done;
        }
        o.parallel *= o.ranks - 1;
    }
    char hash[17];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)c->hash);
    if ((rc = ns_store_open(&s.store, s.dir, 1, err)) ||
        (rc = ns_store_study_init(s.store, c->search.name, c->text, hash, c->search.seed,
                                  ns_metric_name(s.metric), s.higher, opts->force, err)) ||
        (rc = ns_store_study_set_data_checks(s.store, checks, err)) ||
        (rc = write_source(&s, opts->config_path, err))) {
        free(checks);
        goto done;
    }
    free(checks);
    int n_reset = 0;
    if ((rc = ns_store_reset_running(s.store, &n_reset, err)))
        goto done;
    ns_stage_reference(&s);
    long counts[NS_MAX_STAGES];
    for (int i = 0; i < c->search.n_stages; i++) {
        const ns_stage_cfg *st = &c->search.stages[i];
        counts[i] = ns_stage_trial_count(&s, st);
        if (st->kind == NS_STAGE_BAYES && st->trials == 0)
            s.open_ended = 1; /* its count is a cap, not a plan */
        else
            s.total += counts[i];
    }
    char within[96] = "";
    if (s.budget > 0)
        snprintf(within, sizeof within, "%s within %.0f s,", s.open_ended ? " and bayes until its share," : ",",
                 s.budget);
    else
        snprintf(within, sizeof within, ",");
    char plan[4400];
    snprintf(plan, sizeof plan, "study %s in %s: %d stage(s), %ld trials%s %d at a time%s",
             c->search.name, s.dir, c->search.n_stages, s.total, within, o.parallel,
             n_reset ? " (continuing: interrupted trials resume from their checkpoints)" : "");
    if (o.on_progress)
        emit(&s, &(ns_progress){.kind = NS_PROGRESS_STUDY, .text = plan, .trial = -1});
    else
        progress(&s, "nnsearch: %s\n", plan);

    long first = 0;
    for (int i = 0; i < c->search.n_stages && !rc; i++) {
        const ns_stage_cfg *st = &c->search.stages[i];
        if (ns_stop_requested(o.stop)) { /* e.g. while the data loaded or a stage decided */
            res->interrupted = 1;
            break;
        }
        char stage[64];
        snprintf(stage, sizeof stage, "%d:%s", i + 1, st->name);
        ns_stage_row row;
        int found = 0;
        if ((rc = ns_store_stage_get(s.store, stage, &row, &found, err)))
            break;
        if (found && row.state == NS_STAGE_COMPLETE) { /* its decision still steers the rest */
            ns_stage_absorb(&s, st, row.decision);
            ns_stage_row_free(&row);
            if (!(st->kind == NS_STAGE_BAYES && st->trials == 0))
                s.done += counts[i];
            first += counts[i];
            continue;
        }
        if (found)
            ns_stage_row_free(&row);
        if ((rc = ns_store_stage_set(s.store, stage, i, NS_STAGE_RUNNING, NULL, err)))
            break;
        s.stage = st;
        s.stage_name = stage;
        s.stage_planned = st->kind == NS_STAGE_BAYES && st->trials == 0 ? -1 : counts[i];
        s.stage_done0 = s.done;
        s.stage_stop_at = fmin(st->seconds > 0 ? ns_now_s() + st->seconds : INFINITY,
                               budget_deadline(&s, st));
        emit(&s, &(ns_progress){.kind = NS_PROGRESS_STAGE_BEGIN, .trial = -1});
        if ((rc = run_stage(&s, st, stage, first, counts[i], err)))
            break;
        if (ns_stop_requested(o.stop)) {
            res->interrupted = 1;
            break;
        }
        char *decision = NULL;
        if ((rc = ns_stage_decide(&s, st, first, counts[i], &decision, err))) {
            free(decision);
            break;
        }
        /* a decision that measures (select's re-scoring) ends early when asked to stop:
         * not recorded, so the resumed study decides again, as an unbroken one would */
        if (ns_stop_requested(o.stop)) {
            free(decision);
            res->interrupted = 1;
            break;
        }
        if ((rc = ns_store_stage_set(s.store, stage, i, NS_STAGE_COMPLETE, decision, err))) {
            free(decision);
            break;
        }
        ns_stage_absorb(&s, st, decision);
        if (o.on_progress)
            emit(&s, &(ns_progress){.kind = NS_PROGRESS_STAGE_END, .decision = decision, .trial = -1});
        else
            progress(&s, "stage %s complete: %s\n", stage, decision);
        free(decision);
        first += counts[i];
        /* the report follows every stage; it only reads the study, and its failure (a full
         * disk, say) costs a warning, never the search */
        ns_err rerr = {0};
        char rpath[sizeof s.dir + sizeof NS_REPORT_FILE + 1];
        snprintf(rpath, sizeof rpath, "%s/%s", s.dir, NS_REPORT_FILE);
        ns_atomic_remove_stale(rpath); /* a search killed while writing it left these */
        if (ns_report_write(s.dir, NULL, &rerr) && o.progress)
            fprintf(o.progress, "nnsearch: warning: %s/%s not written: %s\n", s.dir, NS_REPORT_FILE,
                    rerr.msg);
    }
    s.stage = NULL; /* its name lived in the loop */
    s.stage_name = NULL;
    if (!rc) {
        ns_trial_row best;
        int found = 0;
        rc = ns_store_best(s.store, s.higher, NS_SELECT_REJECT, &best, &found, err);
        if (!rc && s.dec.final_trial >= 0) { /* the stages' choice (search/study/view.h, ns_study_stages_choice) */
            ns_trial_row t;
            int tf = 0;
            if (!(rc = ns_store_trial_get(s.store, (int)s.dec.final_trial, &t, &tf, err)) && tf &&
                t.state == NS_TRIAL_COMPLETE && isfinite(t.val_metric)) {
                if (found)
                    ns_trial_row_free(&best);
                best = t;
                found = 1;
            } else if (!rc && tf) {
                ns_trial_row_free(&t);
            }
        }
        if (!rc && found) {
            res->best_trial = best.number;
            res->best_metric = best.val_metric;
            ns_trial_row_free(&best);
        }
    }
    res->trials_run = s.run;
done:
    ns_search_free(&s);
    return rc;
}
