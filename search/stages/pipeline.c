/* pipeline.c — one training run of a fixed config on prepared data (prepare.c makes it
 * ready): the model, its memory check and class weights, the run alone or as an array of
 * runs, and what it writes (checkpoint, model file, validation predictions). */
#include "search/stages/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/atomic.h"
#include "engine/cuda/cuda.h"
#include "engine/rng.h"
#include "engine/sysmem.h"
#include "model/modelfile.h"
#include "search/stages/stats.h"

void ns_pipeline_model_spec(ns_mlp_spec *spec, const ns_config *c, const ns_prepared *p)
{
    *spec = c->model;
    spec->n_in = p->train.d;
    spec->n_out = p->task == NS_TASK_CLASSIFY ? p->n_classes : 1;
}

double ns_pipeline_imbalance(const ns_prepared *p)
{
    long lo = 0, hi = 0;
    for (int k = 0; p->task == NS_TASK_CLASSIFY && k < p->n_classes; k++) {
        long n = p->class_counts[k];
        if (n > 0 && (lo == 0 || n < lo))
            lo = n;
        if (n > hi)
            hi = n;
    }
    return lo > 0 ? (double)hi / (double)lo : NAN;
}

ns_class_weights ns_pipeline_class_weights(const ns_config *c, const ns_prepared *p)
{
    if (c->class_weights != NS_CW_AUTO)
        return c->class_weights;
    double r = ns_pipeline_imbalance(p);
    return isfinite(r) && r > c->datacheck.imbalance_ratio ? NS_CW_AUTO : NS_CW_NONE;
}

/* The weight of class k under c (1 without weights). Balanced: w_k = n / (K n_k), as
 * scikit-learn's; auto on imbalanced data: sqrt(n / (K n_k)), tempered because the full
 * inverse frequency over-predicts rare classes whose rows overlap the others (measured:
 * higher balanced accuracy but lower macro-F1 than no weights), while the square root
 * raises both on such data; a class absent from training gets 1. A list must have K
 * entries. */
static double class_weight_of(const ns_config *c, const ns_prepared *p, int k)
{
    ns_class_weights mode = ns_pipeline_class_weights(c, p);
    if (mode == NS_CW_NONE)
        return 1.0;
    if (mode == NS_CW_LIST)
        return c->class_weight_list[k];
    long nk = p->class_counts[k];
    double w = nk ? (double)p->train.n / ((double)p->n_classes * (double)nk) : 1.0;
    return mode == NS_CW_AUTO || mode == NS_CW_SQRT ? sqrt(w) : w;
}

/* Class weights of c for p's classes (host, caller frees), or *w = NULL when c has none.
 * Computed per run: a search may vary them. */
static int class_weights(const ns_config *c, const ns_prepared *p, float **w, ns_err *err)
{
    *w = NULL;
    if (p->task != NS_TASK_CLASSIFY || ns_pipeline_class_weights(c, p) == NS_CW_NONE)
        return NS_OK;
    int K = p->n_classes;
    if (c->class_weights == NS_CW_LIST && c->n_class_weights != K)
        return ns_err_set(err, NS_EINPUT, "%s: model.class_weights lists %d weights but the data has "
                          "%d classes; give one weight per class", c->path, c->n_class_weights, K);
    if (!(*w = malloc((size_t)K * sizeof **w)))
        return ns_err_set(err, NS_ERUNTIME, "out of memory for class weights");
    for (int k = 0; k < K; k++)
        (*w)[k] = (float)class_weight_of(c, p, k);
    return NS_OK;
}

/* "model.hidden [1048576, 1048576] (model.depth x model.width) with 8 inputs and 3 outputs"
 * into buf. */
static const char *model_text(const ns_config *c, const ns_mlp_spec *s, char *buf, size_t cap)
{
    size_t k = (size_t)snprintf(buf, cap, "model.hidden [");
    for (int l = 0; l < s->n_hidden && k < cap; l++) {
        if (l == 6 && s->n_hidden > 8) {
            k += (size_t)snprintf(buf + k, cap - k, ", ... (%d layers)", s->n_hidden);
            break;
        }
        k += (size_t)snprintf(buf + k, cap - k, "%s%d", l ? ", " : "", s->hidden[l]);
    }
    if (k < cap)
        snprintf(buf + k, cap - k, "]%s with %d inputs and %d outputs",
                 c->width > 0 ? " (model.depth x model.width)" : "", s->n_in, s->n_out);
    return buf;
}

