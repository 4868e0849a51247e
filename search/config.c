/* config.c — the training config: one table of keys drives defaults, parsing, range
 * checks and error messages; a few cross-field rules and the data-file checks follow the
 * table walk. Not a general YAML binder: only sections of flat keys, as nnsearch uses. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

/* ---- the table of keys -------------------------------------------------------------- */

typedef enum key_type {
    KT_BOOL,    /* int 0/1 */
    KT_INT,     /* int */
    KT_LONG,    /* long */
    KT_U64,     /* uint64_t */
    KT_DOUBLE,  /* double */
    KT_FLOAT,   /* float */
    KT_PATH,    /* char *, resolved against the config's folder, must be readable */
    KT_NAME,    /* char * */
    KT_ENUM,    /* int, from names */
    KT_INTS,    /* int[max_items] at off with the count at count_off; one int or a list */
    KT_WEIGHTS, /* int mode from names at off, or a list of numbers: float * at list_off,
                   count at count_off, mode NS_CW_LIST */
} key_type;

enum {
    MIN_OPEN = 1, /* the lower bound is exclusive */
    MAX_OPEN = 2, /* the upper bound is exclusive */
    REQUIRED = 4,
};

typedef struct enum_name {
    const char *name;
    int value;
} enum_name;

typedef struct key_def {
    const char *section;
    const char *key;
    key_type type;
    size_t off;             /* offsetof(ns_config, field) */
    double min, max;        /* numbers and list items; +-INFINITY when unbounded */
    unsigned flags;
    const char *def;        /* default as config text; NULL: none, or set from other keys */
    const enum_name *names; /* KT_ENUM, KT_WEIGHTS: NULL-terminated */
    size_t count_off;       /* KT_INTS, KT_WEIGHTS */
    size_t list_off;        /* KT_WEIGHTS */
    int max_items;          /* KT_INTS: capacity; KT_WEIGHTS: largest list */
} key_def;

static const enum_name task_names[] = {
    {"classification", NS_TASK_CLASSIFY}, {"regression", NS_TASK_REGRESS}, {NULL, 0}};
static const enum_name act_names[] = {
    {"relu", NS_ACT_RELU}, {"leaky_relu", NS_ACT_LEAKY_RELU}, {"gelu", NS_ACT_GELU},
    {"tanh", NS_ACT_TANH}, {"sigmoid", NS_ACT_SIGMOID},       {NULL, 0}};
static const enum_name init_names[] = {{"he", NS_INIT_HE}, {"xavier", NS_INIT_XAVIER}, {NULL, 0}};
static const enum_name loss_names[] = {
    {"cross_entropy", NS_LOSS_XENT}, {"mse", NS_LOSS_MSE}, {NULL, 0}};
static const enum_name cw_names[] = {{"none", NS_CW_NONE}, {"balanced", NS_CW_BALANCED}, {NULL, 0}};
static const enum_name opt_names[] = {{"sgd", NS_OPT_SGD},
                                      {"adam", NS_OPT_ADAM},
                                      {"adamw", NS_OPT_ADAMW},
                                      {"rmsprop", NS_OPT_RMSPROP},
                                      {NULL, 0}};
static const enum_name sched_names[] = {
    {"constant", NS_SCHED_CONSTANT}, {"step", NS_SCHED_STEP},       {"exponential", NS_SCHED_EXP},
    {"cosine", NS_SCHED_COSINE},     {"onecycle", NS_SCHED_ONECYCLE}, {"plateau", NS_SCHED_PLATEAU},
    {NULL, 0}};

#define OFF(f) offsetof(ns_config, f)
#define INF INFINITY
/* A number: section, key, type, field, min, max, flags, default text. */
#define NUM(s, k, t, f, lo, hi, fl, d)                                                       \
    {.section = s, .key = k, .type = t, .off = OFF(f), .min = lo, .max = hi, .flags = fl, \
     .def = d}
#define STR(s, k, t, f, fl, d) {.section = s, .key = k, .type = t, .off = OFF(f), .flags = fl, .def = d}
#define ENUM(s, k, f, n, d) {.section = s, .key = k, .type = KT_ENUM, .off = OFF(f), .names = n, .def = d}

/* Every key of the fixed training config. docs/config.md documents each one; the defaults
 * equal those of ns_train_spec_default, ns_optim_spec_default and ns_sched_spec_default
 * (tests/test_config.c checks that). Keys whose default depends on another key have
 * def NULL and are settled in dependent_defaults(): train.momentum (0.9 for sgd, else 0),
 * train.gamma (0.95 for exponential, else 0.1), model.loss (mse for regression). */
