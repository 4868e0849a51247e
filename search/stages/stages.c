/* stages.c — what each stage runs and decides: the random stage's points, the LR range test
 * per optimizer family, the batch-size sweep with rescaled LRs and the gradient noise
 * scale, the optimizer x schedule comparison with confidence intervals and Welch tests,
 * and the final training of the chosen configuration (bayes: stage_bayes.c; select: select.c;
 * what later stages take from each decision: absorb.c).
 * Every decision is a function of the stored trial results alone, so the same study seed
 * gives the same decisions whatever -j and however often the study was interrupted. Not
 * the pool or the store: driver.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jsonbuf.h"
#include "engine/rng.h"
#include "engine/train/health.h"
#include "engine/train/lrfind.h"
#include "search/stages/bayes.h"
#include "search/stages/driver_impl.h"
#include "search/stages/lrfind.h"
#include "search/stages/stats.h"
#include "search/study/json.h"

/* ---- families, the reference point, sizes, pairs --------------------------------------- */

int ns_lr_family(int opt) { return opt == NS_OPT_SGD ? NS_FAM_SGD : NS_FAM_ADAPTIVE; }
const char *ns_lr_family_name(int f) { return f == NS_FAM_SGD ? "sgd" : "adaptive"; }

/* The reference point: every searched key at the middle of its range (u = 0.5), the
 * stages' common starting configuration. NS_OK and *tc to free, or the instantiation's
 * error (a midpoint that breaks a cross-key rule). */
static int reference_config(const ns_search *s, ns_config *tc)
{
    const ns_config *b = &s->base;
    double *u = malloc((size_t)(b->space.n > 0 ? b->space.n : 1) * sizeof *u);
    if (!u)
        return NS_ERUNTIME;
    for (int i = 0; i < b->space.n; i++)
        u[i] = 0.5;
    ns_err e = {0};
    int rc = ns_config_instantiate(b, b->space.n ? u : NULL, tc, &e);
    free(u);
    return rc;
}

void ns_stage_reference(ns_search *s)
{
    ns_config tc;
    s->ref_opt = s->base.train.opt.kind;
    s->ref_batch = s->base.train.batch_size;
    s->ref_lr = s->base.train.lr;
    if (reference_config(s, &tc))
        return; /* the base config's values: the rule violation shows in the stage's trials */
    s->ref_opt = tc.train.opt.kind;
    s->ref_batch = tc.train.batch_size;
    s->ref_lr = tc.train.lr;
    ns_config_free(&tc);
}

/* The first compare stage after position `from` in the pipeline, or NULL. */
static const ns_stage_cfg *later_compare(const ns_search *s, const ns_stage_cfg *from)
{
    const ns_search_cfg *sc = &s->base.search;
    int after = 0;
    for (int i = 0; i < sc->n_stages; i++) {
        if (&sc->stages[i] == from)
            after = 1;
        else if (after && sc->stages[i].kind == NS_STAGE_COMPARE)
            return &sc->stages[i];
    }
    return NULL;
}

/* The families an lr_range stage tests, in order (SGD first): those of a later compare
 * stage's optimizers, and the reference point's. Returns how many. */
static int lr_families(const ns_search *s, const ns_stage_cfg *st, int fam[NS_N_FAMILIES])
{
    int want[NS_N_FAMILIES] = {0};
    want[ns_lr_family(s->ref_opt)] = 1;
    const ns_stage_cfg *cmp = later_compare(s, st);
    for (int i = 0; cmp && i < cmp->n_optimizers; i++)
        want[ns_lr_family(cmp->optimizers[i])] = 1;
    int n = 0;
    for (int f = 0; f < NS_N_FAMILIES; f++)
        if (want[f])
            fam[n++] = f;
    return n;
}

/* The sizes a batch_sweep tries: its list without sizes above the training rows (all
 * rows when none is left). Returns how many. */
static int batch_sizes(const ns_search *s, const ns_stage_cfg *st, int out[NS_MAX_SIZES])
{
    int n = 0;
    for (int i = 0; i < st->n_sizes; i++)
        if (st->sizes[i] <= s->data.train.n)
            out[n++] = st->sizes[i];
    if (n == 0)
        out[n++] = (int)s->data.train.n;
    return n;
}

/* ---- trial counts ------------------------------------------------------------------------ */

static long count_trials(const ns_search *s, const ns_stage_cfg *st)
{
    (void)s;
    return st->trials;
}

/* bayes without trials: runs until the study budget ends; this many at the most */
static long count_bayes(const ns_search *s, const ns_stage_cfg *st)
{
    (void)s;
    return st->trials > 0 ? st->trials : NS_BAYES_BUDGET_TRIALS;
}

static long count_lr_range(const ns_search *s, const ns_stage_cfg *st)
{
    int fam[NS_N_FAMILIES];
    return (long)lr_families(s, st, fam) * st->seeds;
}

