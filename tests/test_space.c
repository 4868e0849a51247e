/* test_space.c — search spaces at work: sampling and the unit-cube map, trial configs
 * instantiated from points (values exact, rules re-checked), the params JSON, and the
 * exported training config that reads back to the same values.
 * Not a test of the YAML syntax of spaces: tests/test_config.c covers that. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "search/config/config.h"
#include "search/config/space.h"
#include "tests/testutil.h"

/* ---- helpers --------------------------------------------------------------------------- */

static char *csv_file; /* a CSV training file that exists (absolute path) */

static void make_files(void)
{
    static const char csv[] = "a,b,label\n1,2,x\n3,4,y\n";
    csv_file = tu_write_temp("train.csv", csv, sizeof csv - 1);
    cr_assert(csv_file && csv_file[0] == '/');
}

static void free_files(void)
{
    if (csv_file) {
        unlink(csv_file);
        *strrchr(csv_file, '/') = 0;
        rmdir(csv_file);
    }
    free(csv_file);
    csv_file = NULL;
}

TestSuite(space, .init = make_files, .fini = free_files);

#define SEARCH_SECTION "search:\n  stages:\n    - {stage: random, trials: 5, epochs: 2}\n"

/* Formats the config text (%%s is usually csv_file) and parses it as "cfg.yaml"; must succeed. */
__attribute__((format(printf, 2, 3))) static void parse_ok(ns_config *c, const char *fmt, ...)
{
    static char text[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ns_err e = {0};
    int rc = ns_config_parse(c, "cfg.yaml", text, strlen(text), &e);
    cr_assert_eq(rc, NS_OK, "%s\n%s", e.msg, text);
}

static ns_dim dim(ns_dim_kind kind, double lo, double hi)
{
    ns_dim d;
    memset(&d, 0, sizeof d);
    d.kind = kind;
    d.lo = lo;
    d.hi = hi;
    return d;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Every field that a config carries into training, compared exactly. */
static void assert_config_eq(const ns_config *a, const ns_config *b, const char *what)
{
    cr_assert_str_eq(a->data.train, b->data.train, "%s", what);
    cr_assert((a->data.test == NULL) == (b->data.test == NULL), "%s test", what);
    if (a->data.test)
        cr_assert_str_eq(a->data.test, b->data.test, "%s", what);
    cr_assert((a->data.train_labels == NULL) == (b->data.train_labels == NULL), "%s", what);
    cr_assert((a->data.test_labels == NULL) == (b->data.test_labels == NULL), "%s", what);
    cr_assert_str_eq(a->data.label, b->data.label, "%s", what);
    cr_assert_eq(a->data.task, b->data.task, "%s", what);
    cr_assert_eq(a->data.val_fraction, b->data.val_fraction, "%s", what);
    cr_assert_eq(a->data.split_seed, b->data.split_seed, "%s", what);
    cr_assert_eq(a->data.standardize, b->data.standardize, "%s", what);

    const ns_mlp_spec *m = &a->model, *n = &b->model;
    cr_assert_eq(m->n_hidden, n->n_hidden, "%s hidden", what);
    for (int i = 0; i < m->n_hidden; i++)
        cr_assert_eq(m->hidden[i], n->hidden[i], "%s hidden[%d]", what, i);
    cr_assert_eq(a->depth, b->depth, "%s", what);
    cr_assert_eq(a->width, b->width, "%s", what);
    cr_assert_eq(m->act, n->act, "%s", what);
    cr_assert_eq(m->dropout, n->dropout, "%s dropout", what);
    cr_assert_eq(m->init, n->init, "%s", what);
    cr_assert_eq(m->loss, n->loss, "%s", what);
    cr_assert_eq(m->label_smoothing, n->label_smoothing, "%s", what);
    cr_assert_eq(a->class_weights, b->class_weights, "%s", what);
    cr_assert_eq(a->n_class_weights, b->n_class_weights, "%s", what);
    for (int i = 0; i < a->n_class_weights; i++)
        cr_assert_eq(a->class_weight_list[i], b->class_weight_list[i], "%s weight %d", what, i);

    const ns_train_spec *s = &a->train, *t = &b->train;
    cr_assert_eq(s->budget, t->budget, "%s budget", what);
    if (s->budget == NS_BUDGET_EPOCHS)
        cr_assert_eq(s->epochs, t->epochs, "%s", what);
    if (s->budget == NS_BUDGET_STEPS)
        cr_assert_eq(s->steps, t->steps, "%s", what);
    if (s->budget == NS_BUDGET_SECONDS)
        cr_assert_eq(s->seconds, t->seconds, "%s", what);
    cr_assert_eq(s->max_epochs, t->max_epochs, "%s", what);
    cr_assert_eq(s->batch_size, t->batch_size, "%s", what);
    cr_assert_eq(s->eval_batch, t->eval_batch, "%s", what);
    cr_assert_eq(s->lr, t->lr, "%s lr", what);
    cr_assert_eq(s->opt.kind, t->opt.kind, "%s", what);
    cr_assert_eq(s->opt.momentum, t->opt.momentum, "%s momentum", what);
    cr_assert_eq(s->opt.nesterov, t->opt.nesterov, "%s", what);
    cr_assert_eq(s->opt.beta1, t->opt.beta1, "%s", what);
    cr_assert_eq(s->opt.beta2, t->opt.beta2, "%s", what);
    cr_assert_eq(s->opt.alpha, t->opt.alpha, "%s", what);
    cr_assert_eq(s->opt.eps, t->opt.eps, "%s", what);
    cr_assert_eq(s->opt.weight_decay, t->opt.weight_decay, "%s", what);
    cr_assert_eq(s->sched.kind, t->sched.kind, "%s", what);
    cr_assert_eq(s->sched.step_size, t->sched.step_size, "%s", what);
    cr_assert_eq(s->sched.gamma, t->sched.gamma, "%s gamma", what);
    cr_assert_eq(s->sched.warmup, t->sched.warmup, "%s", what);
    cr_assert_eq(s->sched.warmup_start, t->sched.warmup_start, "%s", what);
    cr_assert_eq(s->sched.min_lr, t->sched.min_lr, "%s", what);
    cr_assert_eq(s->sched.pct_start, t->sched.pct_start, "%s", what);
    cr_assert_eq(s->sched.div, t->sched.div, "%s", what);
    cr_assert_eq(s->sched.final_div, t->sched.final_div, "%s", what);
    cr_assert_eq(s->sched.factor, t->sched.factor, "%s", what);
    cr_assert_eq(s->sched.patience, t->sched.patience, "%s", what);
    cr_assert_eq(s->sched.threshold, t->sched.threshold, "%s", what);
    cr_assert_eq(s->clip_norm, t->clip_norm, "%s", what);
    cr_assert_eq(s->patience, t->patience, "%s", what);
    cr_assert_eq(s->min_delta, t->min_delta, "%s", what);
    cr_assert_eq(s->seed, t->seed, "%s", what);
    cr_assert_eq(s->drop_last, t->drop_last, "%s", what);
    cr_assert_eq(a->threads, b->threads, "%s", what);
}

/* Exports c, checks the text has no search section, parses it back and compares. Returns
 * the exported text (caller frees). */
static char *round_trip(const ns_config *c, const char *what)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f);
    ns_err e = {0};
    int rc = ns_config_export_yaml(c, f, "exported by test_space\nsecond line", &e);
    fclose(f);
    cr_assert_eq(rc, NS_OK, "%s: %s", what, e.msg);
    cr_assert(!strstr(buf, "\nsearch:"), "%s: exported text has a search section:\n%s", what, buf);
    cr_assert(!strncmp(buf, "# exported by test_space\n# second line\n", 39), "%s:\n%s", what, buf);
    ns_config back;
    rc = ns_config_parse(&back, "exported.yaml", buf, len, &e);
    cr_assert_eq(rc, NS_OK, "%s: %s\n%s", what, e.msg, buf);
    cr_assert_eq(back.space.n, 0);
    cr_assert_eq(back.search.given, 0);
    assert_config_eq(c, &back, what);
    /* exporting the read-back config gives the same text: a fixed point */
    char *buf2 = NULL;
    size_t len2 = 0;
    f = open_memstream(&buf2, &len2);
    cr_assert(f);
    cr_assert_eq(ns_config_export_yaml(&back, f, "exported by test_space\nsecond line", &e), NS_OK);
    fclose(f);
    cr_assert_str_eq(buf, buf2, "%s", what);
    free(buf2);
    ns_config_free(&back);
    return buf;
}

