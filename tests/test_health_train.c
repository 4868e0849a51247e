/* test_health_train.c — the health detectors and data checks on real training runs: each
 * one provoked on purpose (LR far too high, a wide net on a tiny set, a deep sigmoid net,
 * batch 1 with a high LR, imbalanced classes, a shifted test set), the same setting made
 * sane not provoking it, the noise of a 60-row validation set not taken for overfitting,
 * and 20 healthy runs over four datasets and five seeds in which no detector fires. The
 * synthetic-curve unit tests of each rule are in test_health.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data/datacheck.h"
#include "engine/rng.h"
#include "engine/train/health.h"
#include "search/config/config.h"
#include "search/stages/pipeline.h"
#include "tests/testutil.h"

/* ---- data ----------------------------------------------------------------------------- */

/* Gaussian blobs: class centres N(0, sep^2) per feature from centre_seed, rows N(centre, 1)
 * from seed; K = 0 is a regression target (a linear form plus a sine and noise). */
typedef struct gen {
    long n;
    int d, K;
    double sep;
    const double *prior;   /* (K) class probabilities; NULL: uniform */
    double flip;           /* share of labels redrawn at random */
    uint64_t centre_seed, seed;
    double shift;          /* added to features 0, 1 and 2 of every row (a shifted set) */
} gen;

static char *tmp;

