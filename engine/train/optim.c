/* optim.c — optimizer state and stepping over one flat parameter buffer (see optim.h).
 * The arithmetic is the backend's (ns_op_*_update, one fused pass); this file only owns
 * the state buffers, the step count and the bias corrections, formed in double.
 * Not a scheduler: the caller passes each step's learning rate. */
#include "engine/train/optim.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void ns_optim_spec_default(ns_optim_spec *s, ns_opt_kind kind)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->momentum = kind == NS_OPT_SGD ? 0.9 : 0.0;
    s->nesterov = 0;
    s->beta1 = 0.9;
    s->beta2 = 0.999;
    s->alpha = 0.99;
    s->eps = 1e-8;
    s->weight_decay = 0.0;
}

const char *ns_opt_kind_name(ns_opt_kind k)
{
    switch (k) {
    case NS_OPT_SGD: return "sgd";
    case NS_OPT_ADAM: return "adam";
    case NS_OPT_ADAMW: return "adamw";
    case NS_OPT_RMSPROP: return "rmsprop";
    }
    return "unknown";
}

/* The ranges torch.optim accepts, checked here so a bad spec fails before any step. */
static int spec_check(const ns_optim_spec *s, ns_err *err)
{
    const char *name = ns_opt_kind_name(s->kind);
    if (s->kind != NS_OPT_SGD && s->kind != NS_OPT_ADAM && s->kind != NS_OPT_ADAMW &&
        s->kind != NS_OPT_RMSPROP)
        return ns_err_set(err, NS_EINPUT,
                          "optimizer: unknown kind %d; use sgd, adam, adamw or rmsprop",
                          (int)s->kind);
    if (!(s->weight_decay >= 0.0 && isfinite(s->weight_decay)))
        return ns_err_set(err, NS_EINPUT,
                          "optimizer %s: weight_decay %g is invalid; use a value >= 0",
                          name, s->weight_decay);
    if ((s->kind == NS_OPT_SGD || s->kind == NS_OPT_RMSPROP) &&
        !(s->momentum >= 0.0 && isfinite(s->momentum)))
        return ns_err_set(err, NS_EINPUT,
                          "optimizer %s: momentum %g is invalid; use a value >= 0 (0 disables)",
                          name, s->momentum);
    if (s->kind == NS_OPT_SGD && s->nesterov && !(s->momentum > 0.0))
        return ns_err_set(err, NS_EINPUT,
                          "optimizer sgd: nesterov needs momentum > 0; set momentum (e.g. 0.9) "
                          "or turn nesterov off");
    if (s->kind == NS_OPT_ADAM || s->kind == NS_OPT_ADAMW) {
        if (!(s->beta1 >= 0.0 && s->beta1 < 1.0))
            return ns_err_set(err, NS_EINPUT,
                              "optimizer %s: beta1 %g is invalid; use a value in [0, 1)",
                              name, s->beta1);
        if (!(s->beta2 >= 0.0 && s->beta2 < 1.0))
            return ns_err_set(err, NS_EINPUT,
                              "optimizer %s: beta2 %g is invalid; use a value in [0, 1)",
                              name, s->beta2);
    }
    if (s->kind == NS_OPT_RMSPROP && !(s->alpha >= 0.0 && s->alpha <= 1.0))
        return ns_err_set(err, NS_EINPUT,
                          "optimizer rmsprop: alpha %g is invalid; use a value in [0, 1]",
                          s->alpha);
    if (s->kind != NS_OPT_SGD && !(s->eps >= 0.0 && isfinite(s->eps)))
        return ns_err_set(err, NS_EINPUT,
                          "optimizer %s: eps %g is invalid; use a small value >= 0 (1e-8)",
                          name, s->eps);
    return NS_OK;
}

