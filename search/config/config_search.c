/* config_search.c — search spaces and the search: section: a key's space mapping checked
 * against the key's type and range, the list of stages, the section's own rules, and a trial's
 * config (ns_config_instantiate). Not here: the key table and the file walk (config.c). */
#include "search/config/config_impl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- search spaces --------------------------------------------------------------------- */

typedef enum space_kind { SK_UNIFORM, SK_LOG_UNIFORM, SK_INT, SK_CHOICE, N_SK } space_kind;
static const char *const space_kinds[N_SK] = {"uniform", "log_uniform", "int", "choice"};

/* Words people write for a space kind (Optuna, Ray Tune, hyperopt, W&B); suggested only. */
static const struct {
    const char *word, *kind;
} kind_synonyms[] = {
    {"loguniform", "log_uniform"}, {"log", "log_uniform"},       {"logspace", "log_uniform"},
    {"reciprocal", "log_uniform"}, {"float", "uniform"},         {"range", "uniform"},
    {"randint", "int"},            {"integer", "int"},           {"int_uniform", "int"},
    {"qrandint", "int"},           {"lograndint", "int"},        {"categorical", "choice"},
    {"choices", "choice"},         {"values", "choice"},         {"one_of", "choice"},
    {"grid", "choice"},            {"grid_search", "choice"},    {"discrete", "choice"},
};

/* Why a key of data/model/train cannot be searched (NULL: no special reason). */
static const char *nosearch_reason(const key_def *k)
{
    if (!strcmp(k->section, "data"))
        return "the dataset is loaded once and shared by every trial";
    if (!strcmp(k->section, "health"))
        return "health thresholds judge the trials; one judge for all of them";
    if (!strcmp(k->key, "seed"))
        return "each trial's seed derives from search.seed and the trial number";
    if (!strcmp(k->key, "epochs") || !strcmp(k->key, "steps") || !strcmp(k->key, "seconds") ||
        !strcmp(k->key, "max_epochs"))
        return "each stage gives its trials their budget: epochs or steps in search.stages";
    if (!strcmp(k->key, "loss"))
        return "it follows data.task";
    if (!strcmp(k->key, "decision_offsets"))
        return "the select stage fits them to the winner's held-out predictions (search.decision_offsets)";
    if (!strcmp(k->section, "train") && !strcmp(k->key, "metric"))
        return "it follows search.metric: trials are compared by one metric";
    if (!strcmp(k->key, "eval_batch") || !strcmp(k->key, "threads") || !strcmp(k->key, "device") ||
        !strcmp(k->key, "precision"))
        return "it does not change what is learned";
    return NULL;
}

static int is_real(const key_def *k) { return k->type == KT_DOUBLE || k->type == KT_FLOAT; }
static int is_whole(const key_def *k) { return k->type == KT_INT || k->type == KT_LONG; }

/* A search space that fits key k, for messages: "{log_uniform: [1e-4, 1e-1]}". */
static void space_example(char *buf, size_t n, const key_def *k)
{
    if (is_real(k))
        snprintf(buf, n, "{log_uniform: [1e-4, 1e-1]}");
    else if (is_whole(k))
        snprintf(buf, n, "{int: [16, 256], log: true}");
    else if (k->type == KT_INTS)
        snprintf(buf, n, "{choice: [[256, 128], [512]]}");
    else if (k->type == KT_BOOL)
        snprintf(buf, n, "{choice: [true, false]}");
    else if (k->names)
        snprintf(buf, n, "{choice: [%s, %s]}", k->names[0].name, k->names[1].name);
    else
        snprintf(buf, n, "{choice: [...]}");
}

/* The key kind of a space mapping nearest to word, or NULL. */
static const char *suggest_kind(const char *word)
{
    const char *best = NULL;
    int bd = 99;
    for (int i = 0; i < N_SK; i++) {
        int d = cfg_closeness(word, space_kinds[i]);
        if (d >= 0 && d < bd)
            bd = d, best = space_kinds[i];
    }
    for (size_t i = 0; i < sizeof kind_synonyms / sizeof kind_synonyms[0]; i++) {
        int d = cfg_closeness(word, kind_synonyms[i].word);
        if (d >= 0 && d < bd)
            bd = d, best = kind_synonyms[i].kind;
    }
    return best;
}

/* One bound of a range: a value of the key itself (type and range), and whole for int. */
static int parse_bound(ctx *x, const key_def *k, space_kind sk, const char *which, yaml_node_t *e,
                       double *out)
{
    char why[600];
    uint64_t u;
    if (e->type != YAML_SCALAR_NODE || cfg_is_null(e))
        return cfg_fail(x, e->start_mark, "%s: the %s bound of %s is %s; write two numbers, e.g. %s: [1, 10]",
                    cfg_kname(x, k), which, space_kinds[sk],
                    e->type == YAML_SCALAR_NODE ? "missing" : node_kind(e), space_kinds[sk]);
    const char *s = scalar(e);
    if (sk == SK_INT && cfg_decimal_chars(s)) {
        char *end;
        double v = strtod(s, &end);
        if (!*end && isfinite(v) && v != floor(v))
            return cfg_fail(x, e->start_mark, "%s: int bounds must be whole numbers, got '%.60s'; write e.g. %.0f",
                        cfg_kname(x, k), s, floor(v));
    }
    if (cfg_to_number(k, s, out, &u, why, sizeof why))
        return cfg_fail(x, e->start_mark, "%s: %s bound of %s: %s", cfg_kname(x, k), which, space_kinds[sk], why);
    return NS_OK;
}

