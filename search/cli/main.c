/* main.c — the nnsearch command line: argument parsing, progress and result output,
 * exit codes (0 ok, 1 runtime failure, 2 usage/config/data error). The only place that
 * exits; everything it calls returns errors. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/atomic.h"
#include "engine/cuda/cuda.h"
#include "model/modelfile.h"
#include "search/cli/predict.h"
#include "search/cli/progress.h"
#include "search/cli/status_export.h"
#include "search/config/config.h"
#include "search/config/space.h"
#include "search/dist/mpi.h"
#include "search/report/report.h"
#include "search/stages/driver.h"
#include "search/stages/lrfind.h"
#include "search/stages/pipeline.h"
#include "search/study/json.h"
#include "search/study/view.h"

static const char usage[] =
    "usage: nnsearch COMMAND [options]   (options may come before or after the arguments)\n"
    "\n"
    "commands (nnsearch COMMAND --help for each one's options):\n"
    "  nnsearch CONFIG.yaml              run (or continue) the search the config describes;\n"
    "                                    without a search: section, one training\n"
    "  nnsearch resume DIR               continue an interrupted study\n"
    "  nnsearch status DIR [--json]      stages, trials (best first) and the best trial\n"
    "  nnsearch export DIR [-o FILE]     the best trial as a training config [DIR/best.yaml]\n"
    "  nnsearch report DIR [-o FILE]     the study as one self-contained HTML page\n"
    "                                    [DIR/report.html; a search rewrites it after each stage]\n"
    "  nnsearch train CONFIG [-o MODEL]  train one fixed config to a model file\n"
    "  nnsearch predict MODEL DATA       predictions as CSV, with the model's preprocessing\n"
    "  nnsearch lr-find CONFIG           LR range test: suggested LR, bounds and a plot\n"
    "\n"
    "CONFIG is a path to an existing file or a name ending in .yaml or .yml; any other\n"
    "first word that is not a command is an error.\n"
    "\n"
    "paths: data paths inside a config resolve against the config file's folder; every\n"
    "output path (-o, --csv, --checkpoint, search.output and the defaults under results/)\n"
    "resolves against the working directory. -o names a folder for a search (the study)\n"
    "and a file for every other command (export: the YAML, train: the model, predict: the\n"
    "CSV).\n"
    "\n"
    "progress goes to stderr (a live line on a terminal, timestamped lines otherwise; set\n"
    "NO_COLOR for no colours, --quiet for none), results to stdout.\n"
    "common: -h, --help    this text (or a command's);  --version  the version, MPI and CUDA\n"
    "        --device D    where trials train: cpu, cuda (GPU 0) or auto (cuda when a GPU\n"
    "                      answers); overrides train.device [the config's, default cpu]\n"
    "exit codes: 0 success, 1 runtime failure, 2 usage/config/data error, 130 interrupted\n"
    "docs: docs/config.md (config keys), docs/model-format.md (model file)\n";

static const char usage_search[] =
    "usage: nnsearch CONFIG.yaml [options]\n"
    "\n"
    "Runs the search the config's search: section describes, or continues it when its study\n"
    "folder already holds it (a config without search: trains once: see nnsearch train --help).\n"
    "Progress on stderr; at the end the top trials and the winner (stderr), and the path of\n"
    "the exported winner and a one-line result (stdout).\n"
    "\n"
    "options:\n"
    "  -o, --output DIR      the study FOLDER, against the working directory\n"
    "                        [search.output, i.e. results/<search.name>]\n"
    "  -j N                  trials at once (under MPI: per worker rank) [search.parallel]\n"
    "  --budget TIME         wall-clock budget of this run (300, 90s, 5m, 1h) [search.budget]\n"
    "  --force               continue a study although its config changed\n"
    "  --quiet               no progress on stderr (errors still)\n"
    "\n"
    "progress: on a terminal one status line rewritten in place (stage, trials done/planned,\n"
    "running, best so far, ETA), with a line per stage decision; otherwise timestamped lines.\n"
    "NO_COLOR=1 turns the colours off. Data paths in the config resolve against its folder.\n"
    "\n"
    "under MPI: mpirun -n N nnsearch CONFIG.yaml [-j T] (or srun): rank 0 drives the study and\n"
    "alone writes its folder; ranks 1..N-1 load the data once and train T trials at a time\n"
    "each. The same trials and decisions as one process with the same seed. Every host needs\n"
    "the data at the config's paths and the same nnsearch build; nnsearch --version says\n"
    "whether MPI is compiled in. docs/config.md, \"Running under MPI\".\n";

static const char usage_resume[] =
    "usage: nnsearch resume DIR [options]\n"
    "\n"
    "Continues the study in DIR with the config it was made from (DIR/config.source).\n"
    "\n"
    "options:\n"
    "  -j N                  trials at once (under MPI: per worker rank) [search.parallel]\n"
    "  --budget TIME         wall-clock budget of this run (300, 90s, 5m, 1h) [search.budget]\n"
    "  --force               continue although the config changed since\n"
    "  --quiet               no progress on stderr (errors still)\n"
    "\n"
    "under MPI (mpirun -n N nnsearch resume DIR [-j T]): rank 0 continues the study from DIR\n"
    "and its checkpoints, ranks 1..N-1 train; DIR need only be on rank 0's host.\n";

static const char usage_status[] =
    "usage: nnsearch status DIR [--json]\n"
    "\n"
    "The study in DIR: its stages and their decisions, the trials best first, the best trial.\n"
    "Reads the study without locking it: works while a search runs.\n"
    "\n"
    "options:\n"
    "  --json                one JSON object (study, stages, trials, best) instead of text\n";

static const char usage_export[] =
    "usage: nnsearch export DIR [-o FILE]\n"
    "\n"
    "Writes the best trial of the study in DIR as a complete training config and prints the\n"
    "path written.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE     the YAML FILE to write, against the working directory\n"
    "                        [DIR/best.yaml]\n";

static const char usage_report[] =
    "usage: nnsearch report DIR [-o FILE]\n"
    "\n"
    "Writes the study in DIR as one self-contained HTML page (the winner and how it was\n"
    "chosen, the six mistakes, the LR range test, the batch sweep, the comparison, the\n"
    "history, learning curves, parameters, the pool's timeline) and prints the path written.\n"
    "A search rewrites DIR/report.html after every stage.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE     the HTML FILE to write, against the working directory\n"
    "                        [DIR/report.html]\n";

static const char usage_train[] =
    "usage: nnsearch train CONFIG [options]\n"
    "\n"
    "Trains one fixed config (no search spaces; e.g. an exported one) to a model file.\n"
    "Progress (one line per epoch) on stderr, the result on stdout.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE     the model FILE, against the working directory\n"
    "                        [results/<config file name>/model.nsm]\n"
    "  --json                one JSON object per epoch on stdout, then a final one\n"
    "  --checkpoint FILE     write the full training state after every epoch and on Ctrl-C;\n"
    "                        if FILE exists, continue from it (bit-identical to an unbroken run)\n"
    "  --seed N              override train.seed\n"
    "  --threads N           BLAS threads (overrides the config's threads) [1]\n"
    "  --quiet               no progress lines on stderr\n";

static const char usage_predict[] =
    "usage: nnsearch predict MODEL DATA [options]\n"
    "\n"
    "Predictions of the model file MODEL for DATA (CSV or IDX) as CSV: row,prediction and,\n"
    "for classification, one probability column per class. The model's preprocessing is\n"
    "applied and DATA's columns checked against it. When DATA has labels, stderr gets the\n"
    "accuracy, balanced accuracy (mean recall over the classes) and macro-F1 (or the RMSE).\n"
    "\n"
    "options:\n"
    "  -o, --output FILE     the CSV FILE, against the working directory [stdout]\n"
    "  --labels FILE         IDX labels for IDX DATA (a CSV's label column is read as it is)\n"
    "  --no-drift-check      skip the drift check: by default DATA is compared with the\n"
    "                        model's training statistics, with a warning on stderr (exit\n"
    "                        status still 0) when a feature's mean moved by more than 0.5\n"
    "                        training std (50 rows or more) or over 1% of values lie\n"
    "                        outside the training range\n";

static const char usage_lrfind[] =
    "usage: nnsearch lr-find CONFIG [options]\n"
    "\n"
    "The LR range test of the config's model and optimizer on its data: the learning rate\n"
    "grows exponentially step by step while the loss is recorded. Prints each seed's\n"
    "suggestions, the suggested LR, bounds, and a plot of every seed's smoothed loss against\n"
    "the LR (log axis) with the suggestion and the bounds marked. A config with search spaces\n"
    "is taken at the middle of every space.\n"
    "\n"
    "options:\n"
    "  --seeds N             sweeps with seeds derived from train.seed [3]\n"
    "  --start X, --end X    LR of the first and last step [1e-7, 10]\n"
    "  --steps N             steps per sweep (it stops early when the loss blows up) [200]\n"
    "  --rule R              valley, steepest or min10: the suggestion handed on [valley]\n"
    "  --csv FILE            all sweeps as CSV (seed,step,lr,loss,smoothed) to FILE, against\n"
    "                        the working directory\n"
    "  --json                one JSON object with everything on stdout (no plot)\n";

/* First SIGINT/SIGTERM: ask the run to stop after its current step (it checkpoints and
 * the program exits 130). Second: exit at once; the last checkpoint still resumes. */
