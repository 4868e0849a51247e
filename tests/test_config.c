/* test_config.c — the YAML config: every key lands in its field, defaults match the
 * engine's, and every kind of mistake gives one located line naming the key and the fix.
 * Not a test of the data loaders: only that the files exist and look like IDX or CSV. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "search/config/config.h"
#include "tests/testutil.h"

#ifndef NS_SOURCE_DIR
#define NS_SOURCE_DIR "."
#endif

/* ---- helpers --------------------------------------------------------------------------- */

static char *csv_file;  /* a CSV training file that exists */
static char *idx_file;  /* raw IDX images (magic 00 00 08 03) */
static char *idx_lab;   /* raw IDX labels */
static char *gz_file;   /* gzipped IDX images: IDX inside the gzip */
static char *gz_csv;    /* gzipped CSV: CSV inside the gzip */

static void make_files(void)
{
    static const char csv[] = "a,b,label\n1,2,x\n3,4,y\n";
    static const unsigned char img[] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7};
    static const unsigned char lab[] = {0, 0, 8, 1, 0, 0, 0, 1, 3};
    csv_file = tu_write_temp("train.csv", csv, sizeof csv - 1);
    idx_file = tu_write_temp("images.idx", img, sizeof img);
    idx_lab = tu_write_temp("labels.idx", lab, sizeof lab);
    gz_file = tu_write_temp("images.gz", "", 0);
    gz_csv = tu_write_temp("train.csv.gz", "", 0);
    cr_assert(csv_file && idx_file && idx_lab && gz_file && gz_csv);
    gzFile g = gzopen(gz_file, "wb");
    cr_assert(g && gzwrite(g, img, sizeof img) == (int)sizeof img && gzclose(g) == Z_OK);
    g = gzopen(gz_csv, "wb");
    cr_assert(g && gzwrite(g, csv, sizeof csv - 1) == (int)(sizeof csv - 1) && gzclose(g) == Z_OK);
}

static void free_files(void)
{
    char **all[] = {&csv_file, &idx_file, &idx_lab, &gz_file, &gz_csv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (*all[i]) {
            unlink(*all[i]);
            *strrchr(*all[i], '/') = 0; /* and its fresh folder */
            rmdir(*all[i]);
        }
        free(*all[i]);
        *all[i] = NULL;
    }
}

TestSuite(config, .init = make_files, .fini = free_files);

