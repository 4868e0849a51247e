/* optim.h — optimizers over one flat parameter buffer: SGD (momentum, Nesterov), Adam,
 * AdamW, RMSprop, all with the semantics of torch.optim. The state lives in backend
 * buffers of the parameters' layout, so one step is one fused op. Not a scheduler: the
 * learning rate of each step is passed in. */
#ifndef NS_OPTIM_H
#define NS_OPTIM_H

#include <stddef.h>
#include <stdio.h>

#include "engine/backend/backend.h"

typedef enum ns_opt_kind { NS_OPT_SGD = 0, NS_OPT_ADAM, NS_OPT_ADAMW, NS_OPT_RMSPROP } ns_opt_kind;

typedef struct ns_optim_spec {
    ns_opt_kind kind;
    double momentum;     /* SGD and RMSprop; 0 disables [SGD 0.9, RMSprop 0] */
    int nesterov;        /* SGD only */
    double beta1, beta2; /* Adam/AdamW [0.9, 0.999] */
    double alpha;        /* RMSprop smoothing [0.99] */
    double eps;          /* Adam/AdamW/RMSprop [1e-8] */
    double weight_decay; /* L2 (SGD, Adam, RMSprop) or decoupled (AdamW) [0] */
} ns_optim_spec;

/* Defaults above for the given kind. */
void ns_optim_spec_default(ns_optim_spec *s, ns_opt_kind kind);
const char *ns_opt_kind_name(ns_opt_kind k);

typedef struct ns_optim {
    ns_optim_spec spec;
    ns_backend *be;
    size_t n;
    float *m;  /* (n) first moment or momentum buffer; NULL when unused */
    float *v;  /* (n) second moment; NULL when unused */
    long t;    /* steps taken */
} ns_optim;

/* Allocates the state for n parameters on be. Returns NS_OK or sets *err. */
int ns_optim_init(ns_optim *o, const ns_optim_spec *spec, ns_backend *be, size_t n, ns_err *err);
/* One update of params (n) from grads (n) with learning rate lr. */
void ns_optim_step(ns_optim *o, float *params, const float *grads, double lr);
/* The same step applied group by group over [off[g], off[g + 1]) for g < n_groups (the
 * groups must cover 0..n), without waiting for the device: res[g] (device memory, NULL
 * when not wanted) receives the sum of squares of group g's gradient, read in the same
 * pass as the update. gate (device, may be NULL): when *gate is not finite nothing is
 * updated (backend.h) and res[g] = 0, but t counts the step: the caller, which reads the
 * gate afterwards, takes it back (t--) for a step that did not happen. Same bits as
 * ns_optim_step. */
void ns_optim_step_groups(ns_optim *o, float *params, const float *grads, double lr,
                          int n_groups, const size_t *off, const double *gate, double *res);
/* K optimizers' steps at once (trials trained together, each with its own spec, LR and
 * state on one backend): member k's is ns_optim_step_groups(o[k], params[k], grads[k],
 * lr[k], n_groups, off, gate[k], res[k]), the same bits, with each group's update made for
 * all members by one ns_op_update_members. gate, res, or any of their entries may be NULL. */
void ns_optim_step_members(ns_optim *const *o, float *const *params, const float *const *grads,
                           const double *lr, int K, int n_groups, const size_t *off,
                           const double *const *gate, double *const *res);
void ns_optim_free(ns_optim *o);

/* Exact state I/O for checkpoints: t, then the buffers in host byte order. */
int ns_optim_save(const ns_optim *o, FILE *f);
int ns_optim_load(ns_optim *o, FILE *f); /* same spec and n as when saved; NS_OK or NS_EINPUT */

#endif
