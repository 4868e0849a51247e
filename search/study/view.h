/* view.h — a study as its readers see it: the study row, its stages and its trials from one
 * snapshot of DIR/study.db, ranked best first, and the study's answer (the stages' choice or
 * the best healthy trial). Shared by `status`, `export` and the HTML report, so that they
 * agree on which trial is the best. Reading only: never the lock, never a write. */
#ifndef NS_STUDY_VIEW_H
#define NS_STUDY_VIEW_H

#include "engine/err.h"
#include "search/study/store.h"

typedef struct ns_study_view {
    ns_study_row study;
    ns_stage_row *stages;  /* (n_stages) by position */
    int n_stages;
    ns_trial_row *trials;  /* (n_trials) by number */
    int n_trials;
} ns_study_view;

/* Opens DIR/study.db read-only (no lock); NS_EINPUT "DIR: no study here (no study.db); run
 * nnsearch CONFIG first" when the folder holds none. *s is NULL on error. */
int ns_study_open_readonly(const char *dir, ns_store **s, ns_err *err);
/* The study, its stages and its trials from the open snapshot of s (the caller's
 * ns_store_begin). *v is zeroed on error. Free with ns_study_view_free. */
int ns_study_view_read(ns_store *s, ns_study_view *v, ns_err *err);
/* Open, one snapshot, read, close. */
int ns_study_view_load(const char *dir, ns_study_view *v, ns_err *err);
void ns_study_view_free(ns_study_view *v);

/* 0: complete with a finite metric and no finding that selection rejects (NS_SELECT_REJECT);
 * 1: complete with a finite metric and such a finding; 2: anything else (never the best). */
int ns_trial_rank_class(const ns_trial_row *t);
/* The trials best first (caller frees; NULL when out of memory): class 0 then 1 by metric
 * in the study's direction, ties and class 2 by number; the order of ns_store_best. */
const ns_trial_row **ns_study_view_rank(const ns_study_view *v);
/* The trial the last complete final stage trained (its decision's "trial") or select stage
 * chose ("winner"), or -1: the stages' choice, which is the study's answer whatever scored
 * higher elsewhere. *final (may be NULL): the kind of that decision's final model ("final":
 * "refit", "ensemble" or "offsets"; NS_FINAL_MODEL_OWN when it has none: the trial's own). */
typedef enum ns_final_model_kind {
    NS_FINAL_MODEL_OWN = 0, NS_FINAL_MODEL_REFIT, NS_FINAL_MODEL_ENSEMBLE, NS_FINAL_MODEL_OFFSETS
} ns_final_model_kind;
long ns_study_stages_choice(const ns_stage_row *stages, int n, ns_final_model_kind *final);
/* The study's best trial: the stages' choice when it is complete with a metric, else the
 * first of ranked (ns_study_view_rank) when it has a metric; NULL when none. */
const ns_trial_row *ns_study_view_best(const ns_study_view *v, const ns_trial_row *const *ranked);

#endif
