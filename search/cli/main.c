/* main.c — the nnsearch command line: every command's help, the command word and global
 * options, the search commands (a search, resume, status, export, report) and exit codes
 * (0 ok, 1 runtime failure, 2 usage/config/data error, 130 interrupted). train, predict and
 * lr-find are in cmd_*.c, what commands share in cli.c. Only main() and the second
 * signal's handler (cli.c) exit; everything they call returns errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/atomic.h"
#include "engine/cuda/cuda.h"
#include "search/cli/cli.h"
#include "search/cli/progress.h"
#include "search/cli/status_export.h"
#include "search/config/config.h"
#include "search/dist/mpi.h"
#include "search/report/report.h"
#include "search/stages/driver.h"
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
    "Progress on stderr; at the end the top trials and the winner (stderr), and on stdout:\n"
    "the path of the exported winner, a 'best:' line, a 'winner:' line with its test score\n"
    "(when the config has a test set) and the path of the HTML report.\n"
    "\n"
    "options:\n"
    "  -o, --output DIR      the study FOLDER, against the working directory\n"
    "                        [search.output, i.e. results/<search.name>]\n"
    "  -j N                  trials at once (under MPI: per worker rank) [search.parallel]\n"
    "  --budget TIME         wall-clock budget of this run (300, 90s, 5m, 1h) [search.budget]\n"
    "  --force               continue a study although its config or data changed\n"
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
    "  --force               continue although the config or the data changed since\n"
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
    "                        [results/<config file name less its extension>/model.nsm]\n"
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

/* MPI_COMM_WORLD's size under mpirun or srun; 1 otherwise (main) */
static int mpi_ranks = 1;

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
    return cli_usage_error("bad value for --budget: expected seconds or a number with s, m or h (e.g. 300, "
                       "5m), got '%s'", v);
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
                        .stop = &cli_stop, .budget = budget, .ranks = mpi_ranks};
    ns_search_result res;
    ns_err err = {0};
    cli_install_signals();
    int rc = ns_search_run(&o, &res, &err);
    ns_term_free(term); /* the live line is cleared before anything else is printed */
    if (rc)
        return cli_report(&err);
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
        fprintf(stderr, "nnsearch: study %s: no trial completed with a metric; nnsearch status %s "
                "says why each ended\n", res.dir, res.dir);
        return 1;
    }
    if ((rc = ns_cmd_export(res.dir, NULL, stdout, &err)))
        return cli_report(&err);
    printf("best: trial %ld, %.6g; details: nnsearch status %s\n", res.best_trial, res.best_metric,
           res.dir);
    print_answer(res.dir);
    return 0;
}

/* The options a search and a resume share. */
typedef struct run_opts {
    long jobs;     /* -j; 0: the config's */
    double budget; /* --budget in seconds; 0: the config's */
    int force, quiet;
} run_opts;

/* Reads argv[*i] into o when it is one of run_opts' options (its value too, *i moved past
 * it): 1 when it was, 0 when not, 2 after printing the usage error of a missing or bad value. */
static int run_option(int argc, char **argv, int *i, run_opts *o)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--force")) {
        o->force = 1;
        return 1;
    }
    if (!strcmp(a, "--quiet")) {
        o->quiet = 1;
        return 1;
    }
    if (strcmp(a, "-j") && strcmp(a, "--budget"))
        return 0;
    if (*i + 1 >= argc)
        return cli_usage_error("option %s needs a value", a);
    const char *v = argv[++*i];
    if (a[1] == 'j') {
        if (cli_parse_long(v, &o->jobs) || o->jobs < 1 || o->jobs > 4096)
            return cli_usage_error("bad value for -j: expected a whole number 1..4096 (as "
                                   "search.parallel), got '%s'", v);
    } else if (parse_duration(v, &o->budget)) {
        return bad_budget(v);
    }
    return 1;
}