/* Formats the config text (which may name the files above) and parses it as "cfg.yaml". */
__attribute__((format(printf, 3, 4))) static int parse(ns_config *c, ns_err *e, const char *fmt, ...)
{
    static char text[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memset(e, 0, sizeof *e);
    return ns_config_parse(c, "cfg.yaml", text, strlen(text), e);
}

/* Parses text that must fail; checks the code, that nothing is left allocated, and that
 * the message contains every given fragment. */
#define EXPECT_ERROR(frags, ...)                                                              \
    do {                                                                                      \
        ns_config c_;                                                                         \
        ns_err e_;                                                                            \
        int rc_ = parse(&c_, &e_, __VA_ARGS__);                                               \
        cr_assert_eq(rc_, NS_EINPUT, "expected NS_EINPUT, got %d (%s)", rc_, e_.msg);         \
        cr_assert_null(c_.text, "config left allocated after a failure");                     \
        cr_assert_null(c_.data.train);                                                        \
        cr_assert_null(strchr(e_.msg, '\n'), "message is not one line: %s", e_.msg);          \
        const char *const *f_ = frags;                                                        \
        for (; *f_; f_++)                                                                     \
            cr_assert(strstr(e_.msg, *f_), "message lacks \"%s\": %s", *f_, e_.msg);          \
        ns_config_free(&c_);                                                                  \
    } while (0)

#define FRAGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- valid configs --------------------------------------------------------------------- */

Test(config, full_config_fills_every_field)
{
    ns_config c;
    ns_err e;
    int rc = parse(&c, &e,
                   "data:\n"
                   "  train: %s\n"
                   "  test: %s\n"
                   "  label: species\n"
                   "  task: classification\n"
                   "  val_fraction: 0.25\n"
                   "  split_seed: 18446744073709551615\n"
                   "  standardize: no\n"
                   "model:\n"
                   "  hidden: [64, 32, 16]\n"
                   "  activation: gelu\n"
                   "  dropout: 0.2\n"
                   "  init: xavier\n"
                   "  loss: cross_entropy\n"
                   "  label_smoothing: 0.1\n"
                   "  class_weights: [1, 2.5]\n"
                   "train:\n"
                   "  steps: 1e4\n"
                   "  max_epochs: 7\n"
                   "  batch_size: 64\n"
                   "  eval_batch: 512\n"
                   "  optimizer: sgd\n"
                   "  lr: 0.05\n"
                   "  momentum: 0.8\n"
                   "  nesterov: true\n"
                   "  beta1: 0.85\n"
                   "  beta2: 0.99\n"
                   "  eps: 1e-6\n"
                   "  alpha: 0.9\n"
                   "  weight_decay: 5e-4\n"
                   "  schedule: onecycle\n"
                   "  step_size: 3\n"
                   "  gamma: 0.5\n"
                   "  warmup: 0.1\n"
                   "  warmup_start: 0.01\n"
                   "  min_lr: 1e-5\n"
                   "  pct_start: 0.25\n"
                   "  div: 10\n"
                   "  final_div: 100\n"
                   "  plateau_factor: 0.5\n"
                   "  plateau_patience: 2\n"
                   "  plateau_threshold: 0.01\n"
                   "  clip_norm: 1.5\n"
                   "  patience: 4\n"
                   "  min_delta: 0.001\n"
                   "  seed: 42\n"
                   "  drop_last: yes\n"
                   "  threads: 2\n",
                   csv_file, csv_file);
    cr_assert_eq(rc, NS_OK, "%s", e.msg);
    cr_assert_str_eq(c.path, "cfg.yaml");
    cr_assert_str_eq(c.data.train, csv_file);
    cr_assert_str_eq(c.data.test, csv_file);
    cr_assert_null(c.data.train_labels);
    cr_assert_null(c.data.test_labels);
    cr_assert_str_eq(c.data.label, "species");
    cr_assert_eq(c.data.task, NS_TASK_CLASSIFY);
    cr_assert_eq(c.data.val_fraction, 0.25);
    cr_assert_eq(c.data.split_seed, UINT64_MAX);
    cr_assert_eq(c.data.standardize, 0);

    cr_assert_eq(c.model.n_in, 0);
    cr_assert_eq(c.model.n_out, 0);
    cr_assert_eq(c.model.n_hidden, 3);
    cr_assert_eq(c.model.hidden[0], 64);
    cr_assert_eq(c.model.hidden[1], 32);
    cr_assert_eq(c.model.hidden[2], 16);
    cr_assert_eq(c.model.act, NS_ACT_GELU);
    cr_assert_eq(c.model.dropout, 0.2f);
    cr_assert_eq(c.model.init, NS_INIT_XAVIER);
    cr_assert_eq(c.model.loss, NS_LOSS_XENT);
    cr_assert_eq(c.model.label_smoothing, 0.1f);
    cr_assert_eq(c.class_weights, NS_CW_LIST);
    cr_assert_eq(c.n_class_weights, 2);
    cr_assert_eq(c.class_weight_list[0], 1.0f);
    cr_assert_eq(c.class_weight_list[1], 2.5f);

    const ns_train_spec *t = &c.train;
    cr_assert_eq(t->budget, NS_BUDGET_STEPS);
    cr_assert_eq(t->steps, 10000);
    cr_assert_eq(t->max_epochs, 7);
    cr_assert_eq(t->batch_size, 64);
    cr_assert_eq(t->eval_batch, 512);
    cr_assert_eq(t->opt.kind, NS_OPT_SGD);
    cr_assert_eq(t->lr, 0.05);
    cr_assert_eq(t->opt.momentum, 0.8);
    cr_assert_eq(t->opt.nesterov, 1);
    cr_assert_eq(t->opt.beta1, 0.85);
    cr_assert_eq(t->opt.beta2, 0.99);
    cr_assert_eq(t->opt.eps, 1e-6);
    cr_assert_eq(t->opt.alpha, 0.9);
    cr_assert_eq(t->opt.weight_decay, 5e-4);
    cr_assert_eq(t->sched.kind, NS_SCHED_ONECYCLE);
    cr_assert_eq(t->sched.step_size, 3);
    cr_assert_eq(t->sched.gamma, 0.5);
    cr_assert_eq(t->sched.warmup, 0.1);
    cr_assert_eq(t->sched.warmup_start, 0.01);
    cr_assert_eq(t->sched.min_lr, 1e-5);
    cr_assert_eq(t->sched.pct_start, 0.25);
    cr_assert_eq(t->sched.div, 10);
    cr_assert_eq(t->sched.final_div, 100);
    cr_assert_eq(t->sched.factor, 0.5);
    cr_assert_eq(t->sched.patience, 2);
    cr_assert_eq(t->sched.threshold, 0.01);
    cr_assert_eq(t->clip_norm, 1.5);
    cr_assert_eq(t->patience, 4);
    cr_assert_eq(t->min_delta, 0.001);
    cr_assert_eq(t->seed, 42);
    cr_assert_eq(t->drop_last, 1);
    cr_assert_eq(c.threads, 2);
    ns_config_free(&c);
    cr_assert_null(c.text);
    ns_config_free(&c); /* twice is harmless */
}

Test(config, defaults_when_keys_are_omitted)
{
    ns_config c;
    ns_err e;
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_str_eq(c.data.label, "label");
    cr_assert_eq(c.data.task, NS_TASK_CLASSIFY);
    cr_assert_eq(c.data.val_fraction, 0.1);
    cr_assert_eq(c.data.split_seed, 1);
    cr_assert_eq(c.data.standardize, 1);
    cr_assert_eq(c.data.max_rows, 0, "every row");
    cr_assert_eq(c.data.test_max_rows, 0);
    cr_assert_null(c.data.test);
    cr_assert_eq(c.model.n_hidden, 2);
    cr_assert_eq(c.model.hidden[0], 256);
    cr_assert_eq(c.model.hidden[1], 128);
    cr_assert_eq(c.model.act, NS_ACT_RELU);
    cr_assert_eq(c.model.dropout, 0.0f);
    cr_assert_eq(c.model.init, NS_INIT_HE);
    cr_assert_eq(c.model.loss, NS_LOSS_XENT);
    cr_assert_eq(c.model.label_smoothing, 0.0f);
    cr_assert_eq(c.class_weights, NS_CW_AUTO);
    cr_assert_eq(c.n_class_weights, 0);
    cr_assert_null(c.class_weight_list);
    const ns_train_spec *t = &c.train;
    cr_assert_eq(t->budget, NS_BUDGET_EPOCHS);
    cr_assert_eq(t->epochs, 10);
    cr_assert_eq(t->max_epochs, 0);
    cr_assert_eq(t->batch_size, 128);
    cr_assert_eq(t->eval_batch, 1024);
    cr_assert_eq(t->opt.kind, NS_OPT_ADAM);
    cr_assert_eq(t->lr, 1e-3);
    cr_assert_eq(t->opt.momentum, 0.0);
    cr_assert_eq(t->opt.nesterov, 0);
    cr_assert_eq(t->opt.beta1, 0.9);
    cr_assert_eq(t->opt.beta2, 0.999);
    cr_assert_eq(t->opt.eps, 1e-8);
    cr_assert_eq(t->opt.alpha, 0.99);
    cr_assert_eq(t->opt.weight_decay, 0.0);
    cr_assert_eq(t->sched.kind, NS_SCHED_CONSTANT);
    cr_assert_eq(t->sched.step_size, 10);
    cr_assert_eq(t->sched.gamma, 0.1);
    cr_assert_eq(t->sched.warmup, 0.05);
    cr_assert_eq(t->sched.warmup_start, 0.0);
    cr_assert_eq(t->sched.min_lr, 0.0);
    cr_assert_eq(t->sched.pct_start, 0.3);
    cr_assert_eq(t->sched.div, 25);
    cr_assert_eq(t->sched.final_div, 1e4);
    cr_assert_eq(t->sched.factor, 0.1);
    cr_assert_eq(t->sched.patience, 5);
    cr_assert_eq(t->sched.threshold, 1e-4);
    cr_assert_eq(t->clip_norm, 0.0);
    cr_assert_eq(t->patience, 0);
    cr_assert_eq(t->min_delta, 0.0);
    cr_assert_eq(t->seed, 1);
    cr_assert_eq(t->drop_last, 0);
    cr_assert_eq(c.threads, 1);
    ns_config_free(&c);
}

/* The table's defaults are the engine's, field for field, for every optimizer and schedule. */
static void assert_opt_eq(const ns_optim_spec *g, const ns_optim_spec *o, const char *what)
{
    cr_assert_eq(g->kind, o->kind, "%s", what);
    cr_assert_eq(g->momentum, o->momentum, "%s momentum", what);
    cr_assert_eq(g->nesterov, o->nesterov, "%s nesterov", what);
    cr_assert_eq(g->beta1, o->beta1, "%s beta1", what);
    cr_assert_eq(g->beta2, o->beta2, "%s beta2", what);
    cr_assert_eq(g->alpha, o->alpha, "%s alpha", what);
    cr_assert_eq(g->eps, o->eps, "%s eps", what);
    cr_assert_eq(g->weight_decay, o->weight_decay, "%s weight_decay", what);
}

static void assert_sched_eq(const ns_sched_spec *g, const ns_sched_spec *s, const char *what)
{
    cr_assert_eq(g->kind, s->kind, "%s", what);
    cr_assert_eq(g->step_size, s->step_size, "%s step_size", what);
    cr_assert_eq(g->gamma, s->gamma, "%s gamma", what);
    cr_assert_eq(g->warmup, s->warmup, "%s warmup", what);
    cr_assert_eq(g->warmup_start, s->warmup_start, "%s warmup_start", what);
    cr_assert_eq(g->min_lr, s->min_lr, "%s min_lr", what);
    cr_assert_eq(g->pct_start, s->pct_start, "%s pct_start", what);
    cr_assert_eq(g->div, s->div, "%s div", what);
    cr_assert_eq(g->final_div, s->final_div, "%s final_div", what);
    cr_assert_eq(g->factor, s->factor, "%s plateau_factor", what);
    cr_assert_eq(g->patience, s->patience, "%s plateau_patience", what);
    cr_assert_eq(g->threshold, s->threshold, "%s plateau_threshold", what);
}

Test(config, defaults_equal_engine_defaults)
{
    static const char *const opts[] = {"sgd", "adam", "adamw", "rmsprop"};
    static const ns_opt_kind okind[] = {NS_OPT_SGD, NS_OPT_ADAM, NS_OPT_ADAMW, NS_OPT_RMSPROP};
    static const char *const scheds[] = {"constant", "step", "exponential", "cosine", "onecycle", "plateau"};
    static const ns_sched_kind skind[] = {NS_SCHED_CONSTANT, NS_SCHED_STEP, NS_SCHED_EXP,
                                          NS_SCHED_COSINE, NS_SCHED_ONECYCLE, NS_SCHED_PLATEAU};
    ns_config c;
    ns_err e;
    ns_train_spec ts;
    ns_train_spec_default(&ts);
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.train.budget, ts.budget);
    cr_assert_eq(c.train.epochs, ts.epochs);
    cr_assert_eq(c.train.steps, ts.steps);
    cr_assert_eq(c.train.seconds, ts.seconds);
    cr_assert_eq(c.train.max_epochs, ts.max_epochs);
    cr_assert_eq(c.train.batch_size, ts.batch_size);
    cr_assert_eq(c.train.eval_batch, ts.eval_batch);
    cr_assert_eq(c.train.lr, ts.lr);
    cr_assert_eq(c.train.clip_norm, ts.clip_norm);
    cr_assert_eq(c.train.patience, ts.patience);
    cr_assert_eq(c.train.min_delta, ts.min_delta);
    cr_assert_eq(c.train.seed, ts.seed);
    cr_assert_eq(c.train.drop_last, ts.drop_last);
    assert_opt_eq(&c.train.opt, &ts.opt, "train default");
    assert_sched_eq(&c.train.sched, &ts.sched, "train default");
    ns_config_free(&c);

    for (int i = 0; i < 4; i++) {
        ns_optim_spec o;
        ns_optim_spec_default(&o, okind[i]);
        cr_assert_eq(parse(&c, &e, "data:\n  train: %s\ntrain:\n  optimizer: %s\n", csv_file, opts[i]),
                     NS_OK, "%s", e.msg);
        assert_opt_eq(&c.train.opt, &o, opts[i]);
        ns_config_free(&c);
    }
    for (int i = 0; i < 6; i++) {
        ns_sched_spec s;
        ns_sched_spec_default(&s, skind[i]);
        cr_assert_eq(parse(&c, &e, "data:\n  train: %s\ntrain:\n  schedule: %s\n", csv_file, scheds[i]),
                     NS_OK, "%s", e.msg);
        assert_sched_eq(&c.train.sched, &s, scheds[i]);
        ns_config_free(&c);
    }
}

Test(config, defaults_that_depend_on_other_keys)
{
    ns_config c;
    ns_err e;
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\ntrain:\n  optimizer: sgd\n  schedule: step\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.train.opt.momentum, 0.9);
    cr_assert_eq(c.train.sched.gamma, 0.1);
    ns_config_free(&c);
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\ntrain:\n  optimizer: rmsprop\n  schedule: exponential\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.train.opt.momentum, 0.0);
    cr_assert_eq(c.train.sched.gamma, 0.95);
    ns_config_free(&c);
    /* an explicit value wins over the dependent default */
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\ntrain:\n  optimizer: sgd\n  momentum: 0\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.train.opt.momentum, 0.0);
    ns_config_free(&c);
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\n  task: regression\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.data.task, NS_TASK_REGRESS);
    cr_assert_eq(c.model.loss, NS_LOSS_MSE);
    ns_config_free(&c);
}

Test(config, value_forms)
{
    ns_config c;
    ns_err e;
    /* a single width, an empty section, seconds as the budget, balanced weights */
    cr_assert_eq(parse(&c, &e,
                       "data:\n  train: %s\nmodel:\n  hidden: 64\n  class_weights: balanced\n"
                       "train:\n  seconds: 2.5\n",
                       csv_file),
                 NS_OK, "%s", e.msg);
    cr_assert_eq(c.model.n_hidden, 1);
    cr_assert_eq(c.model.hidden[0], 64);
    cr_assert_eq(c.class_weights, NS_CW_BALANCED);
    cr_assert_null(c.class_weight_list);
    cr_assert_eq(c.train.budget, NS_BUDGET_SECONDS);
    cr_assert_eq(c.train.seconds, 2.5);
    ns_config_free(&c);
    /* no hidden layer (a linear model); flow style */
    cr_assert_eq(parse(&c, &e, "{data: {train: '%s'}, model: {hidden: []}, train: {}}\n", csv_file),
                 NS_OK, "%s", e.msg);
    cr_assert_eq(c.model.n_hidden, 0);
    cr_assert_eq(c.train.epochs, 10);
    ns_config_free(&c);
    /* a section with nothing under it keeps its defaults */
    cr_assert_eq(parse(&c, &e, "model:\ndata:\n  train: %s\ntrain: ~\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.model.n_hidden, 2);
    cr_assert_eq(c.train.lr, 1e-3);
    ns_config_free(&c);
    /* IDX images with labels, raw and gzip'd */
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\n  train_labels: %s\n  test: %s\n  test_labels: %s\n",
                       idx_file, idx_lab, gz_file, idx_lab),
                 NS_OK, "%s", e.msg);
    cr_assert_str_eq(c.data.train_labels, idx_lab);
    cr_assert_str_eq(c.data.test_labels, idx_lab);
    ns_config_free(&c);
}

