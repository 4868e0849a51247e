/* store.h — the study store: one SQLite database per study (DIR/study.db) holding the
 * study's config, its stages and decisions, every trial and every epoch record, each write
 * committed as it happens so that a SIGKILL at any moment leaves a consistent study.
 * It is not the driver: it decides nothing, builds no JSON (JSON columns are the caller's
 * text) and never prints. Schema and meaning of every column: docs/study-format.md.
 *
 * One writer: ns_store_open takes an exclusive lock on DIR/study.lock for the lifetime of
 * the handle, so a second nnsearch on the same study is refused, not blocked. Readers
 * (`nnsearch status`) use ns_store_open_readonly, which takes no lock and never blocks the
 * writer. A handle belongs to one thread at a time. */
#ifndef NS_STORE_H
#define NS_STORE_H

#include <stdint.h>

#include "engine/err.h"
#include "engine/train/health.h"
#include "engine/train/train.h"

#define NS_STORE_VERSION 4 /* PRAGMA user_version of the schema this code writes */

/* Selection: a trial with any of these findings is never the best while a complete trial
 * without them exists (unstable or overfitting runs; not_converged, budget_limited and
 * vanishing_gradients only warn). The driver, the stages, status and export all use this set. */
#define NS_SELECT_REJECT                                                                   \
    (NS_HEALTH_DIVERGED | NS_HEALTH_OSCILLATING | NS_HEALTH_LOSS_SPIKES |                   \
     NS_HEALTH_OVERFITTING | NS_HEALTH_GEN_GAP | NS_HEALTH_EXPLODING)

typedef struct ns_store ns_store;

typedef enum ns_stage_state {
    NS_STAGE_PENDING = 0,
    NS_STAGE_RUNNING,
    NS_STAGE_COMPLETE,
} ns_stage_state;

typedef enum ns_trial_state {
    NS_TRIAL_QUEUED = 0,
    NS_TRIAL_RUNNING,
    NS_TRIAL_COMPLETE,
    NS_TRIAL_PRUNED,
    NS_TRIAL_DIVERGED,
    NS_TRIAL_FAILED,
    NS_TRIAL_INTERRUPTED,
} ns_trial_state;

/* The name stored in the database ("pending", "queued", ...); "?" for a bad value. */
const char *ns_stage_state_name(ns_stage_state st);
const char *ns_trial_state_name(ns_trial_state st);

/* The study row (one per database). Strings are owned by the row. */
typedef struct ns_study_row {
    char *name;
    char *config;          /* the config file's text */
    char *config_hash;     /* hex, as the caller computed it */
    char *original_hash;   /* the hash the study was created with (differs after --force) */
    uint64_t seed;
    char *metric;          /* the validation metric trials are ranked by ("val_acc", ...) */
    int higher_is_better;  /* 1 when a larger metric is better (accuracy), 0 for losses */
    double created;        /* Unix time, seconds */
    double updated;        /* Unix time the config was last recorded */
    char *version;         /* nnsearch version that created the study */
    char *data_checks;     /* JSON text of the data checks, or NULL */
} ns_study_row;

typedef struct ns_stage_row {
    char *name;
    int position;          /* order of the stage in the pipeline */
    ns_stage_state state;
    char *decision;        /* JSON text, or NULL */
    double started;        /* Unix time; NaN when not started */
    double finished;       /* Unix time; NaN unless complete */
} ns_stage_row;

typedef struct ns_trial_row {
    int number;
    char *stage;
    char *params;          /* JSON text */
    uint64_t seed;
    ns_trial_state state;
    double started;        /* Unix time of the first start; NaN while queued */
    double finished;       /* Unix time; NaN unless finished */
    double seconds;        /* training seconds reported by the caller; NaN if unknown */
    int epochs;            /* epochs run (0 until finished) */
    double val_metric;     /* NaN when unknown or not finite */
    char *result;          /* JSON text, or NULL */
    char *health;          /* JSON text, or NULL */
    int64_t health_flags;  /* bits of the findings' codes (engine/train/health.h); -1: not judged */
    char *checkpoint;      /* path, or NULL */
    char *error;           /* one line, or NULL */
} ns_trial_row;