/* Appends the text of a choice (a scalar, or a flat list as "[a, b]") to a new string. */
static char *choice_text(ctx *x, yaml_node_t *e)
{
    if (e->type == YAML_SCALAR_NODE)
        return strdup(scalar(e));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fputc('[', f);
    for (yaml_node_item_t *it = e->data.sequence.items.start; it < e->data.sequence.items.top; it++)
        fprintf(f, "%s%s", it == e->data.sequence.items.start ? "" : ", ",
                scalar(yaml_document_get_node(x->doc, *it)));
    fputc(']', f);
    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The choices of a choice space: each checked by the key's own parser on a scratch config,
 * kept as text so a trial sets it through the same parser. */
static int parse_choices(ctx *x, const key_def *k, yaml_node_t *v, ns_dim *d)
{
    char ex[96];
    space_example(ex, sizeof ex, k);
    if (v->type != YAML_SEQUENCE_NODE)
        return cfg_fail(x, v->start_mark, "%s: choice needs a list of values, got %s; write e.g. %s: %s",
                    cfg_kname(x, k), cfg_is_null(v) ? "nothing" : node_kind(v), k->key, ex);
    yaml_node_item_t *it = v->data.sequence.items.start;
    int n = (int)(v->data.sequence.items.top - it);
    if (n == 0)
        return cfg_fail(x, v->start_mark, "%s: choice: the list is empty; give at least one value, e.g. %s: %s",
                    cfg_kname(x, k), k->key, ex);
    /* Each choice is compared with the earlier ones: bound the list, and with it that cost. */
    if (n > NS_CONFIG_MAX_CHOICES)
        return cfg_fail(x, v->start_mark, "%s: choice lists %d values, at most %d are supported; "
                        "use a uniform, log_uniform or int range for many values",
                        cfg_kname(x, k), n, NS_CONFIG_MAX_CHOICES);
    if (!(d->choices = calloc((size_t)n, sizeof *d->choices)))
        return cfg_oom(x);
    d->n_choices = n;
    for (int i = 0; i < n; i++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, it[i]);
        if (e->type == YAML_MAPPING_NODE)
            return cfg_fail(x, e->start_mark, "%s: choice %d is a mapping; a choice is a value of the key (search spaces do not nest)",
                        cfg_kname(x, k), i + 1);
        if (e->type == YAML_SEQUENCE_NODE && k->type != KT_INTS && k->type != KT_WEIGHTS)
            return cfg_fail(x, e->start_mark, "%s: choice %d is a list; write plain values, e.g. %s: %s",
                        cfg_kname(x, k), i + 1, k->key, ex);
        ns_config scratch;
        memset(&scratch, 0, sizeof scratch);
        int rc = cfg_set_value(x, &scratch, k, e);
        free(scratch.class_weight_list);
        if (rc)
            return rc;
        if (!(d->choices[i] = choice_text(x, e)))
            return cfg_oom(x);
        for (int j = 0; j < i; j++)
            if (!strcmp(d->choices[j], d->choices[i]))
                return cfg_fail(x, e->start_mark, "%s: choice '%.60s' is listed twice; list each value once",
                            cfg_kname(x, k), d->choices[i]);
    }
    d->lo = 0;
    d->hi = n - 1;
    return NS_OK;
}

/* A search-space mapping as the value of key i: exactly one of uniform, log_uniform, int
 * (with an optional log: true) or choice, checked against the key's type and range. */
