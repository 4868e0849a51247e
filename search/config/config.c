/* config.c — the config's table of keys, and reading a file through it: YAML walk, defaults;
 * load, parse, copy, free. Not here: the cross-key rules and data-file checks
 * (config_rules.c), a value from its YAML text and did-you-mean (config_value.c), search
 * spaces and search: (config_search.c), export (config_export.c). */
#include "search/config/config_impl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* Enum fields are written through int pointers. */
_Static_assert(sizeof(ns_task) == sizeof(int), "enum size");
_Static_assert(sizeof(ns_act) == sizeof(int), "enum size");
_Static_assert(sizeof(ns_init) == sizeof(int), "enum size");
_Static_assert(sizeof(ns_loss) == sizeof(int), "enum size");
_Static_assert(sizeof(ns_opt_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(ns_sched_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(ns_class_weights) == sizeof(int), "enum size");
_Static_assert(sizeof(ns_offsets_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(ns_metric) == sizeof(int), "enum size");
_Static_assert(sizeof(ns_budget_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(ns_monitor) == sizeof(int), "enum size");

/* ---- the table of keys (its types are in config_impl.h) ------------------------------ */

static const enum_name task_names[] = {
    {"classification", NS_TASK_CLASSIFY}, {"regression", NS_TASK_REGRESS}, {NULL, 0}};
static const enum_name act_names[] = {
    {"relu", NS_ACT_RELU}, {"leaky_relu", NS_ACT_LEAKY_RELU}, {"gelu", NS_ACT_GELU},
    {"tanh", NS_ACT_TANH}, {"sigmoid", NS_ACT_SIGMOID},       {NULL, 0}};
static const enum_name init_names[] = {{"he", NS_INIT_HE}, {"xavier", NS_INIT_XAVIER}, {NULL, 0}};
static const enum_name loss_names[] = {
    {"cross_entropy", NS_LOSS_XENT}, {"mse", NS_LOSS_MSE}, {NULL, 0}};
static const enum_name cw_names[] = {
    {"auto", NS_CW_AUTO}, {"none", NS_CW_NONE}, {"sqrt", NS_CW_SQRT}, {"balanced", NS_CW_BALANCED},
    {NULL, 0}};
static const enum_name opt_names[] = {{"sgd", NS_OPT_SGD},
                                      {"adam", NS_OPT_ADAM},
                                      {"adamw", NS_OPT_ADAMW},
                                      {"rmsprop", NS_OPT_RMSPROP},
                                      {NULL, 0}};
static const enum_name metric_names[] = {
    {"val_loss", NS_METRIC_VAL_LOSS}, {"val_acc", NS_METRIC_VAL_ACC}, {"val_rmse", NS_METRIC_VAL_RMSE},
    {"val_balanced_acc", NS_METRIC_VAL_BACC}, {"val_macro_f1", NS_METRIC_VAL_F1},
    {NULL, 0}};
static const enum_name monitor_names[] = {
    {"auto", NS_MONITOR_AUTO}, {"val_balanced_acc", NS_MONITOR_BACC}, {"val_macro_f1", NS_MONITOR_F1},
    {NULL, 0}};
static const enum_name offsets_names[] = {
    {"auto", NS_OFFSETS_AUTO}, {"none", NS_OFFSETS_NONE}, {NULL, 0}};
static const enum_name final_names[] = {
    {"auto", NS_FINAL_AUTO}, {"refit", NS_FINAL_REFIT}, {"ensemble", NS_FINAL_ENSEMBLE}, {NULL, 0}};
static const enum_name device_names[] = {
    {"cpu", NS_DEVICE_CPU}, {"cuda", NS_DEVICE_CUDA}, {"auto", NS_DEVICE_AUTO}, {NULL, 0}};
static const enum_name precision_names[] = {
    {"fp32", NS_PREC_FP32}, {"tf32", NS_PREC_TF32}, {"bf16", NS_PREC_BF16}, {NULL, 0}};
static const enum_name sched_names[] = {
    {"constant", NS_SCHED_CONSTANT}, {"step", NS_SCHED_STEP},       {"exponential", NS_SCHED_EXP},
    {"cosine", NS_SCHED_COSINE},     {"onecycle", NS_SCHED_ONECYCLE}, {"plateau", NS_SCHED_PLATEAU},
    {NULL, 0}};

#define OFF(f) offsetof(ns_config, f)
/* A number: section, key, type, field, min, max, flags, default text. */
#define NUM(s, k, t, f, lo, hi, fl, d)                                                       \
    {.section = s, .key = k, .type = t, .off = OFF(f), .min = lo, .max = hi, .flags = fl, \
     .def = d}
#define STR(s, k, t, f, fl, d) {.section = s, .key = k, .type = t, .off = OFF(f), .flags = fl, .def = d}
#define ENUM(s, k, f, n, fl, d)                                                            \
    {.section = s, .key = k, .type = KT_ENUM, .off = OFF(f), .names = n, .flags = fl, .def = d}
#define S SEARCH

/* Every key of the config. docs/config.md documents each one; the defaults equal those of
 * ns_train_spec_default, ns_optim_spec_default and ns_sched_spec_default (tests/test_config.c
 * checks that). Keys whose default depends on another key have def NULL and are settled in
 * dependent_defaults(): train.momentum (0.9 for sgd, else 0), train.gamma (0.95 for
 * exponential, else 0.1), model.loss (mse for regression), search.metric (val_acc or
 * val_rmse), model.hidden (depth x width when those are given). S marks the keys that may
 * be searched; the others say why not in nosearch_reason(). */
const key_def cfg_keys[] = {
    STR("data", "train", KT_PATH, data.train, REQUIRED, NULL),
    STR("data", "train_labels", KT_PATH, data.train_labels, 0, NULL),
    STR("data", "test", KT_PATH, data.test, 0, NULL),
    STR("data", "test_labels", KT_PATH, data.test_labels, 0, NULL),
    STR("data", "label", KT_NAME, data.label, 0, "label"),
    ENUM("data", "task", data.task, task_names, 0, "classification"),
    NUM("data", "val_fraction", KT_DOUBLE, data.val_fraction, 0, 0.9, 0, "0.1"),
    NUM("data", "split_seed", KT_U64, data.split_seed, 0, INF, 0, "1"),
    NUM("data", "standardize", KT_BOOL, data.standardize, 0, 1, 0, "true"),
    NUM("data", "max_rows", KT_LONG, data.max_rows, 0, INT32_MAX, 0, "0"),
    NUM("data", "test_max_rows", KT_LONG, data.test_max_rows, 0, INT32_MAX, 0, "0"),

    {.section = "model", .key = "hidden", .type = KT_INTS, .off = OFF(model.hidden), .min = 1,
     .max = 1 << 20, .flags = S, .def = "256,128", .count_off = OFF(model.n_hidden),
     .max_items = NS_MAX_HIDDEN},
    NUM("model", "depth", KT_INT, depth, 0, NS_MAX_HIDDEN, S, NULL),
    NUM("model", "width", KT_INT, width, 1, 1 << 20, S, NULL),
    ENUM("model", "activation", model.act, act_names, S, "relu"),
    NUM("model", "dropout", KT_FLOAT, model.dropout, 0, 1, MAX_OPEN | S, "0"),
    ENUM("model", "init", model.init, init_names, S, "he"),
    ENUM("model", "loss", model.loss, loss_names, 0, NULL),
    NUM("model", "label_smoothing", KT_FLOAT, model.label_smoothing, 0, 1, MAX_OPEN | S, "0"),
    {.section = "model", .key = "class_weights", .type = KT_WEIGHTS, .off = OFF(class_weights),
     .min = 0, .max = 1e6, .flags = MIN_OPEN | S, .def = "auto", .names = cw_names,
     .count_off = OFF(n_class_weights), .list_off = OFF(class_weight_list), .max_items = 65536},
    {.section = "model", .key = "decision_offsets", .type = KT_FLOATS, .off = OFF(decision_offsets),
     .min = -50, .max = 50, .count_off = OFF(n_decision_offsets), .max_items = NS_MAX_DECISION_CLASSES},
    NUM("model", "ensemble", KT_INT, ensemble, 0, NS_CV_MAX_FOLDS, 0, "0"),
    NUM("model", "ensemble_seed", KT_U64, ensemble_seed, 0, INF, 0, "1"),

    NUM("train", "epochs", KT_LONG, train.epochs, 1, INF, 0, "10"),
    NUM("train", "steps", KT_LONG, train.steps, 1, INF, 0, NULL),
    NUM("train", "seconds", KT_DOUBLE, train.seconds, 0, INF, MIN_OPEN, NULL),
    NUM("train", "max_epochs", KT_LONG, train.max_epochs, 0, INF, 0, "0"),
    NUM("train", "batch_size", KT_INT, train.batch_size, 1, 1 << 24, S, "128"),
    NUM("train", "eval_batch", KT_INT, train.eval_batch, 1, 1 << 24, 0, "1024"),
    ENUM("train", "optimizer", train.opt.kind, opt_names, S, "adam"),
    NUM("train", "lr", KT_DOUBLE, train.lr, 0, INF, MIN_OPEN | S, "1e-3"),
    NUM("train", "momentum", KT_DOUBLE, train.opt.momentum, 0, 1, MAX_OPEN | S, NULL),
    NUM("train", "nesterov", KT_BOOL, train.opt.nesterov, 0, 1, S, "false"),
    NUM("train", "beta1", KT_DOUBLE, train.opt.beta1, 0, 1, MAX_OPEN | S, "0.9"),
    NUM("train", "beta2", KT_DOUBLE, train.opt.beta2, 0, 1, MAX_OPEN | S, "0.999"),
    NUM("train", "eps", KT_DOUBLE, train.opt.eps, 0, 1, MIN_OPEN | S, "1e-8"),
    NUM("train", "alpha", KT_DOUBLE, train.opt.alpha, 0, 1, MAX_OPEN | S, "0.99"),
    NUM("train", "weight_decay", KT_DOUBLE, train.opt.weight_decay, 0, INF, S, "0"),
    ENUM("train", "schedule", train.sched.kind, sched_names, S, "constant"),
    NUM("train", "step_size", KT_INT, train.sched.step_size, 1, INF, S, "10"),
    NUM("train", "gamma", KT_DOUBLE, train.sched.gamma, 0, 1, MIN_OPEN | S, NULL),
    NUM("train", "warmup", KT_DOUBLE, train.sched.warmup, 0, 1, MAX_OPEN | S, "0.05"),
    NUM("train", "warmup_start", KT_DOUBLE, train.sched.warmup_start, 0, 1, S, "0"),
    NUM("train", "min_lr", KT_DOUBLE, train.sched.min_lr, 0, INF, S, "0"),
    NUM("train", "pct_start", KT_DOUBLE, train.sched.pct_start, 0, 1, MIN_OPEN | MAX_OPEN | S, "0.3"),
    NUM("train", "div", KT_DOUBLE, train.sched.div, 1, INF, S, "25"),
    NUM("train", "final_div", KT_DOUBLE, train.sched.final_div, 1, INF, S, "1e4"),
    NUM("train", "plateau_factor", KT_DOUBLE, train.sched.factor, 0, 1, MIN_OPEN | MAX_OPEN | S, "0.1"),
    NUM("train", "plateau_patience", KT_INT, train.sched.patience, 0, INF, S, "5"),
    NUM("train", "plateau_threshold", KT_DOUBLE, train.sched.threshold, 0, INF, S, "1e-4"),
    NUM("train", "clip_norm", KT_DOUBLE, train.clip_norm, 0, INF, S, "0"),
    NUM("train", "patience", KT_INT, train.patience, 0, INF, S, "0"),
    NUM("train", "min_delta", KT_DOUBLE, train.min_delta, 0, INF, S, "0"),
    ENUM("train", "metric", train.monitor, monitor_names, 0, "auto"),
    NUM("train", "seed", KT_U64, train.seed, 0, INF, 0, "1"),
    NUM("train", "drop_last", KT_BOOL, train.drop_last, 0, 1, S, "false"),
    NUM("train", "threads", KT_INT, threads, 1, 4096, 0, "1"),
    ENUM("train", "device", device, device_names, 0, "cpu"),
    ENUM("train", "precision", precision, precision_names, 0, "fp32"),

    NUM("health", "divergence_factor", KT_DOUBLE, health.div_factor, 1, INF, MIN_OPEN, "4"),
    NUM("health", "min_epochs", KT_INT, health.min_epochs, 2, INF, 0, "6"),
    NUM("health", "smoothing", KT_DOUBLE, health.smooth, 0, 1, MIN_OPEN, "0.3"),
    NUM("health", "oscillation", KT_DOUBLE, health.osc_rel_std, 0, INF, MIN_OPEN, "0.1"),
    NUM("health", "spike_factor", KT_DOUBLE, health.spike_factor, 1, INF, MIN_OPEN, "2"),
    NUM("health", "overfit_patience", KT_INT, health.patience, 1, INF, 0, "5"),
    NUM("health", "overfit_rise", KT_DOUBLE, health.overfit_rise, 0, INF, 0, "0.1"),
    NUM("health", "gap_max", KT_DOUBLE, health.gap_max, 0, INF, MIN_OPEN, "2"),
    NUM("health", "gap_abs_min", KT_DOUBLE, health.gap_abs_min, 0, INF, 0, "0.1"),
    NUM("health", "min_drop", KT_DOUBLE, health.min_drop, 0, 1, 0, "0.01"),
    NUM("health", "baseline_frac", KT_DOUBLE, health.baseline_frac, 0, 1, MIN_OPEN, "0.9"),
    NUM("health", "tail_share", KT_DOUBLE, health.tail_share, 0, 1, MIN_OPEN, "0.2"),
    NUM("health", "tail_drop", KT_DOUBLE, health.tail_drop, 0, INF, MIN_OPEN, "0.1"),
    NUM("health", "grad_ratio_low", KT_DOUBLE, health.grad_ratio_lo, 0, 1, MIN_OPEN, "1e-3"),
    NUM("health", "grad_ratio_high", KT_DOUBLE, health.grad_ratio_hi, 1, INF, 0, "1e3"),
    NUM("health", "grad_max", KT_DOUBLE, health.grad_abs_max, 0, INF, MIN_OPEN, "1e3"),
    NUM("health", "grad_min", KT_DOUBLE, health.grad_abs_min, 0, INF, 0, "1e-8"),
    NUM("health", "noise_k", KT_DOUBLE, health.noise_k, 0, INF, 0, "2"),
    NUM("health", "imbalance_ratio", KT_DOUBLE, datacheck.imbalance_ratio, 1, INF, 0, "3"),
    NUM("health", "shift_smd", KT_DOUBLE, datacheck.smd_max, 0, INF, 0, "0.2"),
    NUM("health", "shift_alpha", KT_DOUBLE, datacheck.alpha, 0, 1, MIN_OPEN | MAX_OPEN, "0.01"),
    NUM("health", "shift_share", KT_DOUBLE, datacheck.shift_share, 0, 1, 0, "0.1"),
    NUM("health", "label_shift", KT_DOUBLE, datacheck.label_tv_max, 0, 1, 0, "0.1"),
    NUM("health", "duplicate_share", KT_DOUBLE, datacheck.dup_share, 0, 1, 0, "0.01"),

    STR("search", "name", KT_NAME, search.name, 0, NULL),
    STR("search", "output", KT_NAME, search.output, 0, NULL),
    NUM("search", "seed", KT_U64, search.seed, 0, INF, 0, "1"),
    NUM("search", "parallel", KT_INT, search.parallel, 1, 4096, 0, "1"),
    ENUM("search", "metric", search.metric, metric_names, 0, NULL),
    {.section = "search", .key = "resampling", .type = KT_RESAMPLING, .off = OFF(search)},
    NUM("search", "budget", KT_DURATION, search.budget, 0, INF, MIN_OPEN, NULL),
    ENUM("search", "final", search.final, final_names, 0, "auto"),
    ENUM("search", "decision_offsets", search.offsets, offsets_names, 0, "auto"),
    NUM("search", "array", KT_INT, search.array, 1, 4096, AUTO_ZERO, "auto"),
    {.section = "search", .key = "stages", .type = KT_STAGES, .off = OFF(search)},
};

#undef S
_Static_assert(sizeof cfg_keys / sizeof cfg_keys[0] == N_KEYS, "set N_KEYS in config_impl.h");
_Static_assert(N_KEYS <= NS_CONFIG_MAX_KEYS, "raise NS_CONFIG_MAX_KEYS in config.h");

const char *const cfg_sections[] = {"data", "model", "train", "health", "search"};
_Static_assert(sizeof cfg_sections / sizeof cfg_sections[0] == N_SECTIONS, "set N_SECTIONS in config_impl.h");

/* One line "NAME:LINE:COL: ..." (libyaml marks are 0-based); always NS_EINPUT. A trial's
 * values have no place in the file: "NAME: ...". */
__attribute__((format(printf, 3, 4))) int cfg_fail(ctx *x, yaml_mark_t m, const char *fmt, ...)
{
    char what[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (x->trial)
        return ns_err_set(x->err, NS_EINPUT, "%s: %s", x->name, what);
    return ns_err_set(x->err, NS_EINPUT, "%s:%zu:%zu: %s", x->name, m.line + 1, m.column + 1,
                      what);
}

/* "section.key", or the label of a stage key ("search.stages[0].trials"). */
const char *cfg_kname(ctx *x, const key_def *k)
{
    if (x->label)
        return x->label;
    snprintf(x->kbuf, sizeof x->kbuf, "%s.%s", k->section, k->key);
    return x->kbuf;
}

int cfg_oom(ctx *x)
{
    return ns_err_set(x->err, NS_ERUNTIME, "%s: out of memory while reading the config", x->name);
}


/* A plain empty, ~ or null scalar: YAML's "no value". */
int cfg_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = scalar(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* ---- defaults ------------------------------------------------------------------------- */

static int set_defaults(ctx *x)
{
    yaml_mark_t none = {0, 0, 0};
    for (size_t i = 0; i < N_KEYS; i++) {
        const key_def *k = &cfg_keys[i];
        if (!k->def)
            continue;
        if (k->type == KT_INTS) { /* "256,128" */
            int *a = field(x->c, k->off), n = 0;
            for (const char *p = k->def; *p && n < k->max_items; n++) {
                char *end;
                a[n] = (int)strtol(p, &end, 10);
                p = end + (*end == ',');
            }
            *(int *)field(x->c, k->count_off) = n;
            continue;
        }
        int rc = cfg_set_scalar(x, x->c, k, k->def, none);
        if (rc)
            return rc;
    }
    return NS_OK;
}

int cfg_key_index(const char *section, const char *key)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(cfg_keys[i].section, section) && !strcmp(cfg_keys[i].key, key))
            return (int)i;
    return -1;
}

static int K(const char *section, const char *key) { return cfg_key_index(section, key); }

/* Defaults that depend on other keys (see the table's comment); run again for each trial,
 * so a key left to its default follows the searched key it depends on. */
void cfg_dependent_defaults(ctx *x)
{
    ns_config *c = x->c;
    if (!x->given[K("train", "momentum")])
        c->train.opt.momentum = c->train.opt.kind == NS_OPT_SGD ? 0.9 : 0.0;
    if (!x->given[K("train", "gamma")])
        c->train.sched.gamma = c->train.sched.kind == NS_SCHED_EXP ? 0.95 : 0.1;
    if (!x->given[K("model", "loss")])
        c->model.loss = c->data.task == NS_TASK_REGRESS ? NS_LOSS_MSE : NS_LOSS_XENT;
    /* not keys: the detectors' denominator floor, and the trainer's copy of the factor */
    ns_health_spec hd;
    ns_health_spec_default(&hd);
    c->health.loss_floor = hd.loss_floor;
    c->health.baseline_loss = hd.baseline_loss; /* from the data: ns_pipeline_baseline_loss */
    c->health.val_rel_se = hd.val_rel_se;       /* from the data: ns_pipeline_health_noise */
    c->health.train_rel_se = hd.train_rel_se;
    ns_datacheck_spec dd;
    ns_datacheck_spec_default(&dd);
    c->datacheck.imbalance_min_count = dd.imbalance_min_count;
    c->datacheck.ks_max_rows = dd.ks_max_rows;
    c->datacheck.imbalance_fix = NULL; /* the driver words it after model.class_weights */
    c->train.div_factor = c->health.div_factor;
    if (!x->given[K("search", "metric")])
        c->search.metric = c->data.task == NS_TASK_REGRESS ? NS_METRIC_VAL_RMSE : NS_METRIC_VAL_ACC;
    /* depth x width; a searched one has no value until a trial sets it */
    if (c->width > 0 && !x->searched[K("model", "depth")] && !x->searched[K("model", "width")]) {
        c->model.n_hidden = c->depth;
        for (int i = 0; i < c->depth; i++)
            c->model.hidden[i] = c->width;
    }
}

/* ---- the walk ------------------------------------------------------------------------- */

static int walk_section(ctx *x, const char *section, yaml_node_t *m)
{
    if (cfg_is_null(m))
        return NS_OK; /* "model:" with nothing under it: all defaults */
    if (m->type != YAML_MAPPING_NODE)
        return cfg_fail(x, m->start_mark, "section '%s' must be a mapping of keys, got %s; write its keys indented below '%s:'",
                    section, node_kind(m), section);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(x->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return cfg_fail(x, kn->start_mark, "section '%s': a key must be a plain name, got %s; write 'name: value'",
                        section, node_kind(kn));
        const char *key = scalar(kn);
        int i = cfg_key_index(section, key);
        if (i < 0) {
            const char *sug = cfg_suggest_key(section, key);
            if (sug)
                return cfg_fail(x, kn->start_mark, "unknown key '%.60s' in section '%s' (did you mean '%s'?); see docs/config.md for every key",
                            key, section, sug);
            for (size_t s = 0; s < N_SECTIONS; s++)
                if (strcmp(cfg_sections[s], section) && cfg_key_index(cfg_sections[s], key) >= 0)
                    return cfg_fail(x, kn->start_mark, "unknown key '%.60s' in section '%s' ('%s' is a key of section '%s'); move it under '%s:'",
                                key, section, key, cfg_sections[s], cfg_sections[s]);
            for (size_t s = 0; s < N_SECTIONS; s++) {
                if (!strcmp(cfg_sections[s], section))
                    continue;
                if ((sug = cfg_suggest_key(cfg_sections[s], key)))
                    return cfg_fail(x, kn->start_mark, "unknown key '%.60s' in section '%s' (did you mean '%s.%s'?); move it under '%s:' and rename it",
                                key, section, cfg_sections[s], sug, cfg_sections[s]);
            }
            char all[600];
            cfg_list_keys(all, sizeof all, section);
            return cfg_fail(x, kn->start_mark, "unknown key '%.60s' in section '%s'; the keys of '%s' are: %s",
                        key, section, section, all);
        }
        if (x->given[i])
            return cfg_fail(x, kn->start_mark, "duplicate key '%s' in section '%s' (first given at line %zu); remove one of them",
                        key, section, x->kmark[i].line + 1);
        x->given[i] = 1;
        x->kmark[i] = kn->start_mark;
        x->vmark[i] = vn->start_mark;
        int rc;
        if (cfg_keys[i].type == KT_STAGES)
            rc = cfg_parse_stages(x, &cfg_keys[i], vn);
        else if (cfg_keys[i].type == KT_RESAMPLING)
            rc = cfg_parse_resampling(x, &cfg_keys[i], vn);
        else if (vn->type == YAML_MAPPING_NODE && strcmp(section, "search") &&
                 cfg_keys[i].type != KT_PATH && cfg_keys[i].type != KT_NAME)
            rc = cfg_parse_space(x, i, vn);
        else
            rc = cfg_set_value(x, x->c, &cfg_keys[i], vn);
        if (rc)
            return rc;
    }
    return NS_OK;
}

static int walk_root(ctx *x, yaml_node_t *root)
{
    if (root->type != YAML_MAPPING_NODE || cfg_is_null(root))
        return cfg_fail(x, root->start_mark, "the top level must be a mapping of sections, got %s; start with 'data:' (and optionally 'model:', 'train:')",
                    cfg_is_null(root) ? "nothing" : node_kind(root));
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(x->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return cfg_fail(x, kn->start_mark, "a section name must be a plain name, got %s; use data:, model: or train:",
                        node_kind(kn));
        const char *name = scalar(kn);
        size_t s = 0;
        while (s < N_SECTIONS && strcmp(cfg_sections[s], name))
            s++;
        if (s == N_SECTIONS) {
            const char *best = NULL;
            int bd = 99;
            for (size_t j = 0; j < N_SECTIONS; j++) {
                int d = cfg_closeness(name, cfg_sections[j]);
                if (d >= 0 && d < bd)
                    bd = d, best = cfg_sections[j];
            }
            if (!best && (!strcasecmp(name, "dataset") || !strcasecmp(name, "training")))
                best = tolower((unsigned char)name[0]) == 'd' ? "data" : "train";
            if (!best && (!strcasecmp(name, "network") || !strcasecmp(name, "net") ||
                          !strcasecmp(name, "architecture")))
                best = "model";
            if (!best && (!strcasecmp(name, "tune") || !strcasecmp(name, "tuning") ||
                          !strcasecmp(name, "sweep") || !strcasecmp(name, "study") ||
                          !strcasecmp(name, "hpo")))
                best = "search";
            if (best)
                return cfg_fail(x, kn->start_mark, "unknown section '%.60s' (did you mean '%s'?); the sections are data, model, train and health, plus search for a search",
                            name, best);
            for (size_t j = 0; j < N_SECTIONS; j++)
                if (cfg_key_index(cfg_sections[j], name) >= 0)
                    return cfg_fail(x, kn->start_mark, "unknown section '%.60s' ('%s' is a key of section '%s'); put it under '%s:'",
                                name, name, cfg_sections[j], cfg_sections[j]);
            for (size_t j = 0; j < N_SECTIONS; j++) {
                const char *sug = cfg_suggest_key(cfg_sections[j], name);
                if (sug)
                    return cfg_fail(x, kn->start_mark, "unknown section '%.60s' (did you mean '%s.%s'?); put it under '%s:'",
                                name, cfg_sections[j], sug, cfg_sections[j]);
            }
            return cfg_fail(x, kn->start_mark, "unknown section '%.60s'; the sections are data, model, train and health, plus search for a search",
                        name);
        }
        if (x->sec_given[s])
            return cfg_fail(x, kn->start_mark, "duplicate section '%s' (first given at line %zu); merge them into one",
                        name, x->sec_mark[s].line + 1);
        x->sec_given[s] = 1;
        x->sec_mark[s] = kn->start_mark;
        int rc = walk_section(x, cfg_sections[s], vn);
        if (rc)
            return rc;
    }
    return NS_OK;
}

/* ---- entry points ---------------------------------------------------------------------- */

static int syntax_error(ctx *x, yaml_parser_t *p)
{
    /* libyaml reports a syntax error with a problem; some of its failed allocations return
     * without setting error (found by scripts/faultwalk): a failure with no problem is one
     * of those, not "unreadable YAML" (which would fail a trial for good) */
    if (p->error == YAML_MEMORY_ERROR || p->error == YAML_NO_ERROR || !p->problem)
        return cfg_oom(x);
    if (p->error == YAML_READER_ERROR) { /* only a byte offset: find its line and column */
        yaml_mark_t m = {0, 0, 0};
        for (size_t i = 0; x->c->text && x->c->text[i] && i < p->problem_offset; i++) {
            if (x->c->text[i] == '\n')
                m.line++, m.column = 0;
            else
                m.column++;
        }
        return cfg_fail(x, m, "the file is not valid UTF-8 text (%s at byte %zu); save it as UTF-8",
                    p->problem ? p->problem : "bad byte", p->problem_offset);
    }
    char ctxt[200] = "";
    if (p->context)
        snprintf(ctxt, sizeof ctxt, " %s at line %zu", p->context, p->context_mark.line + 1);
    return cfg_fail(x, p->problem_mark, "YAML syntax error: %s%s; check the indentation (spaces, not tabs), colons and quotes here",
                p->problem ? p->problem : "unreadable YAML", ctxt);
}

int cfg_bound_cost(ctx *x, const char *text, size_t len)
{
    if (len > (size_t)NS_CONFIG_MAX_BYTES) {
        yaml_mark_t m = {0, 0, 0};
        return cfg_fail(x, m, "the config is larger than %ld bytes, the most a config may "
                        "have; is this the right file? (configs are a few KB of YAML)",
                        (long)NS_CONFIG_MAX_BYTES);
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return cfg_oom(x);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int depth = 0, rc = NS_OK;
    long nodes = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            if (p.error == YAML_MEMORY_ERROR)
                rc = cfg_oom(x);
            break; /* a syntax error: the document load reports it with its own message */
        }
        yaml_event_type_t t = ev.type;
        yaml_mark_t m = ev.start_mark;
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT)
            break;
        if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
            depth--;
            continue;
        }
        if (t != YAML_SCALAR_EVENT && t != YAML_ALIAS_EVENT && t != YAML_SEQUENCE_START_EVENT &&
            t != YAML_MAPPING_START_EVENT)
            continue;
        if (++nodes > NS_CONFIG_MAX_NODES) {
            rc = cfg_fail(x, m, "the config has more than %d values, lists and mappings; "
                          "a config needs a few hundred: shorten the long lists",
                          NS_CONFIG_MAX_NODES);
            break;
        }
        if ((t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) &&
            ++depth > NS_CONFIG_MAX_DEPTH) {
            rc = cfg_fail(x, m, "lists and mappings nested more than %d deep; a config nests "
                          "at most 7 (search.stages, a stage's key, a choice of lists): remove "
                          "the extra brackets or indentation", NS_CONFIG_MAX_DEPTH);
            break;
        }
    }
    yaml_parser_delete(&p);
    return rc;
}

uint64_t ns_fnv1a64(const void *data, size_t len)
{
    const unsigned char *b = data;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* --device: every config this process reads trains there (-1: each its own train.device) */
static int device_override = -1;

void ns_config_device_override(int dev) { device_override = dev; }

static int parse(ns_config *c, const char *name, const char *text, size_t len, ns_err *err);

int ns_config_parse(ns_config *c, const char *name, const char *text, size_t len, ns_err *err)
{
    int rc = parse(c, name, text, len, err);
    if (rc == NS_OK && device_override >= 0)
        c->device = device_override;
    return rc;
}

static int parse(ns_config *c, const char *name, const char *text, size_t len, ns_err *err)
{
    ns_config t = {0};
    ctx x = {.name = name ? name : "<config>", .c = &t, .err = err};
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int have_parser = 0, have_doc = 0, rc;

    memset(c, 0, sizeof *c);
    if ((rc = set_defaults(&x)))
        goto fail;
    t.path = strdup(x.name);
    t.text = malloc(len + 1);
    if (!t.path || !t.text) {
        rc = cfg_oom(&x);
        goto fail;
    }
    memcpy(t.text, text, len);
    t.text[len] = 0;
    t.hash = ns_fnv1a64(text, len);

    if ((rc = cfg_bound_cost(&x, text, len)))
        goto fail;
    if (!yaml_parser_initialize(&parser)) {
        rc = cfg_oom(&x);
        goto fail;
    }
    have_parser = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = syntax_error(&x, &parser);
        goto fail;
    }
    have_doc = 1;
    x.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        yaml_mark_t m = {0, 0, 0};
        rc = cfg_fail(&x, m, "the config is empty; it needs at least 'data:' with 'train: FILE'");
        goto fail;
    }
    if ((rc = walk_root(&x, root)))
        goto fail;
    /* A second document would be silently ignored: refuse it. */
    if (!yaml_parser_load(&parser, &extra)) {
        rc = syntax_error(&x, &parser);
        goto fail;
    }
    yaml_node_t *more = yaml_document_get_root_node(&extra);
    yaml_mark_t mm = extra.start_mark;
    yaml_document_delete(&extra);
    if (more) {
        rc = cfg_fail(&x, mm, "a second YAML document ('---') follows the config; keep one document per file");
        goto fail;
    }
    cfg_dependent_defaults(&x);
    if ((rc = cfg_check_rules(&x)) || (rc = cfg_check_files(&x)))
        goto fail;
    memcpy(t.given, x.given, N_KEYS);

    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    *c = t;
    return NS_OK;

fail:
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    ns_config_free(&t);
    return rc;
}

