/* data_idx.c — the IDX loader: reads and checks IDX image and label files (raw or gzip'd)
 * into a dataset. Not format detection or dataset operations (data.c), not CSV (data_csv.c);
 * pixels stay unscaled bytes as floats: scaling is the standardizer's. */
#include "engine/data/data_impl.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *data_idx_type_name(int t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown";
    }
}

typedef struct data_idx {
    char *buf;
    size_t len;
    long n;                    /* items: the first dimension */
    long item;                 /* bytes per item: product of the other dimensions, 1 if none */
    const unsigned char *data; /* (n, item) */
} data_idx;

/* Reads and checks one IDX file; labels: must be rank 1. */
static int data_idx_read(data_idx *f, const char *path, int labels, ns_err *err)
{
    int gz = 0, rc;
    memset(f, 0, sizeof *f);
    if ((rc = data_file_read(path, &f->buf, &f->len, &gz, err)))
        return rc;
    const unsigned char *b = (const unsigned char *)f->buf;
    size_t len = f->len;
    const char *dec = gz ? " (decompressed)" : "";
    if (len == 0) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 0: the file is empty; an IDX file starts with "
                        "00 00 08 RANK, download/copy it again", path);
        goto fail;
    }
    if (len < 4) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte %zu: the file%s ends inside the 4-byte IDX "
                        "magic; the file is truncated, download/copy it again", path, len, dec);
        goto fail;
    }
    if (b[0] != 0 || b[1] != 0) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 0: bad magic %02x %02x %02x %02x, an IDX file "
                        "starts with 00 00 08 RANK; check that the path names an IDX file",
                        path, b[0], b[1], b[2], b[3]);
        goto fail;
    }
    if (b[2] != 0x08) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 2: IDX type code 0x%02X (%s) is not supported, "
                        "only 0x08 (unsigned byte) is; convert the data to unsigned bytes or CSV",
                        path, b[2], data_idx_type_name(b[2]));
        goto fail;
    }
    int rank = b[3];
    if (rank == 0 || (labels && rank != 1)) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 3: rank %d, a%s file needs rank %s; %s", path,
                        rank, labels ? " labels" : "n IDX", labels ? "1" : ">= 1",
                        labels ? "check that images and labels are not swapped"
                               : "the file is corrupt, download/copy it again");
        goto fail;
    }
    size_t hdr = 4 + 4 * (size_t)rank;
    if (len < hdr) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte %zu: the file%s ends inside the header, which "
                        "needs %zu bytes for rank %d; the file is truncated, download/copy it "
                        "again", path, len, dec, hdr, rank);
        goto fail;
    }
    uint64_t total = 1, item = 1, n = 0;
    int overflow = 0;
    for (int i = 0; i < rank; i++) {
        const unsigned char *q = b + 4 + 4 * i;
        uint64_t dim = (uint64_t)q[0] << 24 | (uint64_t)q[1] << 16 | (uint64_t)q[2] << 8 | q[3];
        if (i == 0)
            n = dim;
        else if (dim && item > UINT64_MAX / dim)
            overflow = 1;
        else
            item *= dim;
        if (dim && total > UINT64_MAX / dim)
            overflow = 1;
        else
            total *= dim;
    }
    if (overflow) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 4: the dimensions in the header overflow 64 "
                        "bits; the file is corrupt, download/copy it again", path);
        goto fail;
    }
    if (n == 0 || item == 0) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 4: the header announces %s; the file holds no "
                        "data, use the complete file", path, n == 0 ? "0 items" : "empty items");
        goto fail;
    }
    if (total > len - hdr) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte %zu: file%s ends at byte %zu but the header "
                        "announces %llu bytes of data after its %zu (%llu in all); the file is "
                        "truncated, download/copy it again", path, len, dec, len,
                        (unsigned long long)total, hdr, (unsigned long long)(hdr + total));
        goto fail;
    }
    if (total < len - hdr) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte %llu: %llu bytes follow the %llu bytes of data "
                        "the header announces; the file is corrupt or not what its header says, "
                        "download/copy it again", path, (unsigned long long)(hdr + total),
                        (unsigned long long)(len - hdr - total), (unsigned long long)total);
        goto fail;
    }
    if (n > INT32_MAX || item > INT_MAX) {
        rc = ns_err_set(err, NS_EINPUT, "%s: byte 4: %llu items of %llu values exceed the limits "
                        "(%d items, %d values each); split the data", path,
                        (unsigned long long)n, (unsigned long long)item, INT32_MAX, INT_MAX);
        goto fail;
    }
    f->n = (long)n;
    f->item = (long)item;
    f->data = b + hdr;
    return NS_OK;
fail:
    free(f->buf);
    memset(f, 0, sizeof *f);
    return rc;
}

/* The IDX loader; fixed_classes > 0: labels must be below it (a vocabulary from training).
 * Contract in data_impl.h. */
int data_idx_load(ns_dataset *ds, const char *images_path, const char *labels_path,
                  int fixed_classes, ns_err *err)
{
    data_idx im = {0}, lb = {0};
    ns_dataset t = {0};
    int rc;
    memset(ds, 0, sizeof *ds);
    if ((rc = data_idx_read(&im, images_path, 0, err)))
        goto fail;
    if (labels_path) {
        if ((rc = data_idx_read(&lb, labels_path, 1, err)))
            goto fail;
        if (lb.n != im.n) {
            rc = ns_err_set(err, NS_EINPUT, "%s: byte 4: %ld labels but %s holds %ld images; "
                            "use the labels file that belongs to these images", labels_path,
                            lb.n, images_path, im.n);
            goto fail;
        }
    }
    t.n = im.n;
    t.d = (int)im.item;
    t.task = NS_TASK_CLASSIFY;
    size_t cells = (size_t)im.n * (size_t)im.item;
    if (cells > SIZE_MAX / sizeof *t.x || !(t.x = malloc(cells * sizeof *t.x))) {
        rc = ns_err_set(err, NS_ERUNTIME, "%s: out of memory for %ld x %ld floats", images_path,
                        im.n, im.item);
        goto fail;
    }
    /* Raw byte values; standardisation happens later, on training rows only. */
    for (size_t i = 0; i < cells; i++)
        t.x[i] = (float)im.data[i];
    free(im.buf);
    im.buf = NULL;
    if (labels_path) {
        if (!(t.y = malloc((size_t)t.n * sizeof *t.y))) {
            rc = ns_err_set(err, NS_ERUNTIME, "%s: out of memory for %ld labels", labels_path,
                            t.n);
            goto fail;
        }
        int max = 0;
        for (long i = 0; i < t.n; i++) {
            int v = lb.data[i];
            if (fixed_classes > 0 && v >= fixed_classes) {
                rc = ns_err_set(err, NS_EINPUT, "%s: byte %ld: label %d is not one of the %d "
                                "training classes 0..%d; use labels from the same label set as "
                                "the training data", labels_path, 8 + i, v, fixed_classes,
                                fixed_classes - 1);
                goto fail;
            }
            t.y[i] = v;
            if (v > max)
                max = v;
        }
        t.n_classes = fixed_classes > 0 ? fixed_classes : max + 1;
    } else {
        t.n_classes = fixed_classes > 0 ? fixed_classes : 0;
    }
    free(lb.buf);
    *ds = t;
    return NS_OK;
fail:
    free(im.buf);
    free(lb.buf);
    ns_dataset_free(&t);
    return rc;
}

int ns_dataset_load_idx(ns_dataset *ds, const char *images_path, const char *labels_path,
                        ns_err *err)
{
    return data_idx_load(ds, images_path, labels_path, 0, err);
}
