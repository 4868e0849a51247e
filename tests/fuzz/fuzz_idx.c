/* fuzz_idx.c — libFuzzer target for the IDX loader (ns_dataset_load_idx and
 * ns_dataset_load), raw and gzip'd. Byte 0 picks the mode: bit 0 gzips the images file,
 * bit 1 the labels file, bit 2 gives a labels file, bit 3 reads through ns_dataset_load
 * (with bit 4: a fixed vocabulary of 10 classes). Bytes 1-2 (little-endian) are the length
 * of the images file, which follows; the labels file is the rest. Both are memory files.
 * A dataset that loads must hold n x d features and labels below n_classes. */
#include <stdlib.h>

#include "engine/data/data.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    unsigned mode = data[0];
    size_t n_img = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (n_img > size)
        n_img = size;
    const char *img = fz_memfile(0, data, n_img, mode & 1);
    const char *lab = mode & 4 ? fz_memfile(1, data + n_img, size - n_img, mode & 2) : NULL;
    ns_dataset ds;
    ns_err err;
    ns_csv_opts o = {.label = "label", .task = NS_TASK_CLASSIFY, .n_classes = mode & 16 ? 10 : 0};
    int rc = mode & 8 ? ns_dataset_load(&ds, img, lab, &o, &err)
                      : ns_dataset_load_idx(&ds, img, lab, &err);
    if (fz_report(rc, &err) == NS_OK) {
        if (ds.n < 0 || ds.d < 1 || (ds.n && !ds.x) || (lab && ds.n && !ds.y))
            abort();
        volatile float sum = 0; /* touch every value: n x d must be what was allocated */
        for (long i = 0; i < ds.n * (long)ds.d; i++)
            sum += ds.x[i];
        for (long i = 0; ds.y && i < ds.n; i++)
            if (ds.y[i] < 0 || ds.y[i] >= ds.n_classes)
                abort();
    }
    ns_dataset_free(&ds);
    return 0;
}