static long count_batch(const ns_search *s, const ns_stage_cfg *st)
{
    int sizes[NS_MAX_SIZES];
    return batch_sizes(s, st, sizes);
}

static long count_compare(const ns_search *s, const ns_stage_cfg *st)
{
    (void)s;
    return (long)st->n_optimizers * st->n_schedules * st->seeds;
}

static long count_one(const ns_search *s, const ns_stage_cfg *st)
{
    (void)s, (void)st;
    return 1;
}

static long count_none(const ns_search *s, const ns_stage_cfg *st)
{
    (void)s, (void)st;
    return 0;
}

/* ---- plans ------------------------------------------------------------------------------- */

double ns_lr_scale(int scaling, int opt, int b, int ref)
{
    if (scaling == NS_SCALE_AUTO)
        scaling = opt == NS_OPT_SGD ? NS_SCALE_LINEAR : NS_SCALE_SQRT;
    double r = (double)b / (double)ref;
    return scaling == NS_SCALE_LINEAR ? r : scaling == NS_SCALE_SQRT ? sqrt(r) : 1.0;
}

/* Sets the optimizer; SGD always with Nesterov momentum, as the stages compare it. */
static void plan_set_opt(ns_trial_plan *p, int opt)
{
    ns_plan_set(p, "train.optimizer", "%s", ns_opt_kind_name((ns_opt_kind)opt));
    if (opt == NS_OPT_SGD)
        ns_plan_set(p, "train.nesterov", "true");
}

/* The settings every later trial inherits: the compare leader's optimizer and schedule,
 * the batch size, and the LR of the optimizer's family at that batch size. Keys the
 * random stage searches are left to it. */
static void inherit(const ns_search *s, ns_trial_plan *p, int opt, int set_opt, int batch)
{
    const ns_decisions *d = &s->dec;
    const ns_space *sp = &s->base.space;
    int random = !p->midpoint;
    if (set_opt && !(random && ns_space_find(sp, "train.optimizer") >= 0))
        plan_set_opt(p, opt);
    if (d->have_pair && !(random && ns_space_find(sp, "train.schedule") >= 0))
        ns_plan_set(p, "train.schedule", "%s", ns_sched_kind_name((ns_sched_kind)d->sched));
    if (batch > 0 && !(random && ns_space_find(sp, "train.batch_size") >= 0))
        ns_plan_set(p, "train.batch_size", "%d", batch);
    /* the family's LR from the range test, or (without one) the config's own LR when a
     * batch sweep moved the batch size and the optimizer is of the config's family */
    int f = ns_lr_family(opt);
    double lr = d->have_lr[f] ? d->lr[f]
                : batch > 0 && f == ns_lr_family(s->ref_opt) ? s->ref_lr : NAN;
    if (isfinite(lr) && !(random && ns_space_find(sp, "train.lr") >= 0)) {
        if (batch > 0 && d->batch_ref > 0)
            lr *= ns_lr_scale(d->batch ? d->scaling : NS_SCALE_AUTO, opt, batch, d->batch_ref);
        ns_plan_set(p, "train.lr", "%.17g", lr);
    }
}

/* The optimizer later trials use: compare's leader, else the reference point's. */
static int leader_opt(const ns_search *s) { return s->dec.have_pair ? s->dec.opt : s->ref_opt; }

#define PLAN_ARGS ns_search *s, const ns_stage_cfg *st, long first, long i, ns_trial_plan *p, ns_err *err

static int plan_random(PLAN_ARGS)
{
    (void)st, (void)first, (void)i, (void)err;
    inherit(s, p, leader_opt(s), s->dec.have_pair, s->dec.batch);
    return NS_OK;
}

/* one family per block of seeds; the reference optimizer stands for its family */
static int plan_lr_range(PLAN_ARGS)
{
    (void)first, (void)err;
    int fam[NS_N_FAMILIES], opt = leader_opt(s);
    lr_families(s, st, fam);
    int f = fam[i / st->seeds];
    int rep = ns_lr_family(opt) == f ? opt : f == NS_FAM_SGD ? NS_OPT_SGD : NS_OPT_ADAM;
    p->midpoint = 1;
    plan_set_opt(p, rep);
    if (s->dec.batch > 0)
        ns_plan_set(p, "train.batch_size", "%d", s->dec.batch);
    return NS_OK;
}

static int plan_batch(PLAN_ARGS)
{
    (void)first, (void)err;
    const ns_decisions *d = &s->dec;
    int sizes[NS_MAX_SIZES], opt = leader_opt(s);
    batch_sizes(s, st, sizes);
    p->midpoint = 1;
    inherit(s, p, opt, d->have_pair, 0);
    ns_plan_set(p, "train.batch_size", "%d", sizes[i]);
    int f = ns_lr_family(opt);
    double lr = d->have_lr[f] ? d->lr[f] : s->ref_lr;
    int ref = d->batch_ref > 0 ? d->batch_ref : s->ref_batch;
    ns_plan_set(p, "train.lr", "%.17g", lr * ns_lr_scale(st->scaling, opt, sizes[i], ref));
    return NS_OK;
}