Test(config, relative_paths_resolve_against_the_config_folder)
{
    char *dir = tu_temp_dir();
    char path[512], cfg[512], text[1024];
    snprintf(path, sizeof path, "%s/train.csv", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("a,label\n1,x\n", f);
    fclose(f);
    snprintf(cfg, sizeof cfg, "%s/cfg.yaml", dir);
    snprintf(text, sizeof text, "data:\n  train: train.csv\n");
    ns_config c;
    ns_err e;
    cr_assert_eq(ns_config_parse(&c, cfg, text, strlen(text), &e), NS_OK, "%s", e.msg);
    cr_assert_str_eq(c.data.train, path);
    ns_config_free(&c);
    /* ns_config_load reads the same from the file */
    f = fopen(cfg, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(ns_config_load(&c, cfg, &e), NS_OK, "%s", e.msg);
    cr_assert_str_eq(c.data.train, path);
    cr_assert_str_eq(c.text, text);
    cr_assert_eq(c.hash, ns_fnv1a64(text, strlen(text)));
    ns_config_free(&c);
    /* a missing file is named with its resolved path */
    snprintf(text, sizeof text, "data:\n  train: nothere.csv\n");
    cr_assert_eq(ns_config_parse(&c, cfg, text, strlen(text), &e), NS_EINPUT);
    cr_assert(strstr(e.msg, "cfg.yaml:2:10:"), "%s", e.msg);
    cr_assert(strstr(e.msg, "/nothere.csv"), "%s", e.msg);
    cr_assert(strstr(e.msg, dir), "%s", e.msg);
    cr_assert(strstr(e.msg, "No such file or directory"), "%s", e.msg);
    unlink(path);
    unlink(cfg);
    rmdir(dir);
    free(dir);
}

Test(config, hash_is_fnv1a64_stable_and_sensitive)
{
    cr_assert_eq(ns_fnv1a64("", 0), 0xcbf29ce484222325ULL);
    cr_assert_eq(ns_fnv1a64("a", 1), 0xaf63dc4c8601ec8cULL);
    cr_assert_eq(ns_fnv1a64("foobar", 6), 0x85944171f73967e8ULL);
    ns_config a, b;
    ns_err e;
    cr_assert_eq(parse(&a, &e, "data:\n  train: %s\ntrain:\n  lr: 0.01\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(parse(&b, &e, "data:\n  train: %s\ntrain:\n  lr: 0.01\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(a.hash, b.hash);
    cr_assert_eq(a.hash, ns_fnv1a64(a.text, strlen(a.text)));
    ns_config_free(&b);
    cr_assert_eq(parse(&b, &e, "data:\n  train: %s\ntrain:\n  lr: 0.02\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_neq(a.hash, b.hash);
    ns_config_free(&a);
    ns_config_free(&b);
}

Test(config, example_configs_parse)
{
    ns_config c;
    ns_err e;
    cr_assert_eq(ns_config_load(&c, NS_SOURCE_DIR "/configs/tiny-train.yaml", &e), NS_OK, "%s", e.msg);
    cr_assert(strstr(c.data.train, "configs/data/tiny.csv"), "%s", c.data.train);
    cr_assert_eq(c.data.task, NS_TASK_CLASSIFY);
    ns_config_free(&c);
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK))
        cr_skip_test("Fashion-MNIST files are not installed");
    cr_assert_eq(ns_config_load(&c, NS_SOURCE_DIR "/configs/fashion-mnist-train.yaml", &e), NS_OK,
                 "%s", e.msg);
    cr_assert_eq(c.model.n_hidden, 2);
    cr_assert_eq(c.model.hidden[0], 256);
    cr_assert_eq(c.model.hidden[1], 128);
    cr_assert_eq(c.train.opt.kind, NS_OPT_ADAM);
    cr_assert_eq(c.train.sched.kind, NS_SCHED_COSINE);
    cr_assert_eq(c.train.epochs, 10);
    cr_assert_eq(c.train.batch_size, 128);
    cr_assert_eq(c.data.val_fraction, 0.1);
    ns_config_free(&c);
}

/* ---- errors: syntax and structure -------------------------------------------------------- */

Test(config, error_yaml_syntax)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:4:1:", "YAML syntax error", "flow sequence at line 3"), "data:\n  train: %s\n  label: [a, b\n",
                 csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:2:1:", "YAML syntax error", "tabs"), "data:\n\ttrain: x\n");
    EXPECT_ERROR(FRAGS("cfg.yaml:2:", "not valid UTF-8"), "data:\n  train: a\xc3\x28\n");
}

Test(config, error_top_level_not_a_mapping)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:1:1:", "top level must be a mapping", "got a list"), "- data\n- model\n");
    EXPECT_ERROR(FRAGS("cfg.yaml:1:1:", "top level must be a mapping"), "hello\n");
    EXPECT_ERROR(FRAGS("cfg.yaml:1:1:", "config is empty"), "# nothing here\n");
}

Test(config, error_unknown_section)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:3:1:", "unknown section 'modle'", "did you mean 'model'?"),
                 "data:\n  train: %s\nmodle:\n  hidden: 3\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:1:", "unknown section 'lr'", "key of section 'train'"),
                 "data:\n  train: %s\nlr: 0.1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:1:1:", "unknown section 'zzz'", "data, model, train and health"), "zzz: 1\n");
}

Test(config, error_unknown_key_with_suggestion)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:4:3:", "unknown key 'learnig_rate' in section 'train'",
                       "(did you mean 'lr'?)"),
                 "data:\n  train: %s\ntrain:\n  learnig_rate: 0.1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:3:", "unknown key 'learning_rate'", "did you mean 'lr'?"),
                 "data:\n  train: %s\ntrain:\n  learning_rate: 0.1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:3:", "unknown key 'batch_szie'", "did you mean 'batch_size'?"),
                 "data:\n  train: %s\ntrain:\n  lr: 0.1\n  batch_szie: 3\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:3:", "unknown key 'activaton' in section 'model'",
                       "did you mean 'activation'?"),
                 "data:\n  train: %s\nmodel:\n  activaton: relu\n", csv_file);
    /* a key of another section */
    EXPECT_ERROR(FRAGS("cfg.yaml:4:3:", "unknown key 'lr' in section 'model'",
                       "key of section 'train'", "move it under 'train:'"),
                 "data:\n  train: %s\nmodel:\n  lr: 0.1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:3:", "did you mean 'train.optimizer'?"),
                 "data:\n  train: %s\nmodel:\n  optimiser: adam\n", csv_file);
    /* nothing close: the section's keys are listed */
    EXPECT_ERROR(FRAGS("cfg.yaml:3:3:", "unknown key 'colour' in section 'data'", "train, train_labels"),
                 "data:\n  train: %s\n  colour: blue\n", csv_file);
}

Test(config, error_duplicates)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:5:3:", "duplicate key 'lr' in section 'train'", "line 4"),
                 "data:\n  train: %s\ntrain:\n  lr: 0.1\n  lr: 0.2\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:1:", "duplicate section 'train'", "line 3"),
                 "data:\n  train: %s\ntrain:\n  lr: 0.1\ntrain:\n  seed: 2\n", csv_file);
}

/* ---- errors: values ---------------------------------------------------------------------- */

Test(config, error_wrong_type)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:4:7:", "train.lr", "expected a number, got 'abc'"),
                 "data:\n  train: %s\ntrain:\n  lr: abc\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:15:", "train.batch_size", "expected a whole number, got '12.5'"),
                 "data:\n  train: %s\ntrain:\n  batch_size: 12.5\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:7:", "train.lr", "expected a number", "got a mapping"),
                 "data:\n  train: %s\ntrain:\n  lr: {a: 1}\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:7:", "train.lr", "got a list"),
                 "data:\n  train: %s\ntrain:\n  lr: [1]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:6:", "train.lr", "no value"),
                 "data:\n  train: %s\ntrain:\n  lr:\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:16:", "data.standardize", "expected true or false, got 'maybe'"),
                 "data:\n  train: %s\n  standardize: maybe\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:8:", "section 'train' must be a mapping", "got a value"),
                 "data:\n  train: %s\ntrain: 5\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:7:", "train.lr", "expected a number, got '.inf'"),
                 "data:\n  train: %s\ntrain:\n  lr: .inf\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:10:", "data.label", "empty"), "data:\n  train: %s\n  label: ''\n",
                 csv_file);
}

Test(config, row_limits)
{
    ns_config c;
    ns_err e;
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\n  test: %s\n  max_rows: 2\n  test_max_rows: 7\n",
                       csv_file, csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.data.max_rows, 2);
    cr_assert_eq(c.data.test_max_rows, 7);
    ns_config_free(&c);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:13:", "data.max_rows", "-5 is out of range"),
                 "data:\n  train: %s\n  max_rows: -5\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:13:", "data.max_rows", "expected a whole number"),
                 "data:\n  train: %s\n  max_rows: 2.5\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:13:", "data.max_rows: 1 row is too few", "at least 2"),
                 "data:\n  train: %s\n  max_rows: 1\n", csv_file);
    /* 0 is every row, as an exported trial config writes it, with or without a test file */
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\n  max_rows: 0\n  test_max_rows: 0\n", csv_file),
                 NS_OK, "%s", e.msg);
    ns_config_free(&c);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:18:", "data.test_max_rows: given without data.test"),
                 "data:\n  train: %s\n  test_max_rows: 100\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:13:", "data.max_rows cannot be searched", "shared by every trial"),
                 "data:\n  train: %s\n  max_rows: {int: [10, 100]}\nsearch:\n  stages: [{stage: random, trials: 2, epochs: 1}]\n", csv_file);
}