/* Copies of the parameters the optimizer keeps (optim.c's ns_optim_init). */
static int optimizer_copies(const ns_optim_spec *o)
{
    switch (o->kind) {
    case NS_OPT_SGD: return o->momentum > 0.0;
    case NS_OPT_ADAM:
    case NS_OPT_ADAMW: return 2;
    case NS_OPT_RMSPROP: return 1 + (o->momentum > 0.0);
    }
    return 2;
}

int ns_pipeline_device_check(const ns_config *c, ns_err *err)
{
    ns_err e = {0};
    if (ns_device_resolve((ns_device)c->device) != NS_DEVICE_CUDA) {
        if (c->precision == NS_PREC_FP32)
            return NS_OK;
        ns_backend_free(ns_backend_open((ns_device)c->device, 1, (ns_precision)c->precision, &e));
        return ns_err_set(err, e.code, "%s: train.precision: %s", c->path, e.msg);
    }
    ns_backend *probe = ns_backend_cuda_alloc(0, (ns_precision)c->precision, &e);
    if (probe) {
        ns_backend_free(probe);
        return NS_OK;
    }
    return ns_err_set(err, e.code, "%s: train.device: %s", c->path, e.msg);
}

/* The bytes of ns_pipeline_memory_check's sum for c's run (*model: the model's share). */
static uint64_t run_bytes(const ns_config *c, const ns_prepared *p, int max_batch, uint64_t *model)
{
    ns_mlp_spec spec;
    ns_pipeline_model_spec(&spec, c, p);
    /* Every term fits 64 bits: widths <= 2^20, 33 layers, batch <= 2^24, inputs <= 2^31. */
    uint64_t np = ns_mlp_spec_param_count(&spec), B = (uint64_t)max_batch, d = (uint64_t)spec.n_in;
    uint64_t K = p->task == NS_TASK_CLASSIFY ? (uint64_t)spec.n_out : 0;
    int copies = optimizer_copies(&c->train.opt) + (c->train.patience > 0);
    *model = ns_mlp_spec_bytes(&spec, max_batch);
    return *model + 4 * np * (uint64_t)copies /* optimizer state, best weights */
           + 4 * B * d + 8 * B               /* the trainer's batch: x, y, t */
           + 4 * (uint64_t)p->train.n        /* its row order */
           + 8 * K * K + 4 * B * K;          /* per-class tallies and logits */
}

int ns_pipeline_memory_check(const ns_config *c, const ns_prepared *p, int max_batch, ns_err *err)
{
    ns_mlp_spec spec;
    ns_pipeline_model_spec(&spec, c, p);
    if (max_batch <= 0)
        max_batch = c->train.batch_size > c->train.eval_batch ? c->train.batch_size : c->train.eval_batch;
    uint64_t np = ns_mlp_spec_param_count(&spec), model;
    uint64_t need = run_bytes(c, p, max_batch, &model);
    const char *what;
    uint64_t have = ns_sysmem_limit(&what);
    if (need <= have)
        return NS_OK;
    char mt[300], hn[32], hh[32], state[160] = "";
    int oc = optimizer_copies(&c->train.opt);
    if (oc)
        snprintf(state, sizeof state, ", %s's %d state cop%s (train.optimizer)",
                 ns_opt_kind_name(c->train.opt.kind), oc, oc == 1 ? "y" : "ies");
    if (c->train.patience > 0)
        snprintf(state + strlen(state), sizeof state - strlen(state),
                 ", the best weights (train.patience)");
    return ns_err_set(err, NS_EINPUT,
                      "%s: the model does not fit in memory: %s has %llu parameters; with their "
                      "gradients%s and the activations of batch %d (train.batch_size, "
                      "train.eval_batch) training needs %s, but this process may use %s (%s); "
                      "use fewer or narrower hidden layers or a smaller batch",
                      c->path ? c->path : "config", model_text(c, &spec, mt, sizeof mt),
                      (unsigned long long)np, state, max_batch, ns_sysmem_human(need, hn, sizeof hn),
                      ns_sysmem_human(have, hh, sizeof hh), what);
}

