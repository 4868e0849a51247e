/* mlp.c — the multilayer perceptron: layout of the one parameter buffer, initialisation,
 * forward and backward passes as sequences of backend ops, and the ns_net adapter the
 * training loop drives. No arithmetic on layer data happens here. */
#include "model/mlp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const act_names[] = {"identity", "relu", "leaky_relu", "gelu", "tanh", "sigmoid"};
const char *ns_act_name(ns_act a) { return (unsigned)a < 6 ? act_names[a] : "?"; }
const char *ns_init_name(ns_init i) { return i == NS_INIT_XAVIER ? "xavier" : "he"; }
const char *ns_loss_name(ns_loss l) { return l == NS_LOSS_MSE ? "mse" : "cross_entropy"; }

static int net_batch(void *ctx, const float *x, const int32_t *y, const float *t, int B,
                     int training, uint64_t noise_seed, ns_batch_out *out, ns_err *err)
{
    ns_mlp *m = ctx;
    ns_mlp_forward(m, x, B, training, noise_seed);
    return ns_mlp_loss_backward(m, x, y, t, B, training, noise_seed, out, err);
}

static int spec_check(const ns_mlp_spec *s, ns_err *err)
{
    if (s->n_in < 1 || s->n_out < 1)
        return ns_err_set(err, NS_EINPUT, "model needs at least one input and one output (got %d, %d)",
                          s->n_in, s->n_out);
    if (s->n_hidden < 0 || s->n_hidden > NS_MAX_HIDDEN)
        return ns_err_set(err, NS_EINPUT, "model.hidden: %d layers; use 0 to %d", s->n_hidden,
                          NS_MAX_HIDDEN);
    for (int l = 0; l < s->n_hidden; l++)
        if (s->hidden[l] < 1)
            return ns_err_set(err, NS_EINPUT, "model.hidden[%d] = %d; widths must be >= 1", l,
                              s->hidden[l]);
    if ((unsigned)s->act > NS_ACT_SIGMOID)
        return ns_err_set(err, NS_EINPUT, "model.activation: unknown activation %d", (int)s->act);
    if (!(s->dropout >= 0.0f && s->dropout < 1.0f))
        return ns_err_set(err, NS_EINPUT, "model.dropout = %g; use a value in [0, 1)", s->dropout);
    if (!(s->label_smoothing >= 0.0f && s->label_smoothing < 1.0f))
        return ns_err_set(err, NS_EINPUT, "model.label_smoothing = %g; use a value in [0, 1)",
                          s->label_smoothing);
    return NS_OK;
}

uint64_t ns_mlp_spec_param_count(const ns_mlp_spec *s)
{
    uint64_t n = 0, in = (uint64_t)s->n_in;
    for (int l = 0; l <= s->n_hidden; l++) {
        uint64_t out = (uint64_t)(l < s->n_hidden ? s->hidden[l] : s->n_out);
        n += out * in + out;
        in = out;
    }
    return n;
}

uint64_t ns_mlp_spec_bytes(const ns_mlp_spec *s, int max_batch)
{
    uint64_t act = 0, widest = (uint64_t)s->n_in, B = max_batch > 0 ? (uint64_t)max_batch : 1;
    for (int l = 0; l <= s->n_hidden; l++) {
        uint64_t out = (uint64_t)(l < s->n_hidden ? s->hidden[l] : s->n_out);
        act += out;
        if (out > widest)
            widest = out;
    }
    /* params + grads, pre + out per layer, dbuf[0] + dbuf[1] */
    return 4 * (2 * ns_mlp_spec_param_count(s) + 2 * B * act + 2 * B * widest);
}