static ns_stop_flag stop_requested;
/* MPI_COMM_WORLD's size under mpirun or srun; 1 otherwise (main) */
static int mpi_ranks = 1;

static void on_signal(int sig)
{
    (void)sig;
    if (atomic_load(&stop_requested)) /* lock-free: safe in a handler (engine/stop.h) */
        _exit(130);
    atomic_store(&stop_requested, 1);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The command being run ("train"; "" for a search or none), for the help a usage error
 * points to. */
static const char *help_cmd = "";

static int usage_error(const char *fmt, const char *arg)
{
    fputs("nnsearch: ", stderr);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see nnsearch %s%s--help)\n", help_cmd, help_cmd[0] ? " " : "");
    return 2;
}

static int report(const ns_err *err)
{
    fprintf(stderr, "nnsearch: %s\n", err->msg);
    return err->code ? err->code : 1;
}

/* JSON numbers cannot be NaN or infinite: those become null. */
static void jnum(FILE *f, const char *key, double v, int comma)
{
    if (isfinite(v))
        fprintf(f, "\"%s\":%.9g", key, v);
    else
        fprintf(f, "\"%s\":null", key);
    if (comma)
        fputc(',', f);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

typedef struct train_out {
    int json, quiet;
    long total_epochs;
    ns_task task;
    ns_epoch_record *recs; /* this run's epochs, for the health check */
    int n_recs, cap_recs;
    int recs_lost;         /* out of memory: the health check is skipped */
} train_out;

static void keep_record(train_out *o, const ns_epoch_record *r)
{
    if (o->recs_lost)
        return;
    if (o->n_recs == o->cap_recs) {
        int nc = o->cap_recs ? 2 * o->cap_recs : 64;
        ns_epoch_record *nv = realloc(o->recs, (size_t)nc * sizeof *nv);
        if (!nv) {
            o->recs_lost = 1;
            return;
        }
        o->recs = nv;
        o->cap_recs = nc;
    }
    o->recs[o->n_recs++] = *r;
}

static int print_epoch(void *user, const ns_epoch_record *r)
{
    train_out *o = user;
    keep_record(o, r);
    if (o->json) {
        printf("{\"epoch\":%d,\"step\":%ld,", r->epoch, r->step);
        jnum(stdout, "train_loss", r->train_loss, 1);
        jnum(stdout, "val_loss", r->val_loss, 1);
        if (o->task == NS_TASK_CLASSIFY)
            jnum(stdout, "val_acc", r->val_acc, 1);
        else
            jnum(stdout, "val_rmse", r->val_rmse, 1);
        jnum(stdout, "lr", r->lr, 1);
        jnum(stdout, "grad_norm", r->grad_norm, 1);
        printf("\"layer_grad_norm\":[");
        for (int g = 0; g < r->n_groups; g++) {
            if (isfinite(r->group_grad_norm[g]))
                printf("%s%.6g", g ? "," : "", r->group_grad_norm[g]);
            else
                printf("%snull", g ? "," : "");
        }
        printf("],");
        jnum(stdout, "seconds", r->seconds, 1);
        jnum(stdout, "samples_per_s", r->samples_per_s, 0);
        printf("}\n");
        fflush(stdout);
    }
    if (!o->quiet) {
        char metric[64] = "";
        if (o->task == NS_TASK_CLASSIFY && isfinite(r->val_acc))
            snprintf(metric, sizeof metric, "  val_acc %.4f", r->val_acc);
        else if (isfinite(r->val_rmse))
            snprintf(metric, sizeof metric, "  val_rmse %.4g", r->val_rmse);
        char total[32] = "";
        if (o->total_epochs > 0)
            snprintf(total, sizeof total, "/%ld", o->total_epochs);
        fprintf(stderr, "epoch %d%s  train_loss %.4f  val_loss %.4f%s  lr %.3g  %.0f samples/s  %.1fs\n",
                r->epoch, total, r->train_loss, r->val_loss, metric, r->lr, r->samples_per_s, r->seconds);
    }
    return 0;
}

/* results/<config file name without extension>/model.nsm */
static char *default_model_path(const char *config)
{
    const char *base = strrchr(config, '/');
    base = base ? base + 1 : config;
    size_t len = strcspn(base, ".");
    char *dir = malloc(len + 16), *path = malloc(len + 32);
    if (!dir || !path) {
        free(dir);
        free(path);
        return NULL;
    }
    snprintf(dir, len + 16, "results/%.*s", (int)len, base);
    (void)ns_mkdir_p(dir, NULL, 0); /* a failure shows when the model is written */
    snprintf(path, len + 32, "%s/model.nsm", dir);
    free(dir);
    return path;
}

static int parse_long(const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end)
        return -1;
    *out = v;
    return 0;
}

