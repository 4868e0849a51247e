/* bayes.h — internal to search/stages/stages.c and search/stages/stage_bayes.c: the bayes stage's
 * proposals and the select stage's decision, which stages.c dispatches to. */
#ifndef NS_BAYES_STAGE_H
#define NS_BAYES_STAGE_H

#include "engine/jsonbuf.h"
#include "search/stages/driver_impl.h"

/* Trial i of the bayes stage starting at trial number `first`: a GP proposal (bo.h) from
 * every trial final before its round (any stage: their params mapped into the space,
 * missing keys at the middle) with the round's earlier trials as pending points. */
int ns_bayes_plan(ns_search *s, const ns_stage_cfg *st, long first, long i, ns_trial_plan *p, ns_err *err);

/* The select stage's decision into j: {"winner":n,...}; NS_ERUNTIME on a store failure. */
int ns_select_decide(ns_search *s, const ns_stage_cfg *st, ns_jbuf *j, ns_err *err);

#endif