static int plan_compare(PLAN_ARGS)
{
    (void)first, (void)err;
    long pair = i / st->seeds;
    int o = st->optimizers[pair / st->n_schedules], sc = st->schedules[pair % st->n_schedules];
    p->midpoint = 1;
    inherit(s, p, o, 1, s->dec.batch);
    ns_plan_set(p, "train.schedule", "%s", ns_sched_kind_name((ns_sched_kind)sc));
    return NS_OK;
}

static int plan_final(PLAN_ARGS)
{
    (void)st, (void)first, (void)i, (void)err;
    p->midpoint = 1;
    p->own_budget = 1;
    inherit(s, p, leader_opt(s), s->dec.have_pair, s->dec.batch);
    return NS_OK;
}

/* a point of the space, with what earlier stages fixed */
static int plan_bayes(PLAN_ARGS)
{
    inherit(s, p, leader_opt(s), s->dec.have_pair, s->dec.batch);
    return ns_bayes_plan(s, st, first, i, p, err);
}

#undef PLAN_ARGS

/* ---- the LR range test trial ---------------------------------------------------------------- */


int ns_stage_run_lrfind(ns_search *s, const ns_stage_cfg *st, long n, const ns_config *tc,
                     char **result, int *interrupted, ns_err *err)
{
    *result = NULL;
    *interrupted = 0;
    ns_lrfind_spec spec;
    ns_lrfind_spec_default(&spec);
    spec.lr_start = st->lr_start;
    spec.lr_end = st->lr_end;
    spec.steps = st->sweep_steps;
    spec.batch_size = tc->train.batch_size;
    spec.stop = s->opts->stop;
    ns_lrfind_curve curve;
    memset(&curve, 0, sizeof curve);
    int rc = ns_lrfind_config(tc, &s->data, &spec, tc->train.seed, &curve, err);
    if (rc)
        return rc;
    if (curve.interrupted) {
        ns_lrfind_curve_free(&curve);
        *interrupted = 1;
        return NS_OK;
    }
    char path[4300];
    snprintf(path, sizeof path, "%s/trials/%ld/lr_curve.csv", s->dir, n);
    if ((rc = ns_lrfind_write_csv(path, &curve, err))) {
        ns_lrfind_curve_free(&curve);
        return rc;
    }
    ns_lrfind_suggestion sg;
    ns_lrfind_suggest(&curve, &sg);
    double pick = ns_lrfind_pick(&sg, (ns_lr_rule)st->rule);
    ns_jbuf j = {0};
    char *buf = NULL;
    for (int pass = 0; pass < 2; pass++) { /* measure, then write */
        j = (ns_jbuf){buf, buf ? j.len + 1 : 0, 0};
        ns_jbuf_putf(&j, "{\"family\":\"%s\",\"optimizer\":\"%s\",\"batch\":%d,\"rule\":\"%s\",\"pick\":",
                     ns_lr_family_name(ns_lr_family(tc->train.opt.kind)),
                     ns_opt_kind_name(tc->train.opt.kind), tc->train.batch_size,
                     ns_lr_rule_name((ns_lr_rule)st->rule));
        ns_jbuf_num(&j, sg.ok ? pick : NAN);
        ns_jbuf_put(&j, ",\"valley\":", 10);
        ns_jbuf_num(&j, sg.ok ? sg.valley : NAN);
        ns_jbuf_put(&j, ",\"steepest\":", 12);
        ns_jbuf_num(&j, sg.ok ? sg.steepest : NAN);
        ns_jbuf_put(&j, ",\"min10\":", 9);
        ns_jbuf_num(&j, sg.ok ? sg.min10 : NAN);
        ns_jbuf_putf(&j, ",\"blew_up\":%s,\"points\":%d,\"lr\":[", curve.blew_up ? "true" : "false",
                     curve.n);
        for (int k = 0; k < curve.n; k++)
            ns_jbuf_putf(&j, k ? ",%.6g" : "%.6g", curve.lr[k]);
        ns_jbuf_put(&j, "],\"smoothed\":[", 14);
        for (int k = 0; k < curve.n; k++) {
            if (k)
                ns_jbuf_put(&j, ",", 1);
            ns_jbuf_num(&j, curve.smoothed[k]);
        }
        ns_jbuf_put(&j, "]}", 2);
        if (pass == 0 && !(buf = malloc(j.len + 1))) {
            ns_lrfind_curve_free(&curve);
            return ns_err_set(err, NS_ERUNTIME, "out of memory");
        }
    }
    ns_jbuf_finish(&j);
    ns_lrfind_curve_free(&curve);
    if (!sg.ok) {
        free(buf);
        return ns_err_set(err, NS_EINPUT, "the LR range test gave no usable curve (%d points); "
                          "widen start..end or raise sweep_steps", curve.n);
    }
    *result = buf;
    return NS_OK;
}

