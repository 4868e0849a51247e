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
/* In trials/<n>/: a cross-validated winner's refit on every training row or fold ensemble,
 * or a holdout winner's config with its decision offsets, which export hands out instead
 * of the trial's own config. */
#define NS_REFIT_CONFIG "refit.yaml"
#define NS_ENSEMBLE_CONFIG "ensemble.yaml"
#define NS_OFFSETS_CONFIG "offsets.yaml"

/* What a running search reports (ns_search_opts.on_progress), so that the caller owns the
 * terminal: the driver prints nothing itself when a callback is given. Every event carries
 * the study's counts as they stand; the pointers live for the call only. Events come from
 * the driver thread and from the pool's workers, one at a time (under the store lock). */
typedef enum ns_progress_kind {
    NS_PROGRESS_NOTE,          /* text: a line about the data or the study (no newline) */
    NS_PROGRESS_STUDY,         /* the study starts; text: its plan in one line */
    NS_PROGRESS_STAGE_BEGIN,   /* a stage starts (a stage complete in the study sends none) */
    NS_PROGRESS_TRIAL_START,   /* trial `trial` starts training */
    NS_PROGRESS_TRIAL_END,     /* trial `trial` reached an end state */
    NS_PROGRESS_STAGE_END      /* decision: the stage's decision (JSON) */
} ns_progress_kind;

typedef struct ns_progress {
    ns_progress_kind kind;
    const char *text;          /* NOTE, STUDY: the line; TRIAL_END: the driver's line */
    const char *stage;         /* "2:batch_sweep"; NULL before the first stage */
    const char *stage_kind;    /* "batch_sweep" */
    int stage_index, n_stages; /* 0-based */
    long stage_planned;        /* the stage's trials; -1: it runs until its budget share ends */
    long stage_done;           /* its trials in an end state */
    long done, total;          /* the study's trials in an end state, and planned (stages
                                  that run until the budget are not counted) */
    int open_ended;            /* the study has a stage that runs until the budget ends */
    int running;               /* trials training now */
    int parallel;              /* trials at once */
    const char *metric;        /* the study metric ("val_acc") */
    int higher;                /* higher metric is better */
    long best_trial;           /* -1: none yet */
    double best;
    double stage_time_left;    /* seconds before the stage starts no more trials (its
                                  seconds or its budget share); INFINITY: no limit */
    double budget_left;        /* seconds of search.budget / --budget left; INFINITY: none */
    /* TRIAL_*: the trial */
    long trial;
    const char *state;         /* TRIAL_END: complete, pruned, diverged, failed */
    double value;              /* TRIAL_END: its metric; NaN when none */
    int epochs;
    double seconds;            /* TRIAL_END: its training time */
    const char *health;        /* TRIAL_END: its findings' codes ("ok", "overfitting") */
    const char *error;         /* TRIAL_END of a failed trial: why */
    int lr_test;               /* TRIAL_END: an LR range test (no metric) */
    const char *decision;      /* STAGE_END */
} ns_progress;

typedef void (*ns_progress_fn)(void *user, const ns_progress *p);

typedef struct ns_search_opts {
    const char *config_path;
    const char *output;        /* study folder; NULL: the config's search.output */
    int parallel;              /* trials at once; 0: the config's search.parallel */
    int force;                 /* continue a study whose config changed */
    int quiet;                 /* no progress lines */
    FILE *progress;            /* progress lines (stderr) when on_progress is NULL */
    ns_progress_fn on_progress;/* progress events (not called when quiet); NULL: lines on
                                  `progress` */
    void *progress_user;
    const ns_stop_flag *stop;  /* set (by a signal) to stop: running trials checkpoint */
    int ranks;                 /* > 1: an MPI run of this many ranks, this one rank 0: the
                                  pool's slots are the workers' (parallel trials each;
                                  remote.c); 0 or 1: trials train here */
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

/* ---- under MPI (mpirun, srun; search/stages/remote.c) ----------------------------------- */

/* Ranks 1..N-1 of an MPI run: waits for rank 0's study, loads its data once and trains the
 * trials rank 0 hands out, rank 0's -j (search.parallel) at a time, each with its own
 * threads, until rank 0 says quit. NS_OK when told to quit (also when rank 0 refused this
 * rank: it says why); an error of the transport or of this host otherwise, after which the
 * job must end (ns_dist_abort): rank 0 would wait for the trial. stop is this process's
 * stop flag; rank 0 raises it here too when it stops. */
int ns_search_worker(int rank, ns_stop_flag *stop, ns_err *err);
/* Rank 0, before MPI ends: tells the workers of a run of `ranks` ranks to quit, whether or
 * not a study ran. With NNSEARCH_MPI_STATS set, prints on stderr the trials sent, the
 * trials per second through rank 0 and the bytes per trial (scripts/bench/mpi). */
void ns_search_workers_release(int ranks);
/* Trials handed to workers whose result never came back (a failed run): the workers are
 * busy with them, so the job must be aborted rather than released. */
int ns_search_trials_in_flight(void);

#endif
