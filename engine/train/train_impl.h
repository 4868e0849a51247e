/* train_impl.h — the training loop's phases, for the loops in engine/train: ns_trainer_run
 * (one run) and ns_trainer_array_run (runs in lock-step) take the same steps through these,
 * so a run in an array is the run alone. Not a public header. */
#ifndef NS_TRAIN_IMPL_H
#define NS_TRAIN_IMPL_H

#include "engine/train/train.h"

/* Begins the epoch in progress, or after a resume regenerates its row order (and puts it
 * where the backend gathers batches; the first call also puts the rows there). */
int ns_trainer_epoch_start(ns_trainer *tr, ns_err *err);
/* Nonzero when the epoch in progress has no step left: its batches are done or a steps
 * budget is spent. */
int ns_trainer_epoch_full(const ns_trainer *tr);
/* The first half of a step: gathers the epoch's next batch into xb/yb/tb, zeroes the
 * gradients and draws the step's noise seed; returns the batch's rows. */
int ns_trainer_step_begin(ns_trainer *tr, uint64_t *noise_seed);
/* The same step begun without its device work, which *mb describes (ns_op_batch_members),
 * so that an array gathers every member's batch in one go. */
int ns_trainer_step_batch(ns_trainer *tr, ns_member_batch *mb, uint64_t *noise_seed);
/* The step's scalars (tr->res, device): the loss's NS_RES_LOSS_N, then one gradient sum
 * of squares a parameter group. The net's training batch writes the first part when its
 * net->res is tr->res (the caller sets it for the batch and clears it after). */
int ns_trainer_step_slots(const ns_trainer *tr);
/* After the batch, without waiting for it: the step's LR from the schedule and the
 * optimizer's update, gated on the loss, with the norms into tr->res (with clip_norm, the
 * update waits for step_end: it needs the norm first). */
void ns_trainer_step_update(ns_trainer *tr);
/* The same for K runs whose nets have one shape (a trainer array's stepping members),
 * their optimizers' updates made together (ns_optim_step_members): the same bits. */
void ns_trainer_step_update_members(ns_trainer *const *tr, int K);
/* The second half, once the caller has read tr->res back into tr->res_host: clipping and
 * the update when clip_norm asks for them, the epoch's sums and the divergence watch. Sets
 * *diverged (NS_DIV_*) instead of stepping when the loss or the gradient is not finite. */
void ns_trainer_step_end(ns_trainer *tr, int B, int *diverged);
/* Ends the epoch in progress: validation, early stopping, the plateau schedule; fills rec
 * (all but seconds). */
int ns_trainer_epoch_end(ns_trainer *tr, int diverged, ns_epoch_record *rec, ns_err *err);
/* At the end of a run: the best weights back into the net when early stopping kept some. */
void ns_trainer_finish(ns_trainer *tr);
/* tr gathers from the rows `from` has on the backend (the same training and validation
 * sets) instead of a copy of its own: one upload for a trainer array. from's must be there
 * (from has started an epoch) and outlive tr's use. */
void ns_trainer_share_data(ns_trainer *tr, const ns_trainer *from);
/* The batch buffers become the caller's (device, sized as ns_trainer_init sizes them): the
 * trainer's own are freed and these are not freed with it. */
void ns_trainer_borrow_batch(ns_trainer *tr, float *xb, int32_t *yb, float *tb);
/* The same for the step's scalars: res (device) and res_host (host), ns_trainer_step_slots
 * doubles each, the caller's, so that an array reads every member's back in one download. */
void ns_trainer_borrow_results(ns_trainer *tr, double *res, double *res_host);

#endif