ns_mlp *ns_mlp_alloc(const ns_mlp_spec *spec, ns_backend *be, int max_batch, ns_err *err)
{
    if (spec_check(spec, err))
        return NULL;
    if (max_batch < 1) {
        ns_err_set(err, NS_EINPUT, "batch size must be >= 1 (got %d)", max_batch);
        return NULL;
    }
    ns_mlp *m = calloc(1, sizeof *m);
    if (!m)
        goto oom;
    m->spec = *spec;
    m->be = be;
    m->max_batch = max_batch;
    m->n_layers = spec->n_hidden + 1;
    m->dims[0] = spec->n_in;
    for (int l = 0; l < spec->n_hidden; l++)
        m->dims[l + 1] = spec->hidden[l];
    m->dims[m->n_layers] = spec->n_out;

    size_t n = 0, n_act = 0;
    int widest = 0;
    for (int l = 0; l < m->n_layers; l++) {
        m->off[l] = n;
        n += (size_t)m->dims[l + 1] * m->dims[l] + m->dims[l + 1];
        n_act += (size_t)max_batch * m->dims[l + 1];
        if (m->dims[l + 1] > widest)
            widest = m->dims[l + 1];
        if (m->dims[l] > widest)
            widest = m->dims[l];
    }
    m->off[m->n_layers] = n;
    m->n_params = n;

    /* One at a time: after a failure the rest are not allocated (the CPU backend zeroes
     * what it allocates, so going on would touch gigabytes only to free them). The
     * pre and out of every layer share one allocation; the output layer's out is its pre. */
    if (!(m->params = ns_buf_alloc(be, n * sizeof(float))) ||
        !(m->grads = ns_buf_alloc(be, n * sizeof(float))) ||
        !(m->acts = ns_buf_alloc(be, 2 * n_act * sizeof(float))) ||
        !(m->dbuf[0] = ns_buf_alloc(be, (size_t)max_batch * widest * sizeof(float))) ||
        !(m->dbuf[1] = ns_buf_alloc(be, (size_t)max_batch * widest * sizeof(float))))
        goto oom;

    float *a = m->acts;
    for (int l = 0; l < m->n_layers; l++) {
        size_t rows = (size_t)m->dims[l + 1] * m->dims[l];
        m->w[l] = m->params + m->off[l];
        m->b[l] = m->w[l] + rows;
        m->gw[l] = m->grads + m->off[l];
        m->gb[l] = m->gw[l] + rows;
        size_t sz = (size_t)max_batch * m->dims[l + 1];
        m->pre[l] = a;
        m->out[l] = a + sz;
        a += 2 * sz;
    }
    m->net = (ns_net){
        .ctx = m,
        .params = m->params,
        .grads = m->grads,
        .n_params = m->n_params,
        .n_groups = m->n_layers,
        .group_off = m->off,
        .max_batch = max_batch,
        .batch = net_batch,
    };
    return m;
oom:
    ns_mlp_free(m);
    ns_err_set(err, NS_ERUNTIME, "out of memory allocating the model");
    return NULL;
}

void ns_mlp_free(ns_mlp *m)
{
    if (!m)
        return;
    ns_buf_free(m->be, m->params);
    ns_buf_free(m->be, m->grads);
    ns_buf_free(m->be, m->acts);
    ns_buf_free(m->be, m->dbuf[0]);
    ns_buf_free(m->be, m->dbuf[1]);
    ns_buf_free(m->be, m->class_w);
    free(m);
}

int ns_mlp_init_params(ns_mlp *m, ns_rng *rng, ns_err *err)
{
    /* Drawn on the host in layer order so the weights do not depend on the backend. */
    float *host = calloc(m->n_params, sizeof *host);
    if (!host)
        return ns_err_set(err, NS_ERUNTIME, "out of memory initialising %zu parameters", m->n_params);
    for (int l = 0; l < m->n_layers; l++) {
        int fan_in = m->dims[l], fan_out = m->dims[l + 1];
        float *w = host + m->off[l];
        size_t nw = (size_t)fan_in * fan_out;
        if (m->spec.init == NS_INIT_XAVIER) {
            double lim = sqrt(6.0 / (fan_in + fan_out));
            for (size_t i = 0; i < nw; i++)
                w[i] = (float)((2.0 * ns_rng_uniform(rng) - 1.0) * lim);
        } else {
            double sd = sqrt(2.0 / fan_in);
            for (size_t i = 0; i < nw; i++)
                w[i] = (float)(ns_rng_normal(rng) * sd);
        }
    }
    ns_buf_upload(m->be, m->params, host, m->n_params * sizeof *host);
    free(host);
    return NS_OK;
}

int ns_mlp_set_class_weights(ns_mlp *m, const float *w, ns_err *err)
{
    ns_buf_free(m->be, m->class_w);
    m->class_w = NULL;
    if (!w)
        return NS_OK;
    for (int c = 0; c < m->spec.n_out; c++)
        if (!(w[c] > 0.0f) || !isfinite(w[c]))
            return ns_err_set(err, NS_EINPUT, "class weight %d is %g; weights must be finite and > 0",
                              c, w[c]);
    m->class_w = ns_buf_alloc(m->be, (size_t)m->spec.n_out * sizeof(float));
    if (!m->class_w)
        return ns_err_set(err, NS_ERUNTIME, "out of memory for class weights");
    ns_buf_upload(m->be, m->class_w, w, (size_t)m->spec.n_out * sizeof(float));
    return NS_OK;
}

/* Per-layer dropout streams: independent masks for every layer of every batch. */
uint64_t ns_mlp_dropout_seed(uint64_t noise_seed, int layer)
{
    return ns_seed_derive(noise_seed, (uint64_t)layer, 0x64726f70);
}

