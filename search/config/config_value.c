/* config_value.c — a config value from its YAML text: scalars (numbers with their ranges,
 * booleans, names of an enum), lists, and the did-you-mean suggestions for misspelt keys
 * and names. Not the table of keys, the walk or the cross-key rules (config.c). */
#include "search/config/config_impl.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* ---- synonyms ------------------------------------------------------------------------ */

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
    {"model", "n_layers", "depth"},        {"model", "num_layers", "depth"},
    {"model", "hidden_size", "width"},     {"model", "hidden_dim", "width"},
    {"model", "hidden_units", "width"},    {"search", "study", "name"},
    {"search", "study_name", "name"},      {"search", "out", "output"},
    {"search", "output_dir", "output"},    {"search", "dir", "output"},
    {"search", "folder", "output"},        {"search", "jobs", "parallel"},
    {"search", "n_jobs", "parallel"},      {"search", "workers", "parallel"},
    {"search", "random_seed", "seed"},     {"search", "objective", "metric"},
    {"search", "monitor", "metric"},       {"search", "pipeline", "stages"},
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
int cfg_closeness(const char *word, const char *cand)
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
const char *cfg_suggest_key(const char *section, const char *word)
{
    const char *best = NULL;
    int bd = 99;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(cfg_keys[i].section, section))
            continue;
        int d = cfg_closeness(word, cfg_keys[i].key);
        if (d >= 0 && d < bd)
            bd = d, best = cfg_keys[i].key;
    }
    for (size_t i = 0; i < sizeof key_synonyms / sizeof key_synonyms[0]; i++) {
        if (strcmp(key_synonyms[i].section, section))
            continue;
        int d = cfg_closeness(word, key_synonyms[i].word);
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
        int d = cfg_closeness(word, e->name);
        if (d >= 0 && d < bd)
            bd = d, best = e->name;
    }
    for (size_t i = 0; i < sizeof value_synonyms / sizeof value_synonyms[0]; i++) {
        int d = cfg_closeness(word, value_synonyms[i].word);
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

void cfg_list_keys(char *buf, size_t n, const char *section)
{
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < N_KEYS && used < n; i++)
        if (!strcmp(cfg_keys[i].section, section))
            used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? ", " : "", cfg_keys[i].key);
}

/* ---- scalar conversion ----------------------------------------------------------------- */

static int is_int_type(key_type t) { return t == KT_INT || t == KT_LONG || t == KT_U64 || t == KT_INTS; }