int cfg_parse_space(ctx *x, int i, yaml_node_t *m)
{
    const key_def *k = &cfg_keys[i];
    char ex[96];
    space_example(ex, sizeof ex, k);
    if (!(k->flags & SEARCH)) {
        const char *why = nosearch_reason(k);
        char tail[160] = "";
        if (why)
            snprintf(tail, sizeof tail, " (%s)", why);
        return cfg_fail(x, m->start_mark, "%s cannot be searched; fix it to %s%s", cfg_kname(x, k),
                    k->type == KT_BOOL ? "true or false" : k->type == KT_ENUM ? "one value" : "a number",
                    tail);
    }
    yaml_node_t *kind_key = NULL, *kind_val = NULL, *log_key = NULL, *log_val = NULL;
    space_kind sk = N_SK;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(x->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return cfg_fail(x, kn->start_mark, "%s: a search space's keys are names, got %s; write e.g. %s: %s",
                        cfg_kname(x, k), node_kind(kn), k->key, ex);
        const char *w = scalar(kn);
        if (!strcmp(w, "log")) {
            if (log_key)
                return cfg_fail(x, kn->start_mark, "%s: duplicate 'log' in the search space (line %zu); keep one",
                            cfg_kname(x, k), log_key->start_mark.line + 1);
            log_key = kn, log_val = vn;
            continue;
        }
        int j = 0;
        while (j < N_SK && strcmp(w, space_kinds[j]))
            j++;
        if (j == N_SK) {
            const char *sug = suggest_kind(w);
            if (sug)
                return cfg_fail(x, kn->start_mark, "%s: unknown search space '%.60s' (did you mean '%s'?); a search space is one of uniform, log_uniform, int (with optional log: true), choice",
                            cfg_kname(x, k), w, sug);
            return cfg_fail(x, m->start_mark, "%s: expected %s or a search space, got a mapping with the key '%.60s'; a search space is a mapping with one of uniform, log_uniform, int or choice, e.g. %s: %s",
                        cfg_kname(x, k), cfg_expected(k), w, k->key, ex);
        }
        if (kind_key)
            return cfg_fail(x, kn->start_mark, "%s: two search spaces in one mapping ('%s' at line %zu and '%s'); keep one",
                        cfg_kname(x, k), space_kinds[sk], kind_key->start_mark.line + 1, w);
        kind_key = kn, kind_val = vn, sk = (space_kind)j;
    }
    if (!kind_key) {
        if (log_key)
            return cfg_fail(x, m->start_mark, "%s: log: alone is not a search space; write e.g. %s: %s",
                        cfg_kname(x, k), k->key, ex);
        return cfg_fail(x, m->start_mark, "%s: expected %s or a search space, got an empty mapping; write e.g. %s: %s",
                    cfg_kname(x, k), cfg_expected(k), k->key, ex);
    }

    /* the kind must fit the key's type */
    if (sk != SK_CHOICE && !is_real(k) && !is_whole(k)) {
        if (k->type == KT_INTS)
            return cfg_fail(x, kind_key->start_mark, "%s: a list of widths is searched with choice, e.g. hidden: %s, or with model.depth and model.width as int ranges",
                        cfg_kname(x, k), ex);
        return cfg_fail(x, kind_key->start_mark, "%s takes %s, not a range; search it with choice, e.g. %s: %s",
                    cfg_kname(x, k), cfg_expected(k), k->key, ex);
    }
    if ((sk == SK_UNIFORM || sk == SK_LOG_UNIFORM) && is_whole(k))
        return cfg_fail(x, kind_key->start_mark, "%s is a whole number; search it with int: [lo, hi] (add log: true for a log scale), e.g. %s: %s",
                    cfg_kname(x, k), k->key, ex);
    if (sk == SK_INT && is_real(k))
        return cfg_fail(x, kind_key->start_mark, "%s takes real numbers; int is for whole-number keys: use uniform: [lo, hi] or log_uniform: [lo, hi]",
                    cfg_kname(x, k));
    int log_scale = sk == SK_LOG_UNIFORM;
    if (log_key) {
        int b;
        if (sk != SK_INT)
            return cfg_fail(x, log_key->start_mark, "%s: log: applies to int only; %s",
                        cfg_kname(x, k), sk == SK_UNIFORM ? "for a log scale write log_uniform: [lo, hi]" : "remove it");
        if (log_val->type != YAML_SCALAR_NODE || cfg_to_bool(scalar(log_val), &b))
            return cfg_fail(x, log_val->start_mark, "%s: log: expects true or false; write log: true", cfg_kname(x, k));
        log_scale = b;
    }

    ns_dim d;
    memset(&d, 0, sizeof d);
    snprintf(d.name, sizeof d.name, "%s.%s", k->section, k->key);
    d.key = i;
    d.line = (int)m->start_mark.line + 1;
    d.column = (int)m->start_mark.column + 1;
    int rc;
    if (sk == SK_CHOICE) {
        d.kind = NS_DIM_CHOICE;
        rc = parse_choices(x, k, kind_val, &d);
    } else {
        d.kind = sk == SK_UNIFORM ? NS_DIM_UNIFORM : sk == SK_LOG_UNIFORM ? NS_DIM_LOG_UNIFORM
                 : log_scale ? NS_DIM_INT_LOG : NS_DIM_INT;
        yaml_node_t *v = kind_val;
        if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top - v->data.sequence.items.start != 2)
            return cfg_fail(x, v->start_mark, "%s: %s needs [lo, hi], two bounds, got %s; write e.g. %s: %s",
                        cfg_kname(x, k), space_kinds[sk],
                        v->type == YAML_SEQUENCE_NODE ? "a list of another length" : cfg_is_null(v) ? "nothing" : node_kind(v),
                        k->key, ex);
        yaml_node_t *lo = yaml_document_get_node(x->doc, v->data.sequence.items.start[0]);
        yaml_node_t *hi = yaml_document_get_node(x->doc, v->data.sequence.items.start[1]);
        if ((rc = parse_bound(x, k, sk, "lower", lo, &d.lo)) || (rc = parse_bound(x, k, sk, "upper", hi, &d.hi)))
            return rc;
        if (log_scale && d.lo <= 0)
            return cfg_fail(x, lo->start_mark, "%s: a log scale needs a lower bound > 0, got %s; use e.g. %s, or %s for a range from 0",
                        cfg_kname(x, k), scalar(lo), is_whole(k) ? "1" : "1e-6", is_whole(k) ? "int without log" : "uniform");
        if (d.lo > d.hi)
            return cfg_fail(x, v->start_mark, "%s: inverted range [%s, %s]; write the smaller bound first: [%s, %s]",
                        cfg_kname(x, k), scalar(lo), scalar(hi), scalar(hi), scalar(lo));
        if (d.lo == d.hi)
            return cfg_fail(x, v->start_mark, "%s: empty range [%s, %s]; give two different bounds, or fix the key: %s: %s",
                        cfg_kname(x, k), scalar(lo), scalar(hi), k->key, scalar(lo));
    }
    if (rc || (rc = ns_space_add(&x->c->space, &d))) {
        for (int j = 0; j < d.n_choices && d.choices; j++)
            free(d.choices[j]);
        free(d.choices);
        return rc == NS_ERUNTIME ? cfg_oom(x) : rc;
    }
    x->searched[i] = 1;
    return NS_OK;
}

/* ---- search.stages --------------------------------------------------------------------- */

#define SOFF(f) offsetof(ns_stage_cfg, f)
/* Keys of every stage (besides stage:); offsets into ns_stage_cfg. */
static const key_def stage_keys[] = {
    {.section = "stage", .key = "trials", .type = KT_LONG, .off = SOFF(trials), .min = 1,
     .max = NS_MAX_STAGE_TRIALS},
    {.section = "stage", .key = "epochs", .type = KT_LONG, .off = SOFF(epochs), .min = 1, .max = INF},
    {.section = "stage", .key = "steps", .type = KT_LONG, .off = SOFF(steps), .min = 1, .max = INF},
    {.section = "stage", .key = "seconds", .type = KT_DOUBLE, .off = SOFF(seconds), .min = 0,
     .max = INF, .flags = MIN_OPEN},
};
#define N_STAGE_KEYS (sizeof stage_keys / sizeof stage_keys[0])
#define MAX_STAGE_OPTS 16

