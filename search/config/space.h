/* space.h — the search space of a config: one dimension per searched key, and the map
 * between the unit cube (what samplers and the Bayesian stage see) and key values.
 * Not a parser: search/config/config.c builds the space from the YAML and applies points. */
#ifndef NS_SPACE_H
#define NS_SPACE_H

#include <stddef.h>

#include "engine/rng.h"

struct ns_config;

typedef enum ns_dim_kind {
    NS_DIM_UNIFORM = 0, /* real, linear:  x = lo + u (hi - lo) */
    NS_DIM_LOG_UNIFORM, /* real, log:     x = exp(log lo + u (log hi - log lo)), lo > 0 */
    NS_DIM_INT,         /* whole, linear: x = round(lo - 1/2 + u (hi - lo + 1)) */
    NS_DIM_INT_LOG,     /* whole, log:    x = round(exp(log(lo - 1/2) + u (log(hi + 1/2) - log(lo - 1/2)))), lo >= 1 */
    NS_DIM_CHOICE,      /* index:         i = floor(u n) */
} ns_dim_kind;
/* Every x is clamped to [lo, hi] (floating-point ends), so both ends of a range are
 * values of the key; each whole number of an int range (each choice) owns an equal share
 * of [0, 1] (int_log: a share proportional to log((k + 1/2) / (k - 1/2))). */

typedef struct ns_dim {
    char name[48];       /* the key, "section.key": "train.lr" */
    int key;             /* its index in config.c's key table: ns_config_key_find(name) */
    ns_dim_kind kind;
    double lo, hi;       /* ranges: the inclusive bounds as written; choice: 0, n_choices - 1 */
    int n_choices;       /* NS_DIM_CHOICE only */
    char **choices;      /* (n_choices) each choice as YAML text: "relu", "0.1", "[256, 128]";
                            applied through the key's own parser */
    int line, column;    /* 1-based location of the space in the config file */
} ns_dim;

typedef struct ns_space {
    int n;               /* dimensions, in the order of the config file */
    ns_dim *dims;        /* (n) */
} ns_space;

const char *ns_dim_kind_name(ns_dim_kind k); /* "uniform", "log_uniform", "int", "int_log", "choice" */

/* Appends a copy of *d; the space takes ownership of d->choices (d's copy is cleared).
 * NS_OK, or NS_ERUNTIME when out of memory (d->choices is then still the caller's). */
int ns_space_add(ns_space *sp, ns_dim *d);
/* Deep copy into *dst (which is overwritten); NS_OK or NS_ERUNTIME (dst left empty). */
int ns_space_copy(ns_space *dst, const ns_space *src);
/* Appends a choice among choices[0..n) (YAML texts, copied) for key `key` (its index in the
 * key table) named name; no location in the file. NS_OK or NS_ERUNTIME (nothing added). */
int ns_space_add_choice(ns_space *sp, const char *name, int key, const char *const *choices, int n);
void ns_space_free(ns_space *sp);
/* Index of the dimension named name ("train.lr"), or -1. */
int ns_space_find(const ns_space *sp, const char *name);

/* One point of the unit cube: u[i] uniform in [0, 1) for every dimension, drawn from rng
 * in dimension order. Returns sp->n, or -1 (rng untouched) when n < sp->n. */
int ns_space_sample(const ns_space *sp, ns_rng *rng, double *u, int n);
/* The value at u (clamped to [0, 1]): a number for ranges, an index for choices. */
double ns_dim_value(const ns_dim *d, double u);
/* The inverse: where value lies in [0, 1]. Whole numbers and choice indices map to the
 * centre of their share, so ns_dim_value(d, ns_dim_unit(d, v)) == v for them. */
double ns_dim_unit(const ns_dim *d, double value);
/* The value at u as the YAML text the key's parser reads: a choice's text, a whole
 * number, or a real in "%.17g" (exact). Returns buf or a pointer into d->choices. */
const char *ns_dim_text(const ns_dim *d, double u, char buf[64]);

/* The searched keys' values in `fixed` (a config instantiated from this space) as one
 * compact JSON object in dimension order: {"train.lr":0.0031,"model.activation":"relu",
 * "model.hidden":[256,128]}. Caller frees; NULL when out of memory. */
char *ns_space_params_json(const ns_space *sp, const struct ns_config *fixed);

#endif