int ns_optim_init(ns_optim *o, const ns_optim_spec *spec, ns_backend *be, size_t n, ns_err *err)
{
    memset(o, 0, sizeof *o);
    int rc = spec_check(spec, err);
    if (rc != NS_OK)
        return rc;
    o->spec = *spec;
    o->be = be;
    o->n = n;
    if (n > SIZE_MAX / sizeof(float))
        return ns_err_set(err, NS_ERUNTIME, "optimizer: %zu parameters overflow the address "
                          "space", n);
    size_t bytes = n * sizeof(float);
    int want_m = 0, want_v = 0;
    switch (spec->kind) {
    case NS_OPT_SGD: want_m = spec->momentum > 0.0; break;
    case NS_OPT_ADAM:
    case NS_OPT_ADAMW: want_m = want_v = 1; break;
    case NS_OPT_RMSPROP: want_v = 1; want_m = spec->momentum > 0.0; break;
    }
    /* With n == 0 every pass is empty, so a NULL buffer is never touched. */
    if (want_m && n > 0 && !(o->m = ns_buf_alloc(be, bytes)))
        goto fail;
    if (want_v && n > 0 && !(o->v = ns_buf_alloc(be, bytes)))
        goto fail;
    return NS_OK;
fail:
    ns_optim_free(o);
    return ns_err_set(err, NS_ERUNTIME,
                      "optimizer %s: out of memory for the state of %zu parameters",
                      ns_opt_kind_name(spec->kind), n);
}

/* The backend's update of the range [a, a + n) of o's buffers with the step's LR and bias
 * corrections; the gradient's sum of squares to res (device, may be NULL), gated as
 * backend.h says. */
static ns_member_update range_update(ns_optim *o, float *params, const float *grads, size_t a,
                                     size_t n, double lr, double bc1, double bc2,
                                     const double *gate, double *res)
{
    const ns_optim_spec *s = &o->spec;
    ns_member_update u = {.p = params + a, .m = o->m ? o->m + a : NULL,
                          .v = o->v ? o->v + a : NULL, .g = grads + a, .n = n,
                          .lr = (float)lr, .eps = (float)s->eps, .wd = (float)s->weight_decay,
                          .mu = o->m ? (float)s->momentum : 0.0f, .b1 = s->beta1,
                          .b2 = s->beta2, .bc1 = bc1, .bc2 = bc2, .alpha = s->alpha,
                          .nesterov = s->nesterov, .decoupled = s->kind == NS_OPT_ADAMW,
                          .gate = gate, .res = res};
    switch (s->kind) {
    case NS_OPT_SGD: u.kind = NS_UPD_SGD; break;
    case NS_OPT_ADAM:
    case NS_OPT_ADAMW: u.kind = NS_UPD_ADAM; break;
    case NS_OPT_RMSPROP: u.kind = NS_UPD_RMSPROP; break;
    }
    return u;
}

/* Members per call of the backend's update (the rest in further calls) */
#define MEMBERS_AT_ONCE 32

void ns_optim_step_members(ns_optim *const *o, float *const *params, const float *const *grads,
                           const double *lr, int K, int n_groups, const size_t *off,
                           const double *const *gate, double *const *res)
{
    ns_member_update u[MEMBERS_AT_ONCE];
    double bc1[MEMBERS_AT_ONCE], bc2[MEMBERS_AT_ONCE];
    for (int k0 = 0; k0 < K; k0 += MEMBERS_AT_ONCE) {
        int kn = K - k0 < MEMBERS_AT_ONCE ? K - k0 : MEMBERS_AT_ONCE;
        for (int j = 0; j < kn; j++) {
            ns_optim *ok = o[k0 + j];
            ok->t++;
            bc1[j] = 1.0 - pow(ok->spec.beta1, (double)ok->t);
            bc2[j] = 1.0 - pow(ok->spec.beta2, (double)ok->t);
        }
        for (int g = 0; g < n_groups; g++) {
            for (int j = 0; j < kn; j++) {
                int k = k0 + j;
                u[j] = range_update(o[k], params[k], grads[k], off[g], off[g + 1] - off[g], lr[k],
                                    bc1[j], bc2[j], gate ? gate[k] : NULL,
                                    res && res[k] ? res[k] + g : NULL);
            }
            ns_op_update_members(o[k0]->be, u, kn);
        }
    }
}

void ns_optim_step_groups(ns_optim *o, float *params, const float *grads, double lr,
                          int n_groups, const size_t *off, const double *gate, double *res)
{
    ns_optim_step_members(&o, &params, &grads, &lr, 1, n_groups, off, &gate, &res);
}

void ns_optim_step(ns_optim *o, float *params, const float *grads, double lr)
{
    const size_t off[2] = {0, o->n};
    ns_optim_step_groups(o, params, grads, lr, 1, off, NULL, NULL);
}