/* A duration: seconds, or a number with s, m or h ("90", "90s", "5m", "1.5h"); > 0. */
static int parse_duration(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s)
        return -1;
    double unit = !*end ? 1 : !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600 : 0;
    if (!(unit > 0) || !(v > 0) || !isfinite(v * unit))
        return -1;
    *out = v * unit;
    return 0;
}

static int bad_budget(const char *v)
{
    return usage_error("bad value for --budget: expected seconds or a number with s, m or h (e.g. 300, "
                       "5m), got '%s'", v);
}

/* `train` runs fixed configs only; a search config is refused with where its spaces are.
 * is_search_run: called as `nnsearch CONFIG`, which is meant to run the search. */
static int check_fixed(const ns_config *c)
{
    if (c->space.n > 0) {
        const ns_dim *d = &c->space.dims[0];
        fprintf(stderr, "nnsearch: %s:%d:%d: %s is a search space; `train` needs fixed values "
                "(run the search with `nnsearch %s`, or train a trial's exported config)\n",
                c->path, d->line, d->column, d->name, c->path);
        return 2;
    }
    return 0;
}


/* The study's answer in two lines after a search: the test score of the chosen
 * configuration (from the last complete stage that reported one: select or final) and the
 * report's path. Reading only; a study without them prints what it has. */
static void print_answer(const char *dir)
{
    ns_study_view v;
    ns_err err = {0};
    if (ns_study_view_load(dir, &v, &err))
        return;
    for (int i = v.n_stages - 1; i >= 0; i--) {
        const ns_stage_row *st = &v.stages[i];
        double test, w = -1;
        const char *key = "test_acc";
        if (st->state != NS_STAGE_COMPLETE || !st->decision)
            continue;
        if (!ns_json_get_num(st->decision, key, &test) &&
            !ns_json_get_num(st->decision, key = "test_rmse", &test))
            continue;
        if (!ns_json_get_num(st->decision, "winner", &w))
            ns_json_get_num(st->decision, "trial", &w);
        printf("winner: trial %.0f, chosen by stage %s; %s %.4g on the test set (scored once, "
               "never used to choose)\n", w, st->name, key, test);
        break;
    }
    ns_study_view_free(&v);
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/report.html", dir);
    if (!stat(path, &sb))
        printf("report: %s\n", path);
}

static int search_main(const char *config, const char *out, long jobs, double budget, int force,
                       int quiet)
{
    ns_term *term = quiet ? NULL : ns_term_alloc(stderr);
    ns_search_opts o = {.config_path = config, .output = out, .parallel = (int)jobs,
                        .force = force, .quiet = quiet, .progress = stderr,
                        .on_progress = term ? ns_term_event : NULL, .progress_user = term,
                        .stop = &stop_requested, .budget = budget, .ranks = mpi_ranks};
    ns_search_result res;
    ns_err err = {0};
    install_signals();
    int rc = ns_search_run(&o, &res, &err);
    ns_term_free(term); /* the live line is cleared before anything else is printed */
    if (rc)
        return report(&err);
    if (!quiet && !res.interrupted && res.best_trial >= 0) {
        ns_err serr = {0}; /* the closing summary; a study that cannot be read shows below */
        (void)ns_cmd_summary(res.dir, 5, stderr, &serr);
    }
    if (res.interrupted) {
        fprintf(stderr, "nnsearch: interrupted; running trials were checkpointed. Continue with "
                "`nnsearch resume %s` (or the same command)\n", res.dir);
        return 130;
    }
    if (res.best_trial < 0) {
        printf("study %s: no trial completed\n", res.dir);
        return 1;
    }
    if ((rc = ns_cmd_export(res.dir, NULL, stdout, &err)))
        return report(&err);
    printf("best: trial %ld, %.6g; details: nnsearch status %s\n", res.best_trial, res.best_metric,
           res.dir);
    print_answer(res.dir);
    return 0;
}

static int cmd_search(int argc, char **argv, const char *config)
{
    const char *out = NULL;
    long jobs = 0;
    double budget = 0;
    int force = 0, quiet = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--force"))
            force = 1;
        else if (!strcmp(a, "--quiet"))
            quiet = 1;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "-j") || !strcmp(a, "--budget")) {
            if (i + 1 >= argc)
                return usage_error("option %s needs a value", a);
            const char *v = argv[++i];
            if (a[1] == 'j') {
                if (parse_long(v, &jobs) || jobs < 1 || jobs > 256)
                    return usage_error("bad value for -j: expected a whole number 1..256, got '%s'", v);
            } else if (!strcmp(a, "--budget")) {
                if (parse_duration(v, &budget))
                    return bad_budget(v);
            } else {
                out = v;
            }
        } else {
            return usage_error("unknown option or argument '%s'", a);
        }
    }
    return search_main(config, out, jobs, budget, force, quiet);
}

static int cmd_resume(int argc, char **argv)
{
    const char *dir = NULL;
    int force = 0, quiet = 0;
    long jobs = 0;
    double budget = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--force"))
            force = 1;
        else if (!strcmp(a, "--quiet"))
            quiet = 1;
        else if (!strcmp(a, "-j") || !strcmp(a, "--budget")) {
            if (i + 1 >= argc)
                return usage_error("option %s needs a value", a);
            const char *v = argv[++i];
            if (a[1] == 'j') {
                if (parse_long(v, &jobs) || jobs < 1 || jobs > 256)
                    return usage_error("bad value for -j: expected a whole number 1..256, got '%s'", v);
            } else if (parse_duration(v, &budget))
                return bad_budget(v);
        } else if (a[0] == '-' && a[1])
            return usage_error("unknown option '%s'", a);
        else if (!dir)
            dir = a;
        else
            return usage_error("unexpected argument '%s'", a);
    }
    if (!dir)
        return usage_error("%s", "resume needs the study folder DIR");
    char path[4200], config[4096];
    snprintf(path, sizeof path, "%s/" NS_STUDY_SOURCE_FILE, dir);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(config, sizeof config, f)) {
        if (f)
            fclose(f);
        fprintf(stderr, "nnsearch: %s: no study here (no %s); start it with `nnsearch CONFIG`\n",
                dir, NS_STUDY_SOURCE_FILE);
        return 2;
    }
    fclose(f);
    config[strcspn(config, "\n")] = 0;
    return search_main(config, dir, jobs, budget, force, quiet);
}

static int cmd_status(int argc, char **argv)
{
    const char *dir = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (argv[i][0] == '-')
            return usage_error("unknown option '%s'", argv[i]);
        else if (!dir)
            dir = argv[i];
        else
            return usage_error("unexpected argument '%s'", argv[i]);
    }
    if (!dir)
        return usage_error("%s", "status needs the study folder DIR");
    ns_err err = {0};
    return ns_cmd_status(dir, json, stdout, &err) ? report(&err) : 0;
}