static int cmd_search(int argc, char **argv, const char *config)
{
    const char *out = NULL;
    run_opts o = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int r = run_option(argc, argv, &i, &o);
        if (r == 2)
            return 2;
        if (r)
            continue;
        if (strcmp(a, "-o") && strcmp(a, "--output"))
            return cli_usage_error("unknown option or argument '%s'", a);
        if (i + 1 >= argc)
            return cli_usage_error("option %s needs a value", a);
        out = argv[++i];
        if (!out[0])
            return cli_usage_error("option %s needs a folder name, not an empty one", a);
    }
    return search_main(config, out, o.jobs, o.budget, o.force, o.quiet);
}

static int cmd_resume(int argc, char **argv)
{
    const char *dir = NULL;
    run_opts o = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int r = run_option(argc, argv, &i, &o);
        if (r == 2)
            return 2;
        if (r)
            continue;
        if (cli_argument(a, &dir, NULL))
            return 2;
    }
    if (!dir)
        return cli_usage_error("%s", "resume needs the study folder DIR");
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
    return search_main(config, dir, o.jobs, o.budget, o.force, o.quiet);
}

static int cmd_status(int argc, char **argv)
{
    const char *dir = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (cli_argument(argv[i], &dir, NULL))
            return 2;
    }
    if (!dir)
        return cli_usage_error("%s", "status needs the study folder DIR");
    ns_err err = {0};
    return ns_cmd_status(dir, json, stdout, &err) ? cli_report(&err) : 0;
}

static int cmd_export(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (i + 1 >= argc)
                return cli_usage_error("option %s needs a value", argv[i]);
            out = argv[++i];
        } else if (cli_argument(argv[i], &dir, NULL)) {
            return 2;
        }
    }
    if (!dir)
        return cli_usage_error("%s", "export needs the study folder DIR");
    ns_err err = {0};
    return ns_cmd_export(dir, out, stdout, &err) ? cli_report(&err) : 0;
}

static int cmd_report(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (i + 1 >= argc)
                return cli_usage_error("option %s needs a value", argv[i]);
            out = argv[++i];
        } else if (cli_argument(argv[i], &dir, NULL)) {
            return 2;
        }
    }
    if (!dir)
        return cli_usage_error("%s", "report needs the study folder DIR");
    ns_err err = {0};
    if (ns_report_write(dir, out, &err))
        return cli_report(&err);
    if (out)
        printf("%s\n", out);
    else
        printf("%s/%s\n", dir, NS_REPORT_FILE);
    return 0;
}

/* ---- commands --------------------------------------------------------------------------- */

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv); /* the arguments after the command word, in order */
    const char *usage;
} command;

static const command commands[] = {
    {"resume", cmd_resume, usage_resume},   {"status", cmd_status, usage_status},
    {"export", cmd_export, usage_export},   {"report", cmd_report, usage_report},
    {"train", cli_cmd_train, usage_train},
    {"predict", cli_cmd_predict, usage_predict}, {"lr-find", cli_cmd_lrfind, usage_lrfind},
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
        return cli_report(&(ns_err){NS_ERUNTIME, "out of memory"});
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
            rc = odd ? cli_usage_error("unknown option '%s'", odd)
                     : cli_usage_error("%s", "missing the command or CONFIG.yaml");
        }
    } else if (find_command(word)) {
        const command *c = find_command(word);
        if (help) {
            fputs(c->usage, stdout);
            rc = 0;
        } else {
            cli_help_cmd = c->name;
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
            rc = cli_report(&err);
        } else {
            int search = c.search.given;
            ns_config_free(&c);
            if (search) {
                rc = cmd_search(n, rest, word);
            } else {
                /* train's parser takes the config among its arguments */
                char **targs = malloc((size_t)(n + 1) * sizeof *targs);
                if (!targs) {
                    rc = cli_report(&(ns_err){NS_ERUNTIME, "out of memory"});
                } else {
                    targs[0] = (char *)word;
                    memcpy(targs + 1, rest, (size_t)n * sizeof *targs);
                    rc = cli_cmd_train(n + 1, targs);
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
        return cli_report(&err);
    if (rank > 0) {
        cli_install_signals(); /* mpirun passes SIGTERM on: a running trial checkpoints */
        if ((rc = ns_search_worker(rank, &cli_stop, &err))) {
            cli_report(&err);
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