int ns_pipeline_search_memory_check(const ns_config *c, const ns_prepared *p, ns_err *err)
{
    const char *keys[] = {"model.hidden", "model.depth", "model.width"};
    for (int i = 0; i < c->space.n; i++)
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (c->space.dims[i].key == ns_config_key_find(keys[k]))
                return NS_OK;
    ns_mlp_spec spec;
    ns_pipeline_model_spec(&spec, c, p);
    uint64_t np = ns_mlp_spec_param_count(&spec), need = 8 * np;
    const char *what;
    uint64_t have = ns_sysmem_limit(&what);
    if (need <= have)
        return NS_OK;
    char mt[300], hn[32], hh[32];
    return ns_err_set(err, NS_EINPUT,
                      "%s: no trial can fit in memory: %s has %llu parameters; they and their "
                      "gradients alone need %s, before any optimizer state or activations, but "
                      "this process may use %s (%s); use fewer or narrower hidden layers",
                      c->path ? c->path : "config", model_text(c, &spec, mt, sizeof mt),
                      (unsigned long long)np, ns_sysmem_human(need, hn, sizeof hn),
                      ns_sysmem_human(have, hh, sizeof hh), what);
}

/* m's initial weights from seed's initialisation stream, and c's class weights. The
 * initialisation and the training stream are separate streams of the run's seed, so
 * changing e.g. the batch size does not change the initial weights. */
static int model_init(ns_mlp *m, const ns_config *c, const ns_prepared *p, uint64_t seed,
                      ns_err *err)
{
    ns_rng init_rng;
    ns_rng_seed(&init_rng, ns_seed_derive(seed, 0x696e6974, 0));
    float *cw = NULL;
    if (c->n_decision_offsets && (p->task != NS_TASK_CLASSIFY || c->n_decision_offsets != p->n_classes))
        return ns_err_set(err, NS_EINPUT, "%s: model.decision_offsets lists %d offsets but the data has "
                          "%d classes; give one per class", c->path, c->n_decision_offsets,
                          p->task == NS_TASK_CLASSIFY ? p->n_classes : 0);
    int rc = ns_mlp_init_params(m, &init_rng, err);
    if (!rc && !(rc = class_weights(c, p, &cw, err)))
        rc = ns_mlp_set_class_weights(m, cw, err);
    free(cw);
    return rc;
}

ns_mlp *ns_pipeline_model_alloc(const ns_config *c, const ns_prepared *p, ns_backend *be,
                                int max_batch, uint64_t seed, ns_err *err)
{
    if (ns_pipeline_memory_check(c, p, max_batch, err))
        return NULL;
    ns_mlp_spec spec;
    ns_pipeline_model_spec(&spec, c, p);
    ns_mlp *m = ns_mlp_alloc(&spec, be, max_batch, err);
    if (m && model_init(m, c, p, seed, err)) {
        ns_mlp_free(m);
        return NULL;
    }
    return m;
}

int ns_pipeline_data_check(const ns_config *c, const ns_prepared *p, ns_data_report *rep,
                           ns_err *err)
{
    ns_datacheck_spec spec = c->datacheck;
    switch (ns_pipeline_class_weights(c, p)) {
    case NS_CW_AUTO:
        spec.imbalance_fix = "nnsearch turned on class-weighted loss (model.class_weights: auto, "
                             "sqrt of inverse frequency); judge by balanced accuracy and macro-F1";
        break;
    case NS_CW_SQRT:
        spec.imbalance_fix = "class-weighted loss is on (model.class_weights: sqrt); judge by "
                             "balanced accuracy and macro-F1";
        break;
    case NS_CW_BALANCED:
        spec.imbalance_fix = "class-weighted loss is on (model.class_weights: balanced); judge by "
                             "balanced accuracy and macro-F1";
        break;
    case NS_CW_LIST:
        spec.imbalance_fix = "class weights are on (model.class_weights list); judge by balanced "
                             "accuracy and macro-F1";
        break;
    default:
        spec.imbalance_fix = "set model.class_weights: balanced (or auto, the default) and "
                             "search.metric: val_balanced_acc";
        break;
    }
    return ns_data_check(&spec, &p->train, p->val.n ? &p->val : NULL,
                         p->test.n ? &p->test : NULL, rep, err);
}