static int is_output(const ns_mlp *m, int l) { return l == m->n_layers - 1; }

const float *ns_mlp_forward(ns_mlp *m, const float *x, int B, int training, uint64_t noise_seed)
{
    const float *in = x;
    for (int l = 0; l < m->n_layers; l++) {
        int last = is_output(m, l);
        float p = training && !last ? m->spec.dropout : 0.0f;
        float *out = last ? m->pre[l] : m->out[l];
        ns_op_matmul_forward(m->be, m->pre[l], in, m->w[l], B, m->dims[l], m->dims[l + 1]);
        ns_op_bias_act_forward(m->be, out, m->pre[l], m->b[l], last ? NS_ACT_IDENTITY : m->spec.act,
                               p, ns_mlp_dropout_seed(noise_seed, l), B, m->dims[l + 1]);
        in = out;
    }
    return m->pre[m->n_layers - 1];
}

/* Adds B rows to the (k x k) confusion table conf: row = label, column = argmax of the
 * logits (the first of equal ones, as the accuracy counts). Logits and labels are copied to
 * the host where they live on a device; rows outside the table are not counted. */
static int add_confusion(ns_mlp *m, const float *logits, const int32_t *y, int B, long *conf,
                         int k, ns_err *err)
{
    const int K = m->spec.n_out;
    int host = ns_backend_is_host(m->be);
    float *z = host ? NULL : malloc((size_t)B * (size_t)K * sizeof *z);
    int32_t *lab = host ? NULL : malloc((size_t)B * sizeof *lab);
    if (!host && (!z || !lab)) {
        free(z);
        free(lab);
        return ns_err_set(err, NS_ERUNTIME, "out of memory for the confusion table");
    }
    if (!host) {
        ns_buf_download(m->be, z, logits, (size_t)B * (size_t)K * sizeof *z);
        ns_buf_download(m->be, lab, y, (size_t)B * sizeof *lab);
    }
    const float *zz = host ? logits : z;
    const int32_t *yy = host ? y : lab;
    for (int i = 0; i < B; i++) {
        const float *zi = zz + (size_t)i * K;
        int arg = 0;
        for (int c = 1; c < K; c++)
            if (zi[c] > zi[arg])
                arg = c;
        if (yy[i] >= 0 && yy[i] < k && arg < k)
            conf[(long)yy[i] * k + arg]++;
    }
    free(z);
    free(lab);
    return NS_OK;
}

int ns_mlp_loss_backward(ns_mlp *m, const float *x, const int32_t *y, const float *t, int B,
                         int grads, uint64_t noise_seed, ns_batch_out *out, ns_err *err)
{
    const int L = m->n_layers;
    const float *logits = m->pre[L - 1];
    float *d = grads ? m->dbuf[0] : NULL;
    memset(out, 0, sizeof *out);
    if (m->spec.loss == NS_LOSS_XENT) {
        if (!y)
            return ns_err_set(err, NS_EINPUT, "cross-entropy needs class labels");
        if (m->net.conf) {
            int rc = add_confusion(m, logits, y, B, m->net.conf, m->net.conf_k, err);
            if (rc)
                return rc;
        }
        out->loss_sum = ns_op_softmax_xent(m->be, d, &out->correct, &out->weight_sum, logits, y,
                                           m->class_w, m->spec.label_smoothing, B, m->spec.n_out);
    } else {
        if (!t)
            return ns_err_set(err, NS_EINPUT, "mean squared error needs numeric targets");
        /* loss per row = mean over outputs, so loss_sum / weight_sum is torch's MSELoss. */
        double sse = ns_op_mse(m->be, d, logits, t, B, m->spec.n_out);
        out->sq_err = sse;
        out->loss_sum = sse / m->spec.n_out;
        out->weight_sum = B;
    }
    if (!grads)
        return NS_OK;
    for (int l = L - 1; l >= 0; l--) {
        int last = is_output(m, l);
        float p = !last ? m->spec.dropout : 0.0f;
        const float *in = l > 0 ? m->out[l - 1] : x;
        float *dnext = l > 0 ? m->dbuf[(L - l) & 1] : NULL;
        ns_op_bias_act_backward(m->be, d, m->gb[l], d, m->pre[l], last ? NS_ACT_IDENTITY : m->spec.act,
                                p, ns_mlp_dropout_seed(noise_seed, l), B, m->dims[l + 1]);
        ns_op_matmul_backward(m->be, dnext, m->gw[l], d, in, m->w[l], B, m->dims[l], m->dims[l + 1]);
        d = dnext;
    }
    return NS_OK;
}