static char *write_csv(const char *name, const gen *g)
{
    size_t len = strlen(tmp) + strlen(name) + 2;
    char *path = malloc(len);
    snprintf(path, len, "%s/%s", tmp, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    ns_rng cr, r;
    ns_rng_seed(&cr, g->centre_seed);
    ns_rng_seed(&r, g->seed);
    int K = g->K > 0 ? g->K : 1;
    double *centre = malloc((size_t)K * g->d * sizeof *centre), *w = malloc((size_t)g->d * sizeof *w);
    for (int i = 0; i < K * g->d; i++)
        centre[i] = g->sep * ns_rng_normal(&cr);
    for (int j = 0; j < g->d; j++)
        w[j] = ns_rng_normal(&cr);
    for (int j = 0; j < g->d; j++)
        fprintf(f, "f%d,", j);
    fprintf(f, "label\n");
    for (long i = 0; i < g->n; i++) {
        int y = 0;
        if (g->K > 0) {
            double u = ns_rng_uniform(&r), acc = 0;
            y = g->K - 1;
            for (int k = 0; k < g->K; k++) {
                acc += g->prior ? g->prior[k] : 1.0 / g->K;
                if (u < acc) {
                    y = k;
                    break;
                }
            }
        }
        double t = 0;
        for (int j = 0; j < g->d; j++) {
            double x = centre[(size_t)y * g->d + j] + ns_rng_normal(&r) + (j < 3 ? g->shift : 0);
            t += w[j] * x;
            if (j == 0)
                t += 0.5 * sin(2 * x);
            fprintf(f, "%.6f,", x);
        }
        if (g->K > 0) {
            if (g->flip > 0 && ns_rng_uniform(&r) < g->flip)
                y = (int)ns_rng_below(&r, (uint64_t)g->K);
            fprintf(f, "%d\n", y);
        } else {
            fprintf(f, "%.6f\n", t + 0.3 * ns_rng_normal(&r));
        }
    }
    free(centre);
    free(w);
    cr_assert_eq(fclose(f), 0);
    return path;
}

static void setup(void) { tmp = tu_temp_dir(); }
static void teardown(void) { free(tmp); }

/* ---- one run --------------------------------------------------------------------------- */

#define MAX_RECS 512

typedef struct run {
    ns_run_result res;
    ns_epoch_record recs[MAX_RECS];
    int n;
    ns_finding f[NS_HEALTH_MAX_FINDINGS];
    int nf;
    ns_data_report dr;
    ns_class_weights cw; /* as applied */
} run;

static int keep(void *user, const ns_epoch_record *r)
{
    run *o = user;
    cr_assert_lt(o->n, MAX_RECS);
    o->recs[o->n++] = *r;
    return 0;
}

/* Trains the config text (printf-style) and judges it as the driver does. */
static void train(run *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void train(run *o, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memset(o, 0, sizeof *o);
    ns_config c;
    ns_prepared p;
    ns_err err = {0};
    cr_assert_eq(ns_config_parse(&c, "health-test.yaml", text, strlen(text), &err), NS_OK,
                 "%s\n%s", err.msg, text);
    cr_assert_eq(ns_prepare_data(&p, &c, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_pipeline_data_check(&c, &p, &o->dr, &err), NS_OK, "%s", err.msg);
    o->cw = ns_pipeline_class_weights(&c, &p);
    cr_assert_eq(ns_run_training(&c, &p, keep, o, NULL, NULL, &o->res, &err), NS_OK, "%s",
                 err.msg);
    ns_health_spec hs = c.health;
    hs.baseline_loss = ns_pipeline_baseline_loss(&c, &p);
    ns_pipeline_health_noise(&hs, &p);
    o->nf = ns_health_check(&hs, o->recs, o->n, o->res.best_epoch, o->f, NS_HEALTH_MAX_FINDINGS);
    ns_prepared_free(&p);
    ns_config_free(&c);
}

static void run_free(run *o) { ns_data_report_free(&o->dr); }

static const ns_finding *has(const run *o, const char *code)
{
    for (int i = 0; i < o->nf && i < NS_HEALTH_MAX_FINDINGS; i++)
        if (!strcmp(o->f[i].code, code))
            return &o->f[i];
    return NULL;
}

static const ns_finding *has_data(const run *o, const char *code)
{
    for (int i = 0; i < o->dr.n_findings; i++)
        if (!strcmp(o->dr.findings[i].code, code))
            return &o->dr.findings[i];
    return NULL;
}

/* All findings, one per line, for failure messages. */
static const char *listing(const run *o)
{
    static char buf[4096];
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < o->nf && at < sizeof buf; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "  %s: %s\n", o->f[i].code, o->f[i].message);
    for (int i = 0; i < o->dr.n_findings && at < sizeof buf; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "  data %s: %s\n", o->dr.findings[i].code,
                               o->dr.findings[i].message);
    return at ? buf : "  (none)\n";
}

TestSuite(health_train, .init = setup, .fini = teardown);

/* ---- each detector, provoked and not ---------------------------------------------------- */

Test(health_train, lr_far_too_high_diverges_and_stops_at_once)
{
    gen g = {.n = 2000, .d = 8, .K = 3, .sep = 2.0, .centre_seed = 1, .seed = 2};
    char *data = write_csv("blobs.csv", &g);
    run o;
    train(&o, "data: {train: %s}\nmodel: {hidden: [32]}\n"
              "train: {epochs: 20, optimizer: sgd, lr: 50, batch_size: 32}\n", data);
    cr_assert(o.res.diverged, "%s", listing(&o));
    cr_assert_lt(o.res.epochs, 20, "a diverged run stops at once");
    const ns_finding *f = has(&o, "diverged");
    cr_assert(f, "%s", listing(&o));
    cr_assert_eq(f->mistake, 2);
    run_free(&o);

    train(&o, "data: {train: %s}\nmodel: {hidden: [32]}\n"
              "train: {epochs: 20, optimizer: sgd, lr: 0.05, batch_size: 32}\n", data);
    cr_assert(!o.res.diverged && !has(&o, "diverged") && !has(&o, "exploding_gradients"), "%s",
              listing(&o));
    cr_assert_eq(o.res.epochs, 20);
    run_free(&o);
    free(data);
}

Test(health_train, wide_net_on_a_tiny_set_overfits)
{
    gen g = {.n = 60, .d = 20, .K = 2, .sep = 0.4, .flip = 0.2, .centre_seed = 3, .seed = 4};
    char *data = write_csv("tiny.csv", &g);
    run o;
    train(&o, "data: {train: %s, val_fraction: 0.3}\nmodel: {hidden: [512, 512]}\n"
              "train: {epochs: 150, optimizer: adam, lr: 0.001, batch_size: 16}\n", data);
    const ns_finding *f = has(&o, "overfitting");
    cr_assert(f, "%s", listing(&o));
    cr_assert_eq(f->mistake, 3);
    run_free(&o);
    free(data);

    /* the same net with a hundred times the data, early stopping and weight decay */
    g.n = 6000;
    g.flip = 0;
    g.sep = 1.0;
    data = write_csv("more.csv", &g);
    train(&o, "data: {train: %s, val_fraction: 0.3}\nmodel: {hidden: [512, 512]}\n"
              "train: {epochs: 30, optimizer: adamw, weight_decay: 0.01, lr: 0.001, "
              "batch_size: 64, patience: 3}\n", data);
    cr_assert(!has(&o, "overfitting") && !has(&o, "generalisation_gap"), "%s", listing(&o));
    run_free(&o);
    free(data);
}

Test(health_train, deep_sigmoid_net_with_he_init_has_vanishing_gradients)
{
    gen g = {.n = 2000, .d = 10, .K = 2, .sep = 1.0, .centre_seed = 5, .seed = 6};
    char *data = write_csv("deep.csv", &g);
    run o;
    train(&o, "data: {train: %s}\nmodel: {hidden: [32, 32, 32, 32, 32, 32, 32, 32, 32, 32], "
              "activation: sigmoid, init: he}\n"
              "train: {epochs: 10, optimizer: sgd, lr: 0.01, batch_size: 32}\n", data);
    const ns_finding *f = has(&o, "vanishing_gradients");
    cr_assert(f, "%s", listing(&o));
    cr_assert_eq(f->mistake, 2);
    run_free(&o);

    /* two ReLU layers: the first layer's gradient is of the last one's order */
    train(&o, "data: {train: %s}\nmodel: {hidden: [32, 32], activation: relu, init: he}\n"
              "train: {epochs: 10, optimizer: sgd, lr: 0.01, batch_size: 32}\n", data);
    cr_assert(!has(&o, "vanishing_gradients") && !has(&o, "exploding_gradients"), "%s", listing(&o));
    run_free(&o);
    free(data);
}

Test(health_train, batch_1_with_a_high_lr_oscillates)
{
    /* overlapping classes: the loss stays well above zero, where swings show */
    gen g = {.n = 2000, .d = 8, .K = 3, .sep = 0.7, .flip = 0.1, .centre_seed = 1, .seed = 2};
    char *data = write_csv("overlap.csv", &g);
    run o;
    train(&o, "data: {train: %s}\nmodel: {hidden: [32]}\n"
              "train: {epochs: 20, optimizer: sgd, lr: 0.02, batch_size: 1}\n", data);
    const ns_finding *f = has(&o, "oscillating");
    cr_assert(f, "%s", listing(&o));
    cr_assert_eq(f->mistake, 2);
    cr_assert(!o.res.diverged, "oscillating, not diverged: %s", listing(&o));
    run_free(&o);

    train(&o, "data: {train: %s}\nmodel: {hidden: [32]}\n"
              "train: {epochs: 20, optimizer: sgd, lr: 0.02, batch_size: 64}\n", data);
    cr_assert(!has(&o, "oscillating") && !has(&o, "loss_spikes"), "%s", listing(&o));
    run_free(&o);
    free(data);
}

/* 300 rows, 60 of them validating: one row is 1.7 points of accuracy, and the validation
 * loss moves by chance by about 1 / sqrt(60) = 13% of itself. A small net with weight decay
 * drifts up by ~10-25% in val loss after its best epoch; the rule without noise called
 * that overfitting in most seeds; judged against the noise of 60 rows (as the driver and
 * `nnsearch train` judge) it is healthy. A wide net trained long on the same rows still
 * overfits, clearly. */
Test(health_train, small_validation_set_noise_is_not_a_finding)
{
    gen g = {.n = 300, .d = 8, .K = 3, .sep = 1.0, .flip = 0.1, .centre_seed = 21, .seed = 22};
    char *data = write_csv("small.csv", &g);
    static const char small_net[] =
        "data: {train: %s, val_fraction: 0.2}\nmodel: {hidden: [16]}\n"
        "train: {epochs: 40, optimizer: adam, lr: 0.01, batch_size: 16, schedule: cosine, "
        "weight_decay: 0.001, seed: %d}\nhealth: {noise_k: %g}\n";
    int flagged_without_noise = 0;
    for (int seed = 1; seed <= 4; seed++) {
        run o;
        train(&o, small_net, data, seed, 0.0);
        cr_assert_eq(o.res.epochs, 40);
        flagged_without_noise += has(&o, "overfitting") != NULL;
        run_free(&o);
        train(&o, small_net, data, seed, 2.0); /* the default */
        cr_assert(!has(&o, "oscillating") && !has(&o, "overfitting") &&
                  !has(&o, "generalisation_gap"), "seed %d:\n%s", seed, listing(&o));
        run_free(&o);
    }
    cr_assert_geq(flagged_without_noise, 2, "the data must provoke the rule without noise");

    run o;
    train(&o, "data: {train: %s, val_fraction: 0.2}\nmodel: {hidden: [512, 512]}\n"
              "train: {epochs: 150, optimizer: adam, lr: 0.001, batch_size: 16}\n", data);
    const ns_finding *f = has(&o, "overfitting");
    cr_assert(f, "%s", listing(&o));
    /* judged against the noise of ~60 rows (2 / sqrt(60) = 26%), not the 10% default */
    cr_assert(strstr(f->message, "(limit +2"), "%s", f->message);
    cr_assert(has(&o, "generalisation_gap"), "%s", listing(&o));
    run_free(&o);
    free(data);
}

/* Rare classes whose rows overlap the common one: the unweighted loss mostly predicts the
 * common class; auto weights (on by default) raise macro-F1, summed over three datasets so
 * that one lucky split cannot decide. */
Test(health_train, imbalanced_classes_turn_on_class_weights_and_raise_macro_f1)
{
    static const double prior[2] = {0.96, 0.04};
    double f1_none = 0, f1_auto = 0, bacc_none = 0, bacc_auto = 0;
    for (int s = 0; s < 3; s++) {
        gen g = {.n = 3000, .d = 6, .K = 2, .sep = 0.4, .prior = prior,
                 .centre_seed = 40 + (uint64_t)s, .seed = 50 + (uint64_t)s};
        char *data = write_csv("imb.csv", &g);
        g.seed += 100;
        char *test = write_csv("imb_test.csv", &g);
        run o;
        train(&o, "data: {train: %s, test: %s}\nmodel: {hidden: [32]}\n"
                  "train: {epochs: 20, optimizer: adam, lr: 0.003, batch_size: 64}\n", data, test);
        const ns_finding *f = has_data(&o, "class_imbalance");
        cr_assert(f, "%s", listing(&o));
        cr_assert_eq(f->mistake, 1);
        cr_assert(strstr(f->fix, "turned on"), "%s", f->fix);
        cr_assert_eq(o.cw, NS_CW_AUTO);
        f1_auto += o.res.test_f1;
        bacc_auto += o.res.test_bacc;
        run_free(&o);
        train(&o, "data: {train: %s, test: %s}\nmodel: {hidden: [32], class_weights: none}\n"
                  "train: {epochs: 20, optimizer: adam, lr: 0.003, batch_size: 64}\n", data, test);
        cr_assert(has_data(&o, "class_imbalance"));
        cr_assert_eq(o.cw, NS_CW_NONE);
        f1_none += o.res.test_f1;
        bacc_none += o.res.test_bacc;
        run_free(&o);
        free(data);
        free(test);
    }
    cr_assert_gt(f1_auto, f1_none, "macro-F1 summed over 3 sets: auto %.4f, none %.4f", f1_auto, f1_none);
    cr_assert_gt(bacc_auto, bacc_none + 0.15, "balanced accuracy: auto %.4f, none %.4f", bacc_auto,
                 bacc_none);

    /* balanced classes: auto stays off */
    gen g = {.n = 1000, .d = 6, .K = 2, .sep = 1.0, .centre_seed = 7, .seed = 8};
    char *data = write_csv("bal.csv", &g);
    run o;
    train(&o, "data: {train: %s}\nmodel: {hidden: [8]}\ntrain: {epochs: 2}\n", data);
    cr_assert_null(has_data(&o, "class_imbalance"), "%s", listing(&o));
    cr_assert_eq(o.cw, NS_CW_NONE);
    run_free(&o);
    free(data);
}

Test(health_train, shifted_test_set_is_flagged)
{
    gen g = {.n = 2000, .d = 8, .K = 3, .sep = 2.0, .centre_seed = 1, .seed = 2};
    char *data = write_csv("blobs.csv", &g);
    g.seed = 3;
    g.n = 500;
    char *same = write_csv("same.csv", &g);
    g.shift = 1.0;
    char *shifted = write_csv("shifted.csv", &g);
    run o;
    train(&o, "data: {train: %s, test: %s}\nmodel: {hidden: [8]}\ntrain: {epochs: 2}\n", data, shifted);
    const ns_finding *f = has_data(&o, "feature_shift");
    cr_assert(f, "%s", listing(&o));
    cr_assert_eq(f->mistake, 3);
    cr_assert(strstr(f->message, "test") && strstr(f->message, "f0"), "%s", f->message);
    cr_assert(!strstr(f->message, "f7"), "an unshifted feature is not named: %s", f->message);
    cr_assert_eq(o.dr.pair[1].n_shifted, 3);
    run_free(&o);

    train(&o, "data: {train: %s, test: %s}\nmodel: {hidden: [8]}\ntrain: {epochs: 2}\n", data, same);
    cr_assert_eq(o.dr.n_findings, 0, "%s", listing(&o));
    run_free(&o);
    free(data);
    free(same);
    free(shifted);
}

/* ---- healthy runs ----------------------------------------------------------------------- */

Test(health_train, twenty_healthy_runs_trigger_nothing, .timeout = 120)
{
    char tiny[4096];
    snprintf(tiny, sizeof tiny, "%s/configs/data/tiny.csv", NS_SOURCE_DIR);
    gen blobs3 = {.n = 2000, .d = 8, .K = 3, .sep = 2.0, .centre_seed = 11, .seed = 12};
    gen blobs5 = {.n = 3000, .d = 20, .K = 5, .sep = 1.0, .centre_seed = 13, .seed = 14};
    gen reg = {.n = 2000, .d = 6, .K = 0, .centre_seed = 15, .seed = 16};
    char *paths[4] = {write_csv("b3.csv", &blobs3), write_csv("b5.csv", &blobs5),
                      write_csv("reg.csv", &reg), strdup(tiny)};
    const char *extra[4] = {"", "", ", task: regression", ""};
    int runs = 0;
    for (int d = 0; d < 4; d++)
        for (int seed = 1; seed <= 5; seed++) {
            run o;
            train(&o, "data: {train: %s%s}\nmodel: {hidden: [64, 32]}\n"
                      "train: {epochs: 40, optimizer: adamw, weight_decay: 0.01, lr: 0.003, "
                      "batch_size: 64, patience: 5, schedule: cosine, seed: %d}\n",
                      paths[d], extra[d], seed);
            cr_assert_eq(o.nf, 0, "dataset %d seed %d:\n%s", d, seed, listing(&o));
            cr_assert_eq(o.dr.n_findings, 0, "dataset %d seed %d:\n%s", d, seed, listing(&o));
            runs++;
            run_free(&o);
        }
    cr_assert_eq(runs, 20);
    for (int d = 0; d < 4; d++)
        free(paths[d]);
}