/* A small JSON checker: one object of "key": value with numbers, strings, true/false/null
 * and arrays of those. Returns the end of the value or NULL. */
static const char *json_value(const char *p);

static const char *json_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p && *p != '"') {
        if ((unsigned char)*p < 0x20)
            return NULL;
        p += *p == '\\' ? 2 : 1;
    }
    return *p == '"' ? p + 1 : NULL;
}

static const char *json_value(const char *p)
{
    if (*p == '"')
        return json_string(p);
    if (*p == '[') {
        p++;
        if (*p == ']')
            return p + 1;
        for (;;) {
            if (!(p = json_value(p)))
                return NULL;
            if (*p == ']')
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (!strncmp(p, "true", 4))
        return p + 4;
    if (!strncmp(p, "false", 5))
        return p + 5;
    if (!strncmp(p, "null", 4))
        return p + 4;
    char *end;
    if (!(*p == '-' || isdigit((unsigned char)*p)))
        return NULL;
    strtod(p, &end);
    return end > p ? end : NULL;
}

static int json_object_ok(const char *p)
{
    if (*p++ != '{')
        return 0;
    if (*p == '}')
        return p[1] == 0;
    for (;;) {
        if (!(p = json_string(p)) || *p++ != ':' || !(p = json_value(p)))
            return 0;
        if (*p == '}')
            return p[1] == 0;
        if (*p++ != ',')
            return 0;
    }
}

/* ---- the unit-cube map ------------------------------------------------------------------- */

Test(space, sample_fills_every_dimension_and_is_seeded)
{
    ns_config c;
    parse_ok(&c, "data:\n  train: %s\ntrain:\n  lr: {log_uniform: [1e-4, 1e-1]}\n  batch_size: {int: [16, 256], log: true}\nmodel:\n  activation: {choice: [relu, gelu, tanh]}\n" SEARCH_SECTION,
             csv_file);
    cr_assert_eq(c.space.n, 3);
    ns_rng r1, r2;
    ns_rng_seed(&r1, 11);
    ns_rng_seed(&r2, 11);
    double u1[3], u2[3];
    cr_assert_eq(ns_space_sample(&c.space, &r1, u1, 2), -1); /* too small: refused */
    cr_assert_eq(ns_space_sample(&c.space, &r1, u1, 3), 3);
    cr_assert_eq(ns_space_sample(&c.space, &r2, u2, 3), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(u1[i], u2[i]);
        cr_assert(u1[i] >= 0 && u1[i] < 1);
    }
    ns_config_free(&c);
}

Test(space, values_stay_in_bounds)
{
    ns_dim ds[] = {dim(NS_DIM_UNIFORM, -2, 3), dim(NS_DIM_LOG_UNIFORM, 1e-8, 1),
                   dim(NS_DIM_INT, 1, 7), dim(NS_DIM_INT_LOG, 1, 1000), dim(NS_DIM_INT, 0, 1)};
    ns_rng r;
    ns_rng_seed(&r, 3);
    for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++) {
        for (int i = 0; i < 20000; i++) {
            double x = ns_dim_value(&ds[k], ns_rng_uniform(&r));
            cr_assert(x >= ds[k].lo && x <= ds[k].hi, "%s: %g", ns_dim_kind_name(ds[k].kind), x);
            if (ds[k].kind == NS_DIM_INT || ds[k].kind == NS_DIM_INT_LOG)
                cr_assert_eq(x, floor(x));
        }
        /* the ends of the cube are the ends of the range, and outside it is clamped */
        cr_assert_eq(ns_dim_value(&ds[k], 0), ds[k].lo);
        cr_assert_eq(ns_dim_value(&ds[k], 1), ds[k].hi);
        cr_assert_eq(ns_dim_value(&ds[k], -5), ds[k].lo);
        cr_assert_eq(ns_dim_value(&ds[k], 7), ds[k].hi);
        cr_assert_eq(ns_dim_value(&ds[k], NAN), ds[k].lo);
    }
}

Test(space, log_uniform_covers_decades_evenly)
{
    ns_dim d = dim(NS_DIM_LOG_UNIFORM, 1e-4, 1e-1);
    enum { N = 30001 };
    static double x[N];
    ns_rng r;
    ns_rng_seed(&r, 5);
    int decade[3] = {0, 0, 0};
    for (int i = 0; i < N; i++) {
        x[i] = ns_dim_value(&d, ns_rng_uniform(&r));
        int k = (int)floor(log10(x[i]) + 4);
        decade[k < 0 ? 0 : k > 2 ? 2 : k]++;
    }
    qsort(x, N, sizeof x[0], cmp_double);
    double med = x[N / 2];
    cr_assert(fabs(log10(med) + 2.5) < 0.03, "median %g, expected about 10^-2.5 = %g", med, pow(10, -2.5));
    for (int k = 0; k < 3; k++)
        cr_assert(fabs(decade[k] / (double)N - 1.0 / 3) < 0.015, "decade %d: %d of %d", k, decade[k], N);
    /* the middle of the cube is the geometric middle */
    cr_assert(fabs(ns_dim_value(&d, 0.5) / pow(10, -2.5) - 1) < 1e-12);
}

Test(space, ints_include_both_ends_with_equal_shares)
{
    ns_dim d = dim(NS_DIM_INT, 1, 4);
    int count[5] = {0};
    ns_rng r;
    ns_rng_seed(&r, 8);
    enum { N = 40000 };
    for (int i = 0; i < N; i++)
        count[(int)ns_dim_value(&d, ns_rng_uniform(&r))]++;
    cr_assert_eq(count[0], 0);
    for (int k = 1; k <= 4; k++)
        cr_assert(fabs(count[k] / (double)N - 0.25) < 0.01, "value %d: %d of %d", k, count[k], N);
    /* int_log: every value of [1, 8] is reached, small ones more often */
    ns_dim g = dim(NS_DIM_INT_LOG, 1, 8);
    int seen[9] = {0};
    for (int i = 0; i < N; i++)
        seen[(int)ns_dim_value(&g, ns_rng_uniform(&r))]++;
    for (int k = 1; k <= 8; k++)
        cr_assert(seen[k] > 0, "int_log never gave %d", k);
    cr_assert(seen[1] > seen[2] && seen[2] > seen[8]);
    /* share of 1 is log(1.5 / 0.5) / log(8.5 / 0.5) */
    double want = log(3.0) / log(17.0);
    cr_assert(fabs(seen[1] / (double)N - want) < 0.01, "share of 1: %g, expected %g", seen[1] / (double)N, want);
}

Test(space, every_choice_is_reachable)
{
    ns_config c;
    parse_ok(&c, "data:\n  train: %s\nmodel:\n  activation: {choice: [relu, gelu, tanh]}\n" SEARCH_SECTION, csv_file);
    const ns_dim *d = &c.space.dims[0];
    int count[3] = {0};
    ns_rng r;
    ns_rng_seed(&r, 9);
    enum { N = 30000 };
    for (int i = 0; i < N; i++) {
        double u = ns_rng_uniform(&r);
        int k = (int)ns_dim_value(d, u);
        char buf[64];
        cr_assert_str_eq(ns_dim_text(d, u, buf), d->choices[k]);
        count[k]++;
    }
    for (int k = 0; k < 3; k++)
        cr_assert(fabs(count[k] / (double)N - 1.0 / 3) < 0.015, "choice %d: %d", k, count[k]);
    cr_assert_eq(ns_dim_value(d, 1), 2);
    ns_config_free(&c);
}

Test(space, unit_is_the_inverse_of_value)
{
    ns_dim ds[] = {dim(NS_DIM_INT, -3, 9), dim(NS_DIM_INT_LOG, 1, 300), dim(NS_DIM_INT_LOG, 16, 17)};
    for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++)
        for (double v = ds[k].lo; v <= ds[k].hi; v++) {
            double u = ns_dim_unit(&ds[k], v);
            cr_assert(u > 0 && u < 1);
            cr_assert_eq(ns_dim_value(&ds[k], u), v, "%s %g", ns_dim_kind_name(ds[k].kind), v);
        }
    ns_dim ch = dim(NS_DIM_CHOICE, 0, 4);
    ch.n_choices = 5;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ns_dim_value(&ch, ns_dim_unit(&ch, i)), i);
    ns_dim u = dim(NS_DIM_UNIFORM, 2, 6), l = dim(NS_DIM_LOG_UNIFORM, 1e-3, 10);
    cr_assert(fabs(ns_dim_unit(&u, 3) - 0.25) < 1e-15);
    cr_assert(fabs(ns_dim_unit(&l, 1e-1) - 0.5) < 1e-12);
    cr_assert(fabs(ns_dim_value(&l, ns_dim_unit(&l, 0.0123)) / 0.0123 - 1) < 1e-12);
    cr_assert_str_eq(ns_dim_kind_name(NS_DIM_INT_LOG), "int_log");
}