static const key_def keys[] = {
    STR("data", "train", KT_PATH, data.train, REQUIRED, NULL),
    STR("data", "train_labels", KT_PATH, data.train_labels, 0, NULL),
    STR("data", "test", KT_PATH, data.test, 0, NULL),
    STR("data", "test_labels", KT_PATH, data.test_labels, 0, NULL),
    STR("data", "label", KT_NAME, data.label, 0, "label"),
    ENUM("data", "task", data.task, task_names, "classification"),
    NUM("data", "val_fraction", KT_DOUBLE, data.val_fraction, 0, 0.9, 0, "0.1"),
    NUM("data", "split_seed", KT_U64, data.split_seed, 0, INF, 0, "1"),
    NUM("data", "standardize", KT_BOOL, data.standardize, 0, 1, 0, "true"),

    {.section = "model", .key = "hidden", .type = KT_INTS, .off = OFF(model.hidden), .min = 1,
     .max = 1 << 20, .def = "256,128", .count_off = OFF(model.n_hidden),
     .max_items = NS_MAX_HIDDEN},
    ENUM("model", "activation", model.act, act_names, "relu"),
    NUM("model", "dropout", KT_FLOAT, model.dropout, 0, 1, MAX_OPEN, "0"),
    ENUM("model", "init", model.init, init_names, "he"),
    ENUM("model", "loss", model.loss, loss_names, NULL),
    NUM("model", "label_smoothing", KT_FLOAT, model.label_smoothing, 0, 1, MAX_OPEN, "0"),
    {.section = "model", .key = "class_weights", .type = KT_WEIGHTS, .off = OFF(class_weights),
     .min = 0, .max = 1e6, .flags = MIN_OPEN, .def = "none", .names = cw_names,
     .count_off = OFF(n_class_weights), .list_off = OFF(class_weight_list), .max_items = 65536},

    NUM("train", "epochs", KT_LONG, train.epochs, 1, INF, 0, "10"),
    NUM("train", "steps", KT_LONG, train.steps, 1, INF, 0, NULL),
    NUM("train", "seconds", KT_DOUBLE, train.seconds, 0, INF, MIN_OPEN, NULL),
    NUM("train", "max_epochs", KT_LONG, train.max_epochs, 0, INF, 0, "0"),
    NUM("train", "batch_size", KT_INT, train.batch_size, 1, 1 << 24, 0, "128"),
    NUM("train", "eval_batch", KT_INT, train.eval_batch, 1, 1 << 24, 0, "1024"),
    ENUM("train", "optimizer", train.opt.kind, opt_names, "adam"),
    NUM("train", "lr", KT_DOUBLE, train.lr, 0, INF, MIN_OPEN, "1e-3"),
    NUM("train", "momentum", KT_DOUBLE, train.opt.momentum, 0, 1, MAX_OPEN, NULL),
    NUM("train", "nesterov", KT_BOOL, train.opt.nesterov, 0, 1, 0, "false"),
    NUM("train", "beta1", KT_DOUBLE, train.opt.beta1, 0, 1, MAX_OPEN, "0.9"),
    NUM("train", "beta2", KT_DOUBLE, train.opt.beta2, 0, 1, MAX_OPEN, "0.999"),
    NUM("train", "eps", KT_DOUBLE, train.opt.eps, 0, 1, MIN_OPEN, "1e-8"),
    NUM("train", "alpha", KT_DOUBLE, train.opt.alpha, 0, 1, MAX_OPEN, "0.99"),
    NUM("train", "weight_decay", KT_DOUBLE, train.opt.weight_decay, 0, INF, 0, "0"),
    ENUM("train", "schedule", train.sched.kind, sched_names, "constant"),
    NUM("train", "step_size", KT_INT, train.sched.step_size, 1, INF, 0, "10"),
    NUM("train", "gamma", KT_DOUBLE, train.sched.gamma, 0, 1, MIN_OPEN, NULL),
    NUM("train", "warmup", KT_DOUBLE, train.sched.warmup, 0, 1, MAX_OPEN, "0.05"),
    NUM("train", "warmup_start", KT_DOUBLE, train.sched.warmup_start, 0, 1, 0, "0"),
    NUM("train", "min_lr", KT_DOUBLE, train.sched.min_lr, 0, INF, 0, "0"),
    NUM("train", "pct_start", KT_DOUBLE, train.sched.pct_start, 0, 1, MIN_OPEN | MAX_OPEN, "0.3"),
    NUM("train", "div", KT_DOUBLE, train.sched.div, 1, INF, 0, "25"),
    NUM("train", "final_div", KT_DOUBLE, train.sched.final_div, 1, INF, 0, "1e4"),
    NUM("train", "plateau_factor", KT_DOUBLE, train.sched.factor, 0, 1, MIN_OPEN | MAX_OPEN, "0.1"),
    NUM("train", "plateau_patience", KT_INT, train.sched.patience, 0, INF, 0, "5"),
    NUM("train", "plateau_threshold", KT_DOUBLE, train.sched.threshold, 0, INF, 0, "1e-4"),
    NUM("train", "clip_norm", KT_DOUBLE, train.clip_norm, 0, INF, 0, "0"),
    NUM("train", "patience", KT_INT, train.patience, 0, INF, 0, "0"),
    NUM("train", "min_delta", KT_DOUBLE, train.min_delta, 0, INF, 0, "0"),
    NUM("train", "seed", KT_U64, train.seed, 0, INF, 0, "1"),
    NUM("train", "drop_last", KT_BOOL, train.drop_last, 0, 1, 0, "false"),
    NUM("train", "threads", KT_INT, threads, 1, 4096, 0, "1"),
};

#define N_KEYS (sizeof keys / sizeof keys[0])

static const char *const sections[] = {"data", "model", "train"};
#define N_SECTIONS (sizeof sections / sizeof sections[0])