const char *cfg_expected(const key_def *k)
{
    switch (k->type) {
    case KT_BOOL: return "true or false";
    case KT_INT:
    case KT_LONG:
    case KT_U64: return k->flags & AUTO_ZERO ? "auto or a whole number" : "a whole number";
    case KT_DOUBLE:
    case KT_FLOAT: return "a number";
    case KT_PATH: return "a file path";
    case KT_NAME: return "a name";
    case KT_ENUM: return "a name";
    case KT_INTS: return "a whole number or a list of them such as [256, 128]";
    case KT_FLOATS: return "a list of numbers, one per class, such as [0, -0.5]";
    case KT_WEIGHTS: return "auto, none, sqrt, balanced or a list of positive numbers";
    case KT_STAGES: return "a list of stages such as [{stage: random, trials: 20, epochs: 5}]";
    case KT_ENUMS: return "a name or a list of names";
    case KT_RESAMPLING: return "auto, holdout, cv or {cv: 5, repeats: 2}";
    case KT_DURATION: return "seconds, or a number with s, m or h such as 5m";
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
int cfg_decimal_chars(const char *s)
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
int cfg_to_number(const key_def *k, const char *s, double *out, uint64_t *u64, char *why,
                     size_t n)
{
    const char *ex = k->type == KT_INTS ? "128" : (k->def && isdigit((unsigned char)k->def[0]))
                                                      ? k->def
                                                      : (is_int_type(k->type) ? "100" : "0.5");
    char *end;
    if (!cfg_decimal_chars(s)) {
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

int cfg_to_bool(const char *s, int *b)
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

/* Sets scalar key k of the struct at base (a config, or a stage for stage keys) from
 * text s; `m` locates s for messages. Returns NS_OK or the code. */
int cfg_set_scalar(ctx *x, void *base, const key_def *k, const char *s, yaml_mark_t m)
{
    void *f = field(base, k->off);
    char why[600];
    switch (k->type) {
    case KT_BOOL: {
        int b;
        if (cfg_to_bool(s, &b))
            return cfg_fail(x, m, "%s: expected true or false, got '%.60s'; write %s: true or %s: false",
                        cfg_kname(x, k), s, k->key, k->key);
        *(int *)f = b;
        return NS_OK;
    }
    case KT_PATH:
    case KT_NAME: {
        char **p = f;
        char *d = strdup(s);
        if (!d)
            return cfg_oom(x);
        free(*p);
        *p = d;
        return NS_OK;
    }
    case KT_ENUM:
    case KT_ENUMS:
    case KT_WEIGHTS: {
        int v;
        if (find_name(k->names, s, &v)) {
            char all[256], hint[128] = "";
            list_names(all, sizeof all, k->names);
            const char *sug = suggest_name(k->names, s);
            if (sug)
                snprintf(hint, sizeof hint, " (did you mean '%s'?)", sug);
            if (k->type == KT_WEIGHTS)
                return cfg_fail(x, m, "%s: unknown value '%.60s'%s; write %s or a list of positive numbers, one per class",
                            cfg_kname(x, k), s, hint, "auto, none, sqrt, balanced");
            return cfg_fail(x, m, "%s: unknown %s '%.60s'%s; allowed: %s", cfg_kname(x, k), k->key, s, hint,
                        all);
        }
        *(int *)f = v;
        if (k->type == KT_ENUMS)
            *(int *)field(base, k->count_off) = 1;
        if (k->type == KT_WEIGHTS) {
            float **list = field(base, k->list_off);
            free(*list);
            *list = NULL;
            *(int *)field(base, k->count_off) = 0;
        }
        return NS_OK;
    }
    case KT_INTS: {
        double v;
        uint64_t u;
        if (cfg_to_number(k, s, &v, &u, why, sizeof why))
            return cfg_fail(x, m, "%s: %s", cfg_kname(x, k), why);
        ((int *)f)[0] = (int)v;
        *(int *)field(base, k->count_off) = 1;
        return NS_OK;
    }
    case KT_FLOATS:
        return cfg_fail(x, m, "%s: expected %s, got '%.60s'; write the list in brackets", cfg_kname(x, k),
                        cfg_expected(k), s);
    case KT_DURATION: {
        /* a trailing unit, then the number as any other */
        char num[64];
        size_t len = strlen(s);
        double unit = 1;
        if (len > 0 && len < sizeof num && strchr("smh", s[len - 1])) {
            unit = s[len - 1] == 'h' ? 3600 : s[len - 1] == 'm' ? 60 : 1;
            memcpy(num, s, len - 1);
            num[len - 1] = 0;
            s = num;
        }
        double v = 0;
        uint64_t u = 0;
        key_def plain = *k;
        plain.type = KT_DOUBLE;
        if (cfg_to_number(&plain, s, &v, &u, why, sizeof why))
            return cfg_fail(x, m, "%s: %s (seconds, or with a unit: 90s, 5m, 1h)", cfg_kname(x, k), why);
        *(double *)f = v * unit;
        return NS_OK;
    }
    default: {
        double v = 0;
        uint64_t u = 0;
        if ((k->flags & AUTO_ZERO) && !strcmp(s, "auto")) {
            *(int *)f = 0;
            return NS_OK;
        }
        if (cfg_to_number(k, s, &v, &u, why, sizeof why))
            return cfg_fail(x, m, "%s: %s", cfg_kname(x, k), why);
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

/* A list value (model.hidden, model.class_weights, model.decision_offsets). */
static int set_list(ctx *x, void *base, const key_def *k, yaml_node_t *v)
{
    yaml_node_item_t *it = v->data.sequence.items.start, *top = v->data.sequence.items.top;
    long n = top - it;
    if (n > k->max_items)
        return cfg_fail(x, v->start_mark, "%s: %ld entries, at most %d are supported; shorten the list",
                    cfg_kname(x, k), n, k->max_items);
    if (k->type == KT_WEIGHTS && n == 0)
        return cfg_fail(x, v->start_mark, "%s: the list is empty; give one positive weight per class, or none",
                    cfg_kname(x, k));
    float *w = NULL;
    if (k->type == KT_WEIGHTS && !(w = malloc((size_t)n * sizeof *w)))
        return cfg_oom(x);
    for (long i = 0; i < n; i++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, it[i]);
        char why[600];
        double d;
        uint64_t u;
        if (k->type == KT_ENUMS) {
            int val, rc;
            if (e->type != YAML_SCALAR_NODE || cfg_is_null(e))
                return cfg_fail(x, e->start_mark, "%s[%ld]: expected a name, got %s; write a flat list such as [adam, sgd]",
                            cfg_kname(x, k), i, e->type == YAML_SCALAR_NODE ? "no value" : node_kind(e));
            if ((rc = cfg_set_scalar(x, &val, &(key_def){.section = k->section, .key = k->key,
                                                    .type = KT_ENUM, .names = k->names},
                                 scalar(e), e->start_mark)))
                return rc;
            for (long j = 0; j < i; j++)
                if (((int *)field(base, k->off))[j] == val)
                    return cfg_fail(x, e->start_mark, "%s[%ld]: '%s' is listed twice; list each once",
                                cfg_kname(x, k), i, scalar(e));
            ((int *)field(base, k->off))[i] = val;
            continue;
        }
        if (e->type != YAML_SCALAR_NODE || cfg_is_null(e)) {
            free(w);
            return cfg_fail(x, e->start_mark, "%s[%ld]: expected a number, got %s; write a flat list such as %s",
                        cfg_kname(x, k), i, e->type == YAML_SCALAR_NODE ? "no value" : node_kind(e),
                        k->type == KT_INTS ? "[256, 128]" : k->type == KT_FLOATS ? "[0, -0.5]" : "[1, 2.5, 1]");
        }
        if (cfg_to_number(k, scalar(e), &d, &u, why, sizeof why)) {
            free(w);
            return cfg_fail(x, e->start_mark, "%s[%ld]: %s", cfg_kname(x, k), i, why);
        }
        if (k->type == KT_INTS)
            ((int *)field(base, k->off))[i] = (int)d;
        else if (k->type == KT_FLOATS)
            ((float *)field(base, k->off))[i] = (float)d;
        else
            w[i] = (float)d;
    }
    *(int *)field(base, k->count_off) = (int)n;
    if (k->type == KT_WEIGHTS) {
        float **list = field(base, k->list_off);
        free(*list);
        *list = w;
        *(int *)field(base, k->off) = NS_CW_LIST;
    }
    return NS_OK;
}

int cfg_set_value(ctx *x, void *base, const key_def *k, yaml_node_t *v)
{
    if (v->type == YAML_SEQUENCE_NODE &&
        (k->type == KT_INTS || k->type == KT_WEIGHTS || k->type == KT_ENUMS || k->type == KT_FLOATS))
        return set_list(x, base, k, v);
    if (v->type != YAML_SCALAR_NODE)
        return cfg_fail(x, v->start_mark, "%s: expected %s, got %s; write it on the key's line, e.g. %s: %s",
                    cfg_kname(x, k), cfg_expected(k), node_kind(v), k->key,
                    k->type == KT_INTS ? "[256, 128]" : k->def ? k->def : "...");
    if (cfg_is_null(v))
        return cfg_fail(x, v->start_mark, "%s: no value given; write %s after '%s:' or remove the key",
                    cfg_kname(x, k), cfg_expected(k), k->key);
    if ((k->type == KT_PATH || k->type == KT_NAME) && !scalar(v)[0])
        return cfg_fail(x, v->start_mark, "%s: the value is empty; write %s or remove the key",
                    cfg_kname(x, k), cfg_expected(k));
    if (memchr(scalar(v), 0, v->data.scalar.length))
        return cfg_fail(x, v->start_mark, "%s: the value contains a NUL character; remove it", cfg_kname(x, k));
    return cfg_set_scalar(x, base, k, scalar(v), v->start_mark);
}

