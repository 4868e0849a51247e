/* lrfind.h — the LR range test of a config: the model, loss and optimizer family that the
 * config's training would use, swept by engine/train/lrfind.h on the prepared data; the curve as
 * CSV and as a small text plot. Not the lr_range stage itself (that records decisions in the
 * study); `nnsearch lr-find` and the stage both call this. */
#ifndef NS_SEARCH_LRFIND_H
#define NS_SEARCH_LRFIND_H

#include <stdint.h>
#include <stdio.h>

#include "engine/train/lrfind.h"
#include "search/config/config.h"
#include "search/stages/pipeline.h"

/* Sweeps c's model on p->train: hidden layers, activation, init, dropout, loss, label
 * smoothing and class weights as ns_run_training would set them, initial weights from the
 * stream ns_seed_derive(seed, 0x696e6974, 0) and the sweep's stream from
 * ns_seed_derive(seed, 0x7472616e, 0) (seed = c->train.seed starts from the training's own
 * weights), c->train.opt as configured (SGD keeps its momentum; weight decay stays), and
 * spec->batch_size rows per step (0: c->train.batch_size). c must be fixed (no search
 * spaces: instantiate first). A fresh model and optimizer each call: nothing is carried to
 * later runs. Fills *out (caller frees with ns_lrfind_curve_free). Errors as
 * ns_lrfind_run's, plus c's model errors. */
int ns_lrfind_config(const ns_config *c, const ns_prepared *p, const ns_lrfind_spec *spec,
                     uint64_t seed, ns_lrfind_curve *out, ns_err *err);

/* Seed number i of an lr-find of c (i = 0, 1, ...): ns_seed_derive(c->train.seed,
 * 0x6c726669, i), so lr-find's seeds never coincide with a training's. */
uint64_t ns_lrfind_seed(const ns_config *c, int i);

/* Writes c as CSV "step,lr,loss,smoothed" (step 0-based; numbers with 17 significant
 * digits, exact), atomically (engine/atomic.h). NS_ERUNTIME with the path on failure. */
int ns_lrfind_write_csv(const char *path, const ns_lrfind_curve *c, ns_err *err);
/* The same for n curves in one file, "seed,step,lr,loss,smoothed" with seed = the curve's
 * number 0..n-1 (the i of ns_lrfind_seed). */
int ns_lrfind_write_csv_seeds(const char *path, const ns_lrfind_curve *c, int n, ns_err *err);

/* A width x height character plot of c's smoothed loss against log10(lr) on f, with axis
 * labels, and a column of '|' at mark_lr (skipped when not finite) labelled mark_name.
 * The loss axis runs from the curve's minimum to at most 1.5x the distance from the
 * minimum to the first value, so a blow-up does not flatten the rest; higher points are
 * drawn as '^' on the top row. width >= 20, height >= 5 (smaller values are raised). */
void ns_lrfind_plot(FILE *f, const ns_lrfind_curve *c, double mark_lr, const char *mark_name,
                    int width, int height);

/* A width x height character plot of n curves' smoothed losses against log10(lr) on f:
 * each seed drawn with its digit (0-9, then letters; '*' where seeds share a cell), a
 * column of '|' at `suggestion` and of ':' at the bounds lo and hi (each skipped when not
 * finite or off the LR range), a legend line, loss ticks (top, middle, bottom), LR ticks
 * at powers of ten and the axis titles. The loss axis is cut as ns_lrfind_plot's (1.5x
 * the largest first value's distance above the minimum; higher points as '^' on the top
 * row). width >= 20, height >= 5 (smaller values are raised); n >= 1. */
void ns_lrfind_plot_seeds(FILE *f, const ns_lrfind_curve *c, int n, double suggestion,
                          double lo, double hi, int width, int height);

#endif