/* Words people write for a key; they are only suggested, never accepted. */
static const struct {
    const char *section, *word, *key;
} key_synonyms[] = {
    {"data", "train_file", "train"},       {"data", "train_path", "train"},
    {"data", "training", "train"},         {"data", "labels", "train_labels"},
    {"data", "test_file", "test"},         {"data", "test_path", "test"},
    {"data", "target", "label"},           {"data", "label_column", "label"},
    {"data", "validation_split", "val_fraction"}, {"data", "val_split", "val_fraction"},
    {"data", "validation_fraction", "val_fraction"}, {"data", "seed", "split_seed"},
    {"data", "normalize", "standardize"},  {"data", "standardise", "standardize"},
    {"data", "scale", "standardize"},      {"data", "problem", "task"},
    {"model", "layers", "hidden"},         {"model", "hidden_layers", "hidden"},
    {"model", "hidden_sizes", "hidden"},   {"model", "units", "hidden"},
    {"model", "act", "activation"},        {"model", "nonlinearity", "activation"},
    {"model", "activation_function", "activation"}, {"model", "dropout_rate", "dropout"},
    {"model", "initialization", "init"},   {"model", "initializer", "init"},
    {"model", "weight_init", "init"},      {"model", "criterion", "loss"},
    {"model", "loss_fn", "loss"},          {"model", "objective", "loss"},
    {"model", "smoothing", "label_smoothing"}, {"model", "class_weight", "class_weights"},
    {"train", "learning_rate", "lr"},      {"train", "learningrate", "lr"},
    {"train", "batch", "batch_size"},      {"train", "batchsize", "batch_size"},
    {"train", "optim", "optimizer"},       {"train", "optimiser", "optimizer"},
    {"train", "scheduler", "schedule"},    {"train", "lr_schedule", "schedule"},
    {"train", "lr_scheduler", "schedule"}, {"train", "wd", "weight_decay"},
    {"train", "l2", "weight_decay"},       {"train", "num_epochs", "epochs"},
    {"train", "n_epochs", "epochs"},       {"train", "max_steps", "steps"},
    {"train", "iterations", "steps"},      {"train", "time_limit", "seconds"},
    {"train", "max_seconds", "seconds"},   {"train", "early_stopping", "patience"},
    {"train", "grad_clip", "clip_norm"},   {"train", "clip_grad_norm", "clip_norm"},
    {"train", "max_grad_norm", "clip_norm"}, {"train", "warmup_ratio", "warmup"},
    {"train", "eta_min", "min_lr"},        {"train", "epsilon", "eps"},
    {"train", "rho", "alpha"},             {"train", "factor", "plateau_factor"},
    {"train", "num_threads", "threads"},   {"train", "random_seed", "seed"},
};

/* Words people write for an enum value; suggested when the canonical name is allowed. */
static const struct {
    const char *word, *name;
} value_synonyms[] = {
    {"kaiming", "he"},           {"glorot", "xavier"},          {"crossentropy", "cross_entropy"},
    {"ce", "cross_entropy"},     {"xent", "cross_entropy"},     {"nll", "cross_entropy"},
    {"l2", "mse"},               {"mean_squared_error", "mse"}, {"lrelu", "leaky_relu"},
    {"logistic", "sigmoid"},     {"classify", "classification"}, {"regress", "regression"},
    {"exp", "exponential"},      {"cos", "cosine"},             {"reduce_on_plateau", "plateau"},
    {"reducelronplateau", "plateau"}, {"steplr", "step"},       {"none", "constant"},
    {"momentum", "sgd"},
};

/* ---- parse state and messages -------------------------------------------------------- */

typedef struct ctx {
    const char *name; /* the config's name in messages */
    ns_config *c;
    ns_err *err;
    yaml_document_t *doc;
    unsigned char given[N_KEYS];
    yaml_mark_t kmark[N_KEYS], vmark[N_KEYS];
    unsigned char sec_given[N_SECTIONS];
    yaml_mark_t sec_mark[N_SECTIONS];
} ctx;

/* One line "NAME:LINE:COL: ..." (libyaml marks are 0-based); always NS_EINPUT. */
__attribute__((format(printf, 3, 4))) static int fail(ctx *x, yaml_mark_t m, const char *fmt, ...)
{
    char what[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ns_err_set(x->err, NS_EINPUT, "%s:%zu:%zu: %s", x->name, m.line + 1, m.column + 1,
                      what);
}

static int oom(ctx *x)
{
    return ns_err_set(x->err, NS_ERUNTIME, "%s: out of memory while reading the config", x->name);
}

static void *field(ns_config *c, size_t off) { return (char *)c + off; }

static const char *node_kind(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    return "a value";
}

static const char *scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* A plain empty, ~ or null scalar: YAML's "no value". */
static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = scalar(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* ---- did you mean ---------------------------------------------------------------------- */

static int norm_ch(int ch)
{
    ch = tolower((unsigned char)ch);
    return ch == '-' || ch == ' ' ? '_' : ch;
}

/* Levenshtein distance ignoring case and treating '-' and ' ' as '_'; 99 for long words. */
static int distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    int row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int sub = diag + (norm_ch(a[i - 1]) != norm_ch(b[j - 1]));
            int best = sub < up + 1 ? sub : up + 1;
            row[j] = best < row[j - 1] + 1 ? best : row[j - 1] + 1;
            diag = up;
        }
    }
    return row[lb];
}

/* How close word is to cand: 0 for the same word, 1..2 for a typo, 3 when one is a
 * prefix of the other (at least 4 letters), -1 when unrelated. */
static int closeness(const char *word, const char *cand)
{
    size_t lw = strlen(word), lc = strlen(cand);
    int d = distance(word, cand);
    int lim = lw <= 3 ? 1 : 2;
    if (d <= lim && (size_t)d < lc)
        return d;
    size_t n = lw < lc ? lw : lc;
    if (n >= 4) {
        size_t i = 0;
        while (i < n && norm_ch(word[i]) == norm_ch(cand[i]))
            i++;
        if (i == n)
            return 3;
    }
    return -1;
}

/* The key of `section` nearest to word (synonyms included), or NULL. */
static const char *suggest_key(const char *section, const char *word)
{
    const char *best = NULL;
    int bd = 99;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(keys[i].section, section))
            continue;
        int d = closeness(word, keys[i].key);
        if (d >= 0 && d < bd)
            bd = d, best = keys[i].key;
    }
    for (size_t i = 0; i < sizeof key_synonyms / sizeof key_synonyms[0]; i++) {
        if (strcmp(key_synonyms[i].section, section))
            continue;
        int d = closeness(word, key_synonyms[i].word);
        if (d >= 0 && d < bd)
            bd = d, best = key_synonyms[i].key;
    }
    return best;
}