/* What a finished trial reports to ns_store_trial_finish. NULL strings store NULL. */
typedef struct ns_trial_result {
    double seconds;        /* training seconds (all runs of the trial together) */
    int epochs;
    double val_metric;     /* non-finite stores NULL: never "best" */
    const char *result;    /* JSON text */
    const char *health;    /* JSON text */
    int64_t health_flags;  /* NS_HEALTH_BIT of each finding's code; stored only with health
                              (NULL health: NULL flags, not judged) */
    const char *error;     /* one line, for failed trials */
} ns_trial_result;

/* Opens DIR/study.db for writing and locks the study. create != 0: makes DIR (and its
 * parents) and a new study when there is none; create == 0: DIR must hold a study.
 * Refuses (NS_EINPUT) a study held by another process, another program's database or a
 * newer/unknown schema version, and a damaged study (ns_store_check_damage, PRAGMA
 * quick_check, a file SQLite finds malformed) without writing to it: the one line says
 * what is damaged and how to go on. *out is NULL on error. */
int ns_store_open(ns_store **out, const char *dir, int create, ns_err *err);
/* Opens an existing study for reading only, without the lock (works while a writer runs).
 * Every write on such a handle fails with NS_ERUNTIME. Damage is refused as above. */
int ns_store_open_readonly(ns_store **out, const char *dir, ns_err *err);
/* NS_EINPUT when DIR/trials holds trials but DIR/study.db is missing or empty: the study's
 * record is lost, and starting afresh would silently discard it. NS_OK otherwise (a
 * folder without trials is a study not started yet, or no study). */
int ns_store_check_damage(const char *dir, ns_err *err);
/* Closes the database and releases the lock. NULL is fine. */
void ns_store_close(ns_store *s);

/* Explicit transaction around several writes (all of them or none survive a kill); on a
 * read-only handle, one snapshot for several queries. No nesting; every single write
 * outside begin/commit is its own transaction. */
int ns_store_begin(ns_store *s, ns_err *err);
int ns_store_commit(ns_store *s, ns_err *err);
/* Undoes the open transaction; a no-op when none is open. */
void ns_store_rollback(ns_store *s);

/* Fresh study: records the study row with its metric (name, not NULL) and direction.
 * Existing study: a different hash, seed or metric (name or direction) is refused with
 * NS_EINPUT unless force, which records the new config, hash, seed and metric. */
int ns_store_study_init(ns_store *s, const char *name, const char *config_text,
                        const char *hash, uint64_t seed, const char *metric,
                        int higher_is_better, int force, ns_err *err);
/* Reads the study row into *row (caller frees with ns_study_row_free); NS_EINPUT when
 * the study has not been initialised. */
int ns_store_study_get(ns_store *s, ns_study_row *row, ns_err *err);
void ns_study_row_free(ns_study_row *row);

/* Records a stage (insert or update). started is set the first time the state is not
 * pending; finished is set when complete and cleared otherwise; decision NULL keeps the
 * stored decision. */
int ns_store_stage_set(ns_store *s, const char *name, int position, ns_stage_state state,
                       const char *decision, ns_err *err);
/* One stage by name; *found = 0 (row zeroed) when it is not recorded. Free the row with
 * ns_stage_row_free. */
int ns_store_stage_get(ns_store *s, const char *name, ns_stage_row *row, int *found,
                       ns_err *err);
/* All stages ordered by position; caller frees with ns_stage_rows_free. */
int ns_store_stages(ns_store *s, ns_stage_row **rows, int *n, ns_err *err);
void ns_stage_row_free(ns_stage_row *row);
void ns_stage_rows_free(ns_stage_row *rows, int n);