static const enum_name rule_names[] = {
    {"valley", 0}, {"steepest", 1}, {"min10", 2}, {NULL, 0}}; /* ns_lr_rule order */
static const enum_name scaling_names[] = {{"auto", NS_SCALE_AUTO}, {"linear", NS_SCALE_LINEAR},
                                          {"sqrt", NS_SCALE_SQRT}, {"none", NS_SCALE_NONE},
                                          {NULL, 0}};
static const enum_name stage_opt_names[] = {{"sgd", NS_OPT_SGD}, {"adam", NS_OPT_ADAM},
                                            {"adamw", NS_OPT_ADAMW}, {"rmsprop", NS_OPT_RMSPROP},
                                            {NULL, 0}};
static const enum_name stage_sched_names[] = {
    {"constant", NS_SCHED_CONSTANT}, {"step", NS_SCHED_STEP},        {"exponential", NS_SCHED_EXP},
    {"cosine", NS_SCHED_COSINE},     {"onecycle", NS_SCHED_ONECYCLE}, {NULL, 0}};

#define SNUM(k, t, f, lo, hi, fl) \
    {.section = "stage", .key = k, .type = t, .off = SOFF(f), .min = lo, .max = hi, .flags = fl}
/* A macro, not a const object: C does not take an object as a constant initializer (gcc
 * accepts it as an extension, clang refuses it). */
#define SEEDS_KEY SNUM("seeds", KT_INT, seeds, 1, 100, 0)
static const key_def lr_range_opts[] = {
    SEEDS_KEY,
    SNUM("start", KT_DOUBLE, lr_start, 0, INF, MIN_OPEN),
    SNUM("end", KT_DOUBLE, lr_end, 0, INF, MIN_OPEN),
    SNUM("sweep_steps", KT_INT, sweep_steps, 10, 100000, 0),
    {.section = "stage", .key = "rule", .type = KT_ENUM, .off = SOFF(rule), .names = rule_names},
};
static const key_def batch_opts[] = {
    {.section = "stage", .key = "sizes", .type = KT_INTS, .off = SOFF(sizes), .min = 1,
     .max = 1 << 24, .count_off = SOFF(n_sizes), .max_items = NS_MAX_SIZES},
    {.section = "stage", .key = "scaling", .type = KT_ENUM, .off = SOFF(scaling), .names = scaling_names},
    SNUM("tolerance", KT_DOUBLE, tolerance, 0, 1, 0),
};
static const key_def compare_opts[] = {
    SEEDS_KEY,
    {.section = "stage", .key = "optimizers", .type = KT_ENUMS, .off = SOFF(optimizers),
     .names = stage_opt_names, .count_off = SOFF(n_optimizers), .max_items = NS_MAX_PAIRS},
    {.section = "stage", .key = "schedules", .type = KT_ENUMS, .off = SOFF(schedules),
     .names = stage_sched_names, .count_off = SOFF(n_schedules), .max_items = NS_MAX_PAIRS},
    SNUM("shortlist", KT_INT, shortlist, 1, 64, 0),
};
static const enum_name prune_names[] = {
    {"none", NS_PRUNE_NONE}, {"median", NS_PRUNE_MEDIAN}, {"asha", NS_PRUNE_ASHA}, {NULL, 0}};
static const key_def bayes_opts[] = {
    SNUM("round", KT_INT, round, 1, 4096, 0),
    SNUM("init", KT_INT, init, 0, 100000, 0),
    {.section = "stage", .key = "prune", .type = KT_ENUM, .off = SOFF(prune), .names = prune_names},
    SNUM("min_epochs", KT_LONG, min_epochs, 0, INF, 0),
    SNUM("reduction", KT_INT, reduction, 2, 100, 0),
};
static const key_def select_opts[] = {
    SNUM("top", KT_INT, top, 1, 100, 0),
};
#undef SNUM

/* Whether a stage kind takes trials: (bayes without it runs until the study budget ends). */
enum { TRIALS_DERIVED = 0, TRIALS_REQUIRED, TRIALS_OPTIONAL };

/* The known stages, one line each: name, kind, the stage's own keys (key_defs with offsets
 * into ns_stage_cfg), whether trials: is taken (required for random) and whether the per-trial
 * budget is (lr_range has its sweep; batch_sweep and compare default to 1 and 3 epochs;
 * final trains for the config's own budget). Only these names are accepted. */
typedef struct stage_def {
    const char *name;
    ns_stage_kind kind;
    const key_def *opts;
    int n_opts;
    int needs_trials, takes_budget;
    long default_epochs;
} stage_def;
#define OPTS(a) a, (int)(sizeof a / sizeof a[0])
static const stage_def stage_defs[] = {
    {"random", NS_STAGE_RANDOM, NULL, 0, TRIALS_REQUIRED, 1, 0},
    {"lr_range", NS_STAGE_LR_RANGE, OPTS(lr_range_opts), 0, 0, 0},
    {"batch_sweep", NS_STAGE_BATCH, OPTS(batch_opts), 0, 1, 1},
    {"compare", NS_STAGE_COMPARE, OPTS(compare_opts), 0, 1, 3},
    {"final", NS_STAGE_FINAL, NULL, 0, 0, 0, 0},
    {"bayes", NS_STAGE_BAYES, OPTS(bayes_opts), TRIALS_OPTIONAL, 1, 0},
    {"select", NS_STAGE_SELECT, OPTS(select_opts), 0, 0, 0},
};
#undef OPTS
#define N_STAGE_DEFS (sizeof stage_defs / sizeof stage_defs[0])

