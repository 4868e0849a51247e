/* test_config.c — the YAML config: every key lands in its field, defaults match the
 * engine's, and every kind of mistake gives one located line naming the key and the fix.
 * Not a test of the data loaders: only that the files exist and look like IDX or CSV. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../search/config.h"
#include "testutil.h"

#ifndef NS_SOURCE_DIR
#define NS_SOURCE_DIR "."
#endif

/* ---- helpers --------------------------------------------------------------------------- */

static char *csv_file;  /* a CSV training file that exists */
static char *idx_file;  /* raw IDX images (magic 00 00 08 03) */
static char *idx_lab;   /* raw IDX labels */
static char *gz_file;   /* gzip magic: counts as IDX */

static void make_files(void)
{
    static const char csv[] = "a,b,label\n1,2,x\n3,4,y\n";
    static const unsigned char img[] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7};
    static const unsigned char lab[] = {0, 0, 8, 1, 0, 0, 0, 1, 3};
    static const unsigned char gz[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0};
    csv_file = tu_write_temp("train.csv", csv, sizeof csv - 1);
    idx_file = tu_write_temp("images.idx", img, sizeof img);
    idx_lab = tu_write_temp("labels.idx", lab, sizeof lab);
    gz_file = tu_write_temp("images.gz", gz, sizeof gz);
    cr_assert(csv_file && idx_file && idx_lab && gz_file);
}

static void free_files(void)
{
    char **all[] = {&csv_file, &idx_file, &idx_lab, &gz_file};
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
    cr_assert_null(c.data.test);
    cr_assert_eq(c.model.n_hidden, 2);
    cr_assert_eq(c.model.hidden[0], 256);
    cr_assert_eq(c.model.hidden[1], 128);
    cr_assert_eq(c.model.act, NS_ACT_RELU);
    cr_assert_eq(c.model.dropout, 0.0f);
    cr_assert_eq(c.model.init, NS_INIT_HE);
    cr_assert_eq(c.model.loss, NS_LOSS_XENT);
    cr_assert_eq(c.model.label_smoothing, 0.0f);
    cr_assert_eq(c.class_weights, NS_CW_NONE);
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
    EXPECT_ERROR(FRAGS("cfg.yaml:1:1:", "unknown section 'zzz'", "data, model and train"), "zzz: 1\n");
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

Test(config, error_data_files)
{
    EXPECT_ERROR(FRAGS("cfg.yaml:2:10:", "data.train", "IDX file", "train_labels is missing"),
                 "data:\n  train: %s\n", idx_file);
    EXPECT_ERROR(FRAGS("cfg.yaml:2:10:", "data.train", "IDX file"), "data:\n  train: %s\n", gz_file);
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
