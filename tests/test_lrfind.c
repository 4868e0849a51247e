/* test_lrfind.c — the LR range test: suggestions on hand-made curves, the bounds rule,
 * determinism of the sweep, the blow-up stop, and the check that matters: on a task made
 * here, the default rule's suggestion lands within 3x of the best LR that a fine grid of
 * short trainings finds, for SGD with momentum and for Adam. Also the search layer's
 * ns_lrfind_config and CSV writer on the tiny config. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend.h"
#include "engine/rng.h"
#include "engine/train/lrfind.h"
#include "engine/train/train.h"
#include "model/mlp.h"
#include "search/config/config.h"
#include "search/stages/lrfind.h"
#include "search/stages/pipeline.h"
#include "tests/testutil.h"

/* ---- suggestions on hand-made curves ------------------------------------------------ */

/* A curve of n points over lr 1e-6..1e1 with smoothed = f(log10 lr). */
static void make_curve(ns_lrfind_curve *c, int n, double (*f)(double), int blew_up)
{
    c->n = n;
    c->lr = malloc(3 * (size_t)n * sizeof *c->lr);
    c->loss = c->lr + n;
    c->smoothed = c->lr + 2 * n;
    c->blew_up = blew_up;
    for (int i = 0; i < n; i++) {
        double u = -6.0 + 7.0 * i / (n - 1);
        c->lr[i] = pow(10.0, u);
        c->loss[i] = c->smoothed[i] = f(u);
    }
}

/* Flat at 2 until 1e-4, a decline steepest at 1e-3 (tanh), flat at 0.2 from about 1e-2,
 * its minimum at 1e-1 (a shallow dip), then a sharp rise. */
static double shaped(double u)
{
    double y = 1.1 - 0.9 * tanh(2.5 * (u + 3.0));
    y -= 0.05 * exp(-(u + 1.0) * (u + 1.0) / 0.1);
    if (u > -0.5)
        y += 4.0 * (u + 0.5) * (u + 0.5);
    return y;
}

static double ratio_off(double a, double b) { return a > b ? a / b : b / a; }

/* The n recorded values of the three arrays are the same bits. */
static int same_curve(const ns_lrfind_curve *a, const ns_lrfind_curve *b)
{
    size_t sz = (size_t)a->n * sizeof(double);
    return a->n == b->n && a->blew_up == b->blew_up && !memcmp(a->lr, b->lr, sz) &&
           !memcmp(a->loss, b->loss, sz) && !memcmp(a->smoothed, b->smoothed, sz);
}

Test(lrfind, suggestions_on_a_known_curve)
{
    ns_lrfind_curve c;
    make_curve(&c, 141, shaped, 0); /* 20 points per decade */
    ns_lrfind_suggestion s;
    cr_assert_eq(ns_lrfind_suggest(&c, &s), NS_OK);
    cr_assert(s.ok);
    cr_assert(ratio_off(s.steepest, 1e-3) < 1.13, "steepest %g, expected 1e-3", s.steepest);
    cr_assert(ratio_off(s.min_loss_lr, 1e-1) < 1.13, "minimum at %g, expected 1e-1", s.min_loss_lr);
    cr_assert(ratio_off(s.min10, 1e-2) < 1.13, "min10 %g", s.min10);
    /* the longest decrease runs from the first usable point (lr 10^-5.3, index 14) to the
     * minimum (1e-1, index 100): 3/4 of the way is index 78, lr 10^-2.1 */
    cr_assert(ratio_off(s.valley, pow(10, -2.1)) < 1.13, "valley %g", s.valley);
    cr_assert_eq(ns_lrfind_pick(&s, NS_LR_VALLEY), s.valley);
    cr_assert_eq(ns_lrfind_pick(&s, NS_LR_STEEPEST), s.steepest);
    cr_assert_eq(ns_lrfind_pick(&s, NS_LR_MIN10), s.min10);
    ns_lrfind_curve_free(&c);
}

static double bumpy(double u)
{
    /* a decrease with a small bump halfway: the valley steps over it */
    double y = 2.0 - 0.3 * (u + 6.0);
    if (u > -3.6 && u < -3.4)
        y += 0.05;
    return y;
}