Test(config, error_out_of_range)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:3:17:", "data.val_fraction", "0.95 is out of range", "[0, 0.9]"),
                 "data:\n  train: %s\n  val_fraction: 0.95\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:15:", "train.batch_size", "0 is out of range", "[1, 16777216]"),
                 "data:\n  train: %s\ntrain:\n  batch_size: 0\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:7:", "train.lr", "must be > 0"),
                 "data:\n  train: %s\ntrain:\n  lr: 0\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:7:", "train.lr", "must be > 0"),
                 "data:\n  train: %s\ntrain:\n  lr: -1e-3\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:12:", "model.dropout", "[0, 1)"),
                 "data:\n  train: %s\nmodel:\n  dropout: 1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:20:", "model.label_smoothing", "[0, 1)"),
                 "data:\n  train: %s\nmodel:\n  label_smoothing: 1.0\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:15:", "train.batch_size", "out of range", "32 bits"),
                 "data:\n  train: %s\ntrain:\n  batch_size: 1e12\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:9:", "train.seed", "out of range"),
                 "data:\n  train: %s\ntrain:\n  seed: -1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:11:", "train.epochs", "must be >= 1"),
                 "data:\n  train: %s\ntrain:\n  epochs: 0\n", csv_file);
}

Test(config, error_unknown_enum_value)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:4:15:", "model.activation", "unknown activation 'rleu'",
                       "did you mean 'relu'?", "allowed: relu, leaky_relu, gelu, tanh, sigmoid"),
                 "data:\n  train: %s\nmodel:\n  activation: rleu\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:14:", "unknown optimizer 'Adam'", "did you mean 'adam'?",
                       "allowed: sgd, adam, adamw, rmsprop"),
                 "data:\n  train: %s\ntrain:\n  optimizer: Adam\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:9:", "unknown init 'kaiming'", "did you mean 'he'?"),
                 "data:\n  train: %s\nmodel:\n  init: kaiming\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:13:", "unknown schedule 'warmup'", "allowed: constant, step"),
                 "data:\n  train: %s\ntrain:\n  schedule: warmup\n", csv_file);
}

Test(config, error_missing_required)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:1:1:", "missing required key 'train' in section 'data'"),
                 "train:\n  lr: 0.1\n");
    EXPECT_ERROR(FRAGS("cfg.yaml:3:1:", "missing required key 'train' in section 'data'"),
                 "model:\n  hidden: 4\ndata:\n  label: y\n");
    EXPECT_ERROR(FRAGS("cfg.yaml:1:1:", "missing required key 'train'"), "data:\n");
}

/* ---- errors: cross-field rules and files ---------------------------------------------------- */

Test(config, error_budget)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:5:3:", "train.steps conflicts with train.epochs (line 4)", "only one budget"),
                 "data:\n  train: %s\ntrain:\n  epochs: 3\n  steps: 100\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:3:", "train.epochs conflicts with train.seconds (line 4)"),
                 "data:\n  train: %s\ntrain:\n  seconds: 3\n  epochs: 100\n", csv_file);
}

Test(config, error_hidden)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:4:16:", "model.hidden[1]", "0 is out of range", "[1, 1048576]"),
                 "data:\n  train: %s\nmodel:\n  hidden: [64, 0]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:11:", "model.hidden", "-3 is out of range"),
                 "data:\n  train: %s\nmodel:\n  hidden: -3\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:16:", "model.hidden[1]", "got a list"),
                 "data:\n  train: %s\nmodel:\n  hidden: [64, [3]]\n", csv_file);
    char list[512] = "[";
    for (int i = 0; i < NS_MAX_HIDDEN + 1; i++)
        strcat(list, i ? ", 8" : "8");
    strcat(list, "]");
    EXPECT_ERROR(FRAGS("cfg.yaml:4:11:", "model.hidden", "33 entries, at most 32"),
                 "data:\n  train: %s\nmodel:\n  hidden: %s\n", csv_file, list);
}

Test(config, error_class_weights)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:4:25:", "model.class_weights[2]", "out of range", "(0, "),
                 "data:\n  train: %s\nmodel:\n  class_weights: [1, 2, 0]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:22:", "model.class_weights[1]", "out of range"),
                 "data:\n  train: %s\nmodel:\n  class_weights: [1, -2]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:18:", "model.class_weights", "empty"),
                 "data:\n  train: %s\nmodel:\n  class_weights: []\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:18:", "model.class_weights", "unknown value 'balance'",
                       "did you mean 'balanced'?"),
                 "data:\n  train: %s\nmodel:\n  class_weights: balance\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:18:", "model.class_weights", "classification only"),
                 "data:\n  train: %s\n  task: regression\nmodel:\n  class_weights: balanced\n", csv_file);
}

Test(config, error_loss_and_task)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:4:9:", "model.loss", "mse needs data.task: regression"),
                 "data:\n  train: %s\nmodel:\n  loss: mse\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:9:", "model.loss", "cross_entropy needs data.task: classification"),
                 "data:\n  train: %s\n  task: regression\nmodel:\n  loss: cross_entropy\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:20:", "model.label_smoothing", "cross_entropy only"),
                 "data:\n  train: %s\n  task: regression\nmodel:\n  label_smoothing: 0.1\n", csv_file);
}

Test(config, error_other_rules)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:4:13:", "train.nesterov", "sgd only"),
                 "data:\n  train: %s\ntrain:\n  nesterov: true\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:6:13:", "train.nesterov", "momentum > 0"),
                 "data:\n  train: %s\ntrain:\n  optimizer: sgd\n  momentum: 0\n  nesterov: true\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:13:", "train.patience", "validation set", "val_fraction"),
                 "data:\n  train: %s\n  val_fraction: 0\ntrain:\n  patience: 3\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:13:", "train.schedule", "plateau needs a validation set"),
                 "data:\n  train: %s\n  val_fraction: 0\ntrain:\n  schedule: plateau\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:11:", "train.min_lr", "above train.lr"),
                 "data:\n  train: %s\ntrain:\n  lr: 0.01\n  min_lr: 0.1\n", csv_file);
}

Test(config, ensemble_keys)
{
    ns_config c;
    ns_err e;
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\n  val_fraction: 0\nmodel:\n  ensemble: 5\n"
                       "  ensemble_seed: 18446744073709551615\ntrain:\n  patience: 3\n", csv_file),
                 NS_OK, "%s", e.msg); /* members validate on their folds: patience needs no split */
    cr_assert_eq(c.ensemble, 5);
    cr_assert_eq(c.ensemble_seed, UINT64_MAX);
    ns_config_free(&c);
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.ensemble, 0);
    cr_assert_eq(c.ensemble_seed, 1);
    cr_assert_eq(c.search.final, NS_FINAL_AUTO);
    ns_config_free(&c);
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\ntrain:\n  lr: {log_uniform: [1e-3, 1e-1]}\n"
                       "search:\n  final: refit\n  stages: [{stage: random, trials: 2, epochs: 1}]\n",
                       csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.search.final, NS_FINAL_REFIT);
    ns_config_free(&c);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:13:", "model.ensemble", "1 fold is one model"),
                 "data:\n  train: %s\nmodel:\n  ensemble: 1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:13:", "model.ensemble", "out of range"),
                 "data:\n  train: %s\nmodel:\n  ensemble: 51\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:13:", "model.ensemble", "search.final"),
                 "data:\n  train: %s\nmodel:\n  ensemble: 5\nsearch:\n  stages: [{stage: random, trials: 2, epochs: 1}]\n",
                 csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:10:", "search.final", "unknown final 'ensembel'", "did you mean 'ensemble'?"),
                 "data:\n  train: %s\nsearch:\n  final: ensembel\n  stages: [{stage: random, trials: 2, epochs: 1}]\n",
                 csv_file);
}

Test(config, error_data_files)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:2:10:", "data.train", "IDX file", "train_labels is missing"),
                 "data:\n  train: %s\n", idx_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:2:10:", "data.train", "IDX file"), "data:\n  train: %s\n", gz_file);
    /* a gzipped CSV is CSV: no labels file wanted, and one given is refused as with CSV */
    ns_config c;
    ns_err e = {0};
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\n", gz_csv), NS_OK, "%s", e.msg);
    ns_config_free(&c);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:17:", "data.train_labels", "CSV file"),
                 "data:\n  train: %s\n  train_labels: %s\n", gz_csv, idx_lab);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:17:", "data.train_labels", "CSV file"),
                 "data:\n  train: %s\n  train_labels: %s\n", csv_file, idx_lab);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:9:", "data.test", "IDX file", "test_labels is missing"),
                 "data:\n  train: %s\n  train_labels: %s\n  test: %s\n", idx_file, idx_lab, idx_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:16:", "data.test_labels", "without data.test"),
                 "data:\n  train: %s\n  test_labels: %s\n", csv_file, idx_lab);
    EXPECT_ERROR(FRAGS("cfg.yaml:2:10:", "data.train", "cannot open '/nonexistent/x.csv'",
                       "No such file or directory"),
                 "data:\n  train: /nonexistent/x.csv\n");
    EXPECT_ERROR(FRAGS("cfg.yaml:2:10:", "data.train", "is a directory"), "data:\n  train: /tmp\n");
    EXPECT_ERROR(FRAGS("cfg.yaml:3:17:", "data.train_labels", "cannot open"),
                 "data:\n  train: %s\n  train_labels: /nonexistent/l.idx\n", idx_file);
}

