/* bayes.h — internal to search/stages: the bayes stage's proposals (stage_bayes.c) and the
 * select stage's decision (select.c), which stages.c dispatches to. */
#ifndef NS_BAYES_STAGE_H
#define NS_BAYES_STAGE_H

#include "engine/jsonbuf.h"
#include "search/stages/driver_impl.h"

/* Trial i of the bayes stage starting at trial number `first`: a GP proposal (bo.h) from
 * the trials final before its round that were trained to the stage's own budget (random
 * and bayes stages with the same epochs or steps; their params mapped into the space,
 * missing keys at the middle; those stopped by epoch pruning censored at the median of the
 * others), with the round's earlier trials as pending points. The Sobol design runs for
 * the stage's own first proposals whatever came before. trials/<n>/gp.hyp, beside the
 * round's first trial n, keeps the round's GP hyperparameters, trials/<n>/gp.obs the
 * numbers of the trials the round observed. The round's observations are read once and
 * kept in s until ns_stage_round_end. */
int ns_bayes_plan(ns_search *s, const ns_stage_cfg *st, long first, long i, ns_trial_plan *p, ns_err *err);
/* Frees what ns_bayes_plan kept for a round (NULL: nothing). */
void ns_bayes_round_free(struct ns_bayes_round *r);

/* The select stage's decision into j: {"winner":n,...}; NS_ERUNTIME on a store failure. */
int ns_select_decide(ns_search *s, const ns_stage_cfg *st, ns_jbuf *j, ns_err *err);

#endif