Test(lrfind, valley_steps_over_a_bump_and_tail_is_skipped)
{
    ns_lrfind_curve c;
    make_curve(&c, 71, bumpy, 1);
    /* the last 5 points of a blown-up sweep are the blow-up: make them huge, and the
     * minimum must still come from before them */
    for (int i = 66; i < 71; i++)
        c.smoothed[i] = i == 66 ? -1.0 : 100.0;
    ns_lrfind_suggestion s;
    cr_assert_eq(ns_lrfind_suggest(&c, &s), NS_OK);
    /* usable: points 7..65; the decrease spans all of them (the bump is stepped over) */
    double mid = c.lr[7 + (int)(0.75 * (65 - 7))];
    cr_assert(ratio_off(s.valley, mid) < 1.5, "valley %g, expected about %g", s.valley, mid);
    cr_assert_eq(s.min_loss_lr, c.lr[65]);
    ns_lrfind_curve_free(&c);
}

Test(lrfind, too_short_a_curve_gives_no_suggestion)
{
    ns_lrfind_curve c;
    make_curve(&c, 9, bumpy, 1);
    ns_lrfind_suggestion s;
    cr_assert_eq(ns_lrfind_suggest(&c, &s), NS_EINPUT);
    cr_assert(!s.ok);
    cr_assert(isnan(ns_lrfind_pick(&s, NS_LR_VALLEY)));
    ns_lrfind_curve_free(&c);
}

Test(lrfind, rule_names_round_trip)
{
    ns_lr_rule r;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ns_lr_rule_parse(ns_lr_rule_name((ns_lr_rule)i), &r), 0);
        cr_assert_eq((int)r, i);
    }
    cr_assert_eq(ns_lr_rule_parse("fastest", &r), -1);
    cr_assert_eq(NS_LR_RULE_DEFAULT, NS_LR_VALLEY);
}

Test(lrfind, bounds_rule)
{
    double c, lo, hi, sp;
    double p3[] = {2e-3, 1e-3, 4e-3};
    ns_lrfind_bounds(p3, 3, &c, &lo, &hi, &sp);
    cr_assert_eq(c, 2e-3);
    cr_assert(fabs(sp - 4.0) < 1e-12);
    cr_assert(fabs(lo - 1e-3 / 3) < 1e-15 && fabs(hi - 1.2e-2) < 1e-15, "%g %g", lo, hi);
    double p2[] = {1e-2, NAN, 1e-4, -1};
    ns_lrfind_bounds(p2, 4, &c, &lo, &hi, &sp);
    cr_assert(fabs(c - 1e-3) < 1e-15, "even count: geometric mean of the middle two, %g", c);
    cr_assert(fabs(sp - 100) < 1e-9);
    double none[] = {NAN};
    ns_lrfind_bounds(none, 1, &c, &lo, &hi, &sp);
    cr_assert(isnan(c) && isnan(lo) && isnan(hi) && isnan(sp));
}

/* ---- sweeps on a generated task ----------------------------------------------------- */

/* Four overlapping Gaussian classes in 8 dimensions with a nonlinear boundary part:
 * learnable, but the loss stays well above zero, so short trainings differ by LR. */
static void make_task(ns_dataset *ds, long n, uint64_t seed)
{
    const int d = 8, K = 4;
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->d = d;
    ds->task = NS_TASK_CLASSIFY;
    ds->n_classes = K;
    ds->x = malloc((size_t)n * d * sizeof(float));
    ds->y = malloc((size_t)n * sizeof(int32_t));
    ns_rng r;
    ns_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) {
        float *x = ds->x + i * d;
        for (int j = 0; j < d; j++)
            x[j] = (float)ns_rng_normal(&r);
        double s0 = x[0] + 0.5 * x[1] * x[2], s1 = x[3] - x[4] * x[4] + 1.0;
        s0 += 0.6 * ns_rng_normal(&r);
        s1 += 0.6 * ns_rng_normal(&r);
        ds->y[i] = (s0 > 0) + 2 * (s1 > 0);
    }
}