Test(config, error_second_document_and_load)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:3:1:", "second YAML document"), "data:\n  train: %s\n---\ndata: {}\n",
                 csv_file);
    ns_config c;
    ns_err e;
    cr_assert_eq(ns_config_load(&c, "/nonexistent/cfg.yaml", &e), NS_EINPUT);
    cr_assert(strstr(e.msg, "/nonexistent/cfg.yaml: cannot open the config"), "%s", e.msg);
    cr_assert_null(c.text);
    ns_config_free(&c);
}

/* ---- search spaces ------------------------------------------------------------------------ */

/* A minimal search section, appended to configs that search. */
#define SEARCH_SECTION "search:\n  stages:\n    - {stage: random, trials: 5, epochs: 2}\n"

Test(config, every_space_kind_parses)
{
    ns_config c;
    ns_err e;
    int rc = parse(&c, &e,
                   "data:\n"
                   "  train: %s\n"
                   "model:\n"
                   "  hidden: {choice: [[256, 128], [512], 64, []]}\n"
                   "  activation: {choice: [relu, gelu]}\n"
                   "  dropout: {uniform: [0, 0.5]}\n"
                   "  class_weights: {choice: [none, balanced, [1, 2]]}\n"
                   "train:\n"
                   "  lr: {log_uniform: [1e-4, 1e-1]}\n"
                   "  batch_size:\n"
                   "    int: [16, 256]\n"
                   "    log: true\n"
                   "  step_size: {int: [1, 10], log: false}\n"
                   "  nesterov: {choice: [true, false]}\n"
                   "  optimizer: {choice: [sgd, adam]}\n"
                   SEARCH_SECTION,
                   csv_file);
    cr_assert_eq(rc, NS_OK, "%s", e.msg);
    const ns_space *sp = &c.space;
    cr_assert_eq(sp->n, 9);
    static const char *const names[] = {"model.hidden", "model.activation", "model.dropout",
                                        "model.class_weights", "train.lr", "train.batch_size",
                                        "train.step_size", "train.nesterov", "train.optimizer"};
    static const ns_dim_kind kinds[] = {NS_DIM_CHOICE, NS_DIM_CHOICE, NS_DIM_UNIFORM,
                                        NS_DIM_CHOICE, NS_DIM_LOG_UNIFORM, NS_DIM_INT_LOG,
                                        NS_DIM_INT, NS_DIM_CHOICE, NS_DIM_CHOICE};
    for (int i = 0; i < 9; i++) {
        cr_assert_str_eq(sp->dims[i].name, names[i]);
        cr_assert_eq(sp->dims[i].kind, kinds[i], "%s", names[i]);
        cr_assert_eq(sp->dims[i].key, ns_config_key_find(names[i]));
        cr_assert_eq(ns_space_find(sp, names[i]), i);
    }
    const ns_dim *h = &sp->dims[0];
    cr_assert_eq(h->n_choices, 4);
    cr_assert_str_eq(h->choices[0], "[256, 128]");
    cr_assert_str_eq(h->choices[1], "[512]");
    cr_assert_str_eq(h->choices[2], "64");
    cr_assert_str_eq(h->choices[3], "[]");
    cr_assert_eq(h->lo, 0);
    cr_assert_eq(h->hi, 3);
    cr_assert_eq(h->line, 4);
    cr_assert_eq(h->column, 11);
    cr_assert_str_eq(sp->dims[3].choices[2], "[1, 2]");
    cr_assert_eq(sp->dims[2].lo, 0);
    cr_assert_eq(sp->dims[2].hi, 0.5);
    cr_assert_eq(sp->dims[4].lo, 1e-4);
    cr_assert_eq(sp->dims[4].hi, 1e-1);
    cr_assert_eq(sp->dims[5].lo, 16);
    cr_assert_eq(sp->dims[5].hi, 256);
    cr_assert_eq(sp->dims[5].line, 11);
    cr_assert_eq(sp->dims[5].column, 5);
    cr_assert_eq(ns_space_find(sp, "train.seed"), -1);
    /* searched keys keep their defaults until a trial sets them */
    cr_assert_eq(c.train.lr, 1e-3);
    cr_assert_eq(c.model.n_hidden, 2);
    cr_assert_eq(c.train.opt.kind, NS_OPT_ADAM);
    /* the search section */
    cr_assert_eq(c.search.given, 1);
    cr_assert_str_eq(c.search.name, "cfg");
    char cwd[4096], want[4200];
    cr_assert(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/results/cfg", cwd);
    cr_assert_str_eq(c.search.output, want);
    cr_assert_eq(c.search.seed, 1);
    cr_assert_eq(c.search.parallel, 1);
    cr_assert_eq(c.search.metric, NS_METRIC_VAL_ACC);
    cr_assert_eq(c.search.n_stages, 1);
    cr_assert_str_eq(c.search.stages[0].name, "random");
    cr_assert_eq(c.search.stages[0].trials, 5);
    cr_assert_eq(c.search.stages[0].budget, NS_BUDGET_EPOCHS);
    cr_assert_eq(c.search.stages[0].epochs, 2);
    cr_assert_eq(c.search.stages[0].seconds, 0);
    cr_assert_eq(c.search.stages[0].line, 18);
    cr_assert_eq(c.search.stages[0].column, 7);
    ns_config_free(&c);
}

Test(config, searchable_flags)
{
    static const char *const yes[] = {
        "model.hidden", "model.depth", "model.width", "model.activation", "model.dropout",
        "model.init", "model.label_smoothing", "model.class_weights", "train.optimizer",
        "train.lr", "train.momentum", "train.nesterov", "train.beta1", "train.beta2",
        "train.eps", "train.alpha", "train.weight_decay", "train.schedule", "train.step_size",
        "train.gamma", "train.warmup", "train.warmup_start", "train.min_lr", "train.pct_start",
        "train.div", "train.final_div", "train.plateau_factor", "train.plateau_patience",
        "train.plateau_threshold", "train.clip_norm", "train.batch_size", "train.patience",
        "train.min_delta", "train.drop_last"};
    ns_config c;
    ns_err e;
    /* each searchable key takes a choice of its default-like value */
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        const char *key = strchr(yes[i], '.') + 1;
        const char *val = !strcmp(key, "hidden") ? "[[8], 4]"
                          : !strcmp(key, "activation") ? "[relu, tanh]"
                          : !strcmp(key, "init") ? "[he, xavier]"
                          : !strcmp(key, "class_weights") ? "[none, balanced]"
                          : !strcmp(key, "optimizer") ? "[sgd, rmsprop]"
                          : !strcmp(key, "schedule") ? "[cosine, step]"
                          : !strcmp(key, "nesterov") || !strcmp(key, "drop_last") ? "[false]"
                          : !strcmp(key, "min_lr") ? "[0]"
                          : "[1, 2]";
        if (!strcmp(key, "dropout") || !strcmp(key, "label_smoothing") || !strcmp(key, "momentum") ||
            !strcmp(key, "beta1") || !strcmp(key, "beta2") || !strcmp(key, "eps") ||
            !strcmp(key, "alpha") || !strcmp(key, "gamma") || !strcmp(key, "warmup") ||
            !strcmp(key, "warmup_start") || !strcmp(key, "pct_start") || !strcmp(key, "plateau_factor"))
            val = "[0.5, 0.25]";
        const char *extra = !strcmp(key, "depth") ? "  width: 8\n" : !strcmp(key, "width") ? "  depth: 1\n" : "";
        int rc = parse(&c, &e, "data:\n  train: %s\n%s:\n  %s: {choice: %s}\n%s" SEARCH_SECTION,
                       csv_file, !strncmp(yes[i], "model", 5) ? "model" : "train", key, val, extra);
        cr_assert_eq(rc, NS_OK, "%s: %s", yes[i], e.msg);
        cr_assert_eq(c.space.n, 1, "%s", yes[i]);
        cr_assert_str_eq(c.space.dims[0].name, yes[i]);
        ns_config_free(&c);
    }
    /* and the others are refused, each with the reason */
    EXPECT_ERROR(FRAGS("cfg.yaml:4:9:", "train.seed cannot be searched; fix it to a number",
                       "search.seed and the trial number"),
                 "data:\n  train: %s\ntrain:\n  seed: {int: [1, 5]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:17:", "data.val_fraction cannot be searched", "shared by every trial"),
                 "data:\n  train: %s\n  val_fraction: {uniform: [0.1, 0.2]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:11:", "train.epochs cannot be searched", "search.stages"),
                 "data:\n  train: %s\ntrain:\n  epochs: {int: [1, 5]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:9:", "model.loss cannot be searched; fix it to one value",
                       "follows data.task"),
                 "data:\n  train: %s\nmodel:\n  loss: {choice: [mse]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:12:", "train.threads cannot be searched", "not change what is learned"),
                 "data:\n  train: %s\ntrain:\n  threads: {choice: [1, 2]}\n" SEARCH_SECTION, csv_file);
    /* strings are never spaces: the plain type error */
    EXPECT_ERROR(FRAGS("cfg.yaml:2:10:", "data.train: expected a file path, got a mapping"),
                 "data:\n  train: {choice: [a, b]}\n" SEARCH_SECTION);
}

