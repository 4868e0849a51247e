/* config_rules.c — what a config must satisfy beyond each key's own range: the rules between
 * keys (checked for the file, and for every trial's values where a search sets them) and
 * the data files (resolved against the config's folder, readable, CSV or IDX). Errors name
 * the key's place in the file and the fix. Not the walk that reads the keys: config.c. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "search/config/config_impl.h"

static int K(const char *section, const char *key) { return cfg_key_index(section, key); }

/* ---- cross-field rules ---------------------------------------------------------------- */

/* A rule over keys a, b, c3 (-1 when unused) is broken; the message names a's value in
 * the file. Reading a file, a rule that involves a searched key is left to each trial.
 * For a trial the message names the values that do not go together. */
__attribute__((format(printf, 5, 6))) static int rule(ctx *x, int a, int b, int c3, const char *fmt, ...)
{
    int ks[3] = {a, b, c3};
    if (!x->trial)
        for (int i = 0; i < 3; i++)
            if (ks[i] >= 0 && x->searched[ks[i]])
                return NS_OK;
    char what[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (!x->trial)
        return cfg_fail(x, x->vmark[a], "%s", what);
    char *vals = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&vals, &len);
    if (!f)
        return cfg_oom(x);
    for (int i = 0, n = 0; i < 3; i++) {
        if (ks[i] < 0)
            continue;
        fprintf(f, "%s%s.%s=", n++ ? ", " : "", cfg_keys[ks[i]].section, cfg_keys[ks[i]].key);
        ns_config_write_value(f, x->c, ks[i], 0);
    }
    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(vals);
        return cfg_oom(x);
    }
    int rc = ns_err_set(x->err, NS_EINPUT, "%s: searched values do not go together (%.200s): %s",
                        x->name, vals, what);
    free(vals);
    return rc;
}

/* Rules between values that a search may set; checked for the file and for every trial. */
int cfg_check_values(ctx *x)
{
    ns_config *c = x->c;
    int rc;
    if (c->model.label_smoothing > 0 && c->model.loss != NS_LOSS_XENT &&
        (rc = rule(x, K("model", "label_smoothing"), K("model", "loss"), -1,
                   "model.label_smoothing: applies to cross_entropy only, but the loss is mse; remove it")))
        return rc;
    if (c->class_weights != NS_CW_NONE && c->class_weights != NS_CW_AUTO &&
        c->data.task != NS_TASK_CLASSIFY &&
        (rc = rule(x, K("model", "class_weights"), K("data", "task"), -1,
                   "model.class_weights: applies to classification only, but data.task is regression; remove it")))
        return rc;
    if (c->train.monitor != NS_MONITOR_AUTO && c->data.task != NS_TASK_CLASSIFY &&
        (rc = rule(x, K("train", "metric"), K("data", "task"), -1,
                   "train.metric: val_balanced_acc and val_macro_f1 apply to classification only, but data.task is regression; remove it")))
        return rc;

    /* Optimizer. */
    if (c->train.opt.nesterov && c->train.opt.kind != NS_OPT_SGD &&
        (rc = rule(x, K("train", "nesterov"), K("train", "optimizer"), -1,
                   "train.nesterov: applies to optimizer sgd only; remove it or set optimizer: sgd")))
        return rc;
    if (c->train.opt.nesterov && c->train.opt.momentum <= 0 &&
        (rc = rule(x, K("train", "nesterov"), K("train", "momentum"), K("train", "optimizer"),
                   "train.nesterov: needs momentum > 0; set train.momentum (e.g. 0.9) or remove nesterov")))
        return rc;

    /* Schedule and early stopping. */
    if (c->train.sched.min_lr > c->train.lr &&
        (rc = rule(x, K("train", "min_lr"), K("train", "lr"), -1,
                   "train.min_lr: %g is above train.lr %g; make min_lr smaller than lr",
                   c->train.sched.min_lr, c->train.lr)))
        return rc;
    /* an ensemble's members validate on their own folds */
    if (c->data.val_fraction <= 0 && c->train.patience > 0 && !c->ensemble &&
        (rc = rule(x, K("train", "patience"), K("data", "val_fraction"), -1,
                   "train.patience: early stopping needs a validation set but data.val_fraction is 0; set val_fraction > 0 or patience: 0")))
        return rc;
    if (c->data.val_fraction <= 0 && c->train.sched.kind == NS_SCHED_PLATEAU && !c->ensemble &&
        (rc = rule(x, K("train", "schedule"), K("data", "val_fraction"), -1,
                   "train.schedule: plateau needs a validation set but data.val_fraction is 0; set val_fraction > 0 or choose another schedule")))
        return rc;
    return NS_OK;
}