/* The defaults of every stage option (docs/config.md, "Stages"). */
static void stage_defaults(ns_stage_cfg *st)
{
    st->seeds = 3;
    st->lr_start = 1e-7;
    st->lr_end = 10;
    st->sweep_steps = 200;
    st->rule = 0;
    st->n_sizes = 0;
    for (int b = 16; b <= 1024 && st->n_sizes < NS_MAX_SIZES; b *= 2)
        st->sizes[st->n_sizes++] = b;
    st->scaling = NS_SCALE_AUTO;
    st->tolerance = 0.02;
    static const int opts[] = {NS_OPT_SGD, NS_OPT_ADAM, NS_OPT_ADAMW, NS_OPT_RMSPROP};
    static const int scheds[] = {NS_SCHED_CONSTANT, NS_SCHED_COSINE, NS_SCHED_ONECYCLE, NS_SCHED_STEP};
    st->n_optimizers = st->n_schedules = 4;
    memcpy(st->optimizers, opts, sizeof opts);
    memcpy(st->schedules, scheds, sizeof scheds);
    st->shortlist = 3;
    st->round = 2;
    st->init = 0;
    st->prune = NS_PRUNE_MEDIAN;
    st->min_epochs = 0;
    st->reduction = 3;
    st->top = 5;
}

static void list_stage_names(char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < N_STAGE_DEFS && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", stage_defs[i].name);
}

/* The key of stage sd named w (common or the stage's own), or NULL. */
static const key_def *stage_key(const stage_def *sd, const char *w)
{
    for (size_t i = 0; i < N_STAGE_KEYS; i++)
        if (!strcmp(stage_keys[i].key, w))
            return &stage_keys[i];
    for (int i = 0; i < sd->n_opts; i++)
        if (!strcmp(sd->opts[i].key, w))
            return &sd->opts[i];
    return NULL;
}

