/* test_mlp.c — gradient checks of the MLP: analytic gradients (float, through the CPU
 * backend) against central finite differences of an independent double-precision
 * reference forward pass, for every activation, both losses, class weights, label
 * smoothing and dropout; plus the layout of the one parameter buffer and init. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend.h"
#include "engine/rng.h"
#include "model/mlp.h"
#include "tests/testutil.h"

typedef struct gc_case {
    ns_act act;
    ns_loss loss;
    float dropout;
    float smoothing;
    int weighted;
} gc_case;

static double ref_act(ns_act a, double x)
{
    switch (a) {
    case NS_ACT_RELU: return x > 0 ? x : 0;
    case NS_ACT_LEAKY_RELU: return x > 0 ? x : 0.01 * x;
    case NS_ACT_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case NS_ACT_TANH: return tanh(x);
    case NS_ACT_SIGMOID: return 1 / (1 + exp(-x));
    default: return x;
    }
}

/* Double-precision loss of the model in theta (host, ns_mlp layout), written from the
 * definitions alone: dense layers, activation, inverted dropout, softmax cross-entropy with
 * smoothed targets and class weights, or mean squared error. */
static double ref_loss(const ns_mlp *m, const double *theta, const double *x, const int32_t *y,
                       const double *t, const double *cw, int B, uint64_t noise_seed)
{
    const int L = m->n_layers;
    int widest = 0;
    for (int l = 0; l <= L; l++)
        widest = m->dims[l] > widest ? m->dims[l] : widest;
    double *a = calloc((size_t)B * widest, sizeof *a), *z = calloc((size_t)B * widest, sizeof *z);
    for (int i = 0; i < B * m->dims[0]; i++)
        a[i] = x[i];
    for (int l = 0; l < L; l++) {
        int C = m->dims[l], OC = m->dims[l + 1];
        const double *w = theta + m->off[l], *b = w + (size_t)C * OC;
        int last = l == L - 1;
        float p = last ? 0.0f : m->spec.dropout;
        uint64_t seed = ns_mlp_dropout_seed(noise_seed, l);
        for (int i = 0; i < B; i++)
            for (int o = 0; o < OC; o++) {
                double s = b[o];
                for (int c = 0; c < C; c++)
                    s += a[i * C + c] * w[o * C + c];
                double v = last ? s : ref_act(m->spec.act, s);
                if (p > 0)
                    v = ns_dropout_keep(seed, (size_t)i * OC + o, p) ? v / (1.0 - p) : 0.0;
                z[i * OC + o] = v;
            }
        memcpy(a, z, (size_t)B * OC * sizeof *a);
    }
    int K = m->dims[L];
    double loss = 0, wsum = 0;
    for (int i = 0; i < B; i++) {
        const double *o = a + (size_t)i * K;
        if (m->spec.loss == NS_LOSS_MSE) {
            for (int k = 0; k < K; k++)
                loss += (o[k] - t[i * K + k]) * (o[k] - t[i * K + k]);
            wsum += K;
            continue;
        }
        double mx = o[0], se = 0;
        for (int k = 1; k < K; k++)
            mx = o[k] > mx ? o[k] : mx;
        for (int k = 0; k < K; k++)
            se += exp(o[k] - mx);
        /* torch's weighted, smoothed cross-entropy: (1 - eps) w_y nll + eps / K sum_k w_k nll_k */
        double eps = m->spec.label_smoothing, wi = cw ? cw[y[i]] : 1;
        for (int k = 0; k < K; k++) {
            double wk = cw ? cw[k] : 1;
            loss -= ((k == y[i] ? (1 - eps) * wi : 0) + eps / K * wk) * (o[k] - mx - log(se));
        }
        wsum += wi;
    }
    free(a);
    free(z);
    return loss / wsum;
}