/* Rules about what the file gives, checked once when reading it. */
int cfg_check_rules(ctx *x)
{
    ns_config *c = x->c;
    int rc;

    /* Required keys. */
    for (size_t i = 0; i < N_KEYS; i++) {
        if (!(cfg_keys[i].flags & REQUIRED) || x->given[i])
            continue;
        size_t s = 0;
        while (strcmp(cfg_sections[s], cfg_keys[i].section))
            s++;
        yaml_mark_t m = {0, 0, 0};
        if (x->sec_given[s])
            m = x->sec_mark[s];
        return cfg_fail(x, m, "missing required key '%s' in section '%s'; add '%s: FILE' under '%s:'",
                    cfg_keys[i].key, cfg_keys[i].section, cfg_keys[i].key, cfg_keys[i].section);
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
        return cfg_fail(x, x->kmark[K("train", budgets[later])],
                    "train.%s conflicts with train.%s (line %zu): give only one budget (epochs, steps or seconds)",
                    budgets[later], budgets[earlier],
                    x->kmark[K("train", budgets[earlier])].line + 1);
    }
    c->train.budget = first == 1 ? NS_BUDGET_STEPS : first == 2 ? NS_BUDGET_SECONDS : NS_BUDGET_EPOCHS;

    /* Loss and task. */
    int classify = c->data.task == NS_TASK_CLASSIFY;
    if (given(x, "model", "loss") && c->model.loss == NS_LOSS_MSE && classify)
        return cfg_fail(x, vmark(x, "model", "loss"),
                    "model.loss: mse needs data.task: regression; use loss: cross_entropy for classification, or set task: regression");
    if (given(x, "model", "loss") && c->model.loss == NS_LOSS_XENT && !classify)
        return cfg_fail(x, vmark(x, "model", "loss"),
                    "model.loss: cross_entropy needs data.task: classification; use loss: mse for regression");
    /* Searching a key that the fixed task rules out would fail every trial. */
    if (x->searched[K("model", "label_smoothing")] && c->model.loss != NS_LOSS_XENT)
        return cfg_fail(x, vmark(x, "model", "label_smoothing"),
                    "model.label_smoothing: applies to cross_entropy only, but the loss is mse; do not search it");
    if (x->searched[K("model", "class_weights")] && !classify)
        return cfg_fail(x, vmark(x, "model", "class_weights"),
                    "model.class_weights: applies to classification only, but data.task is regression; do not search it");

    /* Hidden layers: a list, or depth x width. */
    int gd = given(x, "model", "depth"), gw = given(x, "model", "width");
    if (gd != gw) {
        const char *has = gd ? "depth" : "width", *lacks = gd ? "width" : "depth";
        return cfg_fail(x, x->kmark[K("model", has)],
                    "model.%s needs model.%s: give both (depth hidden layers of width units each), or model.hidden as a list",
                    has, lacks);
    }
    if (gd && given(x, "model", "hidden")) {
        int h = K("model", "hidden"), d = K("model", "depth");
        int later = x->kmark[h].index > x->kmark[d].index ? h : d, earlier = later == h ? d : h;
        return cfg_fail(x, x->kmark[later], "model.%s conflicts with model.%s (line %zu): give either hidden: [...] or depth: and width:",
                    cfg_keys[later].key, cfg_keys[earlier].key, x->kmark[earlier].line + 1);
    }

    /* An ensemble: one member per fold; a search makes its own (search.final) */
    if (c->ensemble == 1)
        return cfg_fail(x, vmark(x, "model", "ensemble"),
                    "model.ensemble: 1 fold is one model; use 0 (one model) or K >= 2 (one member per fold)");
    size_t search_sec = 0;
    while (strcmp(cfg_sections[search_sec], "search"))
        search_sec++;
    if (c->ensemble && x->sec_given[search_sec])
        return cfg_fail(x, vmark(x, "model", "ensemble"),
                    "model.ensemble: a study's trials are single models (its final model may be an ensemble: search.final); remove it or the search: section");

    /* Decision offsets: the select stage fits a study's own to its winner */
    if (c->n_decision_offsets && x->sec_given[search_sec])
        return cfg_fail(x, vmark(x, "model", "decision_offsets"),
                    "model.decision_offsets: a study fits its winner's own (search.decision_offsets); remove it or the search: section");
    if (c->n_decision_offsets && c->data.task != NS_TASK_CLASSIFY)
        return cfg_fail(x, vmark(x, "model", "decision_offsets"),
                    "model.decision_offsets: applies to classification only (it shifts class decisions), but data.task is regression; remove it");

    if ((rc = cfg_check_values(x)))
        return rc;

    /* Row limits: 0 is every row; one row cannot be both trained and validated on. */
    if (c->data.max_rows == 1)
        return cfg_fail(x, vmark(x, "data", "max_rows"),
                    "data.max_rows: 1 row is too few to train and validate on; use 0 (every row) or at least 2");
    if (c->data.test_max_rows > 0 && !c->data.test)
        return cfg_fail(x, vmark(x, "data", "test_max_rows"),
                    "data.test_max_rows: given without data.test; add test: with the test file, or remove it");

    /* Files that come in pairs. */
    if (c->data.test_labels && !c->data.test)
        return cfg_fail(x, vmark(x, "data", "test_labels"),
                    "data.test_labels: given without data.test; add test: with the test images, or remove it");
    return cfg_check_search(x);
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
    int i = cfg_key_index("data", key);
    char **p = field(x->c, cfg_keys[i].off);
    if ((*p)[0] != '/' && dir[0]) {
        size_t n = strlen(dir) + strlen(*p) + 1;
        char *r = malloc(n);
        if (!r)
            return cfg_oom(x);
        snprintf(r, n, "%s%s", dir, *p);
        free(*p);
        *p = r;
    }
    int fd = open(*p, O_RDONLY | O_NONBLOCK); /* a pipe without a writer must not hang here */
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return cfg_fail(x, x->vmark[i], "data.%s: cannot open '%.300s': %s; check the path (relative paths are resolved against the config's folder)",
                    key, *p, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return cfg_fail(x, x->vmark[i], "data.%s: '%.300s' is a directory; name a data file", key, *p);
    }
    if (!S_ISREG(st.st_mode)) { /* read more than once (sniffed, then loaded): a pipe would not be */
        close(fd);
        return cfg_fail(x, x->vmark[i], "data.%s: '%.300s' is not a regular file (a pipe or a device); "
                        "save the data to a file and name that", key, *p);
    }
    unsigned char m[4] = {0};
    ssize_t got = read(fd, m, sizeof m);
    int e = errno;
    close(fd);
    if (got < 0)
        return cfg_fail(x, x->vmark[i], "data.%s: cannot read '%.300s': %s; check the file's permissions",
                    key, *p, strerror(e));
    if (is_idx && got >= 2 && m[0] == 0x1f && m[1] == 0x8b) { /* gzip: IDX or CSV inside */
        gzFile g = gzopen(*p, "rb");
        got = g ? gzread(g, m, sizeof m) : -1;
        if (g)
            gzclose(g);
        if (got < 0)
            return cfg_fail(x, x->vmark[i], "data.%s: cannot read '%.300s' as gzip; check the file",
                            key, *p);
    }
    if (is_idx)
        *is_idx = got >= 2 && m[0] == 0 && m[1] == 0;
    return NS_OK;
}

