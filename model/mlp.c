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

/* Shapes and offsets of spec's network into m (spec checked); *n_act: floats of one pre- or
 * post-activation buffer set, *widest: the widest layer side (the gradient buffers' row). */
static int layout(ns_mlp *m, const ns_mlp_spec *spec, ns_backend *be, int max_batch,
                  size_t *n_act, int *widest, ns_err *err)
{
    if (spec_check(spec, err))
        return NS_EINPUT;
    if (max_batch < 1)
        return ns_err_set(err, NS_EINPUT, "batch size must be >= 1 (got %d)", max_batch);
    m->spec = *spec;
    m->be = be;
    m->max_batch = max_batch;
    m->n_layers = spec->n_hidden + 1;
    m->dims[0] = spec->n_in;
    for (int l = 0; l < spec->n_hidden; l++)
        m->dims[l + 1] = spec->hidden[l];
    m->dims[m->n_layers] = spec->n_out;
    size_t n = 0;
    *n_act = 0;
    *widest = 0;
    for (int l = 0; l < m->n_layers; l++) {
        m->off[l] = n;
        n += (size_t)m->dims[l + 1] * m->dims[l] + m->dims[l + 1];
        *n_act += (size_t)max_batch * m->dims[l + 1];
        if (m->dims[l + 1] > *widest)
            *widest = m->dims[l + 1];
        if (m->dims[l] > *widest)
            *widest = m->dims[l];
    }
    m->off[m->n_layers] = n;
    m->n_params = n;
    return NS_OK;
}

/* Points m's views into its buffers: params and grads (n_params each), acts (2 n_act: the
 * pre and out of every layer; the output layer's out is its pre) and the two gradient rows. */
static void bind(ns_mlp *m, float *params, float *grads, float *acts, float *d0, float *d1)
{
    m->params = params;
    m->grads = grads;
    m->acts = acts;
    m->dbuf[0] = d0;
    m->dbuf[1] = d1;
    float *a = acts;
    for (int l = 0; l < m->n_layers; l++) {
        size_t rows = (size_t)m->dims[l + 1] * m->dims[l];
        m->w[l] = m->params + m->off[l];
        m->b[l] = m->w[l] + rows;
        m->gw[l] = m->grads + m->off[l];
        m->gb[l] = m->gw[l] + rows;
        size_t sz = (size_t)m->max_batch * m->dims[l + 1];
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
        .max_batch = m->max_batch,
        .batch = net_batch,
    };
}

ns_mlp *ns_mlp_alloc(const ns_mlp_spec *spec, ns_backend *be, int max_batch, ns_err *err)
{
    ns_mlp *m = calloc(1, sizeof *m);
    if (!m) {
        ns_err_set(err, NS_ERUNTIME, "out of memory allocating the model");
        return NULL;
    }
    size_t n_act;
    int widest;
    if (layout(m, spec, be, max_batch, &n_act, &widest, err)) {
        free(m);
        return NULL;
    }
    /* One at a time: after a failure the rest are not allocated (the CPU backend zeroes
     * what it allocates, so going on would touch gigabytes only to free them). */
    size_t n = m->n_params, nd = (size_t)max_batch * widest;
    float *p = NULL, *g = NULL, *a = NULL, *d0 = NULL, *d1 = NULL;
    if (!(p = ns_buf_alloc(be, n * sizeof(float))) || !(g = ns_buf_alloc(be, n * sizeof(float))) ||
        !(a = ns_buf_alloc(be, 2 * n_act * sizeof(float))) ||
        !(d0 = ns_buf_alloc(be, nd * sizeof(float))) || !(d1 = ns_buf_alloc(be, nd * sizeof(float)))) {
        ns_buf_free(be, p);
        ns_buf_free(be, g);
        ns_buf_free(be, a);
        ns_buf_free(be, d0);
        free(m);
        ns_err_set(err, NS_ERUNTIME, "out of memory allocating the model");
        return NULL;
    }
    bind(m, p, g, a, d0, d1);
    return m;
}