/* ---- decisions --------------------------------------------------------------------------- */

/* The recorded trials of first..first+count-1 in number order: *have rows, up to the last
 * one recorded (a stage cut short by time or a signal never created the rest), missing
 * ones zeroed. */
static int stage_rows(ns_search *s, long first, long count, ns_trial_row **out, long *have,
                      ns_err *err)
{
    ns_trial_row *rows = NULL, *mine;
    int n = 0;
    *out = NULL;
    *have = 0;
    int rc = ns_store_trials(s->store, &rows, &n, err);
    if (rc)
        return rc;
    long span = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].number >= first && rows[i].number - first < count && rows[i].number - first + 1 > span)
            span = rows[i].number - first + 1;
    if (!(mine = calloc((size_t)(span > 0 ? span : 1), sizeof *mine))) {
        ns_trial_rows_free(rows, n);
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        long k = rows[i].number - first;
        if (k >= 0 && k < span) {
            mine[k] = rows[i];
            memset(&rows[i], 0, sizeof rows[i]);
        }
    }
    ns_trial_rows_free(rows, n);
    *out = mine;
    *have = span;
    return NS_OK;
}

static int healthy(const ns_trial_row *t)
{
    return !(t->health_flags > 0 && (t->health_flags & NS_SELECT_REJECT));
}

/* Row i of a stage's recorded trials r (have of them): a zeroed row, no stage and no
 * result, for a trial never created (its stage was cut short before it). */
static const ns_trial_row *row_of(const ns_trial_row *r, long have, long i)
{
    static const ns_trial_row none;
    return i < have ? &r[i] : &none;
}

/* r: the stage's recorded trials, have of its count (stage_rows) */
#define DECIDE_ARGS ns_search *s, const ns_stage_cfg *st, const ns_trial_row *r, long have, long count, ns_jbuf *j, ns_err *err

/* random (and any stage's summary): counts and the best trial, healthy ones first */
static int decide_summary(DECIDE_ARGS)
{
    (void)err;
    long counts[8] = {0}, best = -1, started = 0;
    double bm = NAN;
    int best_healthy = 0;
    for (long i = 0; i < have; i++) {
        if (!r[i].stage)
            continue;
        started++;
        counts[r[i].state]++;
        int h = healthy(&r[i]);
        if (r[i].state == NS_TRIAL_COMPLETE && isfinite(r[i].val_metric) &&
            (h > best_healthy || (h == best_healthy && ns_search_better(s, r[i].val_metric, bm)))) {
            bm = r[i].val_metric;
            best = r[i].number;
            best_healthy = h;
        }
    }
    if (st->kind == NS_STAGE_BAYES && st->trials == 0) /* until the budget: what it started */
        count = started;
    ns_jbuf_putf(j, "\"trials\":%ld,\"complete\":%ld,\"pruned\":%ld,\"diverged\":%ld,\"failed\":%ld,",
                 count, counts[NS_TRIAL_COMPLETE], counts[NS_TRIAL_PRUNED], counts[NS_TRIAL_DIVERGED],
                 counts[NS_TRIAL_FAILED]);
    /* not run: queued, interrupted, or never queued (the stage's seconds cap) */
    long ended = counts[NS_TRIAL_COMPLETE] + counts[NS_TRIAL_PRUNED] + counts[NS_TRIAL_DIVERGED] +
                 counts[NS_TRIAL_FAILED];
    ns_jbuf_putf(j, "\"not_run\":%ld,\"best_trial\":%ld,\"best_%s\":", count - ended, best,
                 ns_metric_name(s->metric));
    ns_jbuf_putf(j, isfinite(bm) ? "%.9g" : "null", bm);
    return NS_OK;
}

