/* driver.h — `nnsearch CONFIG`: runs, or continues, the search a config describes. It owns
 * the study folder: the store (study.db), one folder per trial (trials/<n>/config.yaml,
 * checkpoint, model.nsm) and best.yaml. Trials run on a pool of `parallel` workers over one
 * shared, read-only copy of the data; every state change and epoch is committed as it
 * happens, so a search killed at any moment continues where it stood. */
#ifndef NS_DRIVER_H
#define NS_DRIVER_H

#include <stdio.h>

#include "engine/err.h"
#include "engine/stop.h"

/* DIR/config.source: the absolute path of the config a study was made from, written
 * before the first trial; `nnsearch resume DIR` runs that config again. */
#define NS_STUDY_SOURCE_FILE "config.source"
/* In trials/<n>/: a cross-validated winner's refit on every training row, which export
 * hands out instead of the trial's own config. */
#define NS_REFIT_CONFIG "refit.yaml"
#define NS_ENSEMBLE_CONFIG "ensemble.yaml"

typedef struct ns_search_opts {
    const char *config_path;
    const char *output;        /* study folder; NULL: the config's search.output */
    int parallel;              /* trials at once; 0: the config's search.parallel */
    int force;                 /* continue a study whose config changed */
    int quiet;                 /* no progress lines */
    FILE *progress;            /* progress lines (stderr) */
    const ns_stop_flag *stop;  /* set (by a signal) to stop: running trials checkpoint */
    double budget;             /* wall-clock seconds for this run of the study; 0: the
                                  config's search.budget */
} ns_search_opts;

typedef struct ns_search_result {
    int interrupted;           /* *stop was set; the study continues with the same command */
    long trials_run;           /* trials this call trained to an end state */
    long best_trial;           /* -1 when no trial completed */
    double best_metric;
    char dir[4096];            /* the study folder */
} ns_search_result;

/* Runs the stages of the config's search: section in order, skipping what the study in the
 * output folder already holds. NS_EINPUT for a bad config or a study made from another
 * config (unless opts->force); a failing or diverging trial is recorded and the search
 * goes on. */
int ns_search_run(const ns_search_opts *opts, ns_search_result *res, ns_err *err);

#endif