static int cmd_export(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (i + 1 >= argc)
                return usage_error("option %s needs a value", argv[i]);
            out = argv[++i];
        } else if (argv[i][0] == '-')
            return usage_error("unknown option '%s'", argv[i]);
        else if (!dir)
            dir = argv[i];
        else
            return usage_error("unexpected argument '%s'", argv[i]);
    }
    if (!dir)
        return usage_error("%s", "export needs the study folder DIR");
    ns_err err = {0};
    return ns_cmd_export(dir, out, stdout, &err) ? report(&err) : 0;
}

static int cmd_report(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (i + 1 >= argc)
                return usage_error("option %s needs a value", argv[i]);
            out = argv[++i];
        } else if (argv[i][0] == '-')
            return usage_error("unknown option '%s'", argv[i]);
        else if (!dir)
            dir = argv[i];
        else
            return usage_error("unexpected argument '%s'", argv[i]);
    }
    if (!dir)
        return usage_error("%s", "report needs the study folder DIR");
    ns_err err = {0};
    if (ns_report_write(dir, out, &err))
        return report(&err);
    if (out)
        printf("%s\n", out);
    else
        printf("%s/%s\n", dir, NS_REPORT_FILE);
    return 0;
}

static void print_member(void *user, int member, int n)
{
    train_out *o = user;
    if (!o->quiet)
        fprintf(stderr, "nnsearch: member %d of %d: trained on the rows outside fold %d, validated "
                "on it\n", member + 1, n, member + 1);
    if (o->json)
        printf("{\"member\":%d,\"members\":%d}\n", member, n);
}

/* `nnsearch train` of a fold ensemble (model.ensemble): every member, then one file. */
static int train_ensemble(const ns_config *c, const char *config, const char *model_path,
                          train_out *o)
{
    ns_err err = {0};
    o->task = c->data.task;
    o->total_epochs = c->train.budget == NS_BUDGET_EPOCHS ? c->train.epochs : 0;
    if (!o->quiet)
        fprintf(stderr, "nnsearch: %s: an ensemble of %d members, one per stratified fold of the "
                "training rows (model.ensemble)\n", config, c->ensemble);
    ns_run_result res = {0};
    install_signals();
    int rc = ns_run_ensemble(c, print_epoch, print_member, o, model_path, &stop_requested, &res,
                             NULL, &err);
    free(o->recs);
    if (rc)
        return report(&err);
    if (res.interrupted) {
        fprintf(stderr, "nnsearch: interrupted; no model written (the same command trains the "
                "ensemble again)\n");
        return 130;
    }
    int classify = c->data.task == NS_TASK_CLASSIFY;
    if (o->json) {
        printf("{\"final\":true,\"members\":%d,\"epochs\":%d,\"best_epoch\":%d,\"diverged\":%s,",
               c->ensemble, res.epochs, res.best_epoch, res.diverged ? "true" : "false");
        jnum(stdout, "val_loss", res.val_loss, 1);
        if (classify) {
            jnum(stdout, "val_acc", res.val_acc, 1);
            jnum(stdout, "val_balanced_acc", res.val_bacc, 1);
            jnum(stdout, "val_macro_f1", res.val_f1, 1);
            jnum(stdout, "test_loss", res.test_loss, 1);
            jnum(stdout, "test_acc", res.test_acc, 1);
            jnum(stdout, "test_balanced_acc", res.test_bacc, 1);
            jnum(stdout, "test_macro_f1", res.test_f1, 1);
        } else {
            jnum(stdout, "val_rmse", res.val_rmse, 1);
            jnum(stdout, "test_rmse", res.test_rmse, 1);
        }
        printf("\"model\":");
        jstr(stdout, model_path);
        printf("}\n");
    } else {
        printf("ensemble of %d members; epochs %d (median best %d)%s\n", c->ensemble, res.epochs,
               res.best_epoch, res.diverged ? ", a member DIVERGED" : "");
        if (classify) {
            printf("val (mean over members, each on its fold): loss %.4f  acc %.4f  balanced_acc %.4f  "
                   "macro_f1 %.4f\n", res.val_loss, res.val_acc, res.val_bacc, res.val_f1);
            if (isfinite(res.test_acc))
                printf("test (averaged probabilities): loss %.4f  acc %.4f  balanced_acc %.4f  "
                       "macro_f1 %.4f\n", res.test_loss, res.test_acc, res.test_bacc, res.test_f1);
        } else {
            printf("val (mean over members, each on its fold): loss %.4f  rmse %.4g\n", res.val_loss,
                   res.val_rmse);
            if (isfinite(res.test_rmse))
                printf("test (averaged prediction): rmse %.4g\n", res.test_rmse);
        }
        printf("health: judged per member by a study's cross-validation, not here\n");
        printf("model %s\n", model_path);
    }
    return 0;
}