/* The enum name nearest to word among names (value synonyms included), or NULL. */
static const char *suggest_name(const enum_name *names, const char *word)
{
    const char *best = NULL;
    int bd = 99;
    for (const enum_name *e = names; e->name; e++) {
        int d = closeness(word, e->name);
        if (d >= 0 && d < bd)
            bd = d, best = e->name;
    }
    for (size_t i = 0; i < sizeof value_synonyms / sizeof value_synonyms[0]; i++) {
        int d = closeness(word, value_synonyms[i].word);
        if (d < 0 || d >= bd)
            continue;
        for (const enum_name *e = names; e->name; e++)
            if (!strcmp(e->name, value_synonyms[i].name))
                bd = d, best = e->name;
    }
    return best;
}

static void list_names(char *buf, size_t n, const enum_name *names)
{
    size_t used = 0;
    buf[0] = 0;
    for (const enum_name *e = names; e->name && used < n; e++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", e == names ? "" : ", ", e->name);
}

static void list_keys(char *buf, size_t n, const char *section)
{
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < N_KEYS && used < n; i++)
        if (!strcmp(keys[i].section, section))
            used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? ", " : "", keys[i].key);
}

/* ---- scalar conversion ----------------------------------------------------------------- */

static int is_int_type(key_type t) { return t == KT_INT || t == KT_LONG || t == KT_U64 || t == KT_INTS; }

static const char *expected(const key_def *k)
{
    switch (k->type) {
    case KT_BOOL: return "true or false";
    case KT_INT:
    case KT_LONG:
    case KT_U64: return "a whole number";
    case KT_DOUBLE:
    case KT_FLOAT: return "a number";
    case KT_PATH: return "a file path";
    case KT_NAME: return "a name";
    case KT_ENUM: return "a name";
    case KT_INTS: return "a whole number or a list of them such as [256, 128]";
    case KT_WEIGHTS: return "none, balanced or a list of positive numbers";
    }
    return "a value";
}

/* "must be > 0", "must be in [0, 1)", ... */
static void range_text(char *buf, size_t n, const key_def *k)
{
    int lo_open = (k->flags & MIN_OPEN) != 0, hi_open = (k->flags & MAX_OPEN) != 0;
    if (isinf(k->max))
        snprintf(buf, n, "must be %s %.15g", lo_open ? ">" : ">=", k->min);
    else
        snprintf(buf, n, "must be in %c%.15g, %.15g%c", lo_open ? '(' : '[', k->min, k->max,
                 hi_open ? ')' : ']');
}

/* Only the characters of a decimal number: rules out hex, inf, nan and YAML's .inf. */
static int decimal_chars(const char *s)
{
    if (!*s)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && !strchr("+-.eE", *p))
            return 0;
    return 1;
}

/* Converts s to a number for key k and checks the range. Returns 0, or -1 with the reason
 * (without location) in why. Integers also accept an integral "1e4". */
static int to_number(const key_def *k, const char *s, double *out, uint64_t *u64, char *why,
                     size_t n)
{
    const char *ex = k->type == KT_INTS ? "128" : (k->def && isdigit((unsigned char)k->def[0]))
                                                      ? k->def
                                                      : (is_int_type(k->type) ? "100" : "0.5");
    char *end;
    if (!decimal_chars(s)) {
        snprintf(why, n, "expected %s, got '%.60s'; write e.g. %s",
                 is_int_type(k->type) ? "a whole number" : "a number", s, ex);
        return -1;
    }
    double v;
    errno = 0;
    if (k->type == KT_U64 && s[0] != '-' && !strpbrk(s, ".eE")) {
        unsigned long long w = strtoull(s, &end, 10);
        if (*end || errno == ERANGE) {
            snprintf(why, n, "'%.60s' is %s; write a whole number from 0 to %llu", s,
                     *end ? "not a whole number" : "too large", ULLONG_MAX);
            return -1;
        }
        *u64 = w;
        *out = (double)w;
        return 0;
    }
    v = strtod(s, &end);
    if (*end || end == s) {
        snprintf(why, n, "expected %s, got '%.60s'; write e.g. %s",
                 is_int_type(k->type) ? "a whole number" : "a number", s, ex);
        return -1;
    }
    if (!isfinite(v)) {
        snprintf(why, n, "'%.60s' is too large; write a finite number", s);
        return -1;
    }
    if (is_int_type(k->type)) {
        if (v != floor(v)) {
            snprintf(why, n, "expected a whole number, got '%.60s'; write e.g. %s", s, ex);
            return -1;
        }
        double lim = k->type == KT_LONG ? (double)LONG_MAX : k->type == KT_U64 ? 18446744073709551615.0
                                                                               : (double)INT_MAX;
        if (v >= lim || (k->type == KT_U64 && v < 0)) {
            char r[64];
            range_text(r, sizeof r, k);
            snprintf(why, n, "%.60s is out of range; %s and fit in %s", s, r,
                     k->type == KT_LONG ? "64 bits" : k->type == KT_U64 ? "64 bits" : "32 bits");
            return -1;
        }
        if (k->type == KT_U64)
            *u64 = (uint64_t)v;
    }
    int lo_bad = (k->flags & MIN_OPEN) ? !(v > k->min) : !(v >= k->min);
    int hi_bad = (k->flags & MAX_OPEN) ? !(v < k->max) : !(v <= k->max);
    if (lo_bad || hi_bad) {
        char r[64];
        range_text(r, sizeof r, k);
        snprintf(why, n, "%.60s is out of range; %s", s, r);
        return -1;
    }
    *out = v;
    return 0;
}

