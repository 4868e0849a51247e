/* report_impl.h — what the parts of the report share: the study as read (one snapshot), the
 * learning curves of the top trials, and small readers of the JSON the study stores. Inside
 * search/report only. Each view_* writes one <section> of the document, or a short line
 * saying that its stage did not run. */
#ifndef NS_REPORT_IMPL_H
#define NS_REPORT_IMPL_H

#include <stddef.h>
#include <stdio.h>

#include "search/config/space.h"
#include "search/report/svg.h"
#include "search/study/store.h"
#include "search/study/view.h"

#define NS_REPORT_CURVES 6 /* learning curves: the top five trials and the winner */
#define NS_REPORT_LIST_MAX 300 /* trials listed per finding (the rest are counted) */

typedef struct ns_report {
    FILE *f;
    const char *dir;               /* the study folder as given (files are read below it) */
    const char *shown;             /* the same, absolute where it resolves (page text, commands) */
    ns_study_view v;
    const ns_trial_row **ranked;   /* (v.n_trials) best first */
    const ns_trial_row *best;      /* the study's answer, or NULL */
    const ns_stage_row *decider;   /* the last complete select (or final) stage, or NULL */
    double t0;                     /* first trial start (Unix s); NaN when none started */
    int next_id;                   /* unique chart ids */
    int n_curves;
    const ns_trial_row *curve_trial[NS_REPORT_CURVES];
    ns_epoch_record *curve[NS_REPORT_CURVES];  /* (curve_len[i]) epochs, store-owned copy */
    int curve_len[NS_REPORT_CURVES];
    ns_space space;                /* the study config's search space (empty when unreadable) */
} ns_report;

/* ---- JSON the study stores, read in place (report.c) --------------------------------- */

/* t past leading space when it is one valid JSON value, else NULL (a hand-edited column). */
const char *ns_rj_doc(const char *t);
/* In the object at obj (inside valid JSON): key's number (0 for null, absent or not a
 * number), key's string unescaped into out (0 when absent, not a string or too long), key's
 * value span. */
int ns_rj_num(const char *obj, const char *key, double *v);
int ns_rj_str(const char *obj, const char *key, char *out, size_t cap);
int ns_rj_get(const char *obj, const char *key, const char **b, const char **e);
/* key's value written as HTML text: a string unescaped, anything else as it stands. */
void ns_rj_put(FILE *f, const char *obj, const char *key, const char *missing);
/* The first element of the array at arr (or NULL), and the element after the one at p. */
const char *ns_rj_first(const char *arr);
const char *ns_rj_next(const char *p);
/* key's array of numbers (null as NaN) into out[0..cap); how many it holds, -1 for none. */
int ns_rj_nums(const char *obj, const char *key, double *out, int cap);

/* The kind of a stage ("lr_range" from "1:lr_range"). */
const char *ns_rep_stage_kind(const char *name);
/* The stage's index in the view (for its colour), -1 when not recorded. */
int ns_rep_stage_index(const ns_report *r, const char *name);
/* The metric's axis title with its unit ("validation accuracy (share of rows)"). */
const char *ns_rep_metric_label(const char *metric);
/* "<p class="none">TEXT</p>" for a view whose stage did not run. */
void ns_rep_none(ns_report *r, const char *text);
/* Opens <section id="id"><h2>title</h2>. */
void ns_rep_section(ns_report *r, const char *id, const char *title);
/* A trial's short tooltip: "trial 12 (2:bayes, complete): val_acc 0.8467". */
void ns_rep_trial_title(ns_report *r, const ns_trial_row *t);

/* ---- views ---------------------------------------------------------------------------- */

void ns_rep_view_answer(ns_report *r);        /* report_answer.c */
void ns_rep_view_lr_range(ns_report *r);      /* report_stages.c */
void ns_rep_view_batch_sweep(ns_report *r);
void ns_rep_view_compare(ns_report *r);
void ns_rep_view_history(ns_report *r);       /* report_trials.c */
void ns_rep_view_curves(ns_report *r);
void ns_rep_view_params(ns_report *r);
void ns_rep_view_timeline(ns_report *r);

#endif