int ns_config_load(ns_config *c, const char *path, ns_err *err)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno, code = ns_err_code_of_errno(e);
        return ns_err_set(err, code, "%s: cannot open the config: %s%s", path, strerror(e),
                          code == NS_EINPUT ? "; check the path" : "");
    }
    /* Read at most one byte past the limit: a huge file, or /dev/zero, costs no more than
     * that before the size check in ns_config_parse refuses it. */
    size_t cap = 4096, len = 0, most = (size_t)NS_CONFIG_MAX_BYTES + 1;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap || len >= most)
            break;
        char *more = realloc(buf, cap * 2);
        if (!more) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = more;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return ns_err_set(err, NS_ERUNTIME, "%s: out of memory reading the config", path);
    if (bad) {
        free(buf);
        return ns_err_set(err, NS_EINPUT, "%s: cannot read the config (is it a directory?); check the path",
                          path);
    }
    int rc = ns_config_parse(c, path, buf, len, err);
    free(buf);
    return rc;
}

void ns_config_free(ns_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (cfg_keys[i].type == KT_PATH || cfg_keys[i].type == KT_NAME)
            free(*(char **)field(c, cfg_keys[i].off));
        if (cfg_keys[i].type == KT_WEIGHTS)
            free(*(float **)field(c, cfg_keys[i].list_off));
    }
    ns_space_free(&c->space);
    free(c->path);
    free(c->text);
    memset(c, 0, sizeof *c);
}