Test(config, error_space_needs_search_section)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:5:7:", "train.lr: a search space needs a search: section with at least one stage"),
                 "data:\n  train: %s\ntrain:\n  epochs: 3\n  lr: {log_uniform: [1e-4, 1e-1]}\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:1:", "search: missing 'stages:'"),
                 "data:\n  train: %s\ntrain:\n  lr: {log_uniform: [1e-4, 1e-1]}\nsearch:\n  seed: 3\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:1:", "search: missing 'stages:'"),
                 "data:\n  train: %s\nsearch:\n", csv_file);
}

Test(config, error_space_ranges)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:4:21:", "train.lr: inverted range [1e-1, 1e-4]", "[1e-4, 1e-1]"),
                 "data:\n  train: %s\ntrain:\n  lr: {log_uniform: [1e-1, 1e-4]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:22:", "model.dropout: empty range [0.1, 0.1]", "dropout: 0.1"),
                 "data:\n  train: %s\nmodel:\n  dropout: {uniform: [0.1, 0.1]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:21:", "train.batch_size: empty range"),
                 "data:\n  train: %s\ntrain:\n  batch_size: {int: [32, 32]}\n" SEARCH_SECTION, csv_file);
    /* log scales need lo > 0 */
    EXPECT_ERROR(FRAGS("cfg.yaml:4:32:", "train.weight_decay: a log scale needs a lower bound > 0, got 0"),
                 "data:\n  train: %s\ntrain:\n  weight_decay: {log_uniform: [0, 1e-2]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:20:", "train.patience: a log scale needs a lower bound > 0", "int without log"),
                 "data:\n  train: %s\ntrain:\n  patience: {int: [0, 5], log: true}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:22:", "train.lr: lower bound of log_uniform: -1 is out of range; must be > 0"),
                 "data:\n  train: %s\ntrain:\n  lr: {log_uniform: [-1, 1]}\n" SEARCH_SECTION, csv_file);
    /* bounds are values of the key itself */
    EXPECT_ERROR(FRAGS("cfg.yaml:4:26:", "model.dropout: upper bound of uniform: 1.5 is out of range; must be in [0, 1)"),
                 "data:\n  train: %s\nmodel:\n  dropout: {uniform: [0, 1.5]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:26:", "train.beta2: upper bound of uniform: 1 is out of range"),
                 "data:\n  train: %s\ntrain:\n  beta2: {uniform: [0.9, 1]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:28:", "train.lr: upper bound of log_uniform: expected a number, got 'big'"),
                 "data:\n  train: %s\ntrain:\n  lr: {log_uniform: [1e-4, big]}\n" SEARCH_SECTION, csv_file);
    /* int bounds are whole numbers */
    EXPECT_ERROR(FRAGS("cfg.yaml:4:22:", "train.batch_size: int bounds must be whole numbers, got '16.5'"),
                 "data:\n  train: %s\ntrain:\n  batch_size: {int: [16.5, 64]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:22:", "train.batch_size: lower bound of int: 0 is out of range"),
                 "data:\n  train: %s\ntrain:\n  batch_size: {int: [0, 64], log: true}\n" SEARCH_SECTION, csv_file);
    /* the shape of the range */
    EXPECT_ERROR(FRAGS("cfg.yaml:4:17:", "train.lr: uniform needs [lo, hi], two bounds, got a list of another length"),
                 "data:\n  train: %s\ntrain:\n  lr: {uniform: [0.1]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:17:", "train.lr: uniform needs [lo, hi]", "got a value"),
                 "data:\n  train: %s\ntrain:\n  lr: {uniform: 0.1}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:23:", "train.lr: the upper bound of uniform is a list"),
                 "data:\n  train: %s\ntrain:\n  lr: {uniform: [0.1, [1]]}\n" SEARCH_SECTION, csv_file);
}

Test(config, error_space_kind_does_not_fit_the_key)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:4:16:", "train.batch_size is a whole number; search it with int: [lo, hi]"),
                 "data:\n  train: %s\ntrain:\n  batch_size: {log_uniform: [16, 256]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:8:", "train.lr takes real numbers; int is for whole-number keys"),
                 "data:\n  train: %s\ntrain:\n  lr: {int: [1, 3]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:16:", "model.activation takes a name, not a range", "choice"),
                 "data:\n  train: %s\nmodel:\n  activation: {uniform: [0, 1]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:12:", "model.hidden: a list of widths is searched with choice", "model.depth"),
                 "data:\n  train: %s\nmodel:\n  hidden: {int: [16, 64]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:29:", "train.lr: log: applies to int only", "log_uniform"),
                 "data:\n  train: %s\ntrain:\n  lr: {uniform: [0.1, 0.2], log: true}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:36:", "train.batch_size: log: expects true or false"),
                 "data:\n  train: %s\ntrain:\n  batch_size: {int: [16, 64], log: maybe}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:15:", "train.batch_size: log: alone is not a search space"),
                 "data:\n  train: %s\ntrain:\n  batch_size: {log: true}\n" SEARCH_SECTION, csv_file);
}

Test(config, error_space_kinds)
{
    /* a typo of a kind, and a word from another tuner */
    EXPECT_ERROR(FRAGS("cfg.yaml:4:8:", "train.lr: unknown search space 'loguniform' (did you mean 'log_uniform'?)"),
                 "data:\n  train: %s\ntrain:\n  lr: {loguniform: [1e-4, 1e-1]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:16:", "unknown search space 'categorical' (did you mean 'choice'?)"),
                 "data:\n  train: %s\nmodel:\n  activation: {categorical: [relu, gelu]}\n" SEARCH_SECTION, csv_file);
    /* two kinds in one mapping */
    EXPECT_ERROR(FRAGS("cfg.yaml:4:32:", "model.dropout: two search spaces in one mapping ('uniform' at line 4 and 'choice')"),
                 "data:\n  train: %s\nmodel:\n  dropout: {uniform: [0, 0.5], choice: [0.1]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:6:5:", "train.lr: two search spaces", "'log_uniform' at line 5 and 'uniform'"),
                 "data:\n  train: %s\ntrain:\n  lr:\n    log_uniform: [1e-4, 1e-1]\n    uniform: [1e-4, 1e-1]\n" SEARCH_SECTION, csv_file);
    /* nothing like a space: the plain type error */
    EXPECT_ERROR(FRAGS("cfg.yaml:4:7:", "train.lr: expected a number or a search space, got a mapping with the key 'zz'"),
                 "data:\n  train: %s\ntrain:\n  lr: {zz: 1}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:7:", "train.lr: expected a number or a search space, got an empty mapping"),
                 "data:\n  train: %s\ntrain:\n  lr: {}\n" SEARCH_SECTION, csv_file);
}

Test(config, error_space_choices)
{
    /* each choice goes through the key's own parser: the bad one is named and located */
    EXPECT_ERROR(FRAGS("cfg.yaml:4:31:", "model.activation: unknown activation 'rleu' (did you mean 'relu'?)",
                       "allowed: relu, leaky_relu"),
                 "data:\n  train: %s\nmodel:\n  activation: {choice: [relu, rleu]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:27:", "model.dropout", "1 is out of range; must be in [0, 1)"),
                 "data:\n  train: %s\nmodel:\n  dropout: {choice: [0.1, 1]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:29:", "train.batch_size: expected a whole number, got '2.5'"),
                 "data:\n  train: %s\ntrain:\n  batch_size: {choice: [32, 2.5]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:32:", "model.hidden[1]: 0 is out of range"),
                 "data:\n  train: %s\nmodel:\n  hidden: {choice: [[64], [64, 0]]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:29:", "train.nesterov: expected true or false, got 'sometimes'"),
                 "data:\n  train: %s\ntrain:\n  nesterov: {choice: [true, sometimes]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:34:", "model.class_weights", "unknown value 'balance'", "did you mean 'balanced'?"),
                 "data:\n  train: %s\nmodel:\n  class_weights: {choice: [none, balance]}\n" SEARCH_SECTION, csv_file);
    /* the list itself */
    EXPECT_ERROR(FRAGS("cfg.yaml:4:24:", "model.activation: choice: the list is empty"),
                 "data:\n  train: %s\nmodel:\n  activation: {choice: []}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:24:", "model.activation: choice needs a list of values, got a value"),
                 "data:\n  train: %s\nmodel:\n  activation: {choice: relu}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:31:", "model.activation: choice 2 is a list"),
                 "data:\n  train: %s\nmodel:\n  activation: {choice: [relu, [gelu]]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:17:", "train.lr: choice 1 is a mapping", "do not nest"),
                 "data:\n  train: %s\ntrain:\n  lr: {choice: [{uniform: [0, 1]}]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:31:", "model.activation: choice 'relu' is listed twice"),
                 "data:\n  train: %s\nmodel:\n  activation: {choice: [relu, relu]}\n" SEARCH_SECTION, csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:17:", "train.lr: no value given"),
                 "data:\n  train: %s\ntrain:\n  lr: {choice: [~]}\n" SEARCH_SECTION, csv_file);
}

Test(config, searched_keys_and_fixed_rules)
{
    /* a rule that involves a searched key is left to each trial ... */
    ns_config c;
    ns_err e;
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\ntrain:\n  optimizer: {choice: [sgd, adam]}\n  nesterov: true\n" SEARCH_SECTION,
                       csv_file),
                 NS_OK, "%s", e.msg);
    ns_config_free(&c);
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\ntrain:\n  min_lr: 1e-3\n  lr: {log_uniform: [1e-5, 1e-1]}\n" SEARCH_SECTION,
                       csv_file),
                 NS_OK, "%s", e.msg);
    ns_config_free(&c);
    /* ... but a key that the fixed task rules out cannot be searched */
    EXPECT_ERROR(FRAGS("cfg.yaml:5:20:", "model.label_smoothing: applies to cross_entropy only", "do not search it"),
                 "data:\n  train: %s\n  task: regression\nmodel:\n  label_smoothing: {uniform: [0, 0.2]}\n" SEARCH_SECTION,
                 csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:18:", "model.class_weights: applies to classification only", "do not search it"),
                 "data:\n  train: %s\n  task: regression\nmodel:\n  class_weights: {choice: [none, balanced]}\n" SEARCH_SECTION,
                 csv_file);
    /* and the fixed rules still hold */
    EXPECT_ERROR(FRAGS("cfg.yaml:5:13:", "train.nesterov", "sgd only"),
                 "data:\n  train: %s\ntrain:\n  lr: {log_uniform: [1e-4, 1e-1]}\n  nesterov: true\n" SEARCH_SECTION, csv_file);
}