typedef struct model {
    ns_backend *be;
    ns_mlp *m;
} model;

static void model_make(model *md, int n_in, int n_out, uint64_t init_seed)
{
    ns_err err = {0};
    md->be = ns_backend_cpu_alloc(1, &err);
    cr_assert(md->be, "%s", err.msg);
    ns_mlp_spec spec = {.n_in = n_in, .n_out = n_out, .n_hidden = 1, .hidden = {32},
                        .act = NS_ACT_RELU};
    md->m = ns_mlp_alloc(&spec, md->be, 1024, &err);
    cr_assert(md->m, "%s", err.msg);
    ns_rng rng;
    ns_rng_seed(&rng, init_seed);
    cr_assert_eq(ns_mlp_init_params(md->m, &rng, &err), NS_OK);
}

static void model_free(model *md)
{
    ns_mlp_free(md->m);
    ns_backend_free(md->be);
}

#define BATCH 32

/* Final validation loss of a short training (fixed step budget, constant LR). */
static double short_training(const ns_dataset *tr, const ns_dataset *va, ns_opt_kind opt,
                             double lr, long steps, uint64_t seed)
{
    model md;
    model_make(&md, tr->d, tr->n_classes, ns_seed_derive(seed, 1, 0));
    ns_train_spec s;
    ns_train_spec_default(&s);
    s.budget = NS_BUDGET_STEPS;
    s.steps = steps;
    s.batch_size = BATCH;
    s.eval_batch = 1024;
    s.lr = lr;
    s.seed = ns_seed_derive(seed, 2, 0);
    s.div_factor = 0; /* let it go where it goes; a NaN end counts as infinitely bad */
    ns_optim_spec_default(&s.opt, opt);
    ns_trainer t;
    ns_err err = {0};
    cr_assert_eq(ns_trainer_init(&t, &s, md.be, &md.m->net, tr, NULL, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_trainer_run(&t, 0, NULL, NULL, &err), NS_OK, "%s", err.msg);
    double loss = NAN, acc, rmse;
    cr_assert_eq(ns_trainer_evaluate(&t, va, &loss, &acc, &rmse, NULL, NULL, &err), NS_OK);
    ns_trainer_free(&t);
    model_free(&md);
    return isfinite(loss) ? loss : INFINITY;
}

static void sweep(const ns_dataset *tr, ns_opt_kind opt, uint64_t seed, const ns_lrfind_spec *spec,
                  ns_lrfind_curve *c)
{
    model md;
    model_make(&md, tr->d, tr->n_classes, ns_seed_derive(seed, 1, 0));
    ns_optim_spec os;
    ns_optim_spec_default(&os, opt);
    ns_err err = {0};
    cr_assert_eq(ns_lrfind_run(spec, md.be, &md.m->net, &os, tr, ns_seed_derive(seed, 3, 0), c,
                               &err), NS_OK, "%s", err.msg);
    model_free(&md);
}

static ns_lrfind_spec task_spec(void)
{
    ns_lrfind_spec s;
    ns_lrfind_spec_default(&s);
    s.batch_size = BATCH;
    return s;
}

Test(lrfind, same_seed_same_curve_bits)
{
    ns_dataset tr;
    make_task(&tr, 512, 11);
    ns_lrfind_spec spec = task_spec();
    ns_lrfind_curve a, b, c;
    sweep(&tr, NS_OPT_ADAM, 5, &spec, &a);
    sweep(&tr, NS_OPT_ADAM, 5, &spec, &b);
    sweep(&tr, NS_OPT_ADAM, 6, &spec, &c);
    cr_assert(a.n > 20);
    cr_assert(same_curve(&a, &b));
    cr_assert(c.n != a.n || memcmp(a.loss, c.loss, (size_t)a.n * sizeof(double)),
              "another seed gives another curve");
    /* the LRs follow the exponential schedule from start to (at most) end */
    cr_assert_eq(a.lr[0], spec.lr_start);
    for (int i = 1; i < a.n; i++) {
        double want = spec.lr_start * pow(spec.lr_end / spec.lr_start, i / (double)(spec.steps - 1));
        cr_assert(fabs(a.lr[i] - want) <= 1e-12 * want, "lr[%d] %g vs %g", i, a.lr[i], want);
        cr_assert(isfinite(a.loss[i]) && isfinite(a.smoothed[i]));
    }
    /* the smoothed value is the debiased EMA of the losses */
    double ema = 0;
    for (int i = 0; i < a.n; i++) {
        ema = spec.beta * ema + (1 - spec.beta) * a.loss[i];
        cr_assert(fabs(a.smoothed[i] - ema / (1 - pow(spec.beta, i + 1))) < 1e-12 * a.smoothed[i]);
    }
    ns_lrfind_curve_free(&a);
    ns_lrfind_curve_free(&b);
    ns_lrfind_curve_free(&c);
    ns_dataset_free(&tr);
}

Test(lrfind, blow_up_stops_the_sweep_early)
{
    ns_dataset tr;
    make_task(&tr, 512, 11);
    ns_lrfind_spec spec = task_spec();
    spec.lr_end = 1e4; /* SGD at LR 1e4 explodes long before the end */
    ns_lrfind_curve c;
    sweep(&tr, NS_OPT_SGD, 1, &spec, &c);
    cr_assert(c.blew_up);
    cr_assert(c.n < spec.steps, "stopped at step %d of %d", c.n, spec.steps);
    double best = INFINITY;
    for (int i = 0; i < c.n; i++) {
        cr_assert(isfinite(c.smoothed[i]));
        if (i < c.n - 1)
            best = fmin(best, c.smoothed[i]);
    }
    /* either the last recorded step tripped the 4x rule, or the next loss was not finite */
    cr_assert(c.smoothed[c.n - 1] > spec.stop_factor * fmin(best, c.smoothed[c.n - 1]) ||
                  c.n < spec.steps,
              "last %g, best %g", c.smoothed[c.n - 1], best);
    /* without the 4x rule only a non-finite loss stops it, later or at the end */
    ns_lrfind_curve all;
    spec.stop_factor = 0;
    sweep(&tr, NS_OPT_SGD, 1, &spec, &all);
    cr_assert(all.n >= c.n);
    ns_lrfind_curve_free(&all);
    ns_lrfind_curve_free(&c);
    ns_dataset_free(&tr);
}

Test(lrfind, bad_spec_is_an_input_error)
{
    ns_dataset tr;
    make_task(&tr, 64, 1);
    model md;
    model_make(&md, tr.d, tr.n_classes, 1);
    ns_optim_spec os;
    ns_optim_spec_default(&os, NS_OPT_ADAM);
    ns_lrfind_curve c;
    ns_err err = {0};
    ns_lrfind_spec s = task_spec();
    s.lr_end = s.lr_start;
    cr_assert_eq(ns_lrfind_run(&s, md.be, &md.m->net, &os, &tr, 1, &c, &err), NS_EINPUT);
    cr_assert(strstr(err.msg, "end LR"), "%s", err.msg);
    cr_assert_eq(c.n, 0);
    s = task_spec();
    s.steps = 3;
    cr_assert_eq(ns_lrfind_run(&s, md.be, &md.m->net, &os, &tr, 1, &c, &err), NS_EINPUT);
    s = task_spec();
    s.batch_size = 4096;
    cr_assert_eq(ns_lrfind_run(&s, md.be, &md.m->net, &os, &tr, 1, &c, &err), NS_EINPUT);
    /* more rows than the set has: clamped */
    s = task_spec();
    s.batch_size = 1000;
    cr_assert_eq(ns_lrfind_run(&s, md.be, &md.m->net, &os, &tr, 1, &c, &err), NS_OK, "%s", err.msg);
    ns_lrfind_curve_free(&c);
    model_free(&md);
    ns_dataset_free(&tr);
}

/* ---- the suggestion against a grid of short trainings ------------------------------- */

#define GRID_N 25
#define GRID_STEPS 300
#define SEEDS 3
#define GRID_SEEDS 4

/* The best LR of a grid of GRID_N LRs log-spaced over 1e-4..1, each a GRID_STEPS-step
 * training at constant LR (the LR range test looks for a constant LR), judged by the final
 * validation loss on 2048 held-out rows: what a search would judge a trial by, and on this
 * much data it is not noisy. Each grid point is the mean over GRID_SEEDS seeds: the loss is
 * flat near the best (within 2% over a factor 2 of LR), so one unlucky initialisation
 * would otherwise move the best. */
static double grid_best(const ns_dataset *tr, const ns_dataset *va, ns_opt_kind opt)
{
    double best = INFINITY, best_lr = NAN;
    for (int g = 0; g < GRID_N; g++) {
        double lr = pow(10.0, -4.0 + 4.0 * g / (GRID_N - 1));
        double v = 0;
        for (int k = 0; k < GRID_SEEDS; k++)
            v += short_training(tr, va, opt, lr, GRID_STEPS, 100 + (uint64_t)k) / GRID_SEEDS;
        if (v < best) {
            best = v;
            best_lr = lr;
        }
    }
    return best_lr;
}

static void check_against_grid(ns_opt_kind opt)
{
    ns_dataset tr, va;
    make_task(&tr, 1024, 21);
    make_task(&va, 2048, 22);
    double best = grid_best(&tr, &va, opt);
    ns_lrfind_spec spec = task_spec();
    double picks[3][SEEDS];
    for (int k = 0; k < SEEDS; k++) {
        ns_lrfind_curve c;
        sweep(&tr, opt, 1000 + (uint64_t)k, &spec, &c);
        ns_lrfind_suggestion s;
        cr_assert_eq(ns_lrfind_suggest(&c, &s), NS_OK, "seed %d: %d points", k, c.n);
        for (int r = 0; r < 3; r++)
            picks[r][k] = ns_lrfind_pick(&s, (ns_lr_rule)r);
        ns_lrfind_curve_free(&c);
    }
    double centre[3], lo, hi, sp;
    for (int r = 0; r < 3; r++) {
        ns_lrfind_bounds(picks[r], SEEDS, &centre[r], &lo, &hi, &sp);
        fprintf(stderr, "lrfind %s: grid best %.3g; %-8s suggests %.3g (x%.2f off; seeds %.3g %.3g "
                "%.3g; bounds %.3g..%.3g)\n", ns_opt_kind_name(opt), best,
                ns_lr_rule_name((ns_lr_rule)r), centre[r], ratio_off(centre[r], best),
                picks[r][0], picks[r][1], picks[r][2], lo, hi);
    }
    double sug = centre[NS_LR_RULE_DEFAULT];
    cr_assert(ratio_off(sug, best) <= 3.0, "%s: default rule %s suggests %g, grid best %g",
              ns_opt_kind_name(opt), ns_lr_rule_name(NS_LR_RULE_DEFAULT), sug, best);
    ns_dataset_free(&tr);
    ns_dataset_free(&va);
}

Test(lrfind, suggestion_near_grid_best_sgd, .timeout = 60) { check_against_grid(NS_OPT_SGD); }
Test(lrfind, suggestion_near_grid_best_adam, .timeout = 60) { check_against_grid(NS_OPT_ADAM); }

/* ---- the search layer on the tiny config -------------------------------------------- */

Test(lrfind, config_sweep_and_csv)
{
    ns_config c;
    ns_err err = {0};
    cr_assert_eq(ns_config_load(&c, NS_SOURCE_DIR "/configs/tiny-train.yaml", &err), NS_OK, "%s", err.msg);
    ns_prepared p;
    cr_assert_eq(ns_prepare_data(&p, &c, &err), NS_OK, "%s", err.msg);
    ns_lrfind_spec spec;
    ns_lrfind_spec_default(&spec);
    spec.batch_size = 0; /* the config's 32 */
    spec.steps = 60;
    ns_lrfind_curve a, b;
    cr_assert_eq(ns_lrfind_config(&c, &p, &spec, ns_lrfind_seed(&c, 0), &a, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_lrfind_config(&c, &p, &spec, ns_lrfind_seed(&c, 0), &b, &err), NS_OK, "%s", err.msg);
    cr_assert(a.n > 20);
    cr_assert(same_curve(&a, &b), "a fresh model each call");
    cr_assert_neq(ns_lrfind_seed(&c, 0), ns_lrfind_seed(&c, 1));
    char *dir = tu_temp_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/curve.csv", dir);
    cr_assert_eq(ns_lrfind_write_csv(path, &a, &err), NS_OK, "%s", err.msg);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char line[256];
    cr_assert(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "step,lr,loss,smoothed\n");
    int rows = 0, step;
    double lr, loss, sm;
    while (fscanf(f, "%d,%lf,%lf,%lf\n", &step, &lr, &loss, &sm) == 4) {
        cr_assert_eq(step, rows);
        cr_assert_eq(lr, a.lr[rows]); /* 17 digits read back exactly */
        cr_assert_eq(sm, a.smoothed[rows]);
        rows++;
    }
    fclose(f);
    cr_assert_eq(rows, a.n);
    ns_lrfind_curve two[2] = {a, b};
    cr_assert_eq(ns_lrfind_write_csv_seeds(path, two, 2, &err), NS_OK, "%s", err.msg);
    f = fopen(path, "r");
    cr_assert(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "seed,step,lr,loss,smoothed\n");
    rows = 0;
    while (fgets(line, sizeof line, f))
        rows++;
    fclose(f);
    cr_assert_eq(rows, 2 * a.n);
    /* a folder that does not exist: an error, not a crash */
    cr_assert_eq(ns_lrfind_write_csv("/nonexistent-dir/x.csv", &a, &err), NS_ERUNTIME);
    /* the plot: a header, 15 rows, the axis and its labels; the mark is drawn */
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    ns_lrfind_plot(mf, &a, a.lr[a.n / 2], "test", 60, 15);
    fclose(mf);
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    cr_assert_eq(lines, 18, "%s", buf);
    cr_assert(strchr(buf, '|') && strchr(buf, '*'), "%s", buf);
    free(buf);
    /* every seed's curve: its digit, the suggestion '|' and bounds ':' in their columns,
     * the legend, a tick label per drawn power of ten and both axis titles */
    buf = NULL;
    len = 0;
    mf = open_memstream(&buf, &len);
    double sug = a.lr[a.n / 2], lo = a.lr[a.n / 4], hi = a.lr[3 * a.n / 4];
    ns_lrfind_plot_seeds(mf, two, 2, sug, lo, hi, 60, 15);
    fclose(mf);
    lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    cr_assert_eq(lines, 2 + 1 + 15 + 3, "%s", buf); /* title, legend, "loss", rows, axis */
    cr_assert(strstr(buf, "2 seeds: 0 1"), "%s", buf);
    cr_assert(strstr(buf, "| suggestion") && strstr(buf, ": bounds"), "%s", buf);
    cr_assert(strstr(buf, "learning rate (log scale)") && strstr(buf, "loss\n"), "%s", buf);
    int has0 = 0, has1 = 0, bar_cols = 0;
    char *row = strstr(buf, "loss\n") + 5;
    for (int r = 0; r < 15; r++) {
        char *nl = strchr(row, '\n');
        cr_assert(nl && nl - row == 11 + 60, "row %d: %.*s", r, (int)(nl - row), row);
        for (char *q = row + 11; q < nl; q++) {
            has0 |= *q == '0' || *q == '*';
            has1 |= *q == '1' || *q == '*';
        }
        /* the suggestion's column: log-spaced, so at its place among the 60 */
        int col = (int)lround((log10(sug) - log10(a.lr[0])) / (log10(a.lr[a.n - 1]) - log10(a.lr[0])) * 59);
        bar_cols += row[11 + col] == '|' || isdigit((unsigned char)row[11 + col]) || row[11 + col] == '*' ||
                    row[11 + col] == '^';
        row = nl + 1;
    }
    cr_assert(has0 && has1, "%s", buf);
    cr_assert_eq(bar_cols, 15, "%s", buf);
    cr_assert(strstr(buf, "1e-0") || strstr(buf, "1e+0"), "%s", buf);
    free(buf);
    free(dir);
    ns_lrfind_curve_free(&a);
    ns_lrfind_curve_free(&b);
    ns_prepared_free(&p);
    ns_config_free(&c);
}
