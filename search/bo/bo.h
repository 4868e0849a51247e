/* bo.h — Bayesian optimisation over the unit cube: the next point to try, given the
 * observations so far and the points still running. A pure function of its inputs (no
 * hidden state, no clock, no global RNG), so a search's proposals are the same whatever
 * the number of workers and whichever finishes first.
 * Not the stage (search/stages/driver.c owns trials, ordering and the store) and not the model
 * (search/bo/gp.h).
 *
 * How a point is chosen (proposal number t = n_obs + n_pending):
 *  - t < n_init: point t + 1 of a Sobol sequence (point 0, the corner, skipped) shifted
 *    by a random vector drawn from seed (a Cranley-Patterson rotation, modulo 1), so
 *    repetitions with different seeds differ and the design stays low-discrepancy.
 *  - otherwise a GP (gp.h) is fitted to the feasible observations, and each pending
 *    point is appended to it as a "constant liar": given the best (lowest) feasible y
 *    observed. The liar collapses the GP's variance at the pending point without
 *    inventing improvement, so q pending-aware proposals spread out. The caller makes
 *    proposals in trial-number order with every earlier-numbered unfinished trial as
 *    pending; then the result cannot depend on which worker finished first.
 *  - Rounds. A bayes stage proposes `round` points from the same observations, the k-th
 *    with the round's first k - 1 as pending. Only the round's first proposal (no pending
 *    points) fits hyperparameters; a later one given hyperparameters (the round's first
 *    fit) takes them as they are, and its model is the round's base (the observations,
 *    standardised by themselves, factorised afresh at those hyperparameters) with the
 *    liars appended one row of the Cholesky factor at a time (ns_gp_append, O(n^2)).
 *    The candidates are the round's (seeded by n_obs, not by the proposal's number) and
 *    their posterior is updated per liar (ns_gp_at_update, O(n m)); the later proposals
 *    take the best allowed candidate without BFGS refinement (a refinement step is an
 *    O(n^2) solve, 50 ms a proposal at 1,000 observations). A cache (ns_bo_cache) keeps
 *    the base, the candidates' posterior and the liars between the calls of a round, so a
 *    later proposal costs O(n m): 0.8 ms at 1,000 observations in 8-D (scripts/bench/mpi,
 *    a round of 256; the first, which fits, about 0.5 s). A cache only saves work: the
 *    same inputs give the same bits with it, without it, or with a cache of another round,
 *    so a round resumed half-way proposes what the uninterrupted one did.
 *  - Infeasible (unhealthy) observations are left out of the objective GP (their metric
 *    is often missing or meaningless: a diverged loss) and teach a second GP instead:
 *    regression on labels +1 (feasible) / -1 (infeasible) over all observations, and
 *    P(feasible at x) = Phi(m(x) / s(x)) with m, s the posterior mean and sd of that GP in
 *    label units. Far from data this tends to Phi(mean label / sd label), the base rate,
 *    and near an unhealthy trial to ~0. The acquisition is log EI + log P(feasible)
 *    (EI times the probability of feasibility, Gardner et al. 2014). A least-squares
 *    proxy for a GP classifier: cheap, deterministic, and as good as the health signal.
 *  - With fewer than 2 feasible observations the Sobol design simply continues.
 *  - Acquisition: log EI (ns_gp_log_ei) against the best feasible standardised y, with
 *    the latent (noise-free) posterior sd. Maximised over n_sobol shifted Sobol points
 *    plus n_local Gaussian perturbations of the best observations (sd 0.1 and 0.02,
 *    alternating), all snapped; the n_refine best are refined by BFGS on the analytic
 *    gradient through x = (1 - cos(pi z)) / 2 (the box without constraints), snapped,
 *    and the best of everything is returned, subject to the guard below.
 *  - Collapse guard: a candidate nearer than min_dist (Euclidean in the unit cube, after
 *    snapping) to any observation, feasible or not, or to a pending point is out, and a
 *    refined point that slid back next to one is not taken: the proposal is the best
 *    candidate beyond min_dist. Real studies otherwise spent hundreds of trials on
 *    near-duplicates (a bound pinned, the learning rate in a narrow band, the same
 *    width): EI around a noisy best keeps promising a little, while a trial that close
 *    differs from its neighbours by less than the seed noise. When every candidate is
 *    that near (a small discrete space used up) the guard stands aside for the call. On
 *    noise-free benchmarks it costs the last digits of the optimum: median regret after
 *    50 evaluations 0.0070 instead of 1.5e-6 on Branin, 0.012 instead of 0.0066 on
 *    Hartmann-6 (TPE: 0.17 and 0.59; docs/BENCHMARKS.md). It stops near-duplicates, not
 *    a search that settles in one region: in 8-D many points fit 0.02 apart.
 *  - Known noise (ns_bo_propose_noisy): each feasible observation's noise variance is
 *    added to its diagonal of the objective GP's kernel (gp.h), so repeated noisy trials
 *    are averaged rather than interpolated; the liars get none.
 *  - Hyperparameters (a round's first proposal): BFGS from the warm start (hyp, the
 *    previous round's fit, when given) plus n_starts - 1 starts drawn from the priors
 *    (ns_gp_fit), each at most max_iter iterations.
 *    With a warm start, the extra random starts run only when a multiple of refit_every
 *    lies in (t - round, t] (a full refit; with rounds of 1: t a multiple of
 *    refit_every), otherwise the warm start alone is refined: the hyperparameters barely
 *    move between consecutive observations and the fit is the bulk of the cost at a few
 *    hundred observations.
 *  - Many observations (a spent budget on a small data set gives thousands): the
 *    objective GP's posterior sees at most post_max of the feasible observations and
 *    its hyperparameter fit at most fit_max of those (the liars come after). A subset is
 *    chosen by ns_bo_subset: the half with the lowest y (where EI looks for
 *    improvement), then a greedy maximin fill (each next point the farthest from those
 *    kept), so every region keeps a witness, the variance stays honest away from the
 *    best, and exact repeats are dropped first. The fit's subset is chosen the same way
 *    from the posterior's, and its sf2 and sn2 are carried over to the posterior's
 *    standardisation (their logs shift by 2 log(sd_post / sd_fit)). The feasibility GP
 *    is subset alike, with its infeasible observations (at most half) as the "best".
 *    Why: the dense Cholesky is O(n^3) and each likelihood evaluation of the fit is one
 *    (gp.h). Before this rule a proposal in 8-D took a median 0.41 s and at most 4.3 s
 *    (the full refit) at 1000 observations, 7.4 s and 53 s at 3000 (scripts/bench/bo
 *    --quick: three proposals each; one core of the AMD EPYC build machine). 400 points
 *    pin down d + 2 hyperparameters well and keep each likelihood evaluation to
 *    milliseconds; up to 1000 the posterior is still exact, and beyond it the cost stops
 *    growing. Now (scripts/bench/bo: ten warm-started proposals each, one of them a full
 *    refit): median 4.6, 10.4, 22.3, 217 and 237 ms at 50, 100, 200, 1000 and 3000
 *    observations, at most 425 ms at 1000 and 502 ms at 3000. Quality is kept (scripts/bench/bo --scale): on Hartmann-6 in 8-D
 *    after 600 random points, 20 proposals reach median regret 0.080 with the rule and
 *    0.17 with the fit and the posterior on every point, 7 of 16 runs below 0.01 either
 *    way, at 0.32 s a proposal instead of 0.71 s. */