static int to_bool(const char *s, int *b)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i]))
            return *b = 1, 0;
        if (!strcasecmp(s, no[i]))
            return *b = 0, 0;
    }
    return -1;
}

static int find_name(const enum_name *names, const char *s, int *v)
{
    for (const enum_name *e = names; e->name; e++)
        if (!strcmp(e->name, s))
            return *v = e->value, 0;
    return -1;
}

/* Sets scalar key k from text s; `m` locates s for messages. Returns NS_OK or the code. */
static int set_scalar(ctx *x, const key_def *k, const char *s, yaml_mark_t m)
{
    void *f = field(x->c, k->off);
    char why[600];
    switch (k->type) {
    case KT_BOOL: {
        int b;
        if (to_bool(s, &b))
            return fail(x, m, "%s.%s: expected true or false, got '%.60s'; write %s: true or %s: false",
                        k->section, k->key, s, k->key, k->key);
        *(int *)f = b;
        return NS_OK;
    }
    case KT_PATH:
    case KT_NAME: {
        char **p = f;
        char *d = strdup(s);
        if (!d)
            return oom(x);
        free(*p);
        *p = d;
        return NS_OK;
    }
    case KT_ENUM:
    case KT_WEIGHTS: {
        int v;
        if (find_name(k->names, s, &v)) {
            char all[256], hint[128] = "";
            list_names(all, sizeof all, k->names);
            const char *sug = suggest_name(k->names, s);
            if (sug)
                snprintf(hint, sizeof hint, " (did you mean '%s'?)", sug);
            if (k->type == KT_WEIGHTS)
                return fail(x, m, "%s.%s: unknown value '%.60s'%s; write %s or a list of positive numbers, one per class",
                            k->section, k->key, s, hint, "none, balanced");
            return fail(x, m, "%s.%s: unknown %s '%.60s'%s; allowed: %s", k->section, k->key, k->key,
                        s, hint, all);
        }
        *(int *)f = v;
        if (k->type == KT_WEIGHTS) {
            float **list = field(x->c, k->list_off);
            free(*list);
            *list = NULL;
            *(int *)field(x->c, k->count_off) = 0;
        }
        return NS_OK;
    }
    case KT_INTS: {
        double v;
        uint64_t u;
        if (to_number(k, s, &v, &u, why, sizeof why))
            return fail(x, m, "%s.%s: %s", k->section, k->key, why);
        ((int *)f)[0] = (int)v;
        *(int *)field(x->c, k->count_off) = 1;
        return NS_OK;
    }
    default: {
        double v = 0;
        uint64_t u = 0;
        if (to_number(k, s, &v, &u, why, sizeof why))
            return fail(x, m, "%s.%s: %s", k->section, k->key, why);
        switch (k->type) {
        case KT_INT: *(int *)f = (int)v; break;
        case KT_LONG: *(long *)f = (long)v; break;
        case KT_U64: *(uint64_t *)f = u; break;
        case KT_DOUBLE: *(double *)f = v; break;
        case KT_FLOAT: *(float *)f = (float)v; break;
        default: break;
        }
        return NS_OK;
    }
    }
}

/* A list value (model.hidden, model.class_weights). */
static int set_list(ctx *x, const key_def *k, yaml_node_t *v)
{
    yaml_node_item_t *it = v->data.sequence.items.start, *top = v->data.sequence.items.top;
    long n = top - it;
    if (n > k->max_items)
        return fail(x, v->start_mark, "%s.%s: %ld entries, at most %d are supported; shorten the list",
                    k->section, k->key, n, k->max_items);
    if (k->type == KT_WEIGHTS && n == 0)
        return fail(x, v->start_mark, "%s.%s: the list is empty; give one positive weight per class, or none",
                    k->section, k->key);
    float *w = NULL;
    if (k->type == KT_WEIGHTS && !(w = malloc((size_t)n * sizeof *w)))
        return oom(x);
    for (long i = 0; i < n; i++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, it[i]);
        char why[600];
        double d;
        uint64_t u;
        if (e->type != YAML_SCALAR_NODE || is_null(e)) {
            free(w);
            return fail(x, e->start_mark, "%s.%s[%ld]: expected a number, got %s; write a flat list such as %s",
                        k->section, k->key, i, e->type == YAML_SCALAR_NODE ? "no value" : node_kind(e),
                        k->type == KT_INTS ? "[256, 128]" : "[1, 2.5, 1]");
        }
        if (to_number(k, scalar(e), &d, &u, why, sizeof why)) {
            free(w);
            return fail(x, e->start_mark, "%s.%s[%ld]: %s", k->section, k->key, i, why);
        }
        if (k->type == KT_INTS)
            ((int *)field(x->c, k->off))[i] = (int)d;
        else
            w[i] = (float)d;
    }
    *(int *)field(x->c, k->count_off) = (int)n;
    if (k->type == KT_WEIGHTS) {
        float **list = field(x->c, k->list_off);
        free(*list);
        *list = w;
        *(int *)field(x->c, k->off) = NS_CW_LIST;
    }
    return NS_OK;
}

