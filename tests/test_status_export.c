/* test_status_export.c — `nnsearch status` and `export` over a study built by hand with the store
 * API (no training): the trial table's best-first order in both directions, the --json
 * object's structure and escaping, the exported config with its provenance that loads back
 * to the trial's values, and the errors for a folder without a study or without a
 * complete trial; each stage's prune rate and the selection's eligibility counts. Also status
 * and export beside a writer that holds the study's lock. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "search/cli/status_export.h"
#include "search/config/config.h"
#include "search/study/store.h"
#include "tests/testutil.h"

#define STUDY_NAME "my \"study\"\\1" /* a quote and a backslash: JSON must escape both */

static const char csv[] = "a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n9,1,x\n2,3,y\n";

typedef struct fixture {
    char *root;         /* temporary folder */
    char *dir;          /* the study folder, root/study */
    ns_config base;     /* the config with its search space (train.lr) */
    double lr[8];       /* train.lr of each trial's fixed config */
} fixture;

static char *cat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *p = malloc(n);
    cr_assert(p);
    snprintf(p, n, "%s%s", a, b);
    return p;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static void fixture_init(fixture *fx)
{
    ns_err err = {0};
    memset(fx, 0, sizeof *fx);
    fx->root = tu_temp_dir();
    cr_assert(fx->root);
    fx->dir = cat(fx->root, "/study");
    char *data = tu_write_temp("train.csv", csv, sizeof csv - 1);
    cr_assert(data);
    char text[2048];
    snprintf(text, sizeof text,
             "data:\n  train: %s\n  val_fraction: 0.2\n"
             "model:\n  hidden: [8]\n"
             "train:\n  epochs: 3\n  batch_size: 4\n  lr: {log_uniform: [1e-4, 1e-1]}\n"
             "search:\n  seed: 7\n  stages:\n    - {stage: random, trials: 6, epochs: 3}\n",
             data);
    free(data);
    cr_assert_eq(ns_config_parse(&fx->base, "cfg.yaml", text, strlen(text), &err), NS_OK, "%s",
                 err.msg);
    cr_assert_eq(fx->base.space.n, 1);
}

static void fixture_free(fixture *fx)
{
    ns_config_free(&fx->base);
    free(fx->dir);
    free(fx->root);
}