static int decide_lr_range(DECIDE_ARGS)
{
    (void)err, (void)count;
    int fam[NS_N_FAMILIES];
    int nf = lr_families(s, st, fam);
    ns_jbuf_putf(j, "\"rule\":\"%s\",\"seeds\":%d", ns_lr_rule_name((ns_lr_rule)st->rule), st->seeds);
    for (int k = 0; k < nf; k++) {
        double picks[100];
        int np = 0, batch = 0;
        for (long i = (long)k * st->seeds; i < (long)(k + 1) * st->seeds && i < have; i++) {
            double v, b;
            if (r[i].state == NS_TRIAL_COMPLETE && ns_json_get_num(r[i].result, "pick", &v) && v > 0 &&
                np < 100)
                picks[np++] = v;
            if (ns_json_get_num(r[i].result, "batch", &b))
                batch = (int)b;
        }
        const char *fn = ns_lr_family_name(fam[k]);
        if (np == 0) {
            ns_jbuf_putf(j, ",\"%s_lr\":null", fn);
            continue;
        }
        double centre, lo, hi, spread;
        ns_lrfind_bounds(picks, np, &centre, &lo, &hi, &spread);
        /* one key a call: ns_jbuf_putf writes at most 127 bytes */
        ns_jbuf_putf(j, ",\"%s_lr\":%.6g,\"%s_lo\":%.6g", fn, centre, fn, lo);
        ns_jbuf_putf(j, ",\"%s_hi\":%.6g,\"%s_spread\":%.4g", fn, hi, fn, spread);
        ns_jbuf_putf(j, ",\"%s_batch\":%d,\"%s_picks\":[", fn, batch, fn);
        for (int q = 0; q < np; q++)
            ns_jbuf_putf(j, q ? ",%.6g" : "%.6g", picks[q]);
        ns_jbuf_put(j, "]", 1);
    }
    return NS_OK;
}

/* Mean samples per second over a trial's epochs (evidence only: it varies between runs,
 * so no decision depends on it). */
static double trial_speed(ns_search *s, int trial)
{
    ns_epoch_record *recs = NULL;
    int n = 0;
    ns_err e = {0};
    if (ns_store_epochs(s->store, trial, &recs, &n, &e) || n == 0) {
        free(recs);
        return NAN;
    }
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += recs[i].samples_per_s;
    free(recs);
    return sum / n;
}

/* The standard error of a sweep trial's study metric: its fold spread under cross-
 * validation, else, for an accuracy-like metric, the binomial error on the validation rows;
 * NaN when neither is known (a loss or RMSE on a holdout split). */
static double sweep_metric_se(const ns_search *s, const ns_trial_row *t)
{
    double se;
    if (t->result && ns_json_get_num(t->result, "val_se", &se) && isfinite(se) && se > 0)
        return se;
    double m = t->val_metric;
    if (s->data.task == NS_TASK_CLASSIFY && s->higher && isfinite(m) && s->data.val.n > 0)
        return sqrt(fmax(m * (1 - m), 0) / (double)s->data.val.n);
    return NAN;
}