static int set_value(ctx *x, const key_def *k, yaml_node_t *v)
{
    if (v->type == YAML_SEQUENCE_NODE && (k->type == KT_INTS || k->type == KT_WEIGHTS))
        return set_list(x, k, v);
    if (v->type != YAML_SCALAR_NODE)
        return fail(x, v->start_mark, "%s.%s: expected %s, got %s; write it on the key's line, e.g. %s: %s",
                    k->section, k->key, expected(k), node_kind(v), k->key,
                    k->type == KT_INTS ? "[256, 128]" : k->def ? k->def : "...");
    if (is_null(v))
        return fail(x, v->start_mark, "%s.%s: no value given; write %s after '%s:' or remove the key",
                    k->section, k->key, expected(k), k->key);
    if ((k->type == KT_PATH || k->type == KT_NAME) && !scalar(v)[0])
        return fail(x, v->start_mark, "%s.%s: the value is empty; write %s or remove the key",
                    k->section, k->key, expected(k));
    if (memchr(scalar(v), 0, v->data.scalar.length))
        return fail(x, v->start_mark, "%s.%s: the value contains a NUL character; remove it",
                    k->section, k->key);
    return set_scalar(x, k, scalar(v), v->start_mark);
}

/* ---- defaults ------------------------------------------------------------------------- */

static int set_defaults(ctx *x)
{
    yaml_mark_t none = {0, 0, 0};
    for (size_t i = 0; i < N_KEYS; i++) {
        const key_def *k = &keys[i];
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
        int rc = set_scalar(x, k, k->def, none);
        if (rc)
            return rc;
    }
    return NS_OK;
}

static int key_index(const char *section, const char *key)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key))
            return (int)i;
    return -1;
}

/* Defaults that depend on other keys (see the table's comment). */
static void dependent_defaults(ctx *x)
{
    ns_config *c = x->c;
    if (!x->given[key_index("train", "momentum")])
        c->train.opt.momentum = c->train.opt.kind == NS_OPT_SGD ? 0.9 : 0.0;
    if (!x->given[key_index("train", "gamma")])
        c->train.sched.gamma = c->train.sched.kind == NS_SCHED_EXP ? 0.95 : 0.1;
    if (!x->given[key_index("model", "loss")])
        c->model.loss = c->data.task == NS_TASK_REGRESS ? NS_LOSS_MSE : NS_LOSS_XENT;
}

/* ---- the walk ------------------------------------------------------------------------- */

static int walk_section(ctx *x, const char *section, yaml_node_t *m)
{
    if (is_null(m))
        return NS_OK; /* "model:" with nothing under it: all defaults */
    if (m->type != YAML_MAPPING_NODE)
        return fail(x, m->start_mark, "section '%s' must be a mapping of keys, got %s; write its keys indented below '%s:'",
                    section, node_kind(m), section);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(x->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return fail(x, kn->start_mark, "section '%s': a key must be a plain name, got %s; write 'name: value'",
                        section, node_kind(kn));
        const char *key = scalar(kn);
        int i = key_index(section, key);
        if (i < 0) {
            const char *sug = suggest_key(section, key);
            if (sug)
                return fail(x, kn->start_mark, "unknown key '%.60s' in section '%s' (did you mean '%s'?); see docs/config.md for every key",
                            key, section, sug);
            for (size_t s = 0; s < N_SECTIONS; s++)
                if (strcmp(sections[s], section) && key_index(sections[s], key) >= 0)
                    return fail(x, kn->start_mark, "unknown key '%.60s' in section '%s' ('%s' is a key of section '%s'); move it under '%s:'",
                                key, section, key, sections[s], sections[s]);
            for (size_t s = 0; s < N_SECTIONS; s++) {
                if (!strcmp(sections[s], section))
                    continue;
                if ((sug = suggest_key(sections[s], key)))
                    return fail(x, kn->start_mark, "unknown key '%.60s' in section '%s' (did you mean '%s.%s'?); move it under '%s:' and rename it",
                                key, section, sections[s], sug, sections[s]);
            }
            char all[600];
            list_keys(all, sizeof all, section);
            return fail(x, kn->start_mark, "unknown key '%.60s' in section '%s'; the keys of '%s' are: %s",
                        key, section, section, all);
        }
        if (x->given[i])
            return fail(x, kn->start_mark, "duplicate key '%s' in section '%s' (first given at line %zu); remove one of them",
                        key, section, x->kmark[i].line + 1);
        x->given[i] = 1;
        x->kmark[i] = kn->start_mark;
        x->vmark[i] = vn->start_mark;
        int rc = set_value(x, &keys[i], vn);
        if (rc)
            return rc;
    }
    return NS_OK;
}

static int walk_root(ctx *x, yaml_node_t *root)
{
    if (root->type != YAML_MAPPING_NODE || is_null(root))
        return fail(x, root->start_mark, "the top level must be a mapping of sections, got %s; start with 'data:' (and optionally 'model:', 'train:')",
                    is_null(root) ? "nothing" : node_kind(root));
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(x->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return fail(x, kn->start_mark, "a section name must be a plain name, got %s; use data:, model: or train:",
                        node_kind(kn));
        const char *name = scalar(kn);
        size_t s = 0;
        while (s < N_SECTIONS && strcmp(sections[s], name))
            s++;
        if (s == N_SECTIONS) {
            const char *best = NULL;
            int bd = 99;
            for (size_t j = 0; j < N_SECTIONS; j++) {
                int d = closeness(name, sections[j]);
                if (d >= 0 && d < bd)
                    bd = d, best = sections[j];
            }
            if (!best && (!strcasecmp(name, "dataset") || !strcasecmp(name, "training")))
                best = tolower((unsigned char)name[0]) == 'd' ? "data" : "train";
            if (!best && (!strcasecmp(name, "network") || !strcasecmp(name, "net") ||
                          !strcasecmp(name, "architecture")))
                best = "model";
            if (best)
                return fail(x, kn->start_mark, "unknown section '%.60s' (did you mean '%s'?); the sections are data, model and train",
                            name, best);
            for (size_t j = 0; j < N_SECTIONS; j++)
                if (key_index(sections[j], name) >= 0)
                    return fail(x, kn->start_mark, "unknown section '%.60s' ('%s' is a key of section '%s'); put it under '%s:'",
                                name, name, sections[j], sections[j]);
            for (size_t j = 0; j < N_SECTIONS; j++) {
                const char *sug = suggest_key(sections[j], name);
                if (sug)
                    return fail(x, kn->start_mark, "unknown section '%.60s' (did you mean '%s.%s'?); put it under '%s:'",
                                name, sections[j], sug, sections[j]);
            }
            return fail(x, kn->start_mark, "unknown section '%.60s'; the sections are data, model and train",
                        name);
        }
        if (x->sec_given[s])
            return fail(x, kn->start_mark, "duplicate section '%s' (first given at line %zu); merge them into one",
                        name, x->sec_mark[s].line + 1);
        x->sec_given[s] = 1;
        x->sec_mark[s] = kn->start_mark;
        int rc = walk_section(x, sections[s], vn);
        if (rc)
            return rc;
    }
    return NS_OK;
}