Test(space, copy_and_free)
{
    ns_config c, d;
    ns_err e;
    parse_ok(&c, "data:\n  train: %s\nmodel:\n  hidden: {choice: [[64, 32], [128]]}\n  class_weights: [1, 2]\ntrain:\n  lr: {uniform: [0.01, 0.1]}\n" SEARCH_SECTION,
             csv_file);
    cr_assert_eq(ns_config_copy(&d, &c, &e), NS_OK);
    ns_config_free(&c);
    cr_assert_eq(d.space.n, 2);
    cr_assert_str_eq(d.space.dims[0].choices[0], "[64, 32]");
    cr_assert_str_eq(d.data.train, csv_file);
    cr_assert_eq(d.class_weight_list[1], 2.0f);
    cr_assert_str_eq(d.search.name, "cfg");
    cr_assert(d.text && strstr(d.text, "hidden"));
    ns_config_free(&d);
    ns_config_free(&d);
}

/* ---- trial configs ------------------------------------------------------------------------ */

Test(space, instantiate_sets_the_values_exactly_and_leaves_the_others)
{
    ns_config base, t;
    ns_err e;
    parse_ok(&base,
             "data:\n  train: %s\n  val_fraction: 0.2\n"
             "model:\n  hidden: {choice: [[256, 128], [512], [128, 64, 32]]}\n"
             "  activation: {choice: [relu, gelu, tanh]}\n  dropout: {uniform: [0, 0.5]}\n"
             "train:\n  lr: {log_uniform: [1e-4, 1e-1]}\n  batch_size: {int: [16, 256], log: true}\n"
             "  weight_decay: {log_uniform: [1e-6, 1e-2]}\n  beta1: 0.85\n  seed: 42\n" SEARCH_SECTION,
             csv_file);
    cr_assert_eq(base.space.n, 6);
    ns_rng r;
    ns_rng_seed(&r, 21);
    for (int rep = 0; rep < 200; rep++) {
        double u[6];
        cr_assert_eq(ns_space_sample(&base.space, &r, u, 6), 6);
        cr_assert_eq(ns_config_instantiate(&base, u, &t, &e), NS_OK, "%s", e.msg);
        const ns_dim *d = base.space.dims;
        static const int widths[3][4] = {{2, 256, 128}, {1, 512}, {3, 128, 64, 32}};
        int h = (int)ns_dim_value(&d[0], u[0]);
        cr_assert_eq(t.model.n_hidden, widths[h][0]);
        for (int i = 0; i < widths[h][0]; i++)
            cr_assert_eq(t.model.hidden[i], widths[h][i + 1]);
        static const ns_act acts[] = {NS_ACT_RELU, NS_ACT_GELU, NS_ACT_TANH};
        cr_assert_eq(t.model.act, acts[(int)ns_dim_value(&d[1], u[1])]);
        cr_assert_eq(t.model.dropout, (float)ns_dim_value(&d[2], u[2]));
        cr_assert_eq(t.train.lr, ns_dim_value(&d[3], u[3]));
        cr_assert_eq(t.train.batch_size, (int)ns_dim_value(&d[4], u[4]));
        cr_assert_eq(t.train.opt.weight_decay, ns_dim_value(&d[5], u[5]));
        /* the rest is the base's */
        cr_assert_eq(t.space.n, 0);
        cr_assert_null(t.space.dims);
        cr_assert_eq(t.train.opt.beta1, 0.85);
        cr_assert_eq(t.train.seed, 42);
        cr_assert_eq(t.data.val_fraction, 0.2);
        cr_assert_str_eq(t.data.train, base.data.train);
        cr_assert_neq(t.data.train, base.data.train); /* a deep copy */
        cr_assert_eq(t.hash, base.hash);
        cr_assert_eq(t.search.n_stages, 1);
        cr_assert_str_eq(t.search.output, base.search.output);
        ns_config_free(&t);
    }
    /* the base is untouched */
    cr_assert_eq(base.train.lr, 1e-3);
    cr_assert_eq(base.model.n_hidden, 2);
    cr_assert_eq(base.space.n, 6);
    /* a config without spaces instantiates to itself */
    ns_config fixed;
    parse_ok(&fixed, "data:\n  train: %s\ntrain:\n  lr: 0.02\n" SEARCH_SECTION, csv_file);
    cr_assert_eq(ns_config_instantiate(&fixed, NULL, &t, &e), NS_OK, "%s", e.msg);
    assert_config_eq(&fixed, &t, "no spaces");
    ns_config_free(&t);
    ns_config_free(&fixed);
    cr_assert_eq(ns_config_instantiate(&base, NULL, &t, &e), NS_EINPUT);
    cr_assert_null(t.text);
    ns_config_free(&base);
}