#ifndef NS_BO_H
#define NS_BO_H

#include <stdint.h>

#include "engine/err.h"
#include "search/config/space.h"

/* Maps x (d) in place to the nearest point the caller can actually try (integer levels,
 * one-hot groups); called on every candidate and on the result. May be NULL. */
typedef void (*ns_bo_snap_fn)(double *x, int d, void *ctx);

/* The defaults of the subset rule and the collapse guard (the header comment says why). */
#define NS_BO_FIT_MAX 400   /* points the hyperparameter fit sees */
#define NS_BO_POST_MAX 1000 /* points the posterior sees */
#define NS_BO_MIN_DIST 0.02 /* least distance from a proposal to a tried or pending point */

typedef struct ns_bo_spec {
    int n_init;        /* Sobol points before the GP [max(5, 2d)] */
    int n_sobol;       /* Sobol acquisition candidates [1024] */
    int n_local;       /* candidates around the best observations [128] */
    int n_refine;      /* best candidates refined by BFGS [5] */
    int n_starts;      /* hyperparameter BFGS starts, warm start included [2] */
    int max_iter;      /* BFGS iterations per hyperparameter start [20] */
    int refit_every;   /* full refits (all starts) every this many proposals [10] */
    int round;         /* proposals per round, >= 1: when a full refit falls due [1] */
    int fit_max;       /* most observations in the hyperparameter fit, >= 2 [NS_BO_FIT_MAX] */
    int post_max;      /* most observations in the posterior, >= fit_max [NS_BO_POST_MAX] */
    double min_dist;   /* collapse guard radius in the unit cube, 0 = off [NS_BO_MIN_DIST] */
    uint64_t seed;     /* Sobol shifts, candidate perturbations, hyperparameter starts */
    ns_bo_snap_fn snap;
    void *snap_ctx;
} ns_bo_spec;

/* The defaults above for d inputs, seed 0, no snap. */
void ns_bo_spec_default(ns_bo_spec *spec, int d);