static int cmd_train(int argc, char **argv, int is_search_run)
{
    const char *config = NULL, *out = NULL, *ckpt = NULL;
    train_out o = {0};
    long seed = -1, threads = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json"))
            o.json = 1;
        else if (!strcmp(a, "--quiet"))
            o.quiet = 1;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--checkpoint") ||
                 !strcmp(a, "--seed") || !strcmp(a, "--threads")) {
            if (i + 1 >= argc)
                return usage_error("option %s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "-o") || !strcmp(a, "--output"))
                out = v;
            else if (!strcmp(a, "--checkpoint"))
                ckpt = v;
            else if (!strcmp(a, "--seed") ? parse_long(v, &seed) || seed < 0
                                          : parse_long(v, &threads) || threads < 1 || threads > 256)
                return usage_error("bad value for %s: expected a non-negative integer", a);
        } else if (a[0] == '-' && a[1])
            return usage_error("unknown option '%s'", a);
        else if (!config)
            config = a;
        else
            return usage_error("unexpected argument '%s'", a);
    }
    if (!config)
        return usage_error("%s", "train needs a CONFIG file");

    ns_err err = {0};
    ns_config c;
    int rc_train;
    if (ns_config_load(&c, config, &err))
        return report(&err);
    (void)is_search_run;
    if (ns_pipeline_device_check(&c, &err)) {
        ns_config_free(&c);
        return report(&err);
    }
    int bad = check_fixed(&c);
    if (bad) {
        ns_config_free(&c);
        return bad;
    }
    if (seed >= 0)
        c.train.seed = (uint64_t)seed;
    if (threads > 0)
        c.threads = (int)threads;
    if (c.ensemble) {
        if (ckpt) {
            ns_config_free(&c);
            return usage_error("%s", "--checkpoint keeps one model's training state; an ensemble "
                               "(model.ensemble) trains its members again when interrupted: drop "
                               "--checkpoint");
        }
        char *model_path = out ? strdup(out) : default_model_path(config);
        rc_train = train_ensemble(&c, config, model_path, &o);
        free(model_path);
        ns_config_free(&c);
        return rc_train;
    }
    ns_prepared p;
    /* the memory check before the first progress line: a refusal is then the only line */
    if (ns_prepare_data(&p, &c, &err) || ns_pipeline_memory_check(&c, &p, 0, &err)) {
        ns_prepared_free(&p);
        ns_config_free(&c);
        return report(&err);
    }
    char *model_path = out ? strdup(out) : default_model_path(config);
    o.task = p.task;
    o.total_epochs = c.train.budget == NS_BUDGET_EPOCHS ? c.train.epochs : 0;
    if (!o.quiet)
        fprintf(stderr, "nnsearch: %s: %ld training, %ld validation, %ld test rows, %d features\n",
                config, p.train.n, p.val.n, p.test.n, p.train.d);
    ns_data_report dr;
    if (!ns_pipeline_data_check(&c, &p, &dr, &err)) {
        for (int i = 0; i < dr.n_findings && !o.quiet; i++)
            fprintf(stderr, "nnsearch: data: %s (mistake %d): %s; %s\n", dr.findings[i].code,
                    dr.findings[i].mistake, dr.findings[i].message, dr.findings[i].fix);
        ns_data_report_free(&dr);
    }
    ns_run_result res = {0};
    install_signals();
    int rc = ns_run_training(&c, &p, print_epoch, &o, ckpt, model_path, &stop_requested, &res, &err);
    if (rc) {
        rc = report(&err);
    } else if (res.interrupted) {
        if (ckpt)
            fprintf(stderr, "nnsearch: interrupted after %d epochs and a part; the same command "
                    "continues from %s\n", res.epochs, ckpt);
        else
            fprintf(stderr, "nnsearch: interrupted after %d epochs; no model written (pass "
                    "--checkpoint FILE to be able to continue an interrupted run)\n", res.epochs);
        rc = 130;
    } else {
        /* a run continued from a checkpoint is judged on the epochs of this run only */
        ns_finding f[NS_HEALTH_MAX_FINDINGS];
        int nf = 0;
        if (!o.recs_lost) {
            ns_health_spec hs = c.health;
            hs.baseline_loss = ns_pipeline_baseline_loss(&c, &p);
            ns_pipeline_health_noise(&hs, &p);
            nf = ns_health_check(&hs, o.recs, o.n_recs, res.best_epoch, f, NS_HEALTH_MAX_FINDINGS);
        }
        if (o.json) {
            printf("{\"final\":true,\"epochs\":%d,\"best_epoch\":%d,\"stopped_early\":%s,\"diverged\":%s,",
                   res.epochs, res.best_epoch, res.stopped_early ? "true" : "false",
                   res.diverged ? "true" : "false");
            jnum(stdout, "val_loss", res.val_loss, 1);
            if (p.task == NS_TASK_CLASSIFY) {
                jnum(stdout, "val_acc", res.val_acc, 1);
                jnum(stdout, "val_balanced_acc", res.val_bacc, 1);
                jnum(stdout, "val_macro_f1", res.val_f1, 1);
                jnum(stdout, "test_loss", res.test_loss, 1);
                jnum(stdout, "test_acc", res.test_acc, 1);
                jnum(stdout, "test_balanced_acc", res.test_bacc, 1);
                jnum(stdout, "test_macro_f1", res.test_f1, 1);
            } else {
                jnum(stdout, "val_rmse", res.val_rmse, 1);
                jnum(stdout, "test_loss", res.test_loss, 1);
                jnum(stdout, "test_rmse", res.test_rmse, 1);
            }
            printf("\"health\":");
            int len = o.recs_lost ? -1 : ns_findings_json(f, nf, NULL, 0);
            char *hj = len >= 0 ? malloc((size_t)len + 1) : NULL;
            if (hj && ns_findings_json(f, nf, hj, (size_t)len + 1) == len)
                fputs(hj, stdout);
            else
                fputs("null", stdout);
            free(hj);
            printf(",\"model\":");
            jstr(stdout, model_path ? model_path : "");
            printf("}\n");
        } else {
            printf("epochs %d (best %d)%s%s\n", res.epochs, res.best_epoch,
                   res.stopped_early && !res.diverged ? ", stopped early" : "",
                   res.diverged ? ", DIVERGED (training stopped)" : "");
            if (p.task == NS_TASK_CLASSIFY) {
                printf("val_loss %.4f  val_acc %.4f  balanced_acc %.4f  macro_f1 %.4f\n",
                       res.val_loss, res.val_acc, res.val_bacc, res.val_f1);
                if (p.test.n)
                    printf("test_loss %.4f  test_acc %.4f  balanced_acc %.4f  macro_f1 %.4f\n",
                           res.test_loss, res.test_acc, res.test_bacc, res.test_f1);
            } else {
                printf("val_loss %.4f  val_rmse %.4g\n", res.val_loss, res.val_rmse);
                if (p.test.n)
                    printf("test_loss %.4f  test_rmse %.4g\n", res.test_loss, res.test_rmse);
            }
            if (o.recs_lost)
                printf("health: not checked (out of memory)\n");
            else if (!nf)
                printf("health: ok (no detector fired)\n");
            for (int i = 0; i < nf; i++)
                printf("health: %s (mistake %d): %s; fix: %s\n", f[i].code, f[i].mistake,
                       f[i].message, f[i].fix);
            printf("model %s\n", model_path);
        }
    }
    free(o.recs);
    free(model_path);
    ns_prepared_free(&p);
    ns_config_free(&c);
    return rc;
}

/* One "feature (+2.1 std)" item of the shift warning. */
static void print_shift(const ns_drift_feature *f)
{
    if (isinf(f->smd))
        fprintf(stderr, "%s (constant in training, differs now)", f->name);
    else
        fprintf(stderr, "%s (%+.1f std)", f->name, f->smd);
}

/* Drift is a warning, never an error: the predictions are written and the exit status
 * stays 0, but the user learns that the model may fail on this data and what to do. */
static void print_drift(const ns_predict_summary *sum, const char *model)
{
    static const char advice[] =
        "check that the new data is preprocessed like the training data (same columns, units "
        "and scaling), or retrain on data like it";
    if (sum->drift_state == NS_DRIFT_NO_STATS) {
        fprintf(stderr, "nnsearch: note: %s has no training statistics (model files of "
                "format version 1 have none), so the drift check was skipped; re-train it "
                "with this nnsearch to get the check\n", model);
        return;
    }
    if (sum->drift_state != NS_DRIFT_DONE)
        return;
    const ns_drift_report *r = &sum->drift;
    if (r->warn_shift) {
        fprintf(stderr, "nnsearch: warning: drift: %d of %d features (%.1f%%) shifted from "
                "the training data (mean moved by more than %.1f training std over %ld rows): ",
                r->n_shifted, r->d, 100.0 * r->n_shifted / r->d, NS_DRIFT_SMD, r->rows);
        int shown = 0;
        for (int k = 0; k < r->n_worst_smd; k++)
            if (fabs(r->worst_smd[k].smd) > NS_DRIFT_SMD) {
                if (shown++)
                    fputs(", ", stderr);
                print_shift(&r->worst_smd[k]);
            }
        if (r->n_shifted > shown)
            fprintf(stderr, " and %d more", r->n_shifted - shown);
        fprintf(stderr, "; the model may fail on data that drifted from its training data; "
                "%s\n", advice);
    }
    if (r->warn_out) {
        fprintf(stderr, "nnsearch: warning: drift: %.1f%% of the input values (%ld of %ld) lie "
                "outside their feature's training range (warning above %.1f%%), most in ",
                100.0 * r->out_share, r->out_values, r->rows * (long)r->d, 100.0 * r->out_limit);
        for (int k = 0; k < r->n_worst_out; k++)
            fprintf(stderr, "%s%s (%.1f%% of rows)", k ? ", " : "", r->worst_out[k].name,
                    100.0 * r->worst_out[k].out_share);
        fprintf(stderr, "; the model extrapolates there and may fail on such data (drift); "
                "%s\n", advice);
    }
}

