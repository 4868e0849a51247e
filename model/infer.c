/* infer.c — a saved network's forward pass over rows, batch by batch, on one network whose
 * weights are swapped per member. Nothing here reads files or trains. */
#include "model/infer.h"

#include <stdlib.h>
#include <string.h>

int ns_infer_open(ns_infer *r, int eb, ns_err *err)
{
    memset(r, 0, sizeof *r);
    if (eb < 1)
        return ns_err_set(err, NS_ERUNTIME, "inference batch of %d rows", eb);
    r->eb = eb;
    /* Scoring a saved model is a few forward passes: one thread, so that it runs beside
     * the trials of a search without taking their cores. */
    if (!(r->be = ns_backend_cpu_alloc(1, err)))
        return err && err->code ? err->code : NS_ERUNTIME;
    return NS_OK;
}

static void free_buffers(ns_infer *r)
{
    if (r->be) {
        ns_buf_free(r->be, r->xdev);
        ns_buf_free(r->be, r->odev);
    }
    free(r->xb);
    r->xb = r->xdev = r->odev = NULL;
    r->d_cap = r->k_cap = 0;
}

void ns_infer_close(ns_infer *r)
{
    if (!r)
        return;
    free_buffers(r);
    ns_mlp_free(r->m);
    ns_backend_free(r->be);
    memset(r, 0, sizeof *r);
}

/* Whether a network built for a computes b's forward pass once b's weights are in it: the
 * same widths and activation (dropout and init play no part at inference). The loss and
 * label smoothing do play a part in a loss the caller asks the network for, so they must
 * match too. */
static int same_network(const ns_mlp_spec *a, const ns_mlp_spec *b)
{
    if (a->n_in != b->n_in || a->n_out != b->n_out || a->n_hidden != b->n_hidden ||
        a->act != b->act || a->loss != b->loss || a->label_smoothing != b->label_smoothing)
        return 0;
    for (int l = 0; l < a->n_hidden; l++)
        if (a->hidden[l] != b->hidden[l])
            return 0;
    return 1;
}

int ns_infer_load(ns_infer *r, const ns_model_file *mf, ns_err *err)
{
    if (r->loaded == mf)
        return NS_OK;
    if (mf->n_params != ns_mlp_spec_param_count(&mf->spec))
        return ns_err_set(err, NS_EINPUT, "model has %zu parameters, its architecture %llu",
                          mf->n_params, (unsigned long long)ns_mlp_spec_param_count(&mf->spec));
    r->loaded = NULL;
    if (!r->m || !same_network(&r->m->spec, &mf->spec)) {
        ns_mlp_free(r->m);
        if (!(r->m = ns_mlp_alloc(&mf->spec, r->be, r->eb, err)))
            return err && err->code ? err->code : NS_ERUNTIME;
    }
    int d = mf->spec.n_in, k = mf->spec.n_out;
    if (d > r->d_cap || k > r->k_cap) {
        free_buffers(r);
        r->xb = malloc((size_t)r->eb * d * sizeof *r->xb);
        r->xdev = ns_buf_alloc(r->be, (size_t)r->eb * d * sizeof(float));
        r->odev = ns_buf_alloc(r->be, (size_t)r->eb * k * sizeof(float));
        if (!r->xb || !r->xdev || !r->odev) {
            free_buffers(r);
            return ns_err_set(err, NS_ERUNTIME, "out of memory for a model's forward pass");
        }
        r->d_cap = d;
        r->k_cap = k;
    }
    ns_buf_upload(r->be, r->m->params, mf->params, mf->n_params * sizeof(float));
    r->loaded = mf;
    return NS_OK;
}

int ns_infer_run(ns_infer *r, const ns_model_file *mf, const float *x, long n, int standardise,
                 ns_infer_out what, float *out, ns_err *err)
{
    int rc = ns_infer_load(r, mf, err);
    if (rc)
        return rc;
    const int d = mf->spec.n_in, K = mf->spec.n_out;
    const int probs = what == NS_INFER_PROBS && mf->task == NS_TASK_CLASSIFY;
    for (long i0 = 0; i0 < n; i0 += r->eb) {
        int B = (int)(n - i0 < r->eb ? n - i0 : r->eb);
        const float *rows = x + (size_t)i0 * d;
        if (standardise) {
            memcpy(r->xb, rows, (size_t)B * d * sizeof *r->xb);
            ns_standardizer_apply(&mf->stdz, r->xb, B);
            rows = r->xb;
        }
        ns_buf_upload(r->be, r->xdev, rows, (size_t)B * d * sizeof(float));
        const float *z = ns_mlp_forward(r->m, r->xdev, B, 0, 0);
        if (probs) {
            ns_op_softmax(r->be, r->odev, z, B, K);
            z = r->odev;
        }
        ns_buf_download(r->be, out + (size_t)i0 * K, z, (size_t)B * K * sizeof(float));
    }
    return NS_OK;
}