double ns_pipeline_baseline_loss(const ns_config *c, const ns_prepared *p)
{
    if (p->task == NS_TASK_REGRESS || c->model.loss == NS_LOSS_MSE) {
        if (!p->train.t || p->train.n < 1)
            return NAN;
        double mean = 0, var = 0;
        for (long i = 0; i < p->train.n; i++)
            mean += p->train.t[i];
        mean /= (double)p->train.n;
        for (long i = 0; i < p->train.n; i++)
            var += (p->train.t[i] - mean) * (p->train.t[i] - mean);
        return var / (double)p->train.n;
    }
    int K = p->n_classes;
    if (K < 1 || (c->class_weights == NS_CW_LIST && c->n_class_weights != K))
        return NAN;
    /* weighted cross-entropy's best constant prediction is the weighted frequencies mixed
     * with the smoothing's uniform part; its loss is that distribution's entropy */
    double W = 0, H = 0, eps = c->model.label_smoothing;
    for (int k = 0; k < K; k++)
        W += class_weight_of(c, p, k) * (double)p->class_counts[k];
    if (!(W > 0))
        return NAN;
    for (int k = 0; k < K; k++) {
        double q = (1 - eps) * class_weight_of(c, p, k) * (double)p->class_counts[k] / W + eps / K;
        if (q > 0)
            H -= q * log(q);
    }
    return H;
}

/* SE / loss of a loss over n rows (0 without rows: unknown to the detectors). */
static double loss_rel_se(ns_task task, long n)
{
    if (n < 1)
        return 0;
    return ns_score_se(task == NS_TASK_REGRESS ? NS_SCORE_MSE : NS_SCORE_XENT, 1.0, n);
}

void ns_pipeline_health_noise_rows(ns_health_spec *hs, ns_task task, long val_rows, long train_rows)
{
    if (!(hs->val_rel_se > 0))
        hs->val_rel_se = loss_rel_se(task, val_rows);
    if (!(hs->train_rel_se > 0))
        hs->train_rel_se = loss_rel_se(task, train_rows);
}

void ns_pipeline_health_noise(ns_health_spec *hs, const ns_prepared *p)
{
    ns_pipeline_health_noise_rows(hs, p->task, p->val.n, p->train.n);
}

typedef struct epoch_hook {
    ns_trainer *tr;
    const char *checkpoint;
    ns_epoch_fn fn;
    void *user;
    ns_epoch_record last;
    int save_failed;
    ns_err save_err;
    double last_save;     /* monotonic time of the last checkpoint (or of the start) */
} epoch_hook;

/* Checkpoints are written after an epoch when this long has passed since the last one,
 * after the last epoch, and on interruption. Writing one after every epoch of a tiny
 * model would spend more time in fsync than in training; a run killed between two
 * checkpoints repeats at most this much work, to the same bits. */
#define NS_CHECKPOINT_INTERVAL_S 1.0

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The caller sees the epoch before the checkpoint is written: killed between the two, a
 * run repeats that epoch from the previous checkpoint and reports it again, identically,
 * rather than never reporting it. */
static int on_epoch(void *user, const ns_epoch_record *rec)
{
    epoch_hook *h = user;
    h->last = *rec;
    int stop = h->fn ? h->fn(h->user, rec) : 0;
    double now = mono_s();
    if (!h->checkpoint || (now - h->last_save < NS_CHECKPOINT_INTERVAL_S && !ns_trainer_done(h->tr)))
        return stop;
    if (ns_trainer_save(h->tr, h->checkpoint, &h->save_err)) {
        h->save_failed = 1;
        return 1;
    }
    h->last_save = now;
    return stop;
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }


static int write_model(const char *path, const ns_config *c, const ns_prepared *p, ns_mlp *m,
                       ns_err *err)
{
    ns_model_file mf;
    memset(&mf, 0, sizeof mf);
    mf.spec = m->spec;
    mf.task = p->task;
    mf.stdz = p->stdz;
    mf.n_classes = p->task == NS_TASK_CLASSIFY ? p->n_classes : 0;
    mf.class_names = p->class_names;
    mf.feature_names = p->train.feature_names;
    mf.label_name = p->train.feature_names ? c->data.label : NULL;
    mf.config_hash = c->hash;
    mf.seed = c->train.seed;
    snprintf(mf.tool_version, sizeof mf.tool_version, "nnsearch %s", NS_VERSION);
    mf.n_params = m->n_params;
    /* Statistics of the standardised training rows, for predict's drift check. */
    int rc = ns_feature_stats_compute(&mf.fstats, &p->train, err);
    if (rc)
        return rc;
    mf.params = malloc(m->n_params * sizeof(float));
    if (!mf.params) {
        ns_feature_stats_free(&mf.fstats);
        return ns_err_set(err, NS_ERUNTIME, "out of memory writing the model");
    }
    ns_buf_download(m->be, mf.params, m->params, m->n_params * sizeof(float));
    rc = ns_model_save(path, &mf, err);
    ns_feature_stats_free(&mf.fstats);
    free(mf.params);
    return rc;
}

/* A result before its run: nothing run, no figures. */
static void result_init(ns_run_result *res)
{
    memset(res, 0, sizeof *res);
    res->val_loss = res->val_acc = res->val_rmse = NAN;
    res->test_loss = res->test_acc = res->test_rmse = NAN;
    res->val_bacc = res->val_f1 = res->test_bacc = res->test_f1 = NAN;
}

static int run_max_batch(const ns_config *c)
{
    return c->train.batch_size > c->train.eval_batch ? c->train.batch_size : c->train.eval_batch;
}

/* The training spec of c's run on p: its stream from p (a cross-validation fold's) or from
 * c's seed. */
static void run_spec(ns_train_spec *ts, const ns_config *c, const ns_prepared *p)
{
    *ts = c->train;
    ts->seed = p->stream_seed ? p->stream_seed : ns_seed_derive(c->train.seed, 0x7472616e, 0);
}

/* What a prepared trainer of c's run needs before it runs: its identity, the stop flag, and
 * the state of `checkpoint` when that file exists. */
static int run_attach(ns_trainer *tr, const ns_config *c, const ns_prepared *p,
                      const char *checkpoint, const ns_stop_flag *stop, ns_err *err)
{
    tr->t_std = p->stdz.t_std;
    tr->tag = c->hash ^ ns_hash64(c->train.seed); /* --seed changes the run too */
    tr->stop = stop;
    if (checkpoint)
        ns_atomic_remove_stale(checkpoint); /* a run killed mid-write left these */
    if (checkpoint && file_exists(checkpoint))
        return ns_trainer_load(tr, checkpoint, err);
    return NS_OK;
}

int ns_pipeline_add_decision_offsets(ns_mlp *m, const ns_config *c, ns_err *err)
{
    const int L = m->n_layers - 1, K = m->dims[m->n_layers];
    if (c->n_decision_offsets != K)
        return ns_err_set(err, NS_EINPUT, "%s: model.decision_offsets lists %d offsets for %d outputs; "
                          "give one per class", c->path, c->n_decision_offsets, K);
    float *b = malloc((size_t)K * sizeof *b);
    if (!b)
        return ns_err_set(err, NS_ERUNTIME, "out of memory");
    ns_buf_download(m->be, b, m->b[L], (size_t)K * sizeof *b);
    for (int k = 0; k < K; k++)
        b[k] += c->decision_offsets[k];
    ns_buf_upload(m->be, m->b[L], b, (size_t)K * sizeof *b);
    free(b);
    return NS_OK;
}

/* After the run: the checkpoint of an interrupted one, else the result (the final weights
 * evaluated on p's validation and test rows), the validation predictions and the model
 * file. */