static char *dup_or_null(const char *s, int *bad)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    *bad |= !d;
    return d;
}

int ns_config_copy(ns_config *dst, const ns_config *src, ns_err *err)
{
    ns_config t = *src;
    int bad = 0;
    /* first drop every borrowed pointer, so that a failure frees only what is ours */
    t.path = t.text = NULL;
    t.space.n = 0;
    t.space.dims = NULL;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (cfg_keys[i].type == KT_PATH || cfg_keys[i].type == KT_NAME)
            *(char **)field(&t, cfg_keys[i].off) = NULL;
        if (cfg_keys[i].type == KT_WEIGHTS)
            *(float **)field(&t, cfg_keys[i].list_off) = NULL;
    }
    t.path = dup_or_null(src->path, &bad);
    t.text = dup_or_null(src->text, &bad);
    for (size_t i = 0; i < N_KEYS && !bad; i++) {
        const key_def *k = &cfg_keys[i];
        if (k->type == KT_PATH || k->type == KT_NAME)
            *(char **)field(&t, k->off) = dup_or_null(*(char *const *)field((void *)src, k->off), &bad);
        if (k->type == KT_WEIGHTS) {
            const float *w = *(float *const *)field((void *)src, k->list_off);
            int n = *(const int *)field((void *)src, k->count_off);
            if (w && n > 0) {
                float *d = malloc((size_t)n * sizeof *d);
                if (d)
                    memcpy(d, w, (size_t)n * sizeof *d);
                *(float **)field(&t, k->list_off) = d;
                bad |= !d;
            }
        }
    }
    if (!bad)
        bad = ns_space_copy(&t.space, &src->space) != NS_OK;
    if (bad) {
        ns_config_free(&t);
        memset(dst, 0, sizeof *dst);
        return ns_err_set(err, NS_ERUNTIME, "%s: out of memory copying the config",
                          src->path ? src->path : "<config>");
    }
    *dst = t;
    return NS_OK;
}

const char *ns_metric_name(ns_metric m)
{
    for (const enum_name *e = metric_names; e->name; e++)
        if (e->value == (int)m)
            return e->name;
    return "?";
}

int ns_metric_higher_is_better(ns_metric m)
{
    return m == NS_METRIC_VAL_ACC || m == NS_METRIC_VAL_BACC || m == NS_METRIC_VAL_F1;
}

int ns_config_key_find(const char *name)
{
    const char *dot = strchr(name, '.');
    if (!dot || dot - name >= 16)
        return -1;
    char sec[16];
    memcpy(sec, name, (size_t)(dot - name));
    sec[dot - name] = 0;
    return cfg_key_index(sec, dot + 1);
}
