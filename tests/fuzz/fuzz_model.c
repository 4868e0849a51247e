/* fuzz_model.c — libFuzzer target for the model-file and ensemble-file reader
 * (model/modelfile.h: ns_model_load, ns_models_load). Byte 0 of the input picks the mode,
 * the rest is the file (a memory file): bit 0 set leaves the bytes as they are; clear, the
 * harness first writes the true file size and CRC-32 into a model file and into each
 * member and the envelope of an ensemble, so mutations reach the sections behind the
 * checksum. Bit 1 reads with ns_model_load instead of ns_models_load. A model that loads
 * is then used as `nnsearch predict` uses it: standardise a row, forward it through each
 * member, run the drift check against the stored statistics. */
#include <stdlib.h>
#include <string.h>

#include "engine/backend/backend.h"
#include "model/drift.h"
#include "model/mlp.h"
#include "model/modelfile.h"
#include "tests/fuzz/fuzz_util.h"

enum { HDR = 20, CRC = 4 };

/* Size field and CRC of the model file in b[0..n), when it is one. */
static void fix_model(uint8_t *b, size_t n)
{
    if (n < HDR + CRC || memcmp(b, "NSMODEL", 8))
        return;
    fz_put_u64(b + 12, n);
    fz_put_u32(b + n - CRC, fz_crc32(b, n - CRC));
}

/* Each member ([u64 length][model file] after the 24-byte header), then the envelope. */
static void fix_ensemble(uint8_t *b, size_t n)
{
    if (n < HDR + 4 + CRC || memcmp(b, "NSENSMB", 8))
        return;
    uint32_t count = fz_get_u32(b + HDR);
    size_t off = HDR + 4, end = n - CRC;
    for (uint32_t i = 0; i < count && i < 256 && end - off >= 8; i++) {
        uint64_t len = fz_get_u64(b + off);
        off += 8;
        if (len > end - off)
            break;
        fix_model(b + off, (size_t)len);
        off += (size_t)len;
    }
    fz_put_u64(b + 12, n);
    fz_put_u32(b + n - CRC, fz_crc32(b, n - CRC));
}

static ns_backend *be;

/* What predict does with a model, on one row of zeros (n_in is at most the file's size,
 * which libFuzzer keeps small, but the architecture may still be wide: skip huge ones). */
static void use_model(const ns_model_file *mf)
{
    ns_err err;
    if (mf->n_params > (1u << 22) || mf->spec.n_in > (1 << 16))
        return;
    if (!be && !(be = ns_backend_cpu_alloc(1, &err)))
        abort();
    ns_mlp *m = ns_mlp_alloc(&mf->spec, be, 1, &err);
    if (!m)
        return; /* refused by the network's own checks: fine, it said why */
    if (m->n_params != mf->n_params)
        abort(); /* the reader let an inconsistent count through */
    size_t d = (size_t)mf->spec.n_in, k = (size_t)mf->spec.n_out;
    float *x = calloc(d, sizeof *x), *out = malloc(k * sizeof *out);
    float *xdev = ns_buf_alloc(be, d * sizeof *x), *odev = ns_buf_alloc(be, k * sizeof *out);
    if (x && out && xdev && odev) {
        ns_buf_upload(be, m->params, mf->params, mf->n_params * sizeof(float));
        ns_standardizer_apply(&mf->stdz, x, 1);
        ns_buf_upload(be, xdev, x, d * sizeof *x);
        const float *z = ns_mlp_forward(m, xdev, 1, 0, 0);
        if (mf->task == NS_TASK_CLASSIFY)
            ns_op_softmax(be, odev, z, 1, (int)k);
        else
            ns_buf_copy(be, odev, z, k * sizeof(float));
        ns_buf_download(be, out, odev, k * sizeof(float));
        if (mf->fstats.d) {
            ns_drift_report rep;
            (void)ns_drift_check(&rep, &mf->fstats, mf->feature_names, x, 1, (int)d, &err);
            ns_drift_report_free(&rep);
        }
    }
    ns_buf_free(be, xdev);
    ns_buf_free(be, odev);
    free(x);
    free(out);
    ns_mlp_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int raw = data[0] & 1, single = data[0] & 2;
    size_t n = size - 1;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return 0;
    memcpy(b, data + 1, n);
    if (!raw) {
        fix_model(b, n);
        fix_ensemble(b, n);
    }
    const char *path = fz_memfile(0, b, n, 0);
    free(b);
    ns_err err;
    if (single) {
        ns_model_file mf;
        if (fz_report(ns_model_load(path, &mf, &err), &err) == NS_OK)
            use_model(&mf);
        ns_model_file_free(&mf);
    } else {
        ns_model_file *mm;
        int k;
        if (fz_report(ns_models_load(path, &mm, &k, &err), &err) == NS_OK)
            for (int i = 0; i < k; i++)
                use_model(&mm[i]);
        ns_models_free(mm, k);
    }
    return 0;
}