Test(config, depth_and_width)
{
    ns_config c;
    ns_err e;
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\nmodel:\n  depth: 3\n  width: 64\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.depth, 3);
    cr_assert_eq(c.width, 64);
    cr_assert_eq(c.model.n_hidden, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(c.model.hidden[i], 64);
    ns_config_free(&c);
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\nmodel:\n  depth: 0\n  width: 64\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.model.n_hidden, 0);
    ns_config_free(&c);
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\nmodel:\n  depth: {int: [1, 3]}\n  width: {int: [32, 512], log: true}\n" SEARCH_SECTION,
                       csv_file),
                 NS_OK, "%s", e.msg);
    cr_assert_eq(c.space.n, 2);
    cr_assert_eq(c.space.dims[1].kind, NS_DIM_INT_LOG);
    cr_assert_eq(c.model.n_hidden, 2); /* the default until a trial sets them */
    ns_config_free(&c);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:3:", "model.depth needs model.width"), "data:\n  train: %s\nmodel:\n  depth: 2\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:3:", "model.width needs model.depth"), "data:\n  train: %s\nmodel:\n  width: 2\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:6:3:", "model.hidden conflicts with model.depth (line 4)"),
                 "data:\n  train: %s\nmodel:\n  depth: 2\n  width: 8\n  hidden: [3]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:10:", "model.depth", "out of range; must be in [0, 32]"),
                 "data:\n  train: %s\nmodel:\n  depth: 33\n  width: 8\n", csv_file);
}

/* ---- the search section ------------------------------------------------------------------- */

Test(config, search_section_keys)
{
    ns_config c;
    ns_err e;
    int rc = parse(&c, &e,
                   "data:\n"
                   "  train: %s\n"
                   "  task: regression\n"
                   "search:\n"
                   "  name: my-study.v2\n"
                   "  output: /tmp/nnsearch-out\n"
                   "  seed: 7\n"
                   "  parallel: 2\n"
                   "  metric: val_loss\n"
                   "  stages:\n"
                   "    - stage: random\n"
                   "      trials: 10\n"
                   "      steps: 500\n"
                   "      seconds: 30.5\n"
                   "    - {stage: random, trials: 3, epochs: 1}\n",
                   csv_file);
    cr_assert_eq(rc, NS_OK, "%s", e.msg);
    cr_assert_eq(c.space.n, 0);
    cr_assert_eq(c.search.given, 1);
    cr_assert_str_eq(c.search.name, "my-study.v2");
    cr_assert_str_eq(c.search.output, "/tmp/nnsearch-out");
    cr_assert_eq(c.search.seed, 7);
    cr_assert_eq(c.search.parallel, 2);
    cr_assert_eq(c.search.metric, NS_METRIC_VAL_LOSS);
    cr_assert_eq(c.search.n_stages, 2);
    const ns_stage_cfg *s = c.search.stages;
    cr_assert_str_eq(s[0].name, "random");
    cr_assert_eq(s[0].trials, 10);
    cr_assert_eq(s[0].budget, NS_BUDGET_STEPS);
    cr_assert_eq(s[0].steps, 500);
    cr_assert_eq(s[0].seconds, 30.5);
    cr_assert_eq(s[0].line, 11);
    cr_assert_eq(s[1].budget, NS_BUDGET_EPOCHS);
    cr_assert_eq(s[1].epochs, 1);
    cr_assert_eq(s[1].trials, 3);
    ns_train_spec t = c.train;
    ns_stage_cfg_apply_budget(&s[0], &t);
    cr_assert_eq(t.budget, NS_BUDGET_STEPS);
    cr_assert_eq(t.steps, 500);
    ns_stage_cfg_apply_budget(&s[1], &t);
    cr_assert_eq(t.budget, NS_BUDGET_EPOCHS);
    cr_assert_eq(t.epochs, 1);
    ns_config_free(&c);

    /* defaults: the metric follows the task; the name comes from the file; a relative
     * output is resolved against the current directory */
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\n  task: regression\nsearch:\n  output: out/x\n  stages: [{stage: random, trials: 1, epochs: 1}]\n",
                       csv_file),
                 NS_OK, "%s", e.msg);
    cr_assert_eq(c.search.metric, NS_METRIC_VAL_RMSE);
    cr_assert_str_eq(c.search.name, "cfg");
    char cwd[4096], want[4200];
    cr_assert(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/out/x", cwd);
    cr_assert_str_eq(c.search.output, want);
    ns_config_free(&c);
    /* without a search section, a plain training run */
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.search.given, 0);
    cr_assert_eq(c.search.n_stages, 0);
    cr_assert_null(c.search.name);
    cr_assert_null(c.search.output);
    ns_config_free(&c);
    /* the name from a path with folders and odd characters */
    char text[512];
    snprintf(text, sizeof text, "data:\n  train: %s\nsearch:\n  stages: [{stage: random, trials: 1, epochs: 1}]\n", csv_file);
    cr_assert_eq(ns_config_parse(&c, "some/dir/my config.v1.yaml", text, strlen(text), &e), NS_OK, "%s", e.msg);
    cr_assert_str_eq(c.search.name, "my_config.v1");
    ns_config_free(&c);
    cr_assert_eq(ns_metric_higher_is_better(NS_METRIC_VAL_ACC), 1);
    cr_assert_eq(ns_metric_higher_is_better(NS_METRIC_VAL_RMSE), 0);
    cr_assert_str_eq(ns_metric_name(NS_METRIC_VAL_LOSS), "val_loss");
}

Test(config, error_search_section)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:4:3:", "unknown key 'jobs' in section 'search' (did you mean 'parallel'?)"),
                 "data:\n  train: %s\nsearch:\n  jobs: 2\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:1:", "unknown section 'serach' (did you mean 'search'?)"),
                 "data:\n  train: %s\nserach:\n  seed: 1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:13:", "search.parallel: 0 is out of range"),
                 "data:\n  train: %s\nsearch:\n  parallel: 0\n" "  stages: [{stage: random, trials: 1, epochs: 1}]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:10:", "search.array: 0 is out of range", "[1, 4096]"),
                 "data:\n  train: %s\nsearch:\n  array: 0\n" "  stages: [{stage: random, trials: 1, epochs: 1}]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:11:", "search.metric: val_rmse needs data.task: regression"),
                 "data:\n  train: %s\nsearch:\n  metric: val_rmse\n  stages: [{stage: random, trials: 1, epochs: 1}]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:11:", "search.metric: val_acc needs data.task: classification"),
                 "data:\n  train: %s\n  task: regression\nsearch:\n  metric: val_acc\n  stages: [{stage: random, trials: 1, epochs: 1}]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:11:", "search.metric: unknown metric 'accuracy'", "allowed: val_loss, val_acc, val_rmse"),
                 "data:\n  train: %s\nsearch:\n  metric: accuracy\n  stages: [{stage: random, trials: 1, epochs: 1}]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:3:17:", "data.val_fraction: a search needs a validation split"),
                 "data:\n  train: %s\n  val_fraction: 0\nsearch:\n  stages: [{stage: random, trials: 1, epochs: 1}]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:9:", "search.name: 'my study' names the study folder"),
                 "data:\n  train: %s\nsearch:\n  name: my study\n  stages: [{stage: random, trials: 1, epochs: 1}]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:11:", "search.output: '", "' exists and is not a folder"),
                 "data:\n  train: %s\nsearch:\n  output: %s\n  stages: [{stage: random, trials: 1, epochs: 1}]\n", csv_file, csv_file);
}

Test(config, error_stages)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:4:11:", "search.stages: the list is empty"),
                 "data:\n  train: %s\nsearch:\n  stages: []\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:11:", "search.stages: expected a list of stages, got a mapping"),
                 "data:\n  train: %s\nsearch:\n  stages: {stage: random}\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:7:", "search.stages[0]: expected a mapping", "got a value"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - random\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:14:", "search.stages[0].stage: unknown stage 'randm' (did you mean 'random'?); available: random"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - stage: randm\n      trials: 2\n      epochs: 1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:6:14:", "search.stages[1].stage: unknown stage 'gp'; available: random, lr_range, batch_sweep, compare, final, bayes, select"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - {stage: random, trials: 1, epochs: 1}\n    - stage: gp\n", csv_file);
    /* bayes takes trials: or runs until the study budget ends (the driver checks there is one) */
    EXPECT_ERROR(FRAGS("cfg.yaml:6:7:", "search.stages[1]: missing the budget of a trial"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - {stage: random, trials: 1, epochs: 1}\n    - stage: bayes\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:7:", "search.stages[0].sizes: 16 after 32", "increasing order"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - {stage: batch_sweep, sizes: [32, 16], epochs: 1}\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:7:", "search.stages[0]: missing 'stage:'", "available: random"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - trials: 2\n      epochs: 1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:6:15:", "search.stages[0].trials: 0 is out of range"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - stage: random\n      trials: 0\n      epochs: 1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:7:", "search.stages[0]: missing 'trials:'"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - stage: random\n      epochs: 1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:7:", "search.stages[0]: missing the budget of a trial; add epochs: N or steps: N"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - stage: random\n      trials: 4\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:8:7:", "search.stages[0].steps conflicts with epochs (line 7)", "epochs or steps"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - stage: random\n      trials: 4\n      epochs: 2\n      steps: 100\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:7:15:", "search.stages[0].epochs: 0 is out of range; must be >= 1"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - stage: random\n      trials: 4\n      epochs: 0\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:7:16:", "search.stages[0].seconds: 0 is out of range; must be > 0"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - stage: random\n      trials: 4\n      seconds: 0\n      epochs: 1\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:6:7:", "search.stages[0]: unknown key 'trails' for a random stage (did you mean 'trials'?)",
                       "stage, trials, epochs, steps, seconds"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - stage: random\n      trails: 4\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:6:7:", "search.stages[0]: unknown key 'acquisition' for a random stage;",
                       "its keys are: stage, trials"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - stage: random\n      acquisition: ei\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:7:7:", "search.stages[0]: duplicate key 'trials' (first given at line 6)"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - stage: random\n      trials: 4\n      trials: 5\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:6:15:", "search.stages[0].trials: expected a whole number, got 'many'"),
                 "data:\n  train: %s\nsearch:\n  stages:\n    - stage: random\n      trials: many\n", csv_file);
}