static int parse_stage(ctx *x, int j, yaml_node_t *m)
{
    ns_stage_cfg *st = &x->c->search.stages[j];
    char label[80], all[400], names[200];
    list_stage_names(names, sizeof names);
    memset(st, 0, sizeof *st);
    stage_defaults(st);
    st->line = (int)m->start_mark.line + 1;
    st->column = (int)m->start_mark.column + 1;
    if (m->type != YAML_MAPPING_NODE)
        return cfg_fail(x, m->start_mark, "search.stages[%d]: expected a mapping such as {stage: random, trials: 20, epochs: 5}, got %s",
                    j, cfg_is_null(m) ? "nothing" : node_kind(m));
    /* stage: first, since it decides which other keys are allowed */
    const stage_def *sd = NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(x->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE || strcmp(scalar(kn), "stage"))
            continue;
        if (sd)
            return cfg_fail(x, kn->start_mark, "search.stages[%d]: duplicate key 'stage'; one stage per entry", j);
        if (vn->type != YAML_SCALAR_NODE || cfg_is_null(vn))
            return cfg_fail(x, vn->start_mark, "search.stages[%d].stage: expected a stage name, got %s; available: %s",
                        j, vn->type == YAML_SCALAR_NODE ? "nothing" : node_kind(vn), names);
        for (size_t i = 0; i < N_STAGE_DEFS && !sd; i++)
            if (!strcmp(stage_defs[i].name, scalar(vn)))
                sd = &stage_defs[i];
        if (!sd) {
            const char *best = NULL;
            int bd = 99;
            for (size_t i = 0; i < N_STAGE_DEFS; i++) {
                int d = cfg_closeness(scalar(vn), stage_defs[i].name);
                if (d >= 0 && d < bd)
                    bd = d, best = stage_defs[i].name;
            }
            char hint[96] = "";
            if (best)
                snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
            return cfg_fail(x, vn->start_mark, "search.stages[%d].stage: unknown stage '%.60s'%s; available: %s",
                        j, scalar(vn), hint, names);
        }
    }
    if (!sd)
        return cfg_fail(x, m->start_mark, "search.stages[%d]: missing 'stage:'; name the stage, e.g. stage: random (available: %s)",
                    j, names);
    st->name = sd->name;
    snprintf(all, sizeof all, "stage");
    for (size_t i = 0; i < N_STAGE_KEYS; i++) {
        const char *w = stage_keys[i].key; /* only the keys this kind accepts */
        if ((!strcmp(w, "trials") && !sd->needs_trials) ||
            ((!strcmp(w, "epochs") || !strcmp(w, "steps")) && !sd->takes_budget))
            continue;
        snprintf(all + strlen(all), sizeof all - strlen(all), ", %s", w);
    }
    for (int i = 0; i < sd->n_opts; i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), ", %s", sd->opts[i].key);

    const key_def *seen[N_STAGE_KEYS + MAX_STAGE_OPTS];
    yaml_mark_t seen_mark[N_STAGE_KEYS + MAX_STAGE_OPTS];
    int n_seen = 0;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(x->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return cfg_fail(x, kn->start_mark, "search.stages[%d]: a key must be a plain name, got %s; write 'name: value'",
                        j, node_kind(kn));
        const char *w = scalar(kn);
        if (!strcmp(w, "stage"))
            continue;
        const key_def *k = stage_key(sd, w);
        if (!k) {
            const char *best = NULL;
            int bd = 99;
            for (size_t i = 0; i < N_STAGE_KEYS; i++) {
                int d = cfg_closeness(w, stage_keys[i].key);
                if (d >= 0 && d < bd)
                    bd = d, best = stage_keys[i].key;
            }
            for (int i = 0; i < sd->n_opts; i++) {
                int d = cfg_closeness(w, sd->opts[i].key);
                if (d >= 0 && d < bd)
                    bd = d, best = sd->opts[i].key;
            }
            if (best)
                return cfg_fail(x, kn->start_mark, "search.stages[%d]: unknown key '%.60s' for a %s stage (did you mean '%s'?); its keys are: %s",
                            j, w, sd->name, best, all);
            for (size_t i = 0; i < N_STAGE_DEFS; i++)
                if (&stage_defs[i] != sd && stage_key(&stage_defs[i], w))
                    return cfg_fail(x, kn->start_mark, "search.stages[%d]: '%.60s' is an option of stage '%s', not of '%s'; its keys are: %s",
                                j, w, stage_defs[i].name, sd->name, all);
            return cfg_fail(x, kn->start_mark, "search.stages[%d]: unknown key '%.60s' for a %s stage; its keys are: %s",
                        j, w, sd->name, all);
        }
        for (int i = 0; i < n_seen; i++)
            if (seen[i] == k)
                return cfg_fail(x, kn->start_mark, "search.stages[%d]: duplicate key '%s' (first given at line %zu); remove one of them",
                            j, w, seen_mark[i].line + 1);
        seen[n_seen] = k;
        seen_mark[n_seen++] = kn->start_mark;
        if (!strcmp(k->key, "trials") && vn->type == YAML_SCALAR_NODE && cfg_decimal_chars(scalar(vn)) &&
            strtod(scalar(vn), NULL) > NS_MAX_STAGE_TRIALS)
            return cfg_fail(x, vn->start_mark, "search.stages[%d].trials: %.60s is above the limit of %d "
                            "trials a stage (trial numbers are 32-bit, shared by up to %d stages); give "
                            "trials: %d or fewer, and seconds: or search.budget to bound the stage by time",
                            j, scalar(vn), NS_MAX_STAGE_TRIALS, NS_MAX_STAGES, NS_MAX_STAGE_TRIALS);
        snprintf(label, sizeof label, "search.stages[%d].%s", j, k->key);
        x->label = label;
        int rc = cfg_set_value(x, st, k, vn);
        x->label = NULL;
        if (rc)
            return rc;
    }
    /* trials (random) and at most one per-trial budget (exactly one for random) */
    const key_def *tk = stage_key(sd, "trials"), *ek = stage_key(sd, "epochs"), *sk = stage_key(sd, "steps");
    int has_t = -1, has_e = -1, has_s = -1;
    for (int i = 0; i < n_seen; i++) {
        if (seen[i] == tk)
            has_t = i;
        if (seen[i] == ek)
            has_e = i;
        if (seen[i] == sk)
            has_s = i;
    }
    st->kind = sd->kind;
    if (sd->needs_trials == TRIALS_REQUIRED && has_t < 0)
        return cfg_fail(x, m->start_mark, "search.stages[%d]: missing 'trials:'; give the number of trials of this %s stage, e.g. trials: 20",
                    j, sd->name);
    if (!sd->needs_trials && has_t >= 0)
        return cfg_fail(x, seen_mark[has_t], "search.stages[%d].trials: a %s stage derives its trials from its options; remove trials:",
                    j, sd->name);
    if (!sd->takes_budget && (has_e >= 0 || has_s >= 0))
        return cfg_fail(x, seen_mark[has_e >= 0 ? has_e : has_s],
                    "search.stages[%d].%s: a %s stage has no per-trial budget (%s); remove it", j,
                    has_e >= 0 ? "epochs" : "steps", sd->name,
                    sd->kind == NS_STAGE_FINAL ? "it trains for train: budget"
                    : sd->kind == NS_STAGE_SELECT ? "it trains nothing" : "set sweep_steps");
    if (has_e >= 0 && has_s >= 0) {
        int later = has_e > has_s ? has_e : has_s, earlier = has_e > has_s ? has_s : has_e;
        return cfg_fail(x, seen_mark[later], "search.stages[%d].%s conflicts with %s (line %zu): give one budget per trial, epochs or steps",
                    j, seen[later]->key, seen[earlier]->key, seen_mark[earlier].line + 1);
    }
    if (sd->takes_budget && has_e < 0 && has_s < 0) {
        if (!sd->default_epochs)
            return cfg_fail(x, m->start_mark, "search.stages[%d]: missing the budget of a trial; add epochs: N or steps: N", j);
        st->epochs = sd->default_epochs;
    }
    st->budget = has_s >= 0 ? NS_BUDGET_STEPS : NS_BUDGET_EPOCHS;
    if (sd->kind == NS_STAGE_LR_RANGE && !(st->lr_start < st->lr_end))
        return cfg_fail(x, m->start_mark, "search.stages[%d]: start %g must be below end %g; the sweep raises the LR",
                    j, st->lr_start, st->lr_end);
    if (sd->kind == NS_STAGE_BATCH && st->n_sizes < 2)
        return cfg_fail(x, m->start_mark, "search.stages[%d].sizes: list at least two batch sizes to compare", j);
    for (int i = 1; sd->kind == NS_STAGE_BATCH && i < st->n_sizes; i++)
        if (st->sizes[i] <= st->sizes[i - 1])
            return cfg_fail(x, m->start_mark, "search.stages[%d].sizes: %d after %d; list the sizes once each, in increasing order",
                        j, st->sizes[i], st->sizes[i - 1]);
    if (sd->kind == NS_STAGE_COMPARE && (st->n_optimizers < 1 || st->n_schedules < 1))
        return cfg_fail(x, m->start_mark, "search.stages[%d]: list at least one optimizer and one schedule", j);
    return NS_OK;
}

int cfg_parse_stages(ctx *x, const key_def *k, yaml_node_t *v)
{
    static const char ex[] = "stages: [{stage: random, trials: 20, epochs: 5}]";
    if (v->type != YAML_SEQUENCE_NODE)
        return cfg_fail(x, v->start_mark, "%s: expected a list of stages, got %s; write e.g. %s", cfg_kname(x, k),
                    cfg_is_null(v) ? "nothing" : node_kind(v), ex);
    yaml_node_item_t *it = v->data.sequence.items.start;
    long n = v->data.sequence.items.top - it;
    if (n == 0)
        return cfg_fail(x, v->start_mark, "%s: the list is empty; list at least one stage, e.g. %s", cfg_kname(x, k), ex);
    if (n > NS_MAX_STAGES)
        return cfg_fail(x, v->start_mark, "%s: %ld stages, at most %d are supported; shorten the list",
                    cfg_kname(x, k), n, NS_MAX_STAGES);
    for (int j = 0; j < n; j++) {
        int rc = parse_stage(x, j, yaml_document_get_node(x->doc, it[j]));
        if (rc)
            return rc;
        x->c->search.n_stages = j + 1;
    }
    return NS_OK;
}