/* ---- cross-field rules ---------------------------------------------------------------- */

static yaml_mark_t vmark(ctx *x, const char *section, const char *key)
{
    return x->vmark[key_index(section, key)];
}

static int given(ctx *x, const char *section, const char *key)
{
    return x->given[key_index(section, key)];
}

static int check_rules(ctx *x)
{
    ns_config *c = x->c;

    /* Required keys. */
    for (size_t i = 0; i < N_KEYS; i++) {
        if (!(keys[i].flags & REQUIRED) || x->given[i])
            continue;
        size_t s = 0;
        while (strcmp(sections[s], keys[i].section))
            s++;
        yaml_mark_t m = {0, 0, 0};
        if (x->sec_given[s])
            m = x->sec_mark[s];
        return fail(x, m, "missing required key '%s' in section '%s'; add '%s: FILE' under '%s:'",
                    keys[i].key, keys[i].section, keys[i].key, keys[i].section);
    }

    /* At most one budget; the later one is the one reported. */
    static const char *const budgets[] = {"epochs", "steps", "seconds"};
    int first = -1;
    for (int b = 0; b < 3; b++) {
        if (!given(x, "train", budgets[b]))
            continue;
        if (first < 0) {
            first = b;
            continue;
        }
        int later = b, earlier = first;
        if (vmark(x, "train", budgets[b]).index < vmark(x, "train", budgets[first]).index)
            later = first, earlier = b;
        return fail(x, x->kmark[key_index("train", budgets[later])],
                    "train.%s conflicts with train.%s (line %zu): give only one budget (epochs, steps or seconds)",
                    budgets[later], budgets[earlier],
                    x->kmark[key_index("train", budgets[earlier])].line + 1);
    }
    c->train.budget = first == 1 ? NS_BUDGET_STEPS : first == 2 ? NS_BUDGET_SECONDS : NS_BUDGET_EPOCHS;

    /* Loss and task. */
    int classify = c->data.task == NS_TASK_CLASSIFY;
    if (given(x, "model", "loss") && c->model.loss == NS_LOSS_MSE && classify)
        return fail(x, vmark(x, "model", "loss"),
                    "model.loss: mse needs data.task: regression; use loss: cross_entropy for classification, or set task: regression");
    if (given(x, "model", "loss") && c->model.loss == NS_LOSS_XENT && !classify)
        return fail(x, vmark(x, "model", "loss"),
                    "model.loss: cross_entropy needs data.task: classification; use loss: mse for regression");
    if (c->model.label_smoothing > 0 && c->model.loss != NS_LOSS_XENT)
        return fail(x, vmark(x, "model", "label_smoothing"),
                    "model.label_smoothing: applies to cross_entropy only, but the loss is mse; remove it");
    if (c->class_weights != NS_CW_NONE && !classify)
        return fail(x, vmark(x, "model", "class_weights"),
                    "model.class_weights: applies to classification only, but data.task is regression; remove it");

    /* Optimizer. */
    if (c->train.opt.nesterov && c->train.opt.kind != NS_OPT_SGD)
        return fail(x, vmark(x, "train", "nesterov"),
                    "train.nesterov: applies to optimizer sgd only; remove it or set optimizer: sgd");
    if (c->train.opt.nesterov && c->train.opt.momentum <= 0)
        return fail(x, vmark(x, "train", "nesterov"),
                    "train.nesterov: needs momentum > 0; set train.momentum (e.g. 0.9) or remove nesterov");

    /* Schedule and early stopping. */
    if (c->train.sched.min_lr > c->train.lr)
        return fail(x, vmark(x, "train", "min_lr"),
                    "train.min_lr: %g is above train.lr %g; make min_lr smaller than lr",
                    c->train.sched.min_lr, c->train.lr);
    if (c->data.val_fraction <= 0 && c->train.patience > 0)
        return fail(x, vmark(x, "train", "patience"),
                    "train.patience: early stopping needs a validation set but data.val_fraction is 0; set val_fraction > 0 or patience: 0");
    if (c->data.val_fraction <= 0 && c->train.sched.kind == NS_SCHED_PLATEAU)
        return fail(x, vmark(x, "train", "schedule"),
                    "train.schedule: plateau needs a validation set but data.val_fraction is 0; set val_fraction > 0 or choose another schedule");

    /* Files that come in pairs. */
    if (c->data.test_labels && !c->data.test)
        return fail(x, vmark(x, "data", "test_labels"),
                    "data.test_labels: given without data.test; add test: with the test images, or remove it");
    return NS_OK;
}