void ns_mlp_free(ns_mlp *m)
{
    if (!m)
        return;
    if (!m->member) { /* a group member's buffers are the group's */
        ns_buf_free(m->be, m->params);
        ns_buf_free(m->be, m->grads);
        ns_buf_free(m->be, m->acts);
        ns_buf_free(m->be, m->dbuf[0]);
        ns_buf_free(m->be, m->dbuf[1]);
    }
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

/* Layer l's input rows: x for the first layer, the previous layer's output after it. */
static const float *layer_in(const ns_mlp *m, int l, const float *x)
{
    return l > 0 ? m->out[l - 1] : x;
}

/* The gradient rows of layer l's pre-activations (overwritten layer by layer, so two
 * buffers take turns: the output layer's is dbuf[0]). */
static float *layer_grad(const ns_mlp *m, int l) { return m->dbuf[(m->n_layers - 1 - l) & 1]; }

/* Layer l's bias, activation and dropout pass of m (backward: its inverse, in place on
 * layer_grad(l), adding the bias gradient) as one member of a batched call. */
static ns_member_act layer_act(const ns_mlp *m, int l, int backward, int training,
                               uint64_t noise_seed)
{
    int last = is_output(m, l);
    float *d = layer_grad(m, l);
    return (ns_member_act){.out = backward ? d : last ? m->pre[l] : m->out[l],
                           .pre = m->pre[l], .b = m->b[l], .db = m->gb[l], .dout = d,
                           .act = last ? NS_ACT_IDENTITY : m->spec.act,
                           .p = training && !last ? m->spec.dropout : 0.0f,
                           .seed = ns_mlp_dropout_seed(noise_seed, l)};
}

/* Layer l's bias, activation and dropout, after its product is in pre[l]. */
static void layer_act_forward(ns_mlp *m, int l, int B, int training, uint64_t noise_seed)
{
    ns_member_act a = layer_act(m, l, 0, training, noise_seed);
    ns_op_bias_act_forward_members(m->be, &a, 1, B, m->dims[l + 1]);
}

/* Its inverse, in place on layer_grad(l); adds the bias gradient. */
static void layer_act_backward(ns_mlp *m, int l, int B, uint64_t noise_seed)
{
    ns_member_act a = layer_act(m, l, 1, 1, noise_seed);
    ns_op_bias_act_backward_members(m->be, &a, 1, B, m->dims[l + 1]);
}

const float *ns_mlp_forward(ns_mlp *m, const float *x, int B, int training, uint64_t noise_seed)
{
    for (int l = 0; l < m->n_layers; l++) {
        ns_op_matmul_forward(m->be, m->pre[l], layer_in(m, l, x), m->w[l], B, m->dims[l],
                             m->dims[l + 1]);
        layer_act_forward(m, l, B, training, noise_seed);
    }
    return m->pre[m->n_layers - 1];
}

/* Adds B rows to the (k x k) confusion table conf: row = label, column = argmax of the
 * logits (the first of equal ones, as the accuracy counts), and the argmax to pred[0..B)
 * when pred is not NULL. Logits and labels are copied to
 * the host where they live on a device; rows outside the table are not counted. */
static int add_confusion(ns_mlp *m, const float *logits, const int32_t *y, int B, long *conf,
                         int k, int32_t *pred, ns_err *err)
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
        if (pred)
            pred[i] = arg;
        if (yy[i] >= 0 && yy[i] < k && arg < k)
            conf[(long)yy[i] * k + arg]++;
    }
    free(z);
    free(lab);
    return NS_OK;
}

/* The loss of the last forward pass; with grads != 0 its gradient goes to layer_grad of
 * the output layer. */
static int mlp_loss(ns_mlp *m, const int32_t *y, const float *t, int B, int grads,
                    ns_batch_out *out, ns_err *err)
{
    const float *logits = m->pre[m->n_layers - 1];
    float *d = grads ? layer_grad(m, m->n_layers - 1) : NULL;
    memset(out, 0, sizeof *out);
    if (m->spec.loss == NS_LOSS_XENT) {
        if (!y)
            return ns_err_set(err, NS_EINPUT, "cross-entropy needs class labels");
        if (m->net.conf) {
            int rc = add_confusion(m, logits, y, B, m->net.conf, m->net.conf_k, m->net.pred, err);
            if (rc)
                return rc;
        }
        if (m->net.res)
            ns_op_softmax_xent_to(m->be, m->net.res, d, logits, y, m->class_w,
                                  m->spec.label_smoothing, B, m->spec.n_out);
        else
            out->loss_sum = ns_op_softmax_xent(m->be, d, &out->correct, &out->weight_sum, logits,
                                               y, m->class_w, m->spec.label_smoothing, B,
                                               m->spec.n_out);
    } else {
        if (!t)
            return ns_err_set(err, NS_EINPUT, "mean squared error needs numeric targets");
        /* loss per row = mean over outputs, so loss_sum / weight_sum is torch's MSELoss;
         * ns_op_mse_to forms the same numbers on the device. */
        if (m->net.res) {
            ns_op_mse_to(m->be, m->net.res, d, logits, t, B, m->spec.n_out);
        } else {
            double sse = ns_op_mse(m->be, d, logits, t, B, m->spec.n_out);
            out->sq_err = sse;
            out->loss_sum = sse / m->spec.n_out;
            out->weight_sum = B;
        }
    }
    return NS_OK;
}