/* search.resampling: auto, holdout or cv (5 folds, once), or {cv: K, repeats: R}. */
int cfg_parse_resampling(ctx *x, const key_def *k, yaml_node_t *v)
{
    static const char ex[] = "resampling: {cv: 5, repeats: 2}";
    ns_search_cfg *sc = field(x->c, k->off);
    if (v->type == YAML_SCALAR_NODE && !cfg_is_null(v)) {
        const char *s = scalar(v);
        if (!strcmp(s, "auto"))
            sc->resampling = NS_RESAMPLE_AUTO;
        else if (!strcmp(s, "holdout"))
            sc->resampling = NS_RESAMPLE_HOLDOUT;
        else if (!strcmp(s, "cv"))
            sc->resampling = NS_RESAMPLE_CV;
        else
            return cfg_fail(x, v->start_mark, "%s: unknown value '%.60s'; write auto, holdout, cv or e.g. %s",
                            cfg_kname(x, k), s, ex);
        return NS_OK;
    }
    if (v->type != YAML_MAPPING_NODE)
        return cfg_fail(x, v->start_mark, "%s: expected %s, got %s", cfg_kname(x, k), cfg_expected(k),
                        cfg_is_null(v) ? "nothing" : node_kind(v));
    static const key_def opts[] = {
        {.section = "search", .key = "resampling.cv", .type = KT_INT, .min = 2, .max = NS_CV_MAX_FOLDS},
        {.section = "search", .key = "resampling.repeats", .type = KT_INT, .min = 1, .max = NS_CV_MAX_REPEATS},
    };
    int *dst[2] = {&sc->folds, &sc->repeats}, seen[2] = {0, 0};
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(x->doc, p->value);
        const char *key = kn->type == YAML_SCALAR_NODE ? scalar(kn) : "";
        int j = !strcmp(key, "cv") ? 0 : !strcmp(key, "repeats") ? 1 : -1;
        if (j < 0)
            return cfg_fail(x, kn->start_mark, "%s: unknown key '%.60s'; the keys are cv (folds, 2 to %d) and "
                            "repeats (1 to %d), e.g. %s", cfg_kname(x, k), key, NS_CV_MAX_FOLDS,
                            NS_CV_MAX_REPEATS, ex);
        if (seen[j]++)
            return cfg_fail(x, kn->start_mark, "%s: duplicate key '%s'; remove one of them", cfg_kname(x, k), key);
        int rc = cfg_set_value(x, dst[j], &(key_def){.section = opts[j].section, .key = opts[j].key,
                                                    .type = KT_INT, .min = opts[j].min, .max = opts[j].max},
                               vn);
        if (rc)
            return rc;
    }
    if (!seen[0])
        return cfg_fail(x, v->start_mark, "%s: the number of folds is missing; write e.g. %s", cfg_kname(x, k), ex);
    sc->resampling = NS_RESAMPLE_CV;
    return NS_OK;
}

/* The study name from the config's file name: no folder, no extension, and only
 * letters, digits, '.', '_' and '-' (others become '_'). */
static char *default_study_name(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot > b ? (size_t)(dot - b) : strlen(b);
    char *s = malloc(n + 6);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++)
        s[i] = isalnum((unsigned char)b[i]) || strchr("._-", b[i]) ? b[i] : '_';
    s[n] = 0;
    if (!n || s[0] == '.')
        memcpy(s, "study", 6);
    return s;
}