Test(space, instantiate_derives_dependent_defaults_again)
{
    ns_config base, t;
    ns_err e;
    parse_ok(&base,
             "data:\n  train: %s\nmodel:\n  depth: {int: [1, 3]}\n  width: {int: [8, 512], log: true}\n"
             "train:\n  optimizer: {choice: [sgd, adam]}\n  schedule: {choice: [step, exponential]}\n" SEARCH_SECTION,
             csv_file);
    double u[4] = {0.9, 0.0, 0.1, 0.1}; /* depth 3, width 8, sgd, step */
    cr_assert_eq(ns_config_instantiate(&base, u, &t, &e), NS_OK, "%s", e.msg);
    cr_assert_eq(t.depth, 3);
    cr_assert_eq(t.width, 8);
    cr_assert_eq(t.model.n_hidden, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(t.model.hidden[i], 8);
    cr_assert_eq(t.train.opt.kind, NS_OPT_SGD);
    cr_assert_eq(t.train.opt.momentum, 0.9);
    cr_assert_eq(t.train.sched.kind, NS_SCHED_STEP);
    cr_assert_eq(t.train.sched.gamma, 0.1);
    ns_config_free(&t);
    double v[4] = {0.0, 1.0, 0.9, 0.9}; /* depth 1, width 512, adam, exponential */
    cr_assert_eq(ns_config_instantiate(&base, v, &t, &e), NS_OK, "%s", e.msg);
    cr_assert_eq(t.model.n_hidden, 1);
    cr_assert_eq(t.model.hidden[0], 512);
    cr_assert_eq(t.train.opt.kind, NS_OPT_ADAM);
    cr_assert_eq(t.train.opt.momentum, 0.0);
    cr_assert_eq(t.train.sched.gamma, 0.95);
    ns_config_free(&t);
    ns_config_free(&base);
    /* an explicit momentum stays */
    parse_ok(&base, "data:\n  train: %s\ntrain:\n  momentum: 0.5\n  optimizer: {choice: [sgd, adam]}\n" SEARCH_SECTION, csv_file);
    double w[1] = {0.1};
    cr_assert_eq(ns_config_instantiate(&base, w, &t, &e), NS_OK, "%s", e.msg);
    cr_assert_eq(t.train.opt.momentum, 0.5);
    ns_config_free(&t);
    ns_config_free(&base);
}

Test(space, instantiate_refuses_combinations_that_break_a_rule)
{
    ns_config base, t;
    ns_err e;
    parse_ok(&base, "data:\n  train: %s\ntrain:\n  optimizer: {choice: [sgd, adam]}\n  nesterov: true\n" SEARCH_SECTION,
             csv_file);
    double sgd[1] = {0.2}, adam[1] = {0.7};
    cr_assert_eq(ns_config_instantiate(&base, sgd, &t, &e), NS_OK, "%s", e.msg);
    cr_assert_eq(t.train.opt.nesterov, 1);
    ns_config_free(&t);
    memset(&e, 0, sizeof e);
    cr_assert_eq(ns_config_instantiate(&base, adam, &t, &e), NS_EINPUT);
    cr_assert_null(t.text);
    cr_assert(strstr(e.msg, "cfg.yaml: searched values do not go together (train.nesterov=true, train.optimizer=adam)"),
              "%s", e.msg);
    cr_assert(strstr(e.msg, "sgd only"), "%s", e.msg);
    cr_assert_null(strchr(e.msg, '\n'));
    ns_config_free(&base);

    /* min_lr above a low sampled lr */
    parse_ok(&base, "data:\n  train: %s\ntrain:\n  min_lr: 1e-3\n  schedule: cosine\n  lr: {log_uniform: [1e-5, 1e-1]}\n" SEARCH_SECTION,
             csv_file);
    double lo[1] = {0.1}, hi[1] = {0.9};
    cr_assert_eq(ns_config_instantiate(&base, lo, &t, &e), NS_EINPUT);
    cr_assert(strstr(e.msg, "(train.min_lr=0.001, train.lr="), "%s", e.msg);
    cr_assert(strstr(e.msg, "above train.lr"), "%s", e.msg);
    cr_assert_eq(ns_config_instantiate(&base, hi, &t, &e), NS_OK, "%s", e.msg);
    ns_config_free(&t);
    ns_config_free(&base);

    /* nesterov searched with a momentum that follows the optimizer */
    parse_ok(&base, "data:\n  train: %s\ntrain:\n  optimizer: sgd\n  momentum: 0\n  nesterov: {choice: [false, true]}\n" SEARCH_SECTION,
             csv_file);
    double yes[1] = {0.9};
    cr_assert_eq(ns_config_instantiate(&base, yes, &t, &e), NS_EINPUT);
    cr_assert(strstr(e.msg, "train.nesterov=true, train.momentum=0, train.optimizer=sgd"), "%s", e.msg);
    ns_config_free(&base);
}

Test(space, params_json)
{
    ns_config base, t;
    ns_err e;
    parse_ok(&base,
             "data:\n  train: %s\n"
             "model:\n  hidden: {choice: [[256, 128], [512]]}\n  activation: {choice: [relu, gelu]}\n"
             "  dropout: {uniform: [0, 0.5]}\n  class_weights: {choice: [balanced, [1, 2.5]]}\n"
             "train:\n  lr: {log_uniform: [1e-4, 1e-1]}\n  batch_size: {int: [16, 256], log: true}\n"
             "  nesterov: {choice: [false, true]}\n  optimizer: sgd\n" SEARCH_SECTION,
             csv_file);
    double u[7] = {0.1, 0.9, 0.5, 0.9, 0.5, 0, 0.9};
    cr_assert_eq(ns_config_instantiate(&base, u, &t, &e), NS_OK, "%s", e.msg);
    char *js = ns_space_params_json(&base.space, &t);
    cr_assert(js);
    char want[512];
    char lr[40];
    snprintf(lr, sizeof lr, "%.17g", t.train.lr);
    cr_assert_eq(strtod(lr, NULL), t.train.lr);
    /* lr is the shortest text that reads back exactly */
    for (int p = 15; p <= 17; p++) {
        snprintf(lr, sizeof lr, "%.*g", p, t.train.lr);
        if (strtod(lr, NULL) == t.train.lr)
            break;
    }
    snprintf(want, sizeof want,
             "{\"model.hidden\":[256,128],\"model.activation\":\"gelu\",\"model.dropout\":0.25,"
             "\"model.class_weights\":[1,2.5],\"train.lr\":%s,\"train.batch_size\":16,\"train.nesterov\":true}",
             lr);
    cr_assert_str_eq(js, want);
    cr_assert(json_object_ok(js), "%s", js);
    free(js);
    ns_config_free(&t);
    /* balanced is a JSON string; an empty space is {} */
    double v[7] = {0.9, 0.1, 0, 0.1, 0, 0, 0};
    cr_assert_eq(ns_config_instantiate(&base, v, &t, &e), NS_OK, "%s", e.msg);
    js = ns_space_params_json(&base.space, &t);
    cr_assert(strstr(js, "\"model.class_weights\":\"balanced\""), "%s", js);
    cr_assert(strstr(js, "\"model.hidden\":[512]"), "%s", js);
    cr_assert(strstr(js, "\"train.lr\":0.0001,"), "%s", js);
    cr_assert(json_object_ok(js), "%s", js);
    free(js);
    ns_space empty = {0};
    js = ns_space_params_json(&empty, &t);
    cr_assert_str_eq(js, "{}");
    free(js);
    ns_config_free(&t);
    ns_config_free(&base);
    /* the checker itself rejects broken JSON */
    cr_assert(!json_object_ok("{\"a\":}"));
    cr_assert(!json_object_ok("{\"a\":1,}"));
    cr_assert(!json_object_ok("{\"a\":relu}"));
}

/* ---- export ------------------------------------------------------------------------------- */

Test(space, export_round_trip)
{
    static const char *const opts[] = {"sgd", "adam", "adamw", "rmsprop"};
    static const char *const scheds[] = {"constant", "step", "exponential", "cosine", "onecycle", "plateau"};
    ns_config c;
    /* every optimizer with every schedule, awkward numbers */
    for (int o = 0; o < 4; o++)
        for (int s = 0; s < 6; s++) {
            parse_ok(&c,
                     "data:\n  train: %s\n  val_fraction: 0.15\n  split_seed: 18446744073709551615\n"
                     "model:\n  hidden: [33, 7]\n  activation: leaky_relu\n  dropout: 0.1\n  init: xavier\n"
                     "  label_smoothing: 0.05\n  class_weights: [1, 2.5, 0.3333]\n"
                     "train:\n  epochs: 7\n  optimizer: %s\n  schedule: %s\n  lr: 0.0031622776601683794\n"
                     "  weight_decay: 1e-5\n  eps: 1e-7\n  beta2: 0.98\n  clip_norm: 2.5\n  min_lr: 1e-6\n"
                     "  patience: 3\n  min_delta: 1e-4\n  seed: 99\n  drop_last: true\n  threads: 2\n"
                     "  step_size: 4\n  warmup: 0.1\n  warmup_start: 0.01\n  pct_start: 0.25\n  div: 10\n"
                     "  final_div: 1e3\n  plateau_factor: 0.3\n  plateau_patience: 2\n  plateau_threshold: 1e-3\n",
                     csv_file, opts[o], scheds[s]);
            char what[64];
            snprintf(what, sizeof what, "%s/%s", opts[o], scheds[s]);
            free(round_trip(&c, what));
            ns_config_free(&c);
        }
    /* regression with a steps budget; seconds; depth x width; a label that needs quoting */
    parse_ok(&c, "data:\n  train: %s\n  task: regression\n  label: 'we\"ird: #label\\x'\n  standardize: false\n"
                 "train:\n  steps: 1234\n  max_epochs: 3\n  batch_size: 17\n",
             csv_file);
    cr_assert_eq(c.model.loss, NS_LOSS_MSE);
    char *text = round_trip(&c, "regression");
    cr_assert(strstr(text, "  steps: 1234\n"), "%s", text);
    cr_assert(!strstr(text, "epochs: 10"), "%s", text);
    cr_assert(strstr(text, "  loss: mse\n"), "%s", text);
    free(text);
    ns_config_free(&c);
    parse_ok(&c, "data:\n  train: %s\ntrain:\n  seconds: 0.1\nmodel:\n  depth: 2\n  width: 48\n  class_weights: balanced\n", csv_file);
    text = round_trip(&c, "seconds, depth x width");
    cr_assert(strstr(text, "  depth: 2\n  width: 48\n"), "%s", text);
    cr_assert(!strstr(text, "hidden"), "%s", text);
    free(text);
    ns_config_free(&c);
    /* the complete text of a small config: every key, its value, absolute paths */
    parse_ok(&c, "data:\n  train: %s\nmodel:\n  hidden: []\n", csv_file);
    text = round_trip(&c, "linear");
    char want[4096];
    snprintf(want, sizeof want,
             "# exported by test_space\n# second line\n\n"
             "data:\n  train: \"%s\"\n  label: \"label\"\n  task: classification\n  val_fraction: 0.1\n"
             "  split_seed: 1\n  standardize: true\n  max_rows: 0\n  test_max_rows: 0\n\n"
             "model:\n  hidden: []\n  activation: relu\n  dropout: 0\n  init: he\n  loss: cross_entropy\n"
             "  label_smoothing: 0\n  class_weights: auto\n\n"
             "train:\n  epochs: 10\n  max_epochs: 0\n  batch_size: 128\n  eval_batch: 1024\n  optimizer: adam\n"
             "  lr: 0.001\n  momentum: 0\n  nesterov: false\n  beta1: 0.9\n  beta2: 0.999\n  eps: 1e-08\n"
             "  alpha: 0.99\n  weight_decay: 0\n  schedule: constant\n  step_size: 10\n  gamma: 0.1\n"
             "  warmup: 0.05\n  warmup_start: 0\n  min_lr: 0\n  pct_start: 0.3\n  div: 25\n  final_div: 10000\n"
             "  plateau_factor: 0.1\n  plateau_patience: 5\n  plateau_threshold: 0.0001\n  clip_norm: 0\n"
             "  patience: 0\n  min_delta: 0\n  metric: auto\n  seed: 1\n  drop_last: false\n  threads: 1\n"
             "  device: cpu\n  precision: fp32\n\n"
             "health:\n  divergence_factor: 4\n  min_epochs: 6\n  smoothing: 0.3\n  oscillation: 0.1\n"
             "  spike_factor: 2\n  overfit_patience: 5\n  overfit_rise: 0.1\n  gap_max: 2\n"
             "  gap_abs_min: 0.1\n  min_drop: 0.01\n  baseline_frac: 0.9\n  tail_share: 0.2\n  tail_drop: 0.1\n"
             "  grad_ratio_low: 0.001\n  grad_ratio_high: 1000\n  grad_max: 1000\n  grad_min: 1e-08\n  noise_k: 2\n"
             "  imbalance_ratio: 3\n  shift_smd: 0.2\n  shift_alpha: 0.01\n  shift_share: 0.1\n"
             "  label_shift: 0.1\n  duplicate_share: 0.01\n",
             csv_file);
    cr_assert_str_eq(text, want);
    free(text);
    ns_config_free(&c);
}

Test(space, export_paths_are_absolute)
{
    char *dir = tu_temp_dir();
    char path[512], cfg[512];
    snprintf(path, sizeof path, "%s/d.csv", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("a,label\n1,x\n", f);
    fclose(f);
    char cwd[4096];
    cr_assert(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(dir), 0);
    /* a config in the current folder: data.train stays relative after parsing */
    snprintf(cfg, sizeof cfg, "cfg.yaml");
    const char *text = "data:\n  train: d.csv\n";
    ns_config c;
    ns_err e;
    cr_assert_eq(ns_config_parse(&c, cfg, text, strlen(text), &e), NS_OK, "%s", e.msg);
    cr_assert_str_eq(c.data.train, "d.csv");
    char *buf = NULL;
    size_t len = 0;
    f = open_memstream(&buf, &len);
    cr_assert_eq(ns_config_export_yaml(&c, f, NULL, &e), NS_OK, "%s", e.msg);
    fclose(f);
    char *real = realpath(path, NULL);
    char want[1024];
    snprintf(want, sizeof want, "data:\n  train: \"%s\"\n", real);
    cr_assert(!strncmp(buf, want, strlen(want)), "%s", buf);
    cr_assert_eq(chdir(cwd), 0);
    /* read back from elsewhere: the same file */
    ns_config back;
    cr_assert_eq(ns_config_parse(&back, "/elsewhere/x.yaml", buf, len, &e), NS_OK, "%s", e.msg);
    cr_assert_str_eq(back.data.train, real);
    ns_config_free(&back);
    free(real);
    free(buf);
    ns_config_free(&c);
    unlink(path);
    rmdir(dir);
    free(dir);
}

Test(space, export_refuses_a_search_space_and_skips_the_search_section)
{
    ns_config c;
    ns_err e;
    parse_ok(&c, "data:\n  train: %s\ntrain:\n  lr: {log_uniform: [1e-4, 1e-1]}\n" SEARCH_SECTION, csv_file);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(ns_config_export_yaml(&c, f, NULL, &e), NS_EINPUT);
    fclose(f);
    cr_assert(strstr(e.msg, "train.lr is still a search space"), "%s", e.msg);
    free(buf);
    /* a trial of it exports, without the search section */
    double u[1] = {0.5};
    ns_config t;
    cr_assert_eq(ns_config_instantiate(&c, u, &t, &e), NS_OK, "%s", e.msg);
    ns_stage_cfg_apply_budget(&t.search.stages[0], &t.train);
    cr_assert_eq(t.train.epochs, 2);
    char *text = round_trip(&t, "trial");
    cr_assert(strstr(text, "  epochs: 2\n"), "%s", text);
    free(text);
    ns_config_free(&t);
    ns_config_free(&c);
}

Test(space, instantiated_configs_pass_validation_and_round_trip)
{
    ns_config base, t;
    ns_err e;
    parse_ok(&base,
             "data:\n  train: %s\n"
             "model:\n  depth: {int: [0, 4]}\n  width: {int: [4, 1024], log: true}\n"
             "  activation: {choice: [relu, leaky_relu, gelu, tanh, sigmoid]}\n  dropout: {uniform: [0, 0.6]}\n"
             "  init: {choice: [he, xavier]}\n  label_smoothing: {uniform: [0, 0.2]}\n"
             "  class_weights: {choice: [none, balanced, [1, 3]]}\n"
             "train:\n  optimizer: {choice: [sgd, adam, adamw, rmsprop]}\n  lr: {log_uniform: [1e-5, 1]}\n"
             "  momentum: {uniform: [0, 0.99]}\n  nesterov: {choice: [false, true]}\n"
             "  beta1: {uniform: [0.8, 0.95]}\n  beta2: {log_uniform: [0.9, 0.9999]}\n  eps: {log_uniform: [1e-10, 1]}\n"
             "  alpha: {uniform: [0.9, 0.999]}\n  weight_decay: {log_uniform: [1e-7, 1e-1]}\n"
             "  schedule: {choice: [constant, step, exponential, cosine, onecycle, plateau]}\n"
             "  step_size: {int: [1, 20]}\n  gamma: {uniform: [0.1, 1]}\n  warmup: {uniform: [0, 0.3]}\n"
             "  min_lr: {choice: [0, 1e-6]}\n  pct_start: {uniform: [0.1, 0.5]}\n  div: {log_uniform: [1, 100]}\n"
             "  final_div: {log_uniform: [1, 1e5]}\n  plateau_factor: {uniform: [0.1, 0.9]}\n"
             "  plateau_patience: {int: [0, 10]}\n  plateau_threshold: {log_uniform: [1e-5, 1e-1]}\n"
             "  clip_norm: {uniform: [0, 10]}\n  batch_size: {int: [1, 4096], log: true}\n"
             "  patience: {int: [0, 10]}\n  min_delta: {uniform: [0, 0.01]}\n  drop_last: {choice: [true, false]}\n"
             SEARCH_SECTION,
             csv_file);
    int n = base.space.n, ok = 0, refused = 0;
    cr_assert_eq(n, 32);
    double u[64];
    ns_rng r;
    ns_rng_seed(&r, 77);
    for (int rep = 0; rep < 300; rep++) {
        ns_space_sample(&base.space, &r, u, 64);
        int rc = ns_config_instantiate(&base, u, &t, &e);
        if (rc) {
            cr_assert_eq(rc, NS_EINPUT);
            cr_assert(strstr(e.msg, "searched values do not go together"), "%s", e.msg);
            refused++;
            continue;
        }
        ok++;
        char *js = ns_space_params_json(&base.space, &t);
        cr_assert(json_object_ok(js), "%s", js);
        free(js);
        free(round_trip(&t, "random trial"));
        ns_config_free(&t);
    }
    cr_assert(ok > 100 && refused > 0, "ok %d, refused %d", ok, refused);
    ns_config_free(&base);
    cr_assert_eq(ns_config_key_find("train.lr") >= 0, 1);
    cr_assert_eq(ns_config_key_find("train.nothing"), -1);
    cr_assert_eq(ns_config_key_find("lr"), -1);
}