int ns_mlp_loss_backward(ns_mlp *m, const float *x, const int32_t *y, const float *t, int B,
                         int grads, uint64_t noise_seed, ns_batch_out *out, ns_err *err)
{
    int rc = mlp_loss(m, y, t, B, grads, out, err);
    if (rc || !grads)
        return rc;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        layer_act_backward(m, l, B, noise_seed);
        ns_op_matmul_backward(m->be, l > 0 ? layer_grad(m, l - 1) : NULL, m->gw[l],
                              layer_grad(m, l), layer_in(m, l, x), m->w[l], B, m->dims[l],
                              m->dims[l + 1]);
    }
    return NS_OK;
}

/* ---- a group: K same-shaped networks trained in lock-step --------------------------- */

/* One training pass of the members in mask, all with B rows: each layer's products for all
 * of them in one batched op, the rest member by member in the order ns_mlp_forward and
 * ns_mlp_loss_backward use, so that on the CPU every member gets the bits it gets alone. */
static int group_pass(ns_mlp_group *g, const unsigned char *mask, const float *x,
                      size_t x_stride, const int32_t *y, const float *t, size_t yt_stride, int B,
                      const uint64_t *noise_seed, ns_batch_out *out, ns_err *err)
{
    ns_mlp *m0 = g->m[0];
    const int K = g->k, L = m0->n_layers;
    const size_t np = g->n_params, as = g->acts_stride, ds = g->dbuf_stride;
    for (int l = 0; l < L; l++) {
        ns_op_matmul_forward_batched(g->be, K, mask, m0->pre[l], as, layer_in(m0, l, x),
                                     l > 0 ? as : x_stride, m0->w[l], np, B, m0->dims[l],
                                     m0->dims[l + 1]);
        int n = 0;
        for (int k = 0; k < K; k++)
            if (mask[k])
                g->act[n++] = layer_act(g->m[k], l, 0, 1, noise_seed[k]);
        ns_op_bias_act_forward_members(g->be, g->act, n, B, m0->dims[l + 1]);
    }
    /* the losses: cross-entropies left on the device go to the backend together */
    int nx = 0;
    for (int k = 0; k < K; k++) {
        if (!mask[k])
            continue;
        ns_mlp *mk = g->m[k];
        if (mk->spec.loss == NS_LOSS_XENT && mk->net.res && !mk->net.conf && y) {
            memset(&out[k], 0, sizeof out[k]);
            g->xent[nx++] = (ns_member_xent){.res = mk->net.res, .dlogits = layer_grad(mk, L - 1),
                                             .logits = mk->pre[L - 1], .labels = y + k * yt_stride,
                                             .class_w = mk->class_w,
                                             .eps = mk->spec.label_smoothing};
            continue;
        }
        int rc = mlp_loss(mk, y ? y + k * yt_stride : NULL, t ? t + k * yt_stride : NULL, B, 1,
                          &out[k], err);
        if (rc)
            return rc;
    }
    ns_op_softmax_xent_members(g->be, g->xent, nx, B, m0->spec.n_out);
    for (int l = L - 1; l >= 0; l--) {
        int n = 0;
        for (int k = 0; k < K; k++)
            if (mask[k])
                g->act[n++] = layer_act(g->m[k], l, 1, 1, noise_seed[k]);
        ns_op_bias_act_backward_members(g->be, g->act, n, B, m0->dims[l + 1]);
        ns_op_matmul_backward_batched(g->be, K, mask, l > 0 ? layer_grad(m0, l - 1) : NULL, ds,
                                      m0->gw[l], np, layer_grad(m0, l), ds, layer_in(m0, l, x),
                                      l > 0 ? as : x_stride, m0->w[l], np, B, m0->dims[l],
                                      m0->dims[l + 1]);
    }
    return NS_OK;
}

/* ns_net_array.batch: members with equal row counts pass together (rows differ only where
 * one member is at an epoch's last, partial batch and another is not). */