static int decide_batch(DECIDE_ARGS)
{
    int sizes[NS_MAX_SIZES];
    int ns = batch_sizes(s, st, sizes);
    double loss[NS_MAX_SIZES];
    int stable[NS_MAX_SIZES];
    double best = INFINITY;
    for (int i = 0; i < ns && i < count; i++) {
        const ns_trial_row *t = row_of(r, have, i);
        loss[i] = NAN;
        stable[i] = t->state == NS_TRIAL_COMPLETE && healthy(t) &&
                    ns_json_get_num(t->result, "val_loss", &loss[i]) && isfinite(loss[i]);
        if (stable[i] && loss[i] < best)
            best = loss[i];
    }
    /* the largest stable size whose val loss is within tolerance of the best: the same
     * samples cost less time in larger batches on this trainer (samples/s below) */
    int chosen = 0;
    for (int i = 0; i < ns && i < count; i++)
        if (stable[i] && loss[i] <= best * (1 + st->tolerance) && sizes[i] > chosen)
            chosen = sizes[i];
    /* the sizes the sweep cannot tell from the chosen one: stable, with a study metric not
     * worse than the chosen size's by more than two of its standard errors. Evidence only:
     * searching them in later stages did not pay (docs/config.md, batch_sweep) */
    const ns_trial_row *ct = NULL;
    for (int i = 0; i < ns && i < count; i++)
        if (stable[i] && sizes[i] == chosen)
            ct = row_of(r, have, i);
    double se = ct ? sweep_metric_se(s, ct) : NAN;
    int listed[NS_MAX_SIZES] = {0}, n_listed = 0;
    for (int i = 0; i < ns && i < count; i++) {
        const ns_trial_row *t = row_of(r, have, i);
        double m = t->val_metric, c = ct ? ct->val_metric : NAN;
        listed[i] = stable[i] && (t == ct || (isfinite(se) && isfinite(m) && isfinite(c) &&
                                              (s->higher ? m >= c - 2 * se : m <= c + 2 * se)));
        n_listed += listed[i];
    }
    int opt = s->dec.have_pair ? s->dec.opt : s->ref_opt;
    /* the rule as configured (auto resolves per optimizer, also for later stages) */
    static const char *const scale_names[] = {"auto", "linear", "sqrt", "none"};
    int scaling = st->scaling;
    int ref = s->dec.batch_ref > 0 ? s->dec.batch_ref : s->ref_batch;
    /* gradient noise scale from the smallest and the largest size at the reference point */
    double bsimple = NAN;
    if (ns >= 2) {
        ns_config tc;
        const ns_config *b = &s->base;
        double *u = malloc((size_t)(b->space.n > 0 ? b->space.n : 1) * sizeof *u);
        if (!u)
            return ns_err_set(err, NS_ERUNTIME, "out of memory");
        for (int i = 0; i < b->space.n; i++)
            u[i] = 0.5;
        ns_trial_plan p;
        memset(&p, 0, sizeof p);
        p.midpoint = 1;
        inherit(s, &p, opt, s->dec.have_pair, 0);
        if (p.bad) {
            free(u);
            return ns_err_set(err, NS_ERUNTIME, "batch_sweep: the reference plan cannot hold %s", p.bad);
        }
        ns_err e = {0};
        int bad_point = ns_config_instantiate_set(b, b->space.n ? u : NULL, p.set, p.n_set, &tc, &e);
        free(u);
        if (!bad_point) { /* a midpoint that breaks a rule has no noise scale */
            int rc = ns_pipeline_noise_scale(&tc, &s->data, sizes[0], sizes[ns - 1],
                                             ns_seed_derive(b->search.seed, 0x6e6f697365, 0),
                                             &bsimple, err);
            ns_config_free(&tc);
            if (rc)
                return rc;
        }
    }
    ns_jbuf_putf(j, "\"batch_size\":%d,\"ref_batch\":%d,\"scaling\":\"%s\",", chosen, ref,
                 scale_names[scaling]);
    ns_jbuf_putf(j, "\"tolerance\":%g,\"noise_scale\":", st->tolerance);
    ns_jbuf_num(j, bsimple);
    ns_jbuf_put(j, ",\"metric_se\":", 13);
    ns_jbuf_num(j, se);
    ns_jbuf_put(j, ",\"shortlist\":[", 14);
    for (int i = 0, k = 0; i < ns && i < count; i++)
        if (listed[i])
            ns_jbuf_putf(j, "%s%d", k++ ? "," : "", sizes[i]);
    ns_jbuf_putf(j, "],\"separated\":%s", n_listed < 2 ? "true" : "false");
    ns_jbuf_put(j, ",\"sizes\":[", 10);
    for (int i = 0; i < ns && i < count; i++) {
        const ns_trial_row *t = row_of(r, have, i);
        ns_jbuf_putf(j, "%s{\"batch\":%d,\"trial\":", i ? "," : "", sizes[i]);
        ns_jbuf_putf(j, t->stage ? "%d" : "null", t->number); /* null: never started */
        ns_jbuf_put(j, ",\"val_loss\":", 12);
        ns_jbuf_num(j, loss[i]);
        ns_jbuf_put(j, ",\"samples_per_s\":", 17);
        ns_jbuf_num(j, t->stage ? trial_speed(s, t->number) : NAN);
        ns_jbuf_putf(j, ",\"stable\":%s}", stable[i] ? "true" : "false");
    }
    ns_jbuf_put(j, "]", 1);
    return NS_OK;
}

typedef struct pair_stat {
    int opt, sched;
    int n;                 /* seeds with a finite val loss */
    double mean, sd;
    const char *excluded;  /* why the pair is out, or NULL */
    double p;              /* Welch's two-sided p against the leader */
} pair_stat;