static int run_conclude(ns_trainer *tr, const epoch_hook *h, const ns_config *c,
                        const ns_prepared *p, ns_mlp *m, const ns_run_out *out,
                        ns_run_result *res, ns_err *err)
{
    if (h->save_failed) {
        if (err)
            *err = h->save_err;
        return h->save_err.code;
    }
    res->epochs = tr->epoch;
    if (tr->interrupted) {
        res->interrupted = 1;
        return out->checkpoint ? ns_trainer_save(tr, out->checkpoint, err) : NS_OK;
    }
    res->stopped_early = tr->stopped_early;
    res->diverged = h->last.diverged;
    res->best_epoch = tr->best_epoch > 0 && tr->best_params ? tr->best_epoch : tr->epoch;
    res->last = h->last;
    int rc;
    if (c->n_decision_offsets && (rc = ns_pipeline_add_decision_offsets(m, c, err)))
        return rc;
    /* one pass per set: loss, accuracy or RMSE, and the per-class scores (NaN for regression) */
    tr->eval_pred = out->val_pred;
    rc = p->val.n ? ns_trainer_evaluate(tr, &p->val, &res->val_loss, &res->val_acc, &res->val_rmse,
                                        &res->val_bacc, &res->val_f1, err) : NS_OK;
    tr->eval_pred = NULL;
    if (rc)
        return rc;
    if (p->test.n && (rc = ns_trainer_evaluate(tr, &p->test, &res->test_loss, &res->test_acc, &res->test_rmse,
                                               &res->test_bacc, &res->test_f1, err)))
        return rc;
    return out->model ? write_model(out->model, c, p, m, err) : NS_OK;
}

int ns_run_training(const ns_config *c, const ns_prepared *p, ns_epoch_fn fn, void *user,
                    const ns_run_out *out, const ns_stop_flag *stop, ns_run_result *res,
                    ns_err *err)
{
    static const ns_run_out nowhere = {0};
    if (!out)
        out = &nowhere;
    result_init(res);
    ns_mlp_spec spec;
    ns_pipeline_model_spec(&spec, c, p);
    int max_batch = run_max_batch(c);
    ns_trainer tr;
    memset(&tr, 0, sizeof tr);
    ns_mlp *m = NULL;
    int rc;
    if ((rc = ns_pipeline_memory_check(c, p, max_batch, err)))
        return rc;
    ns_backend *be = ns_backend_open((ns_device)c->device, c->threads, (ns_precision)c->precision, err);
    if (!be)
        return err ? err->code : NS_ERUNTIME;
    m = ns_mlp_alloc(&spec, be, max_batch, err);
    if (!m) {
        rc = err ? err->code : NS_ERUNTIME;
        goto done;
    }
    if ((rc = model_init(m, c, p, c->train.seed, err)))
        goto done;
    ns_train_spec ts;
    run_spec(&ts, c, p);
    if ((rc = ns_trainer_init(&tr, &ts, be, &m->net, &p->train, p->val.n ? &p->val : NULL, err)) ||
        (rc = run_attach(&tr, c, p, out->checkpoint, stop, err)))
        goto done;
    epoch_hook h = {.tr = &tr, .checkpoint = out->checkpoint, .fn = fn, .user = user,
                    .last_save = mono_s()};
    if ((rc = ns_trainer_run(&tr, 0, on_epoch, &h, err)))
        goto done;
    rc = run_conclude(&tr, &h, c, p, m, out, res, err);
done:
    ns_trainer_free(&tr);
    ns_mlp_free(m);
    ns_backend_free(be);
    return rc;
}

int ns_run_shape_key(const ns_config *c, const ns_prepared *p, char *buf, size_t cap)
{
    ns_mlp_spec spec;
    ns_pipeline_model_spec(&spec, c, p);
    if (c->train.budget == NS_BUDGET_SECONDS || c->ensemble)
        return 0;
    size_t n = (size_t)snprintf(buf, cap, "%d:%d:%d:%d:%d:%d:%d:%d:%d", spec.n_in, spec.n_out,
                                (int)spec.loss, c->train.batch_size, c->train.drop_last,
                                run_max_batch(c), c->device, c->precision, c->threads);
    for (int l = 0; l < spec.n_hidden && n < cap; l++)
        n += (size_t)snprintf(buf + n, cap - n, ",%d", spec.hidden[l]);
    return n < cap;
}

/* The array's view of member k's epochs: the member's own hook (records, checkpoints);
 * user is the hooks, one per member. */
static int on_member_epoch(void *user, int k, const ns_epoch_record *rec)
{
    return on_epoch((epoch_hook *)user + k, rec);
}