/* ---- the cost of reading a config is bounded --------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Parses text (len bytes) that must fail within 2 s (a loaded machine; these took 30 s to
 * minutes) with one located line
 * holding frag. */
static void expect_fast_refusal(const char *text, size_t len, const char *loc, const char *frag)
{
    ns_config c;
    ns_err e = {0};
    double t0 = now_s();
    int rc = ns_config_parse(&c, "cfg.yaml", text, len, &e);
    double dt = now_s() - t0;
    cr_assert_eq(rc, NS_EINPUT, "expected NS_EINPUT, got %d (%s)", rc, e.msg);
    cr_assert_null(c.text);
    cr_assert_null(strchr(e.msg, '\n'), "message is not one line: %s", e.msg);
    cr_assert(strstr(e.msg, loc), "message lacks \"%s\": %s", loc, e.msg);
    cr_assert(strstr(e.msg, frag), "message lacks \"%s\": %s", frag, e.msg);
    cr_assert_lt(dt, 2.0, "refused after %.2f s: %s", dt, e.msg);
}

/* libyaml's scanner costs the nesting depth on every token: 150,000 nested lists (300 KB)
 * took about a minute before the depth was bounded on the event stream. */
Test(config, pathological_configs_are_refused_at_once, .timeout = 30)
{
    size_t depth = 150000, cap = 1 << 20, len;
    char *text = malloc(cap);
    cr_assert(text);
    len = (size_t)snprintf(text, cap, "data:\n  train: %s\nmodel:\n  hidden: ", csv_file);
    memset(text + len, '[', depth);
    memset(text + len + depth, ']', depth);
    len += 2 * depth;
    text[len++] = '\n';
    expect_fast_refusal(text, len, "cfg.yaml:4:", "nested more than 16 deep");

    /* nested flow mappings */
    len = (size_t)snprintf(text, cap, "data:\n  train: %s\nmodel:\n  hidden: ", csv_file);
    for (size_t i = 0; i < 40000; i++)
        memcpy(text + len, "{a: ", 4), len += 4;
    for (size_t i = 0; i < 40000; i++)
        text[len++] = '}';
    text[len++] = '\n';
    expect_fast_refusal(text, len, "cfg.yaml:4:", "nested more than 16 deep");

    /* nested block mappings (indentation): located at the 17th level */
    len = (size_t)snprintf(text, cap, "data:\n  train: %s\nmodel:\n", csv_file);
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(text + len, cap - len, "%*sa:\n", 2 * (i + 1), "");
    expect_fast_refusal(text, len, "cfg.yaml:", "nested more than 16 deep");

    /* a choice of 100,000 values: each was compared with all before it (30 s) */
    len = (size_t)snprintf(text, cap, "data:\n  train: %s\ntrain:\n  batch_size: {choice: [", csv_file);
    for (int i = 1; i <= 100000 && len + 16 < cap; i++)
        len += (size_t)snprintf(text + len, cap - len, "%d,", i);
    len += (size_t)snprintf(text + len, cap - len, "1]}\n" SEARCH_SECTION);
    cr_assert_lt(len, cap);
    expect_fast_refusal(text, len, "cfg.yaml:4:24:", "choice lists 100001 values, at most 4096");
    free(text);

    /* more than 1 MiB, and more nodes than any config needs */
    size_t big = (size_t)NS_CONFIG_MAX_BYTES + 10;
    text = malloc(big + 1);
    cr_assert(text);
    memset(text, '#', big);
    text[big] = 0;
    expect_fast_refusal(text, big, "cfg.yaml:1:1:", "larger than 1048576 bytes");
    len = (size_t)snprintf(text, big, "data:\n  train: %s\nmodel:\n  class_weights: [", csv_file);
    while (len + 8 < (size_t)NS_CONFIG_MAX_BYTES - 8)
        memcpy(text + len, "1,", 2), len += 2;
    memcpy(text + len, "1]\n", 3), len += 3;
    expect_fast_refusal(text, len, "cfg.yaml:4:", "more than 200000 values, lists and mappings");
    free(text);

    /* a file of zeros stops at the size bound instead of filling memory */
    ns_config c;
    ns_err e = {0};
    cr_assert_eq(ns_config_load(&c, "/dev/zero", &e), NS_EINPUT);
    cr_assert(strstr(e.msg, "/dev/zero:1:1: the config is larger than"), "%s", e.msg);
}

/* The bounds leave room for real configs: 16 levels and a 4096-value choice still parse. */
Test(config, configs_within_the_bounds_parse)
{
    size_t cap = 1 << 16, len;
    char *text = malloc(cap);
    cr_assert(text);
    /* hidden as a list nested 16 deep: refused for what it is, not for its depth */
    len = (size_t)snprintf(text, cap, "data:\n  train: %s\nmodel:\n  hidden: ", csv_file);
    memset(text + len, '[', 14), len += 14;
    memset(text + len, ']', 14), len += 14;
    text[len++] = '\n';
    ns_config c;
    ns_err e = {0};
    cr_assert_eq(ns_config_parse(&c, "cfg.yaml", text, len, &e), NS_EINPUT);
    cr_assert(strstr(e.msg, "expected a number, got a list"), "%s", e.msg);
    len = (size_t)snprintf(text, cap, "data:\n  train: %s\ntrain:\n  batch_size: {choice: [", csv_file);
    for (int i = 1; i <= 4096; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s%d", i > 1 ? "," : "", i);
    len += (size_t)snprintf(text + len, cap - len, "]}\n" SEARCH_SECTION);
    cr_assert_lt(len, cap);
    cr_assert_eq(ns_config_parse(&c, "cfg.yaml", text, len, &e), NS_OK, "%s", e.msg);
    cr_assert_eq(c.space.dims[0].n_choices, 4096);
    ns_config_free(&c);
    free(text);
}

Test(config, decision_offsets_keys)
{
    ns_config c, d;
    ns_err e;
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\nmodel:\n  decision_offsets: [0, -0.5, 1.25]\n", csv_file),
                 NS_OK, "%s", e.msg);
    cr_assert_eq(c.n_decision_offsets, 3);
    cr_assert(c.decision_offsets[0] == 0 && c.decision_offsets[1] == -0.5f && c.decision_offsets[2] == 1.25f);
    /* written out by export and read back: the same offsets, bit for bit */
    char path[] = "/tmp/ns_offsets_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_eq(ns_config_export_yaml(&c, f, "offsets round trip", &e), NS_OK, "%s", e.msg);
    fclose(f);
    cr_assert_eq(ns_config_load(&d, path, &e), NS_OK, "%s", e.msg);
    unlink(path);
    cr_assert_eq(d.n_decision_offsets, 3);
    cr_assert_eq(memcmp(d.decision_offsets, c.decision_offsets, 3 * sizeof(float)), 0);
    ns_config_free(&d);
    ns_config_free(&c);
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\n", csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.n_decision_offsets, 0);
    cr_assert_eq(c.search.offsets, NS_OFFSETS_AUTO);
    ns_config_free(&c);
    cr_assert_eq(parse(&c, &e, "data:\n  train: %s\ntrain:\n  lr: {log_uniform: [1e-3, 1e-1]}\n"
                       "search:\n  decision_offsets: none\n  stages: [{stage: random, trials: 2, epochs: 1}]\n",
                       csv_file), NS_OK, "%s", e.msg);
    cr_assert_eq(c.search.offsets, NS_OFFSETS_NONE);
    ns_config_free(&c);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:21:", "model.decision_offsets", "a list of numbers", "brackets"),
                 "data:\n  train: %s\nmodel:\n  decision_offsets: 0.5\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:25:", "model.decision_offsets[1]", "out of range"),
                 "data:\n  train: %s\nmodel:\n  decision_offsets: [0, 51]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:5:21:", "model.decision_offsets", "classification"),
                 "data:\n  train: %s\n  task: regression\nmodel:\n  decision_offsets: [0, 1]\n", csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:21:", "model.decision_offsets", "search.decision_offsets"),
                 "data:\n  train: %s\nmodel:\n  decision_offsets: [0, 1]\nsearch:\n  stages: [{stage: random, trials: 2, epochs: 1}]\n",
                 csv_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:4:21:", "search.decision_offsets", "unknown decision_offsets 'off'", "auto, none"),
                 "data:\n  train: %s\nsearch:\n  decision_offsets: off\n  stages: [{stage: random, trials: 2, epochs: 1}]\n",
                 csv_file);
}