static int decide_compare(DECIDE_ARGS)
{
    (void)s, (void)err;
    int np = st->n_optimizers * st->n_schedules;
    pair_stat ps[NS_MAX_PAIRS * NS_MAX_PAIRS];
    for (int q = 0; q < np; q++) {
        pair_stat *p = &ps[q];
        memset(p, 0, sizeof *p);
        p->opt = st->optimizers[q / st->n_schedules];
        p->sched = st->schedules[q % st->n_schedules];
        double sum = 0, sum2 = 0;
        for (long i = (long)q * st->seeds; i < (long)(q + 1) * st->seeds && i < count; i++) {
            const ns_trial_row *t = row_of(r, have, i);
            double v;
            /* the gravest reason over the seeds: failed, then diverged, then unstable */
            static const char *const why[] = {
                "failed", "diverged", "unstable (oscillating, loss spikes or exploding gradients)"};
            int grave = t->state == NS_TRIAL_FAILED ? 0
                        : t->state == NS_TRIAL_DIVERGED ||
                                  (t->health_flags > 0 && (t->health_flags & NS_HEALTH_DIVERGED)) ? 1
                        : t->health_flags > 0 && (t->health_flags & (NS_HEALTH_OSCILLATING |
                                                                     NS_HEALTH_LOSS_SPIKES |
                                                                     NS_HEALTH_EXPLODING)) ? 2
                        : 3;
            if (grave < 3 && (!p->excluded || grave < (p->excluded == why[0] ? 0 : p->excluded == why[1] ? 1 : 2)))
                p->excluded = why[grave];
            if (t->state == NS_TRIAL_COMPLETE && ns_json_get_num(t->result, "val_loss", &v) && isfinite(v)) {
                sum += v;
                sum2 += v * v;
                p->n++;
            }
        }
        if (!p->excluded && p->n == 0)
            p->excluded = "no finite validation loss";
        p->mean = p->n ? sum / p->n : NAN;
        p->sd = p->n > 1 ? sqrt(fmax(0, (sum2 - sum * sum / p->n) / (p->n - 1))) : 0;
    }
    /* ranking: lowest mean val loss first among the pairs not excluded (ties: list order) */
    int order[NS_MAX_PAIRS * NS_MAX_PAIRS], no = 0;
    for (int q = 0; q < np; q++)
        if (!ps[q].excluded)
            order[no++] = q;
    for (int a = 1; a < no; a++)
        for (int b = a; b > 0 && ps[order[b]].mean < ps[order[b - 1]].mean; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    for (int a = 0; a < no; a++)
        ps[order[a]].p = a == 0 ? 1.0
                                : ns_welch_p(ps[order[a]].mean, ps[order[a]].sd, ps[order[a]].n,
                                             ps[order[0]].mean, ps[order[0]].sd, ps[order[0]].n);
    if (no > 0)
        ns_jbuf_putf(j, "\"leader\":\"%s/%s\"", ns_opt_kind_name((ns_opt_kind)ps[order[0]].opt),
                     ns_sched_kind_name((ns_sched_kind)ps[order[0]].sched));
    else
        ns_jbuf_put(j, "\"leader\":null", 13);
    ns_jbuf_put(j, ",\"shortlist\":[", 14);
    for (int a = 0; a < no && a < st->shortlist; a++)
        ns_jbuf_putf(j, "%s\"%s/%s\"", a ? "," : "", ns_opt_kind_name((ns_opt_kind)ps[order[a]].opt),
                     ns_sched_kind_name((ns_sched_kind)ps[order[a]].sched));
    /* separated: the runner-up's mean is worse than the leader's beyond chance (Welch);
     * otherwise later stages search the short-list instead of taking the leader */
    int separated = no < 2 || ps[order[1]].p < NS_COMPARE_ALPHA;
    ns_jbuf_putf(j, "],\"separated\":%s,\"seeds\":%d,\"pairs\":[", separated ? "true" : "false",
                 st->seeds);
    /* ranked pairs first, then the excluded ones in list order */
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int q0 = 0; q0 < (pass ? np : no); q0++) {
            int q = pass ? q0 : order[q0];
            const pair_stat *p = &ps[q];
            if (pass && !p->excluded)
                continue;
            ns_jbuf_putf(j, "%s{\"pair\":\"%s/%s\",\"n\":%d,\"mean_val_loss\":", k++ ? "," : "",
                         ns_opt_kind_name((ns_opt_kind)p->opt), ns_sched_kind_name((ns_sched_kind)p->sched),
                         p->n);
            ns_jbuf_num(j, p->mean);
            double half = ns_ci95_half(p->sd, p->n);
            ns_jbuf_put(j, ",\"ci95\":[", 9);
            ns_jbuf_num(j, p->mean - half);
            ns_jbuf_put(j, ",", 1);
            ns_jbuf_num(j, p->mean + half);
            ns_jbuf_put(j, "],\"p_vs_leader\":", 16);
            ns_jbuf_num(j, p->excluded ? NAN : p->p);
            if (p->excluded)
                ns_jbuf_putf(j, ",\"excluded\":\"%s\"}", p->excluded);
            else
                ns_jbuf_put(j, ",\"excluded\":null}", 17);
        }
    ns_jbuf_put(j, "]", 1);
    return NS_OK;
}

static int decide_final(DECIDE_ARGS)
{
    (void)st, (void)count;
    if (have < 1 || !r[0].stage) {
        ns_jbuf_put(j, "\"trial\":null", 12);
        return NS_OK;
    }
    ns_jbuf_putf(j, "\"trial\":%d,\"state\":\"%s\",\"val_metric\":", r[0].number,
                 ns_trial_state_name(r[0].state));
    ns_jbuf_num(j, r[0].val_metric);
    double v;
    if (ns_json_get_num(r[0].result, "val_loss", &v))
        ns_jbuf_putf(j, ",\"val_loss\":%.9g", v);
    if (s->folds.n && r[0].state == NS_TRIAL_COMPLETE) {
        /* cross-validated: the final model is the refit or the fold ensemble */
        ns_final_result fin;
        int rc = ns_final_model(s, r[0].number, r[0].result, NULL, &fin, err);
        if (rc)
            return rc;
        ns_jbuf_put(j, ",\"test_loss\":", 13);
        ns_jbuf_num(j, fin.test_loss);
        ns_jbuf_put(j, s->data.task == NS_TASK_CLASSIFY ? ",\"test_acc\":" : ",\"test_rmse\":", 12);
        ns_jbuf_num(j, s->data.task == NS_TASK_CLASSIFY ? fin.test_acc : fin.test_rmse);
        ns_final_json(j, r[0].number, &fin);
    } else {
        static const char *const keys[] = {"test_loss", "test_acc", "test_rmse"};
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            if (ns_json_get_num(r[0].result, keys[k], &v))
                ns_jbuf_putf(j, ",\"%s\":%.9g", keys[k], v);
    }
    ns_jbuf_putf(j, ",\"healthy\":%s", healthy(&r[0]) ? "true" : "false");
    return NS_OK;
}