/* ---- data files ----------------------------------------------------------------------- */

/* The folder of the config name ("" when it has none). */
static char *config_dir(const char *name)
{
    const char *slash = strrchr(name, '/');
    size_t n = slash ? (size_t)(slash - name) + 1 : 0;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, name, n);
        d[n] = 0;
    }
    return d;
}

/* Resolves *p against dir in place; checks that it is a readable file and tells whether
 * it looks like IDX (gzip or IDX magic) rather than CSV text. */
static int check_file(ctx *x, const char *dir, const char *key, int *is_idx)
{
    int i = key_index("data", key);
    char **p = field(x->c, keys[i].off);
    if ((*p)[0] != '/' && dir[0]) {
        size_t n = strlen(dir) + strlen(*p) + 1;
        char *r = malloc(n);
        if (!r)
            return oom(x);
        snprintf(r, n, "%s%s", dir, *p);
        free(*p);
        *p = r;
    }
    int fd = open(*p, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail(x, x->vmark[i], "data.%s: cannot open '%.300s': %s; check the path (relative paths are resolved against the config's folder)",
                    key, *p, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return fail(x, x->vmark[i], "data.%s: '%.300s' is a directory; name a data file", key, *p);
    }
    unsigned char m[4] = {0};
    ssize_t got = read(fd, m, sizeof m);
    int e = errno;
    close(fd);
    if (got < 0)
        return fail(x, x->vmark[i], "data.%s: cannot read '%.300s': %s; check the file's permissions",
                    key, *p, strerror(e));
    if (is_idx)
        *is_idx = got >= 2 && ((m[0] == 0x1f && m[1] == 0x8b) || (m[0] == 0 && m[1] == 0));
    return NS_OK;
}

static int check_files(ctx *x)
{
    ns_config *c = x->c;
    char *dir = config_dir(x->name);
    if (!dir)
        return oom(x);
    int rc = NS_OK, idx = 0;
    if ((rc = check_file(x, dir, "train", &idx)))
        goto out;
    if (idx && !c->data.train_labels) {
        rc = fail(x, vmark(x, "data", "train"),
                  "data.train: '%.300s' is an IDX file but data.train_labels is missing; add train_labels: with its IDX labels file",
                  c->data.train);
        goto out;
    }
    if (!idx && c->data.train_labels) {
        rc = fail(x, vmark(x, "data", "train_labels"),
                  "data.train_labels: data.train is a CSV file, which carries its labels in the column named by data.label; remove train_labels");
        goto out;
    }
    if (c->data.train_labels && (rc = check_file(x, dir, "train_labels", NULL)))
        goto out;
    if (c->data.test) {
        if ((rc = check_file(x, dir, "test", &idx)))
            goto out;
        if (idx && !c->data.test_labels) {
            rc = fail(x, vmark(x, "data", "test"),
                      "data.test: '%.300s' is an IDX file but data.test_labels is missing; add test_labels: with its IDX labels file",
                      c->data.test);
            goto out;
        }
        if (!idx && c->data.test_labels) {
            rc = fail(x, vmark(x, "data", "test_labels"),
                      "data.test_labels: data.test is a CSV file, which carries its labels in the column named by data.label; remove test_labels");
            goto out;
        }
        if (c->data.test_labels && (rc = check_file(x, dir, "test_labels", NULL)))
            goto out;
    }
out:
    free(dir);
    return rc;
}

/* ---- entry points ---------------------------------------------------------------------- */

static int syntax_error(ctx *x, yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return oom(x);
    if (p->error == YAML_READER_ERROR) { /* only a byte offset: find its line and column */
        yaml_mark_t m = {0, 0, 0};
        for (size_t i = 0; x->c->text && x->c->text[i] && i < p->problem_offset; i++) {
            if (x->c->text[i] == '\n')
                m.line++, m.column = 0;
            else
                m.column++;
        }
        return fail(x, m, "the file is not valid UTF-8 text (%s at byte %zu); save it as UTF-8",
                    p->problem ? p->problem : "bad byte", p->problem_offset);
    }
    char ctxt[200] = "";
    if (p->context)
        snprintf(ctxt, sizeof ctxt, " %s at line %zu", p->context, p->context_mark.line + 1);
    return fail(x, p->problem_mark, "YAML syntax error: %s%s; check the indentation (spaces, not tabs), colons and quotes here",
                p->problem ? p->problem : "unreadable YAML", ctxt);
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

int ns_config_parse(ns_config *c, const char *name, const char *text, size_t len, ns_err *err)
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
        rc = oom(&x);
        goto fail;
    }
    memcpy(t.text, text, len);
    t.text[len] = 0;
    t.hash = ns_fnv1a64(text, len);

    if (!yaml_parser_initialize(&parser)) {
        rc = oom(&x);
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
        rc = fail(&x, m, "the config is empty; it needs at least 'data:' with 'train: FILE'");
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
        rc = fail(&x, mm, "a second YAML document ('---') follows the config; keep one document per file");
        goto fail;
    }
    dependent_defaults(&x);
    if ((rc = check_rules(&x)) || (rc = check_files(&x)))
        goto fail;

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
    if (!f)
        return ns_err_set(err, NS_EINPUT, "%s: cannot open the config: %s; check the path", path,
                          strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
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
        if (keys[i].type == KT_PATH || keys[i].type == KT_NAME)
            free(*(char **)field(c, keys[i].off));
        if (keys[i].type == KT_WEIGHTS)
            free(*(float **)field(c, keys[i].list_off));
    }
    free(c->path);
    free(c->text);
    memset(c, 0, sizeof *c);
}