/* DIR/trials/<n>/config.yaml as the driver writes it when it queues trial n. */
static void write_trial_config(fixture *fx, int n)
{
    ns_err err = {0};
    char path[4096];
    double u = 0.15 * (n + 1);
    ns_config c;
    cr_assert_eq(ns_config_instantiate(&fx->base, &u, &c, &err), NS_OK, "%s", err.msg);
    fx->lr[n] = c.train.lr;
    snprintf(path, sizeof path, "%s/trials", fx->dir);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/trials/%d", fx->dir, n);
    cr_assert_eq(mkdir(path, 0777), 0);
    snprintf(path, sizeof path, "%s/trials/%d/config.yaml", fx->dir, n);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    char comment[64];
    snprintf(comment, sizeof comment, "trial %d", n);
    cr_assert_eq(ns_config_export_yaml(&c, f, comment, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(fclose(f), 0);
    ns_config_free(&c);
}

static void trial(ns_store *s, fixture *fx, int n, const char *params, ns_trial_state state,
                  double metric, const char *health, const char *error)
{
    ns_err err = {0};
    cr_assert_eq(ns_store_trial_insert(s, n, "random", params, 100 + (uint64_t)n, &err), NS_OK,
                 "%s", err.msg);
    write_trial_config(fx, n);
    if (state == NS_TRIAL_QUEUED)
        return;
    cr_assert_eq(ns_store_trial_start(s, n, &err), NS_OK, "%s", err.msg);
    if (state == NS_TRIAL_RUNNING)
        return;
    ns_trial_result r = {.seconds = 1.25 * (n + 1), .epochs = 3, .val_metric = metric,
                         .result = "{\"val_loss\":0.5,\"val_acc\":0.5,\"best_epoch\":3,"
                                   "\"stopped_early\":false,\"diverged\":false}",
                         .health = health, .error = error};
    cr_assert_eq(ns_store_trial_finish(s, n, state, &r, &err), NS_OK, "%s", err.msg);
}

/* The study of most tests; the writer stays open (and locked) when *writer is not NULL. */
static void build_study(fixture *fx, const char *metric, int higher_is_better, ns_store **writer)
{
    ns_err err = {0};
    ns_store *s = NULL;
    cr_assert_eq(ns_store_open(&s, fx->dir, 1, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_study_init(s, STUDY_NAME, fx->base.text, "abc123", 7, metric,
                                     higher_is_better, 0, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_stage_set(s, "lr_range", 1, NS_STAGE_COMPLETE,
                                    "{ \"lr_min\": 0.0001, \"lr_max\": 0.1 }", &err), NS_OK);
    cr_assert_eq(ns_store_stage_set(s, "random", 2, NS_STAGE_RUNNING,
                                    "{\"trials\":6,\"complete\":3,\"failed\":1,\"best_trial\":2,"
                                    "\"best_val_metric\":0.9}", &err), NS_OK);
    /* Metrics: 0 -> 0.8, 2 -> 0.9, 5 -> 0.7; 1 failed, 3 running, 4 queued, 6 diverged. */
    trial(s, fx, 0, "{\"train.lr\": 0.001, \"train.optimizer\": \"adam\"}", NS_TRIAL_COMPLETE,
          0.8, "{\"findings\":[]}", NULL);
    trial(s, fx, 1, "{\"train.lr\":0.5}", NS_TRIAL_FAILED, NAN, NULL, "out of \"memory\"");
    trial(s, fx, 2, "{\"train.lr\":0.01}", NS_TRIAL_COMPLETE, 0.9,
          "{\"findings\":[{\"kind\":\"overfitting\"}]}", NULL);
    trial(s, fx, 3, "{\"train.lr\":0.02}", NS_TRIAL_RUNNING, NAN, NULL, NULL);
    trial(s, fx, 4, "{\"train.lr\":0.03}", NS_TRIAL_QUEUED, NAN, NULL, NULL);
    trial(s, fx, 5, "{\"train.lr\":0.04}", NS_TRIAL_COMPLETE, 0.7, "not json", NULL);
    trial(s, fx, 6, "{}", NS_TRIAL_DIVERGED, NAN, NULL, NULL);
    if (writer)
        *writer = s;
    else
        ns_store_close(s);
}

/* Runs status or export into a string (caller frees); *rc receives the return code. */
static char *run_status(const char *dir, int json, int *rc, ns_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f);
    *rc = ns_cmd_status(dir, json, f, err);
    fclose(f);
    return buf;
}

static char *run_export(const char *dir, const char *out_path, int *rc, ns_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f);
    *rc = ns_cmd_export(dir, out_path, f, err);
    fclose(f);
    return buf;
}

/* The trial numbers of the table's rows, in printed order; returns how many. */
static int table_order(const char *text, int *order, int max)
{
    const char *p = strstr(text, "params\n");
    cr_assert(p, "no table header in:\n%s", text);
    p += strlen("params\n");
    int n = 0;
    while (*p == ' ' && n < max) {
        cr_assert_eq(sscanf(p, "%d", &order[n]), 1);
        n++;
        p = strchr(p, '\n');
        cr_assert(p);
        p++;
    }
    return n;
}

/* A structural check of one JSON value: brackets balance outside strings, strings close,
 * nothing but a newline follows. */
static int json_balanced(const char *s)
{
    char stack[64];
    int depth = 0, in_str = 0, seen = 0;
    for (const char *p = s; *p; p++) {
        if (in_str) {
            if ((unsigned char)*p < 0x20)
                return 0;
            if (*p == '\\')
                p++;
            else if (*p == '"')
                in_str = 0;
            continue;
        }
        if (seen && depth == 0)
            return strcmp(p, "\n") == 0;
        if (*p == '"') {
            in_str = 1;
        } else if (*p == '{' || *p == '[') {
            if (depth == 64)
                return 0;
            stack[depth++] = *p == '{' ? '}' : ']';
            seen = 1;
        } else if (*p == '}' || *p == ']') {
            if (depth == 0 || stack[--depth] != *p)
                return 0;
        }
    }
    return 0; /* no trailing newline, or not closed */
}

Test(report, status_text_best_first)
{
    fixture fx;
    fixture_init(&fx);
    build_study(&fx, "val_acc", 1, NULL);
    ns_err err = {0};
    int rc;
    char *out = run_status(fx.dir, 0, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    cr_assert(strstr(out, "study:   " STUDY_NAME " ("), "%s", out);
    cr_assert(strstr(out, "metric:  val_acc (higher is better)\n"), "%s", out);
    cr_assert(strstr(out, "config:  hash abc123, seed 7\n"), "%s", out);
    /* Stages in pipeline order with their decisions as key=value. */
    const char *lr = strstr(out, "  lr_range  complete  lr_min=0.0001 lr_max=0.1\n");
    const char *rnd = strstr(out, "  random    running   trials=6 complete=3 failed=1 "
                                  "best_trial=2 best_val_metric=0.9\n");
    cr_assert(lr && rnd && lr < rnd, "%s", out);
    cr_assert(strstr(out, "trials:  7 (1 queued, 1 running, 3 complete, 1 diverged, 1 failed), "
                          "best first\n"), "%s", out);
    int order[16];
    int n = table_order(out, order, 16);
    int want[] = {2, 0, 5, 1, 3, 4, 6};
    cr_assert_eq(n, 7, "%s", out);
    for (int i = 0; i < 7; i++)
        cr_assert_eq(order[i], want[i], "row %d is trial %d, want %d:\n%s", i, order[i],
                     want[i], out);
    /* A row: metric, epochs, seconds and the params compacted, strings unquoted. */
    cr_assert(strstr(out, "  random  complete       0.8       3       1.2  ok      train.lr=0.001 "
                          "train.optimizer=adam\n"), "%s", out);
    cr_assert(strstr(out, "  random  queued           -       0         -  -       train.lr=0.03\n"),
              "%s", out);
    cr_assert(strstr(out, "  random  diverged         -       3       8.8  -       -\n"), "%s", out);
    cr_assert(strstr(out, "failed:  trial 1: out of \"memory\"\n"), "%s", out);
    char best[4200];
    snprintf(best, sizeof best, "best:    trial 2 (stage random), val_acc 0.9 after 3 epochs; "
             "export it with: nnsearch export %s\n", fx.dir);
    cr_assert(strstr(out, best), "%s", out);
    free(out);

    /* The same study where lower is better: 5 (0.7) leads, then 0 and 2. */
    fixture fy;
    fixture_init(&fy);
    build_study(&fy, "val_loss", 0, NULL);
    out = run_status(fy.dir, 0, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    n = table_order(out, order, 16);
    int want_low[] = {5, 0, 2, 1, 3, 4, 6};
    cr_assert_eq(n, 7);
    for (int i = 0; i < 7; i++)
        cr_assert_eq(order[i], want_low[i], "%s", out);
    cr_assert(strstr(out, "metric:  val_loss (lower is better)\n"), "%s", out);
    cr_assert(strstr(out, "best:    trial 5 (stage random), val_loss 0.7 "), "%s", out);
    free(out);
    fixture_free(&fy);
    fixture_free(&fx);
}

Test(report, status_json_one_object)
{
    fixture fx;
    fixture_init(&fx);
    build_study(&fx, "val_acc", 1, NULL);
    ns_err err = {0};
    int rc;
    char *out = run_status(fx.dir, 1, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    cr_assert(json_balanced(out), "not one JSON value:\n%s", out);
    cr_assert(strncmp(out, "{\"study\":{", 10) == 0, "%s", out);
    const char *keys[] = {
        "\"study\":{\"name\":\"my \\\"study\\\"\\\\1\",\"metric\":\"val_acc\","
        "\"higher_is_better\":true,\"seed\":7,\"config_hash\":\"abc123\",\"data_checks\":null}",
        /* decisions embedded as JSON (compacted), not as strings; each stage's trials, the
         * ended ones (complete, pruned, diverged, failed) and the pruned ones */
        "\"stages\":[{\"name\":\"lr_range\",\"state\":\"complete\",\"trials\":0,\"ended\":0,"
        "\"pruned\":0,\"decision\":{\"lr_min\":0.0001,\"lr_max\":0.1}},{\"name\":\"random\","
        "\"state\":\"running\",\"trials\":7,\"ended\":5,\"pruned\":0,\"decision\":{\"trials\":6,",
        /* trials by number, every key, params and health embedded */
        "\"trials\":[{\"number\":0,\"stage\":\"random\",\"state\":\"complete\","
        "\"params\":{\"train.lr\":0.001,\"train.optimizer\":\"adam\"},\"val_metric\":0.8,"
        "\"epochs\":3,\"seconds\":1.25,\"health\":{\"findings\":[]},\"result\":{",
        "{\"number\":1,\"stage\":\"random\",\"state\":\"failed\",\"params\":{\"train.lr\":0.5},"
        "\"val_metric\":null,\"epochs\":3,\"seconds\":2.5,\"health\":null,\"result\":{",
        "{\"number\":4,\"stage\":\"random\",\"state\":\"queued\",\"params\":{\"train.lr\":0.03},"
        "\"val_metric\":null,\"epochs\":0,\"seconds\":null,\"health\":null,\"result\":null}",
        /* a health column that is not JSON stays a (valid) string */
        "\"val_metric\":0.7,\"epochs\":3,\"seconds\":7.5,\"health\":\"not json\",",
        "\"params\":{},",
        "],\"best\":{\"number\":2,\"stage\":\"random\",\"state\":\"complete\","
        "\"params\":{\"train.lr\":0.01},\"val_metric\":0.9,\"epochs\":3,\"seconds\":3.75,"
        "\"health\":{\"findings\":[{\"kind\":\"overfitting\"}]},\"result\":{",
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        cr_assert(strstr(out, keys[i]), "missing %s in:\n%s", keys[i], out);
    /* Trials in number order. */
    const char *prev = out;
    for (int i = 0; i <= 6; i++) {
        char key[32];
        snprintf(key, sizeof key, "{\"number\":%d,", i);
        const char *at = strstr(out, key);
        cr_assert(at && at > prev, "trial %d out of order:\n%s", i, out);
        prev = at;
    }
    free(out);

    /* No complete trial: best is null. */
    fixture fy;
    fixture_init(&fy);
    ns_store *s = NULL;
    cr_assert_eq(ns_store_open(&s, fy.dir, 1, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_study_init(s, "empty", fy.base.text, "ff", 1, "val_rmse", 0, 0, &err),
                 NS_OK, "%s", err.msg);
    ns_store_close(s);
    out = run_status(fy.dir, 1, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    cr_assert(json_balanced(out), "%s", out);
    cr_assert_str_eq(out, "{\"study\":{\"name\":\"empty\",\"metric\":\"val_rmse\","
                          "\"higher_is_better\":false,\"seed\":1,\"config_hash\":\"ff\",\"data_checks\":null},"
                          "\"stages\":[],\"trials\":[],\"best\":null}\n");
    free(out);
    out = run_status(fy.dir, 0, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    cr_assert(strstr(out, "stages:  none yet\ntrials:  none yet\nbest:    none yet"), "%s", out);
    free(out);
    fixture_free(&fy);
    fixture_free(&fx);
}

/* Files in a folder other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

Test(report, export_best_trial_config)
{
    fixture fx;
    fixture_init(&fx);
    build_study(&fx, "val_acc", 1, NULL);
    ns_err err = {0};
    int rc;
    char *out = run_export(fx.dir, NULL, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    char *path = cat(fx.dir, "/best.yaml");
    char *line = cat(path, "\n");
    cr_assert_str_eq(out, line);
    free(out);
    free(line);

    char *text = read_text(path);
    char *real = realpath(fx.dir, NULL);
    char head[8192];
    snprintf(head, sizeof head, "# exported by nnsearch %s from study " STUDY_NAME " (%s), trial "
             "2, val_acc 0.9, config hash abc123, ", NS_VERSION, real);
    cr_assert(strncmp(text, head, strlen(head)) == 0, "%s\nwant\n%s", text, head);
    free(real);
    const char *nl = strchr(text, '\n');
    cr_assert(nl);
    /* date: 2025-01-31T12:34:56Z */
    cr_assert_eq(nl - text - (long)strlen(head), 20, "%s", text);
    cr_assert_eq(nl[-1], 'Z');
    snprintf(head, sizeof head, "# run it with: nnsearch train %s\n", path);
    cr_assert(strncmp(nl + 1, head, strlen(head)) == 0, "%s", text);
    /* The rest is trial 2's config, byte for byte. */
    char src[4200];
    snprintf(src, sizeof src, "%s/trials/2/config.yaml", fx.dir);
    char *trial_text = read_text(src);
    cr_assert_str_eq(nl + 1 + strlen(head), trial_text);
    free(trial_text);
    free(text);

    /* It loads as a fixed config with the trial's values. */
    ns_config c, want;
    cr_assert_eq(ns_config_load(&c, path, &err), NS_OK, "%s", err.msg);
    double u = 0.15 * 3;
    cr_assert_eq(ns_config_instantiate(&fx.base, &u, &want, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(c.space.n, 0);
    cr_assert_eq(c.search.given, 0);
    cr_assert_eq(c.train.lr, fx.lr[2]);
    cr_assert_eq(c.train.lr, want.train.lr);
    cr_assert_eq(c.train.epochs, want.train.epochs);
    cr_assert_eq(c.train.batch_size, want.train.batch_size);
    cr_assert_eq(c.train.seed, want.train.seed);
    cr_assert_eq(c.model.n_hidden, want.model.n_hidden);
    cr_assert_eq(c.model.hidden[0], want.model.hidden[0]);
    cr_assert_eq(c.data.val_fraction, want.data.val_fraction);
    cr_assert_str_eq(c.data.train, want.data.train);
    ns_config_free(&want);
    ns_config_free(&c);

    /* -o elsewhere; the folder holds only the file afterwards (no temporary left). */
    char *other = tu_temp_dir();
    char *opath = cat(other, "/chosen.yaml");
    out = run_export(fx.dir, opath, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    cr_assert_eq(count_entries(other), 1);
    text = read_text(opath);
    snprintf(head, sizeof head, "# run it with: nnsearch train %s\n", opath);
    cr_assert(strstr(text, head), "%s", text);
    cr_assert_eq(ns_config_load(&c, opath, &err), NS_OK, "%s", err.msg);
    ns_config_free(&c);
    free(text);
    free(out);
    /* Exporting again replaces the file. */
    out = run_export(fx.dir, opath, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    cr_assert_eq(count_entries(other), 1);
    free(out);

    /* A folder that does not exist: an error naming the path, nothing printed. */
    char *bad = cat(other, "/no/such/x.yaml");
    out = run_export(fx.dir, bad, &rc, &err);
    cr_assert_eq(rc, NS_EINPUT);
    cr_assert(strstr(err.msg, "/no/such/x.yaml: cannot write the exported config: No such file "
                              "or directory"), "%s", err.msg);
    cr_assert_str_eq(out, "");
    free(out);
    free(bad);
    free(opath);
    free(other);

    /* Lower is better: the export is trial 5. */
    fixture fy;
    fixture_init(&fy);
    build_study(&fy, "val_loss", 0, NULL);
    out = run_export(fy.dir, NULL, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    free(out);
    char *ypath = cat(fy.dir, "/best.yaml");
    text = read_text(ypath);
    cr_assert(strstr(text, "), trial 5, val_loss 0.7, config hash abc123, "), "%s", text);
    cr_assert_eq(ns_config_load(&c, ypath, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(c.train.lr, fy.lr[5]);
    ns_config_free(&c);
    free(text);
    free(ypath);
    fixture_free(&fy);
    free(path);
    fixture_free(&fx);
}

Test(report, export_without_complete_trial)
{
    fixture fx;
    fixture_init(&fx);
    ns_err err = {0};
    ns_store *s = NULL;
    cr_assert_eq(ns_store_open(&s, fx.dir, 1, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_study_init(s, "x", fx.base.text, "ab", 7, "val_acc", 1, 0, &err), NS_OK);
    cr_assert_eq(ns_store_stage_set(s, "random", 1, NS_STAGE_RUNNING, NULL, &err), NS_OK);
    trial(s, &fx, 0, "{}", NS_TRIAL_FAILED, NAN, NULL, "boom");
    trial(s, &fx, 1, "{}", NS_TRIAL_RUNNING, NAN, NULL, NULL);
    /* complete, but without a finite metric: never best */
    trial(s, &fx, 2, "{}", NS_TRIAL_COMPLETE, NAN, NULL, NULL);
    ns_store_close(s);
    int rc;
    char *out = run_export(fx.dir, NULL, &rc, &err);
    cr_assert_eq(rc, NS_EINPUT);
    char want[4200];
    snprintf(want, sizeof want, "%s: no complete trial to export yet", fx.dir);
    cr_assert_str_eq(err.msg, want);
    cr_assert_str_eq(out, "");
    free(out);
    char *path = cat(fx.dir, "/best.yaml");
    cr_assert_neq(access(path, F_OK), 0);
    free(path);

    /* The best trial's config file is gone: said so, with the path. */
    s = NULL;
    cr_assert_eq(ns_store_open(&s, fx.dir, 0, &err), NS_OK, "%s", err.msg);
    trial(s, &fx, 3, "{}", NS_TRIAL_COMPLETE, 0.5, NULL, NULL);
    ns_store_close(s);
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/trials/3/config.yaml", fx.dir);
    cr_assert_eq(unlink(cfg), 0);
    out = run_export(fx.dir, NULL, &rc, &err);
    cr_assert_eq(rc, NS_EINPUT);
    cr_assert(strstr(err.msg, cfg) == err.msg, "%s", err.msg);
    cr_assert(strstr(err.msg, "cannot read the config of trial 3"), "%s", err.msg);
    free(out);
    /* A config with a search space is not exported. */
    FILE *f = fopen(cfg, "w");
    cr_assert(f);
    fputs(fx.base.text, f);
    fclose(f);
    out = run_export(fx.dir, NULL, &rc, &err);
    cr_assert_eq(rc, NS_EINPUT);
    cr_assert(strstr(err.msg, "is not a fixed training config"), "%s", err.msg);
    free(out);
    fixture_free(&fx);
}

Test(report, no_study_here)
{
    ns_err err = {0};
    int rc;
    char want[4200];
    char *root = tu_temp_dir();
    char *missing = cat(root, "/nothing");
    /* A folder that does not exist, and one without study.db (a trailing slash is fine). */
    const char *dirs[] = {missing, root};
    for (int i = 0; i < 2; i++) {
        snprintf(want, sizeof want, "%s: no study here (no study.db); run nnsearch CONFIG first",
                 dirs[i]);
        for (int json = 0; json <= 1; json++) {
            char *out = run_status(dirs[i], json, &rc, &err);
            cr_assert_eq(rc, NS_EINPUT);
            cr_assert_str_eq(err.msg, want);
            cr_assert_str_eq(out, "");
            free(out);
        }
        char *out = run_export(dirs[i], NULL, &rc, &err);
        cr_assert_eq(rc, NS_EINPUT);
        cr_assert_str_eq(err.msg, want);
        free(out);
    }
    char *slash = cat(root, "/");
    char *out = run_status(slash, 0, &rc, &err);
    cr_assert_eq(rc, NS_EINPUT);
    snprintf(want, sizeof want, "%s: no study here (no study.db); run nnsearch CONFIG first",
             root);
    cr_assert_str_eq(err.msg, want);
    free(out);
    free(slash);
    free(missing);
    free(root);
}

Test(report, works_beside_a_writer)
{
    fixture fx;
    fixture_init(&fx);
    ns_store *w = NULL;
    build_study(&fx, "val_acc", 1, &w); /* the writer keeps the lock */
    ns_err err = {0};
    ns_store *other = NULL;
    cr_assert_eq(ns_store_open(&other, fx.dir, 0, &err), NS_EINPUT); /* the lock is held */
    int rc;
    char *out = run_status(fx.dir, 1, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    cr_assert(strstr(out, "\"best\":{\"number\":2,"), "%s", out);
    free(out);

    /* A write transaction in progress: status sees the last committed state. */
    cr_assert_eq(ns_store_begin(w, &err), NS_OK, "%s", err.msg);
    trial(w, &fx, 7, "{\"train.lr\":0.05}", NS_TRIAL_COMPLETE, 0.95, NULL, NULL);
    out = run_status(fx.dir, 1, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    cr_assert(json_balanced(out), "%s", out);
    cr_assert_null(strstr(out, "\"number\":7"), "%s", out);
    cr_assert(strstr(out, "\"best\":{\"number\":2,"), "%s", out);
    free(out);
    cr_assert_eq(ns_store_commit(w, &err), NS_OK, "%s", err.msg);
    out = run_status(fx.dir, 0, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    cr_assert(strstr(out, "best:    trial 7 (stage random), val_acc 0.95 "), "%s", out);
    free(out);
    out = run_export(fx.dir, NULL, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    free(out);
    char *path = cat(fx.dir, "/best.yaml");
    char *text = read_text(path);
    cr_assert(strstr(text, "), trial 7, val_acc 0.95, "), "%s", text);
    free(text);
    free(path);
    ns_store_close(w);
    fixture_free(&fx);
}

/* A trial with a disqualifying finding never wins while a healthy complete trial exists:
 * status ranks it below, says why it was skipped, and export writes the healthy one. */
Test(report, unhealthy_trials_are_passed_over)
{
    fixture fx;
    fixture_init(&fx);
    ns_err err = {0};
    ns_store *s = NULL;
    cr_assert_eq(ns_store_open(&s, fx.dir, 1, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_study_init(s, STUDY_NAME, fx.base.text, "abc123", 7, "val_acc", 1, 0,
                                     &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_stage_set(s, "random", 1, NS_STAGE_RUNNING, NULL, &err), NS_OK);
    static const char over[] =
        "[{\"code\":\"overfitting\",\"mistake\":3,\"message\":\"val loss rose from 0.3 to 0.5\","
        "\"fix\":\"early stopping\"}]";
    static const char osc[] =
        "[{\"code\":\"oscillating\",\"mistake\":2,\"message\":\"train loss swings\",\"fix\":\"lower "
        "the learning rate\"}]";
    static const char slow[] =
        "[{\"code\":\"budget_limited\",\"mistake\":1,\"message\":\"still improving\",\"fix\":\"more "
        "epochs\"}]";
    struct { double m; const char *h; int64_t flags; } t[3] = {
        {0.95, over, NS_HEALTH_OVERFITTING},
        {0.90, slow, NS_HEALTH_BUDGET_LIMITED}, /* a warning does not disqualify */
        {0.97, osc, NS_HEALTH_OSCILLATING},
    };
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ns_store_trial_insert(s, i, "random", "{}", 1, &err), NS_OK, "%s", err.msg);
        write_trial_config(&fx, i);
        cr_assert_eq(ns_store_trial_start(s, i, &err), NS_OK);
        ns_trial_result r = {.seconds = 1, .epochs = 3, .val_metric = t[i].m, .health = t[i].h,
                             .health_flags = t[i].flags};
        cr_assert_eq(ns_store_trial_finish(s, i, NS_TRIAL_COMPLETE, &r, &err), NS_OK, "%s", err.msg);
    }
    ns_store_close(s);

    int rc;
    char *out = run_status(fx.dir, 0, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    int order[8];
    cr_assert_eq(table_order(out, order, 8), 3, "%s", out);
    cr_assert(order[0] == 1 && order[1] == 2 && order[2] == 0, "%s", out);
    cr_assert(strstr(out, "best:    trial 1 "), "%s", out);
    cr_assert(strstr(out, "skipped: trial 2 (val_acc 0.97) is not chosen:\n"
                          "           oscillating: train loss swings (fix: lower the learning rate)\n"),
              "%s", out);
    cr_assert(strstr(out, "skipped: trial 0 (val_acc 0.95) is not chosen:\n"
                          "           overfitting: val loss rose from 0.3 to 0.5 (fix: early stopping)\n"),
              "%s", out);
    cr_assert(strstr(out, "health:  trial 1:\n           budget_limited: still improving"), "%s", out);
    cr_assert(strstr(out, "  oscillating "), "health column: %s", out);
    free(out);

    out = run_status(fx.dir, 1, &rc, &err);
    cr_assert(strstr(out, "\"best\":{\"number\":1,"), "%s", out);
    cr_assert(strstr(out, "\"health\":[{\"code\":\"overfitting\",\"mistake\":3,"), "%s", out);
    free(out);

    out = run_export(fx.dir, NULL, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    free(out);
    char *path = cat(fx.dir, "/best.yaml");
    char *text = read_text(path);
    cr_assert(strstr(text, "trial 1, val_acc 0.9,"), "%s", text);
    free(text);
    free(path);
    fixture_free(&fx);
}

/* A bayes stage that pruned some trials and a select decision that counted the others:
 * status shows the prune rate under the stage and the eligibility under the selection. */
Test(report, prune_rate_and_eligibility)
{
    fixture fx;
    fixture_init(&fx);
    ns_err err = {0};
    ns_store *s = NULL;
    cr_assert_eq(ns_store_open(&s, fx.dir, 1, &err), NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_study_init(s, "p", fx.base.text, "abc123", 7, "val_acc", 1, 0, &err),
                 NS_OK, "%s", err.msg);
    cr_assert_eq(ns_store_stage_set(s, "1:random", 0, NS_STAGE_COMPLETE, "{\"trials\":2}", &err), NS_OK);
    cr_assert_eq(ns_store_stage_set(s, "2:bayes", 1, NS_STAGE_RUNNING, NULL, &err), NS_OK);
    static const char select[] =
        "{\"winner\":0,\"stage\":\"1:random\",\"val_acc\":0.9,\"eligible\":1,\"fallback\":false,"
        "\"others\":[{\"trial\":3,\"val_acc\":0.8,\"why\":\"health: overfitting\"}],\"considered\":6,"
        "\"ineligible\":{\"pruned\":3,\"diverged\":0,\"failed\":1,\"oscillating\":0,"
        "\"overfitting\":1,\"not_run\":0}}";
    cr_assert_eq(ns_store_stage_set(s, "3:select", 2, NS_STAGE_COMPLETE, select, &err), NS_OK);
    /* 0, 1: random, complete; 2..6: bayes, of which 2, 4, 5 pruned, 3 complete, 6 running */
    static const struct { const char *stage; ns_trial_state state; double m; } t[7] = {
        {"1:random", NS_TRIAL_COMPLETE, 0.9}, {"1:random", NS_TRIAL_FAILED, NAN},
        {"2:bayes", NS_TRIAL_PRUNED, 0.5},    {"2:bayes", NS_TRIAL_COMPLETE, 0.8},
        {"2:bayes", NS_TRIAL_PRUNED, 0.4},    {"2:bayes", NS_TRIAL_PRUNED, 0.6},
        {"2:bayes", NS_TRIAL_RUNNING, NAN},
    };
    for (int i = 0; i < 7; i++) {
        cr_assert_eq(ns_store_trial_insert(s, i, t[i].stage, "{}", 1, &err), NS_OK, "%s", err.msg);
        write_trial_config(&fx, i);
        cr_assert_eq(ns_store_trial_start(s, i, &err), NS_OK);
        if (t[i].state == NS_TRIAL_RUNNING)
            continue;
        ns_trial_result r = {.seconds = 1, .epochs = 3, .val_metric = t[i].m, .health = "[]"};
        cr_assert_eq(ns_store_trial_finish(s, i, t[i].state, &r, &err), NS_OK, "%s", err.msg);
    }
    ns_store_close(s);

    int rc;
    char *out = run_status(fx.dir, 0, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    /* the bayes stage: 3 of its 4 ended trials pruned, one still running */
    cr_assert(strstr(out, "  2:bayes   running   -\n"
                          "           pruned 3 of 4 ended trials (75%); 5 in all\n"), "%s", out);
    /* a stage that prunes nothing and is no bayes stage: no line */
    cr_assert(strstr(out, "  1:random  complete  trials=2\n  2:bayes"), "%s", out);
    /* the selection: eligible of considered, the reasons with a count in the decision's order */
    cr_assert(strstr(out, "considered=6 ineligible={\"pruned\":3,"), "%s", out);
    cr_assert(strstr(out, "\n           eligible 1 of 6 trials; not eligible: 3 pruned, 1 failed, "
                          "1 overfitting\n           trial 3: health: overfitting\n"), "%s", out);
    free(out);

    out = run_status(fx.dir, 1, &rc, &err);
    cr_assert_eq(rc, NS_OK, "%s", err.msg);
    cr_assert(json_balanced(out), "%s", out);
    cr_assert(strstr(out, "{\"name\":\"1:random\",\"state\":\"complete\",\"trials\":2,\"ended\":2,"
                          "\"pruned\":0,\"decision\":{\"trials\":2}}"), "%s", out);
    cr_assert(strstr(out, "{\"name\":\"2:bayes\",\"state\":\"running\",\"trials\":5,\"ended\":4,"
                          "\"pruned\":3,\"decision\":null}"), "%s", out);
    cr_assert(strstr(out, "\"considered\":6,\"ineligible\":{\"pruned\":3,\"diverged\":0,\"failed\":1,"),
              "%s", out);
    free(out);
    fixture_free(&fx);
}