void ns_optim_free(ns_optim *o)
{
    if (o->m)
        ns_buf_free(o->be, o->m);
    if (o->v)
        ns_buf_free(o->be, o->v);
    o->m = o->v = NULL;
}

/* ---- checkpoint I/O ----------------------------------------------------------------
 * Layout (host byte order): int64 t, uint64 n, int32 kind, int32 buffers (bit 0: m,
 * bit 1: v), then m (n floats) if present, then v (n floats) if present. The header lets
 * a load refuse a file written for another optimizer or model size. */

#define CHUNK_FLOATS ((size_t)1 << 16) /* host staging for device buffers */

static int save_buf(ns_backend *be, const float *dev, size_t n, float *tmp, FILE *f)
{
    for (size_t off = 0; off < n; off += CHUNK_FLOATS) {
        size_t k = n - off < CHUNK_FLOATS ? n - off : CHUNK_FLOATS;
        ns_buf_download(be, tmp, dev + off, k * sizeof(float));
        if (fwrite(tmp, sizeof(float), k, f) != k)
            return NS_ERUNTIME;
    }
    return NS_OK;
}

static int load_buf(ns_backend *be, float *dev, size_t n, float *tmp, FILE *f)
{
    for (size_t off = 0; off < n; off += CHUNK_FLOATS) {
        size_t k = n - off < CHUNK_FLOATS ? n - off : CHUNK_FLOATS;
        if (fread(tmp, sizeof(float), k, f) != k)
            return NS_EINPUT;
        ns_buf_upload(be, dev + off, tmp, k * sizeof(float));
    }
    return NS_OK;
}

static int32_t buf_mask(const ns_optim *o) { return (o->m ? 1 : 0) | (o->v ? 2 : 0); }

int ns_optim_save(const ns_optim *o, FILE *f)
{
    int64_t t = o->t;
    uint64_t n = o->n;
    int32_t kind = (int32_t)o->spec.kind, mask = buf_mask(o);
    if (fwrite(&t, sizeof t, 1, f) != 1 || fwrite(&n, sizeof n, 1, f) != 1 ||
        fwrite(&kind, sizeof kind, 1, f) != 1 || fwrite(&mask, sizeof mask, 1, f) != 1)
        return NS_ERUNTIME;
    if (!mask)
        return NS_OK;
    size_t cap = o->n < CHUNK_FLOATS ? o->n : CHUNK_FLOATS;
    float *tmp = malloc(cap * sizeof(float));
    if (!tmp)
        return NS_ERUNTIME;
    int rc = NS_OK;
    if (o->m)
        rc = save_buf(o->be, o->m, o->n, tmp, f);
    if (rc == NS_OK && o->v)
        rc = save_buf(o->be, o->v, o->n, tmp, f);
    free(tmp);
    return rc;
}

/* NS_EINPUT for a short file or one written for another kind, size or state layout;
 * NS_ERUNTIME if the staging buffer cannot be allocated. After a failure the state is
 * unspecified (t is unchanged): the caller abandons the resume. */
int ns_optim_load(ns_optim *o, FILE *f)
{
    int64_t t;
    uint64_t n;
    int32_t kind, mask;
    if (fread(&t, sizeof t, 1, f) != 1 || fread(&n, sizeof n, 1, f) != 1 ||
        fread(&kind, sizeof kind, 1, f) != 1 || fread(&mask, sizeof mask, 1, f) != 1)
        return NS_EINPUT;
    if (t < 0 || t > (INT64_C(1) << 53) || n != (uint64_t)o->n || kind != (int32_t)o->spec.kind || mask != buf_mask(o))
        return NS_EINPUT;
    if (!mask) {
        o->t = (long)t;
        return NS_OK;
    }
    size_t cap = o->n < CHUNK_FLOATS ? o->n : CHUNK_FLOATS;
    float *tmp = malloc(cap * sizeof(float));
    if (!tmp)
        return NS_ERUNTIME;
    int rc = NS_OK;
    if (o->m)
        rc = load_buf(o->be, o->m, o->n, tmp, f);
    if (rc == NS_OK && o->v)
        rc = load_buf(o->be, o->v, o->n, tmp, f);
    free(tmp);
    if (rc == NS_OK)
        o->t = (long)t;
    return rc;
}