/* The search section: defaults from the file's name and the task, and its own rules. */
int cfg_check_search(ctx *x)
{
    ns_config *c = x->c;
    ns_search_cfg *sc = &c->search;
    size_t sec = 0;
    while (strcmp(cfg_sections[sec], "search"))
        sec++;
    if (!x->sec_given[sec]) {
        if (c->space.n) {
            const ns_dim *d = &c->space.dims[0];
            yaml_mark_t m = {0, (size_t)d->line - 1, (size_t)d->column - 1};
            return cfg_fail(x, m, "%s: a search space needs a search: section with at least one stage; add e.g. 'search: {stages: [{stage: random, trials: 20, epochs: 5}]}', or fix %s to a value",
                        d->name, d->name);
        }
        return NS_OK;
    }
    sc->given = 1;
    if (sc->folds == 0)
        sc->folds = NS_CV_DEFAULT_FOLDS;
    if (sc->repeats == 0)
        sc->repeats = 1;
    if (!given(x, "search", "stages"))
        return cfg_fail(x, x->sec_mark[sec], "search: missing 'stages:'; list at least one stage, e.g. stages: [{stage: random, trials: 20, epochs: 5}]");
    if (given(x, "search", "name")) {
        const char *n = sc->name;
        int ok = n[0] != '.' && strlen(n) <= 100;
        for (const char *p = n; ok && *p; p++)
            ok = isalnum((unsigned char)*p) || strchr("._-", *p);
        if (!ok)
            return cfg_fail(x, vmark(x, "search", "name"), "search.name: '%.60s' names the study folder: use up to 100 letters, digits, '.', '_' and '-', not starting with '.'; e.g. name: my_study",
                        n);
    } else if (!(sc->name = default_study_name(x->name))) {
        return cfg_oom(x);
    }
    if (!sc->output) {
        size_t n = strlen(sc->name) + 9;
        if (!(sc->output = malloc(n)))
            return cfg_oom(x);
        snprintf(sc->output, n, "results/%s", sc->name);
    }
    if (sc->output[0] != '/') { /* against the current directory, as documented */
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd))
            return ns_err_set(x->err, NS_ERUNTIME, "%s: cannot read the current directory: %s",
                              x->name, strerror(errno));
        size_t n = strlen(cwd) + strlen(sc->output) + 2;
        char *abs = malloc(n);
        if (!abs)
            return cfg_oom(x);
        snprintf(abs, n, "%s/%s", cwd, sc->output);
        free(sc->output);
        sc->output = abs;
    }
    struct stat st;
    if (!stat(sc->output, &st) && !S_ISDIR(st.st_mode)) {
        yaml_mark_t m = given(x, "search", "output") ? vmark(x, "search", "output") : x->sec_mark[sec];
        return cfg_fail(x, m, "search.output: '%.300s' exists and is not a folder; choose another output folder",
                    sc->output);
    }
    for (int i = 0; i < sc->n_stages; i++)
        if (sc->stages[i].kind == NS_STAGE_BAYES && (c->space.n == 0 || c->space.n > 64)) {
            yaml_mark_t m = {.line = (size_t)sc->stages[i].line - 1, .column = (size_t)sc->stages[i].column - 1};
            return cfg_fail(x, m, "search.stages[%d]: a bayes stage searches 1 to 64 keys, the config has %d; "
                        "make some keys search spaces, e.g. lr: {log_uniform: [1e-4, 1e-1]}", i, c->space.n);
        }
    int classify = c->data.task == NS_TASK_CLASSIFY;
    if (ns_metric_higher_is_better(sc->metric) && !classify)
        return cfg_fail(x, vmark(x, "search", "metric"),
                    "search.metric: %s needs data.task: classification; use val_rmse or val_loss for regression",
                    ns_metric_name(sc->metric));
    if (sc->metric == NS_METRIC_VAL_RMSE && classify)
        return cfg_fail(x, vmark(x, "search", "metric"),
                    "search.metric: val_rmse needs data.task: regression; use val_acc or val_loss for classification");
    if (c->data.val_fraction <= 0) {
        yaml_mark_t m = given(x, "data", "val_fraction") ? vmark(x, "data", "val_fraction") : x->sec_mark[sec];
        return cfg_fail(x, m, "data.val_fraction: a search needs a validation split (holdout trials are compared on it; the LR range test runs on it under cross-validation too), but val_fraction is 0; set val_fraction > 0 (e.g. 0.1)");
    }
    return NS_OK;
}

/* Sets key i of x->c from YAML text (a trial's value) through the key's own parser. */
static int apply_text(ctx *x, int i, const char *text)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return cfg_oom(x);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    int rc;
    if (!yaml_parser_load(&parser, &doc)) {
        /* as in syntax_error (config.c): a failure without a problem is libyaml out of
         * memory, not a bad value (which would fail the trial for good) */
        if (parser.error == YAML_MEMORY_ERROR || parser.error == YAML_NO_ERROR || !parser.problem)
            rc = cfg_oom(x);
        else
            rc = cfg_fail(x, parser.problem_mark, "%s.%s: the value '%.60s' is not valid YAML",
                          cfg_keys[i].section, cfg_keys[i].key, text);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_document_t *saved = x->doc;
    x->doc = &doc;
    if (!root)
        rc = cfg_fail(x, doc.start_mark, "%s.%s: no value", cfg_keys[i].section, cfg_keys[i].key);
    else
        rc = cfg_set_value(x, x->c, &cfg_keys[i], root);
    x->doc = saved;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int ns_config_instantiate(const ns_config *base, const double *u, ns_config *out, ns_err *err)
{
    return ns_config_instantiate_set(base, u, NULL, 0, out, err);
}

int ns_config_instantiate_set(const ns_config *base, const double *u, const ns_setting *set,
                              int n_set, ns_config *out, ns_err *err)
{
    ns_config t;
    memset(out, 0, sizeof *out);
    const char *name = base->path ? base->path : "<config>";
    if (base->space.n && !u)
        return ns_err_set(err, NS_EINPUT, "%s: no point given for %d searched keys", name,
                          base->space.n);
    int rc = ns_config_copy(&t, base, err);
    if (rc)
        return rc;
    ns_space_free(&t.space);
    ctx x = {.name = name, .c = &t, .err = err, .trial = 1};
    memcpy(x.given, base->given, N_KEYS);
    for (int i = 0; i < base->space.n; i++) {
        const ns_dim *d = &base->space.dims[i];
        char buf[64];
        if (d->key < 0 || d->key >= (int)N_KEYS) {
            rc = ns_err_set(err, NS_EINPUT, "%s: dimension %s names no key", name, d->name);
            goto fail;
        }
        if ((rc = apply_text(&x, d->key, ns_dim_text(d, u[i], buf))))
            goto fail;
    }
    for (int i = 0; i < n_set; i++) {
        int k = ns_config_key_find(set[i].key);
        if (k < 0) {
            rc = ns_err_set(err, NS_ERUNTIME, "%s: setting an unknown key %s", name, set[i].key);
            goto fail;
        }
        if ((rc = apply_text(&x, k, set[i].value)))
            goto fail;
        x.given[k] = t.given[k] = 1; /* as if the file said so: defaults that follow it do */
    }
    cfg_dependent_defaults(&x);
    if ((rc = cfg_check_values(&x)))
        goto fail;
    *out = t;
    return NS_OK;
fail:
    ns_config_free(&t);
    return rc;
}

void ns_stage_cfg_apply_budget(const ns_stage_cfg *st, ns_train_spec *t)
{
    t->budget = st->budget;
    if (st->budget == NS_BUDGET_STEPS)
        t->steps = st->steps;
    else
        t->epochs = st->epochs;
}