static int group_batch(void *ctx, const unsigned char *active, const float *x, size_t x_stride,
                       const int32_t *y, const float *t, size_t yt_stride, const int *B,
                       const uint64_t *noise_seed, ns_batch_out *out, ns_err *err)
{
    ns_mlp_group *g = ctx;
    unsigned char *mask = g->mask, *left = g->left;
    for (int k = 0; k < g->k; k++)
        left[k] = active[k] != 0;
    for (int first = 0; first < g->k; first++) {
        if (!left[first])
            continue;
        for (int k = first; k < g->k; k++) {
            mask[k] = left[k] && B[k] == B[first];
            if (mask[k])
                left[k] = 0;
        }
        for (int k = 0; k < first; k++)
            mask[k] = 0;
        int rc = group_pass(g, mask, x, x_stride, y, t, yt_stride, B[first], noise_seed, out, err);
        if (rc)
            return rc;
    }
    return NS_OK;
}

ns_mlp_group *ns_mlp_group_alloc(const ns_mlp_spec *specs, int K, ns_backend *be, int max_batch,
                                 ns_err *err)
{
    if (K < 1) {
        ns_err_set(err, NS_EINPUT, "a group needs at least one network (got %d)", K);
        return NULL;
    }
    ns_mlp_group *g = calloc(1, sizeof *g);
    if (!g || !(g->m = calloc((size_t)K, sizeof *g->m)) || !(g->mask = calloc((size_t)K, 2)) ||
        !(g->act = calloc((size_t)K, sizeof *g->act)) ||
        !(g->xent = calloc((size_t)K, sizeof *g->xent))) {
        ns_err_set(err, NS_ERUNTIME, "out of memory allocating a group of %d networks", K);
        goto fail;
    }
    g->left = g->mask + K;
    g->k = K;
    g->be = be;
    size_t n_act = 0;
    int widest = 0;
    for (int k = 0; k < K; k++) {
        if (!(g->m[k] = calloc(1, sizeof *g->m[k]))) {
            ns_err_set(err, NS_ERUNTIME, "out of memory allocating a group of %d networks", K);
            goto fail;
        }
        g->m[k]->member = 1;
        if (layout(g->m[k], &specs[k], be, max_batch, &n_act, &widest, err))
            goto fail;
        const ns_mlp *a = g->m[0], *b = g->m[k];
        if (b->n_layers != a->n_layers || memcmp(a->dims, b->dims, sizeof a->dims[0] * (a->n_layers + 1))) {
            ns_err_set(err, NS_EINPUT, "network %d of the group has other layer widths than "
                       "network 0; only networks of one shape train together", k);
            goto fail;
        }
    }
    g->n_params = g->m[0]->n_params;
    g->acts_stride = 2 * n_act;
    g->dbuf_stride = (size_t)max_batch * widest;
    size_t n = g->n_params * K;
    if (!(g->params = ns_buf_alloc(be, n * sizeof(float))) ||
        !(g->grads = ns_buf_alloc(be, n * sizeof(float))) ||
        !(g->acts = ns_buf_alloc(be, g->acts_stride * K * sizeof(float))) ||
        !(g->dbuf[0] = ns_buf_alloc(be, g->dbuf_stride * K * sizeof(float))) ||
        !(g->dbuf[1] = ns_buf_alloc(be, g->dbuf_stride * K * sizeof(float)))) {
        ns_err_set(err, NS_ERUNTIME, "out of memory allocating a group of %d networks", K);
        goto fail;
    }
    for (int k = 0; k < K; k++)
        bind(g->m[k], g->params + k * g->n_params, g->grads + k * g->n_params,
             g->acts + k * g->acts_stride, g->dbuf[0] + k * g->dbuf_stride,
             g->dbuf[1] + k * g->dbuf_stride);
    g->net = (ns_net_array){.ctx = g, .k = K, .batch = group_batch};
    return g;
fail:
    ns_mlp_group_free(g);
    return NULL;
}

void ns_mlp_group_free(ns_mlp_group *g)
{
    if (!g)
        return;
    for (int k = 0; g->m && k < g->k; k++)
        ns_mlp_free(g->m[k]);
    free(g->m);
    free(g->mask);
    free(g->act);
    free(g->xent);
    if (g->be) {
        ns_buf_free(g->be, g->params);
        ns_buf_free(g->be, g->grads);
        ns_buf_free(g->be, g->acts);
        ns_buf_free(g->be, g->dbuf[0]);
        ns_buf_free(g->be, g->dbuf[1]);
    }
    free(g);
}