static void gradient_check(gc_case gc)
{
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    cr_assert(be, "%s", err.msg);
    const int B = 6, IN = 5, K = gc.loss == NS_LOSS_MSE ? 2 : 3;
    ns_mlp_spec spec = {.n_in = IN, .n_out = K, .n_hidden = 2, .hidden = {7, 4}, .act = gc.act,
                        .dropout = gc.dropout, .init = NS_INIT_XAVIER, .loss = gc.loss,
                        .label_smoothing = gc.smoothing};
    ns_mlp *m = ns_mlp_alloc(&spec, be, B, &err);
    cr_assert(m, "%s", err.msg);
    ns_rng rng;
    ns_rng_seed(&rng, 42);
    cr_assert_eq(ns_mlp_init_params(m, &rng, NULL), NS_OK);
    /* Non-zero biases so every bias gradient is exercised away from symmetric points. */
    for (int l = 0; l < m->n_layers; l++)
        for (int o = 0; o < m->dims[l + 1]; o++)
            m->b[l][o] = (float)(0.2 * ns_rng_normal(&rng));
    float cwf[3] = {0.5f, 2.0f, 1.25f};
    double cwd[3] = {0.5, 2.0, 1.25};
    if (gc.weighted)
        cr_assert_eq(ns_mlp_set_class_weights(m, cwf, &err), NS_OK);

    float xf[6 * 5], tf[6 * 2];
    double xd[6 * 5], td[6 * 2];
    int32_t y[6];
    for (int i = 0; i < B * IN; i++)
        xd[i] = xf[i] = (float)ns_rng_normal(&rng);
    for (int i = 0; i < B * 2; i++)
        td[i] = tf[i] = (float)ns_rng_normal(&rng);
    for (int i = 0; i < B; i++)
        y[i] = (int32_t)(i % K);
    const uint64_t noise = 1234567;

    ns_op_zero(be, m->grads, m->n_params);
    ns_batch_out out;
    ns_mlp_forward(m, xf, B, 1, noise);
    cr_assert_eq(ns_mlp_loss_backward(m, xf, y, tf, B, 1, noise, &out, &err), NS_OK, "%s", err.msg);

    size_t n = m->n_params;
    double *theta = malloc(n * sizeof *theta), *num = malloc(n * sizeof *num);
    for (size_t i = 0; i < n; i++)
        theta[i] = m->params[i];
    const double *cw = gc.weighted ? cwd : NULL;
    double l0 = ref_loss(m, theta, xd, y, td, cw, B, noise);
    cr_assert(fabs(l0 - out.loss_sum / out.weight_sum) <= 1e-5 * (1 + fabs(l0)),
              "forward loss %.9g differs from the reference %.9g",
              out.loss_sum / out.weight_sum, l0);
    const double h = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double keep = theta[i];
        theta[i] = keep + h;
        double lp = ref_loss(m, theta, xd, y, td, cw, B, noise);
        theta[i] = keep - h;
        double lm = ref_loss(m, theta, xd, y, td, cw, B, noise);
        theta[i] = keep;
        num[i] = (lp - lm) / (2 * h);
    }
    size_t worst;
    double r = tu_close_ratio(num, m->grads, n, 2e-5, 2e-3, &worst);
    cr_assert(r <= 1.0, "%s/%s dropout %.1f: gradient %zu is %.9g, finite difference %.9g",
              ns_act_name(gc.act), ns_loss_name(gc.loss), gc.dropout, worst, m->grads[worst], num[worst]);
    free(theta);
    free(num);
    ns_mlp_free(m);
    ns_backend_free(be);
}

static const ns_act all_acts[] = {NS_ACT_RELU, NS_ACT_LEAKY_RELU, NS_ACT_GELU, NS_ACT_TANH, NS_ACT_SIGMOID};

Test(mlp, gradcheck_xent_every_activation)
{
    for (size_t a = 0; a < sizeof all_acts / sizeof *all_acts; a++)
        gradient_check((gc_case){.act = all_acts[a], .loss = NS_LOSS_XENT});
}

Test(mlp, gradcheck_mse_every_activation)
{
    for (size_t a = 0; a < sizeof all_acts / sizeof *all_acts; a++)
        gradient_check((gc_case){.act = all_acts[a], .loss = NS_LOSS_MSE});
}