static int cmd_predict(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *out = NULL, *labels = NULL;
    int drift_check = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-drift-check"))
            drift_check = 0;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--labels")) {
            if (i + 1 >= argc)
                return usage_error("option %s needs a value", a);
            if (!strcmp(a, "--labels"))
                labels = argv[++i];
            else
                out = argv[++i];
        } else if (a[0] == '-' && a[1])
            return usage_error("unknown option '%s'", a);
        else if (!model)
            model = a;
        else if (!data)
            data = a;
        else
            return usage_error("unexpected argument '%s'", a);
    }
    if (!model || !data)
        return usage_error("%s", "predict needs MODEL and DATA");
    ns_err err = {0};
    ns_predict_summary sum;
    int rc = ns_predict_file(model, data, labels, out, drift_check, &sum, &err);
    if (rc) {
        ns_predict_summary_free(&sum);
        return report(&err);
    }
    if (sum.has_accuracy)
        fprintf(stderr, "nnsearch: %ld rows, accuracy %.4f, balanced_acc %.4f, macro_f1 %.4f\n",
                sum.rows, sum.accuracy, sum.balanced_acc, sum.macro_f1);
    else if (sum.has_rmse)
        fprintf(stderr, "nnsearch: %ld rows, rmse %.6g\n", sum.rows, sum.rmse);
    else
        fprintf(stderr, "nnsearch: %ld rows predicted\n", sum.rows);
    print_drift(&sum, model);
    ns_predict_summary_free(&sum);
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static void jarray(FILE *f, const double *v, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        if (isfinite(v[i]))
            fprintf(f, "%.9g", v[i]);
        else
            fputs("null", f);
    }
    fputc(']', f);
}

/* `nnsearch lr-find CONFIG`: the LR range test of the config's model and optimizer on its
 * data, with N seeds; a config with search spaces is instantiated at u = 0.5 in every
 * dimension (the middle of each space) so that a search config can be checked as it is. */
static int cmd_lrfind(int argc, char **argv)
{
    const char *config = NULL, *csv = NULL;
    int json = 0;
    long seeds = 3, steps = -1;
    double start = NAN, end = NAN;
    ns_lr_rule rule = NS_LR_RULE_DEFAULT;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--seeds") || !strcmp(a, "--start") || !strcmp(a, "--end") ||
                 !strcmp(a, "--steps") || !strcmp(a, "--rule") || !strcmp(a, "--csv")) {
            if (i + 1 >= argc)
                return usage_error("option %s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--seeds")) {
                if (parse_long(v, &seeds) || seeds < 1 || seeds > 100)
                    return usage_error("bad value for --seeds: expected a whole number 1..100, got '%s'", v);
            } else if (!strcmp(a, "--steps")) {
                if (parse_long(v, &steps) || steps < NS_LRFIND_MIN_STEPS || steps > 100000)
                    return usage_error("bad value for --steps: expected a whole number 10..100000, got '%s'", v);
            } else if (!strcmp(a, "--start") || !strcmp(a, "--end")) {
                double x;
                if (parse_double(v, &x) || !(x > 0))
                    return usage_error("bad value for %s: expected a positive number", a);
                *(a[2] == 's' ? &start : &end) = x;
            } else if (!strcmp(a, "--rule")) {
                if (ns_lr_rule_parse(v, &rule))
                    return usage_error("bad value for --rule: '%s'; use valley, steepest or min10", v);
            } else {
                csv = v;
            }
        } else if (a[0] == '-' && a[1])
            return usage_error("unknown option '%s'", a);
        else if (!config)
            config = a;
        else
            return usage_error("unexpected argument '%s'", a);
    }
    if (!config)
        return usage_error("%s", "lr-find needs a CONFIG file");
    ns_lrfind_spec spec;
    ns_lrfind_spec_default(&spec);
    spec.batch_size = 0; /* the config's */
    if (isfinite(start))
        spec.lr_start = start;
    if (isfinite(end))
        spec.lr_end = end;
    if (steps > 0)
        spec.steps = (int)steps;
    if (!(spec.lr_end > spec.lr_start)) {
        fprintf(stderr, "nnsearch: lr-find: end LR %g must be above the start LR %g (see nnsearch lr-find --help)\n",
                spec.lr_end, spec.lr_start);
        return 2;
    }

    ns_err err = {0};
    ns_config base, c;
    if (ns_config_load(&base, config, &err))
        return report(&err);
    if (ns_pipeline_device_check(&base, &err)) {
        ns_config_free(&base);
        return report(&err);
    }
    double *mid = NULL;
    if (base.space.n > 0 && (mid = malloc((size_t)base.space.n * sizeof *mid)))
        for (int i = 0; i < base.space.n; i++)
            mid[i] = 0.5;
    int rc = base.space.n > 0 && !mid ? ns_err_set(&err, NS_ERUNTIME, "out of memory")
                                      : ns_config_instantiate(&base, mid, &c, &err);
    free(mid);
    ns_config_free(&base);
    if (rc)
        return report(&err);
    ns_prepared p;
    if (ns_prepare_data(&p, &c, &err)) {
        ns_config_free(&c);
        return report(&err);
    }
    int n = (int)seeds;
    ns_lrfind_curve *curves = calloc((size_t)n, sizeof *curves);
    ns_lrfind_suggestion *sug = calloc((size_t)n, sizeof *sug);
    double *picks = calloc((size_t)n, sizeof *picks);
    if (!curves || !sug || !picks) {
        rc = report(&(ns_err){NS_ERUNTIME, "out of memory"});
        goto done;
    }
    for (int k = 0; k < n; k++) {
        if ((rc = ns_lrfind_config(&c, &p, &spec, ns_lrfind_seed(&c, k), &curves[k], &err))) {
            rc = report(&err);
            goto done;
        }
        ns_lrfind_suggest(&curves[k], &sug[k]);
        picks[k] = ns_lrfind_pick(&sug[k], rule);
    }
    double centre, lo, hi, spread;
    ns_lrfind_bounds(picks, n, &centre, &lo, &hi, &spread);
    if (csv && (rc = ns_lrfind_write_csv_seeds(csv, curves, n, &err))) {
        rc = report(&err);
        goto done;
    }
    if (!isfinite(centre)) {
        fprintf(stderr, "nnsearch: lr-find: no seed gave a usable curve (the loss blew up within "
                "%d steps); lower --start or raise --steps\n", curves[0].n);
        rc = 1;
        goto done;
    }
    if (json) {
        printf("{\"config\":");
        jstr(stdout, config);
        printf(",\"optimizer\":\"%s\",\"batch_size\":%d,", ns_opt_kind_name(c.train.opt.kind),
               c.train.batch_size < p.train.n ? c.train.batch_size : (int)p.train.n);
        jnum(stdout, "start", spec.lr_start, 1);
        jnum(stdout, "end", spec.lr_end, 1);
        printf("\"steps\":%d,\"rule\":\"%s\",\"seeds\":[", spec.steps, ns_lr_rule_name(rule));
        for (int k = 0; k < n; k++) {
            printf("%s{\"seed\":%d,\"points\":%d,\"blew_up\":%s,", k ? "," : "", k, curves[k].n,
                   curves[k].blew_up ? "true" : "false");
            jnum(stdout, "steepest", sug[k].steepest, 1);
            jnum(stdout, "valley", sug[k].valley, 1);
            jnum(stdout, "min10", sug[k].min10, 1);
            jnum(stdout, "min_loss_lr", sug[k].min_loss_lr, 1);
            jnum(stdout, "pick", picks[k], 1);
            printf("\"lr\":");
            jarray(stdout, curves[k].lr, curves[k].n);
            printf(",\"loss\":");
            jarray(stdout, curves[k].loss, curves[k].n);
            printf(",\"smoothed\":");
            jarray(stdout, curves[k].smoothed, curves[k].n);
            printf("}");
        }
        printf("],");
        jnum(stdout, "suggestion", centre, 1);
        jnum(stdout, "spread", spread, 1);
        jnum(stdout, "lr_min", lo, 1);
        jnum(stdout, "lr_max", hi, 0);
        printf("}\n");
    } else {
        printf("lr-find %s: %s, batch %d, %d seeds, LR %g to %g in %d steps\n", config,
               ns_opt_kind_name(c.train.opt.kind),
               c.train.batch_size < p.train.n ? c.train.batch_size : (int)p.train.n, n,
               spec.lr_start, spec.lr_end, spec.steps);
        for (int k = 0; k < n; k++)
            printf("seed %d: steepest %.3g  valley %.3g  min10 %.3g  (%d steps%s)\n", k,
                   sug[k].steepest, sug[k].valley, sug[k].min10, curves[k].n,
                   curves[k].blew_up ? ", stopped at the blow-up" : "");
        printf("suggestion: lr %.3g (rule %s, median of %d seeds)\n", centre, ns_lr_rule_name(rule), n);
        printf("spread: %.3gx (largest / smallest pick)\n", spread);
        printf("bounds: %.3g .. %.3g (smallest pick / %g, largest x %g)\n", lo, hi,
               NS_LRFIND_MARGIN, NS_LRFIND_MARGIN);
        ns_lrfind_plot_seeds(stdout, curves, n, centre, lo, hi, 60, 15);
        if (csv)
            printf("curves: %s\n", csv);
    }
    rc = 0;
