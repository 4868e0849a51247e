/* driver.c — the search driver: study set-up and resume, the data checks, the stages in
 * order (in rounds) and the parallel trial pool.
 * A trial is a pure function of (data, its config file, its seed): its config is derived
 * from (study seed, trial number, the decisions and trials before its round) alone and
 * written to trials/<n>/config.yaml before it runs, so neither the number of workers nor
 * an interruption changes any result. Store writes go through one lock (one writer at a
 * time). Not one trial's life (trial.c), nor what a stage plans or decides (stages.c,
 * stage_bayes.c, select.c). */
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
#include "search/study/json.h"
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

void ns_trial_path(const ns_search *s, long n, const char *file, char *out, size_t cap)
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
void ns_search_emit(ns_search *s, ns_progress *ev)
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

void ns_search_progress(ns_search *s, const char *fmt, ...)
{
    if (s->opts->quiet || (!s->opts->progress && !s->opts->on_progress))
        return;
    va_list ap;
    va_start(ap, fmt);
    if (s->opts->on_progress) {
        char line[1024];
        vsnprintf(line, sizeof line, fmt, ap);
        line[strcspn(line, "\n")] = 0;
        ns_search_emit(s, &(ns_progress){.kind = NS_PROGRESS_NOTE, .text = line, .trial = -1});
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
            ns_search_progress(s, "trial %ld failed: %s\n", n, why.msg);
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
    ns_trial_path(s, n, "config.yaml", path, sizeof path);
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
            int trc = ns_run_trials(s, st, nums, got, omp_get_thread_num(), &e);
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
    ns_search_progress(s, "data: searching model.class_weights over none, sqrt and balanced (imbalanced "
             "classes; set model.class_weights to fix it)\n");
    return NS_OK;
}

/* The study's recorded data fingerprint against this run's: NS_EINPUT when they differ and
 * the run is not forced (a study whose stored checks have none, from an older version,
 * passes). */
static int check_same_data(ns_search *s, const char *checks, int force, ns_err *err)
{
    ns_study_row st = {0};
    int rc = ns_store_study_get(s->store, &st, err);
    if (rc)
        return rc;
    char was[32] = "", now[32] = "";
    int differs = st.data_checks && ns_json_get_str(st.data_checks, "data_hash", was, sizeof was) &&
                  ns_json_get_str(checks, "data_hash", now, sizeof now) && strcmp(was, now);
    ns_study_row_free(&st);
    if (differs && !force)
        return ns_err_set(err, NS_EINPUT, "%s: the data differ from those the study was run on "
                          "(a data file changed since: fingerprint %s, was %s); restore the data, "
                          "or run the search in a new folder (--force continues with these data, "
                          "mixing trials of both)", s->dir, now, was);
    if (differs)
        ns_search_progress(s, "data: the data differ from those the study was run on; continuing "
                           "(--force)\n");
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
        (sc->resampling == NS_RESAMPLE_AUTO && (rows > NS_CV_AUTO_MAX_ROWS || rows < 4))) {
        /* without validation rows every trial's metric is NaN and none can win */
        if (s->data.val.n < 1)
            return ns_err_set(err, NS_EINPUT, "data.val_fraction %g of %ld rows leaves no validation "
                              "rows to compare trials on; raise val_fraction, or give more rows%s",
                              s->base.data.val_fraction, rows,
                              sc->resampling == NS_RESAMPLE_HOLDOUT && rows >= 4
                                  ? " (or search.resampling: cv)" : "");
        return NS_OK;
    }
    if (sc->resampling == NS_RESAMPLE_AUTO && rows < 2L * K)
        K = (int)(rows / 2);
    s->fold_seed = ns_seed_derive(sc->seed, 0, SEED_CV);
    int rc = ns_prepare_folds(&s->folds, &s->base, K, sc->repeats, s->fold_seed, err);
    if (rc)
        return rc;
    ns_search_progress(s, "data: %d-fold cross-validation x %d of %ld rows (search.resampling); each trial's "
             "metric is the mean over its folds\n", K, sc->repeats, rows);
    if (s->folds.advice[0])
        ns_search_progress(s, "data: %s\n", s->folds.advice);
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
        ns_search_progress(&s, "warning: train.threads %d x %d parallel trials = %ld threads on %ld online cores: "
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
        ns_search_progress(&s, "data: %s (mistake %d): %s; %s\n", dr.findings[i].code, dr.findings[i].mistake,
                 dr.findings[i].message, dr.findings[i].fix);
        imbalanced |= !strcmp(dr.findings[i].code, "class_imbalance");
    }
    int jl = ns_data_report_json(&dr, NULL, 0);
    if (jl >= 1 && (checks = malloc((size_t)jl + 40))) { /* and the fingerprint as its last key */
        ns_data_report_json(&dr, checks, (size_t)jl + 1);
        snprintf(checks + jl - 1, 41, ",\"data_hash\":\"%016llx\"}",
                 (unsigned long long)ns_prepared_fingerprint(&s.data));
    }
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
        ns_search_progress(&s, "data: ranking trials by val_macro_f1 (imbalanced classes; set "
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
        (rc = check_same_data(&s, checks, opts->force, err)) ||
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
        ns_search_emit(&s, &(ns_progress){.kind = NS_PROGRESS_STUDY, .text = plan, .trial = -1});
    else
        ns_search_progress(&s, "nnsearch: %s\n", plan);

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
        ns_search_emit(&s, &(ns_progress){.kind = NS_PROGRESS_STAGE_BEGIN, .trial = -1});
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
            ns_search_emit(&s, &(ns_progress){.kind = NS_PROGRESS_STAGE_END, .decision = decision, .trial = -1});
        else
            ns_search_progress(&s, "stage %s complete: %s\n", stage, decision);
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