Test(mlp, gradcheck_weighted_smoothed_xent)
{
    gradient_check((gc_case){.act = NS_ACT_TANH, .loss = NS_LOSS_XENT, .smoothing = 0.1f, .weighted = 1});
    gradient_check((gc_case){.act = NS_ACT_GELU, .loss = NS_LOSS_XENT, .smoothing = 0.3f});
}

Test(mlp, gradcheck_dropout)
{
    gradient_check((gc_case){.act = NS_ACT_SIGMOID, .loss = NS_LOSS_XENT, .dropout = 0.3f});
    gradient_check((gc_case){.act = NS_ACT_TANH, .loss = NS_LOSS_MSE, .dropout = 0.5f});
}

Test(mlp, one_buffer_layout)
{
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    ns_mlp_spec spec = {.n_in = 784, .n_out = 10, .n_hidden = 2, .hidden = {256, 128}, .act = NS_ACT_RELU};
    ns_mlp *m = ns_mlp_alloc(&spec, be, 32, &err);
    cr_assert(m);
    cr_assert_eq(m->n_params, (size_t)784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
    cr_assert_eq(m->w[0], m->params);
    cr_assert_eq(m->b[0], m->params + 784 * 256);
    cr_assert_eq(m->w[1], m->b[0] + 256);
    cr_assert_eq(m->b[2] + 10, m->params + m->n_params);
    cr_assert_eq(m->gw[1] - m->grads, m->w[1] - m->params);
    ns_mlp_free(m);
    ns_backend_free(be);
}

Test(mlp, init_statistics_and_determinism)
{
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    ns_mlp_spec spec = {.n_in = 400, .n_out = 10, .n_hidden = 1, .hidden = {300}, .init = NS_INIT_HE};
    ns_mlp *a = ns_mlp_alloc(&spec, be, 1, &err), *b = ns_mlp_alloc(&spec, be, 1, &err);
    ns_rng r1, r2;
    ns_rng_seed(&r1, 7);
    ns_rng_seed(&r2, 7);
    cr_assert_eq(ns_mlp_init_params(a, &r1, NULL), NS_OK);
    cr_assert_eq(ns_mlp_init_params(b, &r2, NULL), NS_OK);
    cr_assert_eq(memcmp(a->params, b->params, a->n_params * sizeof(float)), 0);
    double s = 0, s2 = 0;
    size_t nw = 400 * 300;
    for (size_t i = 0; i < nw; i++) {
        s += a->w[0][i];
        s2 += (double)a->w[0][i] * a->w[0][i];
    }
    double sd = sqrt(s2 / nw - (s / nw) * (s / nw));
    cr_assert(fabs(sd - sqrt(2.0 / 400)) < 0.01 * sqrt(2.0 / 400), "He std %g", sd);
    for (int o = 0; o < 300; o++)
        cr_assert_eq(a->b[0][o], 0.0f);
    spec.init = NS_INIT_XAVIER;
    ns_mlp *c = ns_mlp_alloc(&spec, be, 1, &err);
    cr_assert_eq(ns_mlp_init_params(c, &r1, NULL), NS_OK);
    double lim = sqrt(6.0 / 700), mx = 0;
    for (size_t i = 0; i < nw; i++)
        mx = fmax(mx, fabs(c->w[0][i]));
    cr_assert(mx <= lim && mx > 0.99 * lim, "Xavier max %g, limit %g", mx, lim);
    ns_mlp_free(a);
    ns_mlp_free(b);
    ns_mlp_free(c);
    ns_backend_free(be);
}

Test(mlp, rejects_bad_specs)
{
    ns_err err = {0};
    ns_backend *be = ns_backend_cpu_alloc(1, &err);
    ns_mlp_spec spec = {.n_in = 4, .n_out = 2, .n_hidden = 1, .hidden = {0}};
    cr_assert_null(ns_mlp_alloc(&spec, be, 8, &err));
    cr_assert_eq(err.code, NS_EINPUT);
    spec.hidden[0] = 3;
    spec.dropout = 1.0f;
    cr_assert_null(ns_mlp_alloc(&spec, be, 8, &err));
    cr_assert(strstr(err.msg, "dropout"));
    ns_backend_free(be);
}