/* Records the data checks' JSON text (NULL stores NULL) in the study row. */
int ns_store_study_set_data_checks(ns_store *s, const char *json, ns_err *err);

/* The number the next trial should take: 1 + the largest recorded, 0 for none. */
int ns_store_trial_next(ns_store *s, int *number, ns_err *err);
/* Records trial `number` as queued in `stage` (which must be recorded) with its params
 * (JSON text, not NULL) and seed. A number that exists is an error. */
int ns_store_trial_insert(ns_store *s, int number, const char *stage, const char *params,
                          uint64_t seed, ns_err *err);
/* queued or interrupted -> running; started is kept from the first start. */
int ns_store_trial_start(ns_store *s, int number, ns_err *err);
/* Records the path of the trial's checkpoint (NULL clears it). */
int ns_store_trial_set_checkpoint(ns_store *s, int number, const char *path, ns_err *err);
/* running -> state (complete, pruned, diverged, failed or interrupted) with the result
 * fields of r (NULL: none) and finished = now. Any other transition is an error
 * (NS_ERUNTIME). */
int ns_store_trial_finish(ns_store *s, int number, ns_trial_state state,
                          const ns_trial_result *r, ns_err *err);
/* Records trial `number`'s predicted class (0..65535) for each of `rows` held-out rows,
 * replacing what it had (a trial run again after a kill). */
int ns_store_trial_pred_set(ns_store *s, int number, const int32_t *pred, long rows, ns_err *err);
/* Trial `number`'s predictions, malloc'd into *pred (caller frees), their count in *rows;
 * *pred NULL and *rows 0 when it has none (or the study predates them). */
int ns_store_trial_pred_get(ns_store *s, int number, int32_t **pred, long *rows, ns_err *err);
/* One trial; *found = 0 when it does not exist. Free the row with ns_trial_row_free. */
int ns_store_trial_get(ns_store *s, int number, ns_trial_row *row, int *found, ns_err *err);
/* All trials ordered by number; caller frees with ns_trial_rows_free. */
int ns_store_trials(ns_store *s, ns_trial_row **rows, int *n, ns_err *err);
/* The trials numbered first or more, ordered by number; as ns_store_trials. */
int ns_store_trials_from(ns_store *s, int first, ns_trial_row **rows, int *n, ns_err *err);
/* The complete trial with the lowest (higher_is_better == 0) or highest val_metric,
 * ties to the lowest number; trials without a finite metric never win, and a trial whose
 * health_flags share a bit with reject wins only when every candidate does. *found = 0
 * when there is none. */
int ns_store_best(ns_store *s, int higher_is_better, int64_t reject, ns_trial_row *row,
                  int *found, ns_err *err);
void ns_trial_row_free(ns_trial_row *row);
void ns_trial_rows_free(ns_trial_row *rows, int n);
/* Turns trials left running by a killed process into interrupted (use on resume);
 * *n_reset (may be NULL) receives how many. */
int ns_store_reset_running(ns_store *s, int *n_reset, ns_err *err);

/* Records one epoch of a trial. Recording an epoch again replaces it (a resumed trial
 * repeats the epochs after its last checkpoint). Non-finite values store NULL. */
int ns_store_epoch_add(ns_store *s, int trial, const ns_epoch_record *rec, ns_err *err);
/* Deletes the trial's epoch records after `epoch` (resume from that checkpoint). */
int ns_store_epochs_truncate(ns_store *s, int trial, int epoch, ns_err *err);
/* The trial's epoch records in order (*recs NULL when none; caller free()s it). NULL
 * columns read back as NaN; improved is not stored and reads back as 0. */
int ns_store_epochs(ns_store *s, int trial, ns_epoch_record **recs, int *n, ns_err *err);

/* PRAGMA integrity_check and foreign_key_check; NS_ERUNTIME with the first problem. */
int ns_store_integrity_check(ns_store *s, ns_err *err);

#endif