static int decide_select(DECIDE_ARGS)
{
    (void)r, (void)have, (void)count;
    return ns_select_decide(s, st, j, err);
}

#undef DECIDE_ARGS

/* ---- the stage kinds ----------------------------------------------------------------------- */

/* What each stage kind does, in ns_stage_kind order: how many trials it runs, the plan of
 * each and the decision it draws from their results (what later stages take from that
 * decision: absorb.c). Its name and options are config_search.c's table of kinds (parsing
 * sits below the stages). */
typedef struct stage_ops {
    ns_stage_kind kind;
    long (*count)(const ns_search *s, const ns_stage_cfg *st);
    int (*plan)(ns_search *s, const ns_stage_cfg *st, long first, long i, ns_trial_plan *p,
                ns_err *err);                            /* NULL: it trains nothing */
    int (*decide)(ns_search *s, const ns_stage_cfg *st, const ns_trial_row *r, long have,
                  long count, ns_jbuf *j, ns_err *err);
} stage_ops;

static const stage_ops stage_kinds[] = {
    {NS_STAGE_RANDOM, count_trials, plan_random, decide_summary},
    {NS_STAGE_LR_RANGE, count_lr_range, plan_lr_range, decide_lr_range},
    {NS_STAGE_BATCH, count_batch, plan_batch, decide_batch},
    {NS_STAGE_COMPARE, count_compare, plan_compare, decide_compare},
    {NS_STAGE_FINAL, count_one, plan_final, decide_final},
    {NS_STAGE_BAYES, count_bayes, plan_bayes, decide_summary},
    {NS_STAGE_SELECT, count_none, NULL, decide_select},
};
_Static_assert(sizeof stage_kinds / sizeof stage_kinds[0] == NS_STAGE_SELECT + 1,
               "one stage_kinds row per ns_stage_kind");

static const stage_ops *ops_of(const ns_stage_cfg *st) { return &stage_kinds[st->kind]; }

long ns_stage_trial_count(const ns_search *s, const ns_stage_cfg *st)
{
    return ops_of(st)->count(s, st);
}

int ns_stage_plan(ns_search *s, const ns_stage_cfg *st, long first, long i, ns_trial_plan *p,
                  ns_err *err)
{
    memset(p, 0, sizeof *p);
    const stage_ops *k = ops_of(st);
    int rc = k->plan ? k->plan(s, st, first, i, p, err) : NS_OK;
    if (!rc && p->bad)
        rc = ns_err_set(err, NS_ERUNTIME, "trial %ld: the plan cannot hold its setting of %s (over %zu "
                        "characters or %d keys)", first + i, p->bad, sizeof p->value[0] - 1,
                        NS_PLAN_MAX_SETTINGS);
    return rc;
}

int ns_stage_decide(ns_search *s, const ns_stage_cfg *st, long first, long count, char **decision,
                 ns_err *err)
{
    *decision = NULL;
    ns_trial_row *r = NULL;
    long have = 0;
    int rc = stage_rows(s, first, count, &r, &have, err);
    if (rc)
        return rc;
    /* written into a generous buffer; only a decision that does not fit is made again,
     * into one of its size (select and batch_sweep measure things: once is the rule) */
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    ns_jbuf j = {0};
    if (!buf)
        rc = ns_err_set(err, NS_ERUNTIME, "out of memory");
    for (int pass = 0; pass < 2 && !rc; pass++) {
        j = (ns_jbuf){buf, cap, 0};
        ns_jbuf_put(&j, "{", 1);
        rc = ops_of(st)->decide(s, st, r, have, count, &j, err);
        ns_jbuf_put(&j, "}", 1);
        if (rc || j.len < cap)
            break;
        /* slack: measured evidence (samples/s) may print a few characters longer */
        char *bigger = pass == 0 ? realloc(buf, j.len + 4096) : NULL;
        if (!bigger) {
            rc = ns_err_set(err, NS_ERUNTIME, "out of memory writing a stage decision");
            break;
        }
        buf = bigger;
        cap = j.len + 4096;
    }
    ns_trial_rows_free(r, (int)have);
    if (rc) {
        free(buf);
        return rc;
    }
    ns_jbuf_finish(&j);
    *decision = buf;
    return NS_OK;
}