int cfg_check_files(ctx *x)
{
    ns_config *c = x->c;
    char *dir = config_dir(x->name);
    if (!dir)
        return cfg_oom(x);
    int rc = NS_OK, idx = 0;
    if ((rc = check_file(x, dir, "train", &idx)))
        goto out;
    if (idx && !c->data.train_labels) {
        rc = cfg_fail(x, vmark(x, "data", "train"),
                  "data.train: '%.300s' is an IDX file but data.train_labels is missing; add train_labels: with its IDX labels file",
                  c->data.train);
        goto out;
    }
    if (!idx && c->data.train_labels) {
        rc = cfg_fail(x, vmark(x, "data", "train_labels"),
                  "data.train_labels: data.train is a CSV file, which carries its labels in the column named by data.label; remove train_labels");
        goto out;
    }
    if (c->data.train_labels && (rc = check_file(x, dir, "train_labels", NULL)))
        goto out;
    if (c->data.test) {
        if ((rc = check_file(x, dir, "test", &idx)))
            goto out;
        if (idx && !c->data.test_labels) {
            rc = cfg_fail(x, vmark(x, "data", "test"),
                      "data.test: '%.300s' is an IDX file but data.test_labels is missing; add test_labels: with its IDX labels file",
                      c->data.test);
            goto out;
        }
        if (!idx && c->data.test_labels) {
            rc = cfg_fail(x, vmark(x, "data", "test_labels"),
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
