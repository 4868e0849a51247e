/* infer.h — a saved network's outputs for rows: one network on a one-thread CPU backend,
 * whose weights are swapped in member by member (members that share a shape share the
 * network). Used by predict, the ensemble's test score, the winner's test figures and the
 * decision offsets' fit. Not the file format (modelfile.h) and not training. */
#ifndef NS_INFER_H
#define NS_INFER_H

#include "model/modelfile.h"

typedef struct ns_infer {
    ns_backend *be;
    int eb;                      /* rows per forward pass */
    ns_mlp *m;                   /* the network; NULL before the first load */
    const ns_model_file *loaded; /* whose weights m holds; NULL none */
    float *xb;                   /* host (eb, d_cap): a batch in the model's standardisation */
    float *xdev, *odev;          /* device (eb, d_cap), (eb, k_cap) */
    int d_cap, k_cap;            /* features and outputs the buffers hold */
} ns_infer;

/* What ns_infer_run writes per row: the raw outputs (logits, or the standardised
 * regression output), or, for a classifier, its softmax probabilities (a regression
 * model's output is passed through as with RAW). */
typedef enum ns_infer_out { NS_INFER_RAW = 0, NS_INFER_PROBS } ns_infer_out;

/* Zeroes *r and opens its backend; batches of eb rows (eb >= 1). NS_ERUNTIME on failure.
 * Close with ns_infer_close, also after a failed open. */
int ns_infer_open(ns_infer *r, int eb, ns_err *err);
void ns_infer_close(ns_infer *r);
/* Puts mf's weights in r's network, rebuilding it only when mf's widths or activation
 * differ from the current one's. NS_EINPUT when mf's parameter count is not its spec's.
 * r remembers mf by its address: load again after changing or freeing it. */
int ns_infer_load(ns_infer *r, const ns_model_file *mf, ns_err *err);
/* mf's outputs for the n rows of x (n, n_in) into out (n, n_out), in batches of eb.
 * standardise: 1 when x holds raw rows (mf's own statistics are applied to a copy), 0 when
 * they are already in the model's units. Loads mf first when it is not the loaded one. */
int ns_infer_run(ns_infer *r, const ns_model_file *mf, const float *x, long n, int standardise,
                 ns_infer_out what, float *out, ns_err *err);

#endif