void ns_run_training_array(const ns_config *const *c, int K, const ns_prepared *p, ns_epoch_fn fn,
                           void *const *user, const ns_run_out *out, const ns_stop_flag *stop,
                           ns_run_result *res, int *rc, ns_err *err)
{
    ns_run_out *outs = calloc((size_t)K, sizeof *outs); /* out, or nowhere for each */
    ns_mlp_spec *specs = calloc((size_t)K, sizeof *specs);
    ns_train_spec *ts = calloc((size_t)K, sizeof *ts);
    ns_net **nets = calloc((size_t)K, sizeof *nets);
    epoch_hook *hooks = calloc((size_t)K, sizeof *hooks);
    ns_backend *be = NULL;
    ns_mlp_group *g = NULL;
    ns_trainer_array a;
    memset(&a, 0, sizeof a);
    ns_err gerr = {0};
    int grc = NS_OK;
    for (int k = 0; k < K; k++) {
        result_init(&res[k]);
        rc[k] = NS_OK;
    }
    if (!outs || !specs || !ts || !nets || !hooks) {
        grc = ns_err_set(&gerr, NS_ERUNTIME, "out of memory for an array of %d trials", K);
        goto done;
    }
    /* The members together, each as ns_pipeline_memory_check counts a run: an array that
     * would not fit, or whose buffers the device cannot give, trains its members alone,
     * one after another (each then judged alone, as any trial is). */
    if (out)
        memcpy(outs, out, (size_t)K * sizeof *outs);
    uint64_t need = 0, model;
    for (int k = 0; k < K; k++) {
        ns_pipeline_model_spec(&specs[k], c[k], p);
        run_spec(&ts[k], c[k], p);
        need += run_bytes(c[k], p, run_max_batch(c[k]), &model);
    }
    const char *what;
    int alone = need > ns_sysmem_limit(&what);
    if (!alone && !(be = ns_backend_open((ns_device)c[0]->device, c[0]->threads,
                                         (ns_precision)c[0]->precision, &gerr))) {
        grc = gerr.code ? gerr.code : NS_ERUNTIME;
        goto done;
    }
    if (!alone && !(g = ns_mlp_group_alloc(specs, K, be, run_max_batch(c[0]), &gerr))) {
        if (gerr.code != NS_ERUNTIME) {
            grc = gerr.code;
            goto done;
        }
        alone = 1;
    }
    if (!alone) {
        for (int k = 0; k < K; k++) {
            if (!rc[k])
                rc[k] = model_init(g->m[k], c[k], p, c[k]->train.seed, &err[k]);
            nets[k] = &g->m[k]->net;
        }
        grc = ns_trainer_array_init(&a, ts, K, be, nets, &g->net, &p->train,
                                    p->val.n ? &p->val : NULL, &gerr);
        if (grc == NS_ERUNTIME) { /* the members' trainers do not fit together */
            grc = NS_OK;
            alone = 1;
        } else if (grc) {
            goto done;
        }
    }
    if (alone) {
        ns_mlp_group_free(g);
        g = NULL;
        ns_backend_free(be);
        be = NULL;
        for (int k = 0; k < K; k++)
            rc[k] = ns_run_training(c[k], p, fn, user[k], &outs[k], stop, &res[k], &err[k]);
        goto done;
    }
    for (int k = 0; k < K; k++) {
        if (!rc[k])
            rc[k] = run_attach(&a.tr[k], c[k], p, outs[k].checkpoint, stop, &err[k]);
        a.left_out[k] = rc[k] != NS_OK; /* a member that cannot start fails alone */
        hooks[k] = (epoch_hook){.tr = &a.tr[k], .checkpoint = outs[k].checkpoint, .fn = fn,
                                .user = user[k], .last_save = mono_s()};
    }
    if ((grc = ns_trainer_array_run(&a, 0, on_member_epoch, hooks, &gerr)))
        goto done;
    for (int k = 0; k < K; k++)
        if (!rc[k])
            rc[k] = run_conclude(&a.tr[k], &hooks[k], c[k], p, g->m[k], &outs[k], &res[k],
                                 &err[k]);
done:
    if (grc) /* what failed was the array's: every member that had not failed fails with it */
        for (int k = 0; k < K; k++)
            if (!rc[k]) {
                rc[k] = grc;
                err[k] = gerr;
            }
    ns_trainer_array_free(&a);
    ns_mlp_group_free(g);
    ns_backend_free(be);
    free(outs);
    free(specs);
    free(ts);
    free(nets);
    free(hooks);
}