done:
    for (int k = 0; curves && k < n; k++)
        ns_lrfind_curve_free(&curves[k]);
    free(curves);
    free(sug);
    free(picks);
    ns_prepared_free(&p);
    ns_config_free(&c);
    return rc;
}

/* ---- commands --------------------------------------------------------------------------- */

static int run_train(int argc, char **argv)
{
    return cmd_train(argc, argv, 0);
}

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv); /* the arguments after the command word, in order */
    const char *usage;
} command;

static const command commands[] = {
    {"resume", cmd_resume, usage_resume},   {"status", cmd_status, usage_status},
    {"export", cmd_export, usage_export},   {"report", cmd_report, usage_report},
    {"train", run_train, usage_train},
    {"predict", cmd_predict, usage_predict}, {"lr-find", cmd_lrfind, usage_lrfind},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static const command *find_command(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

/* Options of any command that take a value: the word after them is never the command. */
static int takes_value(const char *a)
{
    static const char *const opts[] = {"-o", "--output", "-j", "--budget", "--checkpoint",
                                       "--seed", "--threads", "--seeds", "--start", "--end",
                                       "--steps", "--rule", "--csv", "--labels"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (!strcmp(a, opts[i]))
            return 1;
    return 0;
}

/* Options of any command that take no value. */
static int is_flag(const char *a)
{
    static const char *const opts[] = {"--quiet", "--force", "--json", "--no-drift-check",
                                       "-h", "--help", "--version"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (!strcmp(a, opts[i]))
            return 1;
    return 0;
}

static int is_help(const char *a)
{
    return !strcmp(a, "-h") || !strcmp(a, "--help");
}

/* The optimal string alignment distance of a and b (both short), for "did you mean". */
static int edit_distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 30 || lb > 30)
        return 99;
    int d[32][32];
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int c = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + c < v)
                v = d[i - 1][j - 1] + c;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

/* A config is a path to an existing file, or a name ending in .yaml or .yml (a missing
 * one is then reported by the config loader with its path). */
static int is_config_path(const char *w)
{
    struct stat st;
    size_t n = strlen(w);
    if (!stat(w, &st) && S_ISREG(st.st_mode))
        return 1;
    return (n > 5 && !strcmp(w + n - 5, ".yaml")) || (n > 4 && !strcmp(w + n - 4, ".yml"));
}

/* One line for a first word that is neither a command nor a config. */
static int unknown_command(const char *w)
{
    struct stat st;
    if (!stat(w, &st) && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "nnsearch: %s is a folder, not a config file; for the study in it: "
                "nnsearch status %s, or nnsearch resume %s\n", w, w, w);
        return 2;
    }
    const char *best = NULL;
    int bd = 99;
    for (int i = 0; i < N_COMMANDS; i++) {
        int d = edit_distance(w, commands[i].name);
        if (d < bd)
            bd = d, best = commands[i].name;
    }
    if (best && (bd <= 2 || (strlen(w) >= 3 && !strncmp(w, best, strlen(w)))))
        fprintf(stderr, "nnsearch: unknown command '%s' (did you mean '%s'?)\n", w, best);
    else
        fprintf(stderr, "nnsearch: unknown command '%s': not a command, nor a config file (an "
                "existing file or a name ending in .yaml/.yml); see nnsearch --help\n", w);
    return 2;
}

/* --device D or --device=D anywhere on the line: taken out of argv (every command accepts
 * it) and set for every config this process reads. 0, or 2 after a message. */
static ns_device device_chosen = NS_DEVICE_CPU;
static int device_given;

static int take_device(int *argc, char **argv)
{
    for (int i = 1; i < *argc; i++) {
        const char *v = NULL;
        int used = 0;
        if (!strcmp(argv[i], "--device")) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "nnsearch: --device needs a value: cpu, cuda or auto\n");
                return 2;
            }
            v = argv[i + 1];
            used = 2;
        } else if (!strncmp(argv[i], "--device=", 9)) {
            v = argv[i] + 9;
            used = 1;
        } else {
            continue;
        }
        ns_device d;
        if (!strcmp(v, "cpu"))
            d = NS_DEVICE_CPU;
        else if (!strcmp(v, "cuda"))
            d = NS_DEVICE_CUDA;
        else if (!strcmp(v, "auto"))
            d = NS_DEVICE_AUTO;
        else {
            fprintf(stderr, "nnsearch: --device %s: expected cpu, cuda or auto\n", v);
            return 2;
        }
        /* auto is decided once, here, so that every trial of the run trains alike */
        device_chosen = ns_device_resolve(d);
        device_given = 1 + (d == NS_DEVICE_AUTO);
        ns_config_device_override((int)device_chosen);
        memmove(argv + i, argv + i + used, (size_t)(*argc - i - used + 1) * sizeof *argv);
        *argc -= used;
        i--;
    }
    return 0;
}