/* Length of the hyperparameter state ns_bo_propose reads and writes: the objective GP's
 * theta then the feasibility GP's, 2 (d + 2) doubles. */
#define NS_BO_HYP_LEN(d) (2 * ((d) + 2))

/* The next point to try, into out (d), in [0, 1]^d.
 * X (n_obs, d) row-major in [0, 1]^d, y (n_obs) lower is better (negate a maximised
 * metric), feasible (n_obs) 1 healthy / 0 unhealthy or NULL (all healthy); y of an
 * infeasible observation is ignored (may be NaN). pending (n_pending, d): points proposed
 * and not finished. hyp (NS_BO_HYP_LEN(d)) may be NULL: when not NULL its finite halves
 * warm-start the fits and it receives the fitted hyperparameters (NaN for a GP that was
 * not fitted; each in the units of the data its posterior saw, see the subset rule);
 * pass the previous proposal's hyp to keep a search cheap.
 * Same inputs (hyp included), same output bits, whatever ran before in the process: the
 * GP's BLAS calls run on one OpenBLAS thread (ns_blas_threads_set), the caller's count is
 * given back. That count is process-wide, so no trial may train on another thread during
 * the call (the stages propose between rounds). NS_OK; NS_EINPUT on bad dimensions, a
 * point outside the cube or a non-finite feasible y; NS_ERUNTIME when out of memory or
 * the GP breaks down numerically. */
int ns_bo_propose(const ns_bo_spec *spec, int d, const double *X, const double *y,
                  const int *feasible, int n_obs, const double *pending, int n_pending,
                  double *hyp, double *out, ns_err *err);
/* The same with the observations' known noise: noise_var (n_obs), each feasible one's
 * variance in y's units (e.g. the squared standard error of the metric over folds), >= 0
 * and finite (NS_EINPUT otherwise); an infeasible one's is ignored. NULL is ns_bo_propose:
 * the objective GP's noise is then its fitted homoscedastic sn2 alone. */
int ns_bo_propose_noisy(const ns_bo_spec *spec, int d, const double *X, const double *y,
                        const double *noise_var, const int *feasible, int n_obs,
                        const double *pending, int n_pending, double *hyp, double *out,
                        ns_err *err);

/* What the proposals of one round share (see "Rounds" above): opaque, the caller's. */
typedef struct ns_bo_cache ns_bo_cache;
ns_bo_cache *ns_bo_cache_alloc(void); /* NULL when out of memory */
void ns_bo_cache_free(ns_bo_cache *c);
/* ns_bo_propose_noisy, with a cache that may be NULL: a call whose observations and
 * hyperparameters are those the cache was built from, and whose pending points begin with
 * the ones it has seen, starts from its models instead of rebuilding them. The result is
 * the same bits with or without a cache, and whatever the cache held before. */
int ns_bo_propose_round(const ns_bo_spec *spec, int d, const double *X, const double *y,
                        const double *noise_var, const int *feasible, int n_obs,
                        const double *pending, int n_pending, double *hyp, ns_bo_cache *cache,
                        double *out, ns_err *err);

/* The subset rule: keep receives the indices, ascending, of min(n, m) of the n points
 * X (n, d) in the unit cube with finite y (n): the n_best (clamped to 1..m) lowest y
 * (ties: lower index first), then one at a time the point farthest (Euclidean) from all
 * kept so far (ties: lower index) until m are kept, a greedy maximin fill that keeps
 * every region covered and drops exact repeats last. O(n m d) time, O(n) memory.
 * NS_OK; NS_EINPUT for n < 0, d < 1 or m < 0; NS_ERUNTIME when out of memory. */
int ns_bo_subset(const double *X, const double *y, int n, int d, int m, int n_best,
                 int *keep, ns_err *err);

/* ---- the GP's view of a search space --------------------------------------------------
 * One GP input per range dimension, on the space's unit scale (log for log ranges), and
 * n_choices inputs per choice dimension (one-hot), so that the kernel sees no order
 * between choices. Whole-number ranges sit at the centre of their value's share. */

/* The number of GP inputs of sp. */
int ns_bo_dims(const ns_space *sp);
/* A point u of the space's unit cube (sp->n) to GP inputs x (ns_bo_dims). */
void ns_bo_encode(const ns_space *sp, const double *u, double *x);
/* GP inputs x back to the space's unit cube u (sp->n): whole numbers rounded (centre of
 * their share), each choice the largest of its one-hot group (first on ties). */
void ns_bo_decode(const ns_space *sp, const double *x, double *u);
/* An ns_bo_snap_fn with ctx = the ns_space: x = encode(decode(x)). */
void ns_bo_snap_space(double *x, int d, void *sp);

#endif