static int run_command(int argc, char **argv)
{
    if (device_given == 2) { /* --device auto: say what it chose */
        char desc[256] = "";
        if (device_chosen == NS_DEVICE_CUDA)
            ns_cuda_describe(0, desc, sizeof desc);
        fprintf(stderr, "nnsearch: device auto: %s (%s)\n", ns_device_name(device_chosen),
                device_chosen == NS_DEVICE_CUDA ? desc
                : ns_cuda_compiled() ? "no GPU answers"
                                     : "this nnsearch is built without CUDA");
    }
    if (device_given && device_chosen == NS_DEVICE_CUDA && ns_cuda_device_count() < 1) {
        ns_err e = {0};
        ns_backend_free(ns_backend_cuda_alloc(0, NS_PREC_FP32, &e));
        fprintf(stderr, "nnsearch: %s\n", e.msg);
        return 2;
    }
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--version")) {
        char mpi[256];
        ns_dist_library(mpi, sizeof mpi);
        printf("nnsearch %s\n", NS_VERSION);
        if (ns_dist_compiled())
            printf("mpi: yes, %s (mpirun -n N nnsearch CONFIG: docs/config.md, \"Running under MPI\")\n", mpi);
        else
            printf("mpi: no (built without MPI: install libopenmpi-dev and rebuild)\n");
        if (ns_cuda_compiled()) {
            int n = ns_cuda_device_count();
            char desc[256] = "";
            if (n > 0)
                ns_cuda_describe(0, desc, sizeof desc);
            printf("cuda: yes, %d GPU(s)%s%s (--device cuda or auto)\n", n, n > 0 ? ": " : "", desc);
        } else {
            printf("cuda: no (built without CUDA: rebuild where nvcc is found)\n");
        }
        return 0;
    }
    /* The command word (or config): the first argument that is neither an option nor an
     * option's value, so that options may come before it (nnsearch -j 2 cfg.yaml). */
    int at = -1;
    for (int i = 1; i < argc && at < 0; i++) {
        if (argv[i][0] != '-' || !argv[i][1])
            at = i;
        else if (takes_value(argv[i]))
            i++;
    }
    /* everything but the command word, in order */
    char **rest = malloc((size_t)argc * sizeof *rest);
    if (!rest)
        return report(&(ns_err){NS_ERUNTIME, "out of memory"});
    int n = 0, help = 0;
    for (int i = 1; i < argc; i++)
        if (i != at) {
            rest[n++] = argv[i];
            help |= is_help(argv[i]);
        }
    const char *word = at > 0 ? argv[at] : NULL;
    int rc;
    if (!word || !strcmp(word, "help")) {
        const command *c = word && n > 0 ? find_command(rest[0]) : NULL;
        if (word || help) {
            fputs(c ? c->usage : n > 0 && is_config_path(rest[0]) ? usage_search : usage, stdout);
            rc = 0;
        } else {
            /* an option no command knows is named; known ones only lack the command */
            const char *odd = NULL;
            for (int i = 0; i < n && !odd; i++)
                if (rest[i][0] == '-' && rest[i][1] && !takes_value(rest[i]) && !is_flag(rest[i]))
                    odd = rest[i];
            rc = odd ? usage_error("unknown option '%s'", odd)
                     : usage_error("%s", "missing the command or CONFIG.yaml");
        }
    } else if (find_command(word)) {
        const command *c = find_command(word);
        if (help) {
            fputs(c->usage, stdout);
            rc = 0;
        } else {
            help_cmd = c->name;
            rc = c->run(n, rest);
        }
    } else if (!is_config_path(word)) {
        rc = help ? (fputs(usage, stdout), 0) : unknown_command(word);
    } else if (help) {
        fputs(usage_search, stdout);
        rc = 0;
    } else {
        /* nnsearch CONFIG.yaml: the search it describes, or one training run without one. */
        ns_config c;
        ns_err err = {0};
        if (ns_config_load(&c, word, &err)) {
            rc = report(&err);
        } else {
            int search = c.search.given;
            ns_config_free(&c);
            if (search) {
                rc = cmd_search(n, rest, word);
            } else {
                /* train's parser takes the config among its arguments */
                char **targs = malloc((size_t)(n + 1) * sizeof *targs);
                if (!targs) {
                    rc = report(&(ns_err){NS_ERUNTIME, "out of memory"});
                } else {
                    targs[0] = (char *)word;
                    memcpy(targs + 1, rest, (size_t)n * sizeof *targs);
                    rc = cmd_train(n + 1, targs, 1);
                    free(targs);
                }
            }
        }
    }
    free(rest);
    return rc;
}

/* Under mpirun or srun, MPI starts here: ranks above 0 become workers that train what
 * rank 0 hands them (search/stages/remote.c) and never run a command themselves; rank 0
 * runs the command as always, a search spread over the workers. Without a launcher
 * nothing of MPI is touched. */
int main(int argc, char **argv)
{
    if (take_device(&argc, argv))
        return 2;
    if (!ns_dist_launched())
        return run_command(argc, argv);
    const char *world = getenv("OMPI_COMM_WORLD_SIZE");
    if (!world)
        world = getenv("PMI_SIZE");
    if (!ns_dist_compiled()) {
        if (world && !strcmp(world, "1"))
            return run_command(argc, argv);
        /* each process would run the whole study on its own, all into one folder */
        fprintf(stderr, "nnsearch: started by mpirun or srun, but this nnsearch was built without "
                "MPI (see nnsearch --version); install libopenmpi-dev and rebuild "
                "(scripts/setup.sh), or run it without the launcher\n");
        return 2;
    }
    int rank = 0, rc;
    ns_err err = {0};
    if (ns_dist_init(&rank, &mpi_ranks, &err))
        return report(&err);
    if (rank > 0) {
        install_signals(); /* mpirun passes SIGTERM on: a running trial checkpoints */
        if ((rc = ns_search_worker(rank, &stop_requested, &err))) {
            report(&err);
            ns_dist_abort(rc); /* rank 0 waits for this rank's trials: end the job */
        }
        ns_dist_finalize();
        return rc;
    }
    rc = run_command(argc, argv);
    if (ns_search_trials_in_flight() > 0) {
        fprintf(stderr, "nnsearch: ending every rank: workers still train trials of the failed run "
                "(`nnsearch resume DIR` continues it)\n");
        ns_dist_abort(rc ? rc : 1);
    }
    ns_search_workers_release(mpi_ranks);
    ns_dist_finalize();
    return rc;
}
